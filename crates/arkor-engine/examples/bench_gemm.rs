//! The fp32 GEMMs of a training step, on the engine's GEMM and on other BLAS libraries:
//!
//! cargo run --release -p arkor-engine --example bench_gemm -- [--blas PATH]... [--python PATH]
//!     [--threads N] [--seconds S]
//!
//! Each row is a product the SmolLM2-135M-shaped training bench runs (batch 4 x 256 rows):
//! the forward `x W^T` and input gradient `g W` of each projection, the LoRA products of rank
//! 16, and a block of the LM head. The engine calls the `gemm` crate (what candle uses) on
//! row-major views, which is the first column. `--blas PATH` loads a CBLAS library at run time
//! (`cblas_sgemm`; Debian's OpenBLAS and BLIS, or MKL's `libmkl_rt.so`) and adds a column;
//! `--python PATH` adds PyTorch's `torch.mm` (MKL in PyPI's wheels). Every column runs on
//! `--threads` threads (default: candle's count) and reports GFLOP/s, the best of runs that
//! together last about `--seconds` (default 0.5) per product.

use std::time::Instant;

/// `(name, m, k, n, layout)`: `dst [m, n] = lhs [m, k] @ rhs [k, n]`.
const SHAPES: &[(&str, usize, usize, usize, Layout)] = &[
    ("q/o x W^T", 1024, 576, 576, Layout::RhsTransposed),
    ("q/o g W", 1024, 576, 576, Layout::Plain),
    ("k/v x W^T", 1024, 576, 192, Layout::RhsTransposed),
    ("k/v g W", 1024, 192, 576, Layout::Plain),
    ("gate/up x W^T", 1024, 576, 1536, Layout::RhsTransposed),
    ("gate/up g W", 1024, 1536, 576, Layout::Plain),
    ("down x W^T", 1024, 1536, 576, Layout::RhsTransposed),
    ("down g W", 1024, 576, 1536, Layout::Plain),
    // The frozen projections that share an input as one product (concatenated weights):
    // against the rows above, what fusing q/k/v and gate/up would give.
    ("q+k+v x W^T", 1024, 576, 960, Layout::RhsTransposed),
    ("q+k+v g W", 1024, 960, 576, Layout::Plain),
    ("gate+up x W^T", 1024, 576, 3072, Layout::RhsTransposed),
    ("gate+up g W", 1024, 3072, 576, Layout::Plain),
    ("LoRA x A^T", 1024, 576, 16, Layout::RhsTransposed),
    ("LoRA u B^T", 1024, 16, 576, Layout::RhsTransposed),
    ("LoRA g^T u", 576, 1024, 16, Layout::LhsTransposed),
    ("LM head 128 rows", 128, 576, 49152, Layout::RhsTransposed),
    ("LM head 128 g W", 128, 49152, 576, Layout::Plain),
    ("LM head 512 rows", 512, 576, 49152, Layout::RhsTransposed),
    ("LM head 512 g W", 512, 49152, 576, Layout::Plain),
];

/// How the operands are stored, as the engine's ops store them.
#[derive(Clone, Copy)]
enum Layout {
    /// `lhs [m, k]`, `rhs [k, n]`, both row-major.
    Plain,
    /// `rhs` is stored as `[n, k]` (a weight `W` used as `W^T`).
    RhsTransposed,
    /// `lhs` is stored as `[k, m]` (a gradient used as `g^T`).
    LhsTransposed,
}

type CblasSgemm = unsafe extern "C" fn(
    i32,
    i32,
    i32,
    i32,
    i32,
    i32,
    f32,
    *const f32,
    i32,
    *const f32,
    i32,
    f32,
    *mut f32,
    i32,
);

const ROW_MAJOR: i32 = 101;
const NO_TRANS: i32 = 111;
const TRANS: i32 = 112;

struct Args {
    blas: Vec<String>,
    python: Option<String>,
    threads: usize,
    seconds: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let mut columns: Vec<(String, Vec<f64>)> = vec![("gemm crate (engine)".into(), Vec::new())];
    for &(_, m, k, n, layout) in SHAPES {
        let (lhs, rhs) = (vec![0.5f32; m * k], vec![0.25f32; k * n]);
        let mut dst = vec![0f32; m * n];
        let parallelism = if args.threads > 1 {
            gemm::Parallelism::Rayon(args.threads)
        } else {
            gemm::Parallelism::None
        };
        let (lhs_rs, lhs_cs) = match layout {
            Layout::LhsTransposed => (1, m as isize),
            _ => (k as isize, 1),
        };
        let (rhs_rs, rhs_cs) = match layout {
            Layout::RhsTransposed => (1, k as isize),
            _ => (n as isize, 1),
        };
        let gflops = measure(m, k, n, args.seconds, || {
            // SAFETY: the strides address exactly the `m * k`, `k * n` and `m * n` elements of
            // the three buffers.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    dst.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    lhs.as_ptr(),
                    lhs_cs,
                    lhs_rs,
                    rhs.as_ptr(),
                    rhs_cs,
                    rhs_rs,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                )
            }
        });
        columns[0].1.push(gflops);
    }
    for path in &args.blas {
        columns.push((short_name(path), blas_column(path, &args)?));
    }
    if let Some(python) = &args.python {
        columns.push(("PyTorch torch.mm".into(), torch_column(python, &args)?));
    }
    println!();
    println!(
        "fp32 GEMM, GFLOP/s (higher is better), {} threads, best of runs over {} s per product",
        args.threads, args.seconds
    );
    println!();
    print!("| product | m x k x n |");
    for (name, _) in &columns {
        print!(" {name} |");
    }
    println!();
    print!("|---|---|");
    for _ in &columns {
        print!("---:|");
    }
    println!();
    for (row, &(name, m, k, n, _)) in SHAPES.iter().enumerate() {
        print!("| {name} | {m} x {k} x {n} |");
        for (_, values) in &columns {
            print!(" {:.1} |", values[row]);
        }
        println!();
    }
    Ok(())
}

/// GFLOP/s of `run`: the best of repeated runs within about `seconds`.
fn measure(m: usize, k: usize, n: usize, seconds: f64, mut run: impl FnMut()) -> f64 {
    run();
    let (mut best, start) = (f64::INFINITY, Instant::now());
    while start.elapsed().as_secs_f64() < seconds || best.is_infinite() {
        let t = Instant::now();
        run();
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (m * k * n) as f64 / best / 1e9
}

fn blas_column(path: &str, args: &Args) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    // SAFETY: loading a CBLAS library runs its initialisers, which is what it is for.
    let lib = unsafe { libloading::Library::new(path) }
        .map_err(|e| format!("--blas {path}: cannot load: {e}"))?;
    // SAFETY: `cblas_sgemm` has this signature in every CBLAS.
    let sgemm = unsafe { lib.get::<CblasSgemm>(b"cblas_sgemm") }
        .map_err(|e| format!("--blas {path}: no cblas_sgemm: {e}"))?;
    for setter in
        [&b"openblas_set_num_threads"[..], b"bli_thread_set_num_threads", b"MKL_Set_Num_Threads"]
    {
        // SAFETY: each of these takes the thread count as a C int.
        if let Ok(set) = unsafe { lib.get::<unsafe extern "C" fn(i32)>(setter) } {
            unsafe { set(args.threads as i32) };
        }
    }
    let mut out = Vec::new();
    for &(_, m, k, n, layout) in SHAPES {
        let (lhs, rhs) = (vec![0.5f32; m * k], vec![0.25f32; k * n]);
        let mut dst = vec![0f32; m * n];
        let (ta, lda) = match layout {
            Layout::LhsTransposed => (TRANS, m),
            _ => (NO_TRANS, k),
        };
        let (tb, ldb) = match layout {
            Layout::RhsTransposed => (TRANS, k),
            _ => (NO_TRANS, n),
        };
        let [mi, ni, ki] = [m, n, k].map(|v| v as i32);
        out.push(measure(m, k, n, args.seconds, || {
            // SAFETY: the leading dimensions describe the buffers' `m * k`, `k * n` and
            // `m * n` elements.
            unsafe {
                sgemm(
                    ROW_MAJOR,
                    ta,
                    tb,
                    mi,
                    ni,
                    ki,
                    1.0,
                    lhs.as_ptr(),
                    lda as i32,
                    rhs.as_ptr(),
                    ldb as i32,
                    0.0,
                    dst.as_mut_ptr(),
                    ni,
                )
            }
        }));
    }
    Ok(out)
}

fn torch_column(python: &str, args: &Args) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let shapes: Vec<String> = SHAPES
        .iter()
        .map(|&(_, m, k, n, layout)| {
            let layout = match layout {
                Layout::Plain => "plain",
                Layout::RhsTransposed => "rhs_t",
                Layout::LhsTransposed => "lhs_t",
            };
            format!("({m}, {k}, {n}, {layout:?})")
        })
        .collect();
    let script = format!(
        r#"
import time, torch
torch.set_num_threads({threads})
for m, k, n, layout in [{shapes}]:
    a = torch.rand(k, m).t() if layout == "lhs_t" else torch.rand(m, k)
    b = torch.rand(n, k).t() if layout == "rhs_t" else torch.rand(k, n)
    torch.mm(a, b)
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < {seconds} or best == float("inf"):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    print(2 * m * k * n / best / 1e9)
"#,
        threads = args.threads,
        shapes = shapes.join(", "),
        seconds = args.seconds,
    );
    let output = std::process::Command::new(python).args(["-c", &script]).output()?;
    if !output.status.success() {
        return Err(format!(
            "--python {python}: the torch script failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let values = String::from_utf8(output.stdout)?
        .lines()
        .map(|line| line.trim().parse::<f64>())
        .collect::<Result<Vec<_>, _>>()?;
    if values.len() != SHAPES.len() {
        return Err(format!(
            "--python {python}: {} numbers for {} products",
            values.len(),
            SHAPES.len()
        )
        .into());
    }
    Ok(values)
}

/// `libopenblas.so.0` from `/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0`.
fn short_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_owned()
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        blas: Vec::new(),
        python: None,
        threads: candle_core::utils::get_num_threads(),
        seconds: 0.5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--blas" => args.blas.push(value()?),
            "--python" => args.python = Some(value()?),
            "--threads" => {
                let v = value()?;
                args.threads =
                    v.parse::<usize>().map_err(|e| format!("--threads {v:?}: {e}"))?.max(1);
            }
            "--seconds" => {
                let v = value()?;
                args.seconds = v.parse::<f64>().map_err(|e| format!("--seconds {v:?}: {e}"))?;
            }
            "-h" | "--help" => {
                println!(
                    "bench_gemm [--blas PATH]... [--python PATH] [--threads N] [--seconds S]\n\
                     The fp32 GEMMs of a training step, on the engine's gemm and on other BLAS \
                     libraries (docs/dev/performance.md)."
                );
                std::process::exit(0);
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}; expected --blas, --python, --threads, --seconds"
                ));
            }
        }
    }
    Ok(args)
}
