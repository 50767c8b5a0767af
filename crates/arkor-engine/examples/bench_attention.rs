//! The fused causal attention op against the composed candle ops it replaces, forward and
//! forward + backward, at the training benchmark's shape (SmolLM2-135M: 9 query heads,
//! 3 kv heads, head_dim 64; batch 4 x 256 positions).
//!
//! ```text
//! cargo run --release -p arkor-engine --example bench_attention -- [--iters N] [--seq N]
//! ```
//!
//! The two paths alternate within one process, so a busy machine slows both alike; the
//! minimum and median time per call of each are printed. Rotary embedding is not included: both paths
//! take q and k already rotated.

use std::time::Instant;

use arkor_engine::layers::attention::{Causal, causal_attention, composed};
use candle_core::{Device, Tensor, Var};

/// The allocator the `arkor` binary uses.
#[global_allocator]
static ALLOCATOR: arkor_engine::alloc::Allocator = arkor_engine::alloc::Allocator;

type Attn = fn(&Tensor, &Tensor, &Tensor, Causal) -> candle_core::Result<Tensor>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    arkor_engine::alloc::keep_freed_memory();
    let mut iters = 10;
    let mut seq = 256;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--iters" => iters = value.parse()?,
            "--seq" => seq = value.parse()?,
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    let c = Causal {
        batch: 4,
        seq,
        offset: 0,
        heads: 9,
        kv_heads: 3,
        head_dim: 64,
        scale: 0.125,
        window: None,
    };
    let dev = Device::Cpu;
    let q = Var::from_tensor(&Tensor::randn(0f32, 1.0, (c.batch * seq, 9 * 64), &dev)?)?;
    let k = Var::from_tensor(&Tensor::randn(0f32, 1.0, (c.batch * seq, 3 * 64), &dev)?)?;
    let v = Var::from_tensor(&Tensor::randn(0f32, 1.0, (c.batch * seq, 3 * 64), &dev)?)?;
    let probe = Tensor::randn(0f32, 1.0, (c.batch * seq, 9 * 64), &dev)?;
    let paths: [(&str, Attn); 2] = [("composed", composed), ("fused", causal_attention)];
    let mut times = vec![(vec![], vec![]); paths.len()];
    for _ in 0..iters {
        for ((_, f), (fwd, both)) in paths.iter().zip(times.iter_mut()) {
            let start = Instant::now();
            std::hint::black_box(f(q.as_tensor(), k.as_tensor(), v.as_tensor(), c)?);
            fwd.push(start.elapsed().as_secs_f64() * 1e3);
            let start = Instant::now();
            let y = f(q.as_tensor(), k.as_tensor(), v.as_tensor(), c)?;
            let grads = (y * &probe)?.sum_all()?.backward()?;
            std::hint::black_box(grads.get(&q));
            both.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    // Min and median: on a shared machine the minimum is the least disturbed run.
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        format!("{:.2} / {:.2}", v[0], v[v.len() / 2])
    };
    println!("attention, batch 4 x {seq}, 9/3 heads of 64, {iters} alternating iterations");
    println!("{:<10} {:>22} {:>26}", "path", "forward ms (min / med)", "fwd+bwd ms (min / med)");
    for ((name, _), (fwd, both)) in paths.iter().zip(times.iter_mut()) {
        println!("{name:<10} {:>22} {:>26}", stats(fwd), stats(both));
    }
    Ok(())
}
