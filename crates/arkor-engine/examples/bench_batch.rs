//! Decode tokens/s by batch size: N copies of one prompt stepped together with
//! `generate::next_logits` (what the server's decode batch does), greedy, no adapter.
//!
//! ```text
//! cargo run --release -p arkor-engine --example bench_batch -- MODEL [1,2,4,8,16]
//! ```
//!
//! MODEL is a Hugging Face directory or a GGUF file (imported into a temporary directory
//! first; for SmolLM2-135M-Instruct, the Q4_1 GGUF the tests use). Prints the time of one
//! step after the prompt and the tokens/s over all sequences, averaged over 16 steps.

use arkor_engine::generate::{SamplingParams, Sequence, next_logits};
use arkor_engine::models::Model;
use arkor_engine::tokenizer::TextTokenizer;
use std::time::Instant;
fn main() {
    let model_arg = std::path::PathBuf::from(std::env::args().nth(1).expect("MODEL"));
    let imported = tempfile::tempdir().unwrap();
    let dir = if model_arg.is_file() {
        arkor_engine::gguf::import(&model_arg, imported.path()).unwrap()
    } else {
        model_arg
    };
    let model = Model::load(&dir, &candle_core::Device::Cpu).unwrap();
    let tok = TextTokenizer::from_dir(&dir).unwrap();
    let ids =
        tok.encode("Write a short poem about the sea and the sky and the wind.", false).unwrap();
    let params = SamplingParams { temperature: 0.0, max_tokens: 1000, ..Default::default() };
    let ns: Vec<usize> = std::env::args()
        .nth(2)
        .map_or(vec![1, 2, 4, 8, 16], |s| s.split(",").map(|v| v.parse().unwrap()).collect());
    for n in ns {
        let mut seqs: Vec<Sequence<'_>> =
            (0..n).map(|_| Sequence::new(&model, &tok, &ids, params.clone()).unwrap()).collect();
        // prefill
        let mut b: Vec<_> = seqs.iter_mut().map(|s| (s, None)).collect();
        let rows = next_logits(&model, &mut b).unwrap();
        drop(b);
        for (s, r) in seqs.iter_mut().zip(rows) {
            s.accept(r, &mut |_| {}).unwrap();
        }
        let t = Instant::now();
        let steps = 16;
        for _ in 0..steps {
            let mut b: Vec<_> = seqs.iter_mut().map(|s| (s, None)).collect();
            let rows = next_logits(&model, &mut b).unwrap();
            drop(b);
            for (s, r) in seqs.iter_mut().zip(rows) {
                s.accept(r, &mut |_| {}).unwrap();
            }
        }
        let per = t.elapsed().as_secs_f64() / steps as f64;
        println!("n={n:2} step {:.1} ms  tokens/s {:.1}", per * 1e3, n as f64 / per);
    }
}
