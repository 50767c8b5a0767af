//! What the bench binaries share.

/// Peak resident set of this process (`VmHWM`), Linux only.
pub fn peak_rss_gib() -> Option<f64> {
    status_gib("VmHWM:")
}

/// A memory field of `/proc/self/status` (`VmHWM:`, `RssAnon:`, ...) in GiB, Linux only.
#[allow(dead_code, reason = "not every bench reads more than the peak")]
pub fn status_gib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / (1024.0 * 1024.0))
}

/// `rows` rows of `seq + 1` random token ids below `vocab` (so `seq` input positions after
/// the shift), every position but the first trained.
#[allow(dead_code, reason = "not every bench trains")]
pub fn random_dataset(
    rows: usize,
    seq: usize,
    vocab: usize,
) -> arkor_engine::data::PreparedDataset {
    use arkor_engine::data::{DatasetFormat, DatasetReport, Example, PreparedDataset};
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let train: Vec<Example> = (0..rows)
        .map(|_| {
            let input_ids: Vec<u32> =
                (0..=seq).map(|_| rng.random_range(0..vocab as u32)).collect();
            let mut loss_mask = vec![true; seq + 1];
            loss_mask[0] = false;
            Example { input_ids, loss_mask }
        })
        .collect();
    PreparedDataset {
        train,
        eval: vec![],
        report: DatasetReport {
            files: vec![],
            format: DatasetFormat::Text,
            rows,
            train_rows: rows,
            eval_rows: 0,
            tokens: rows * (seq + 1),
            trained_tokens: rows * seq,
            truncated_rows: 0,
            errors: vec![],
        },
    }
}
