//! Learning-rate schedules, with the same step convention as transformers: the
//! multiplier for optimiser step `s` (0-based) ramps linearly over `warmup` steps from 0,
//! then decays (linear, cosine) or stays constant until `total` steps.

use crate::config::LrScheduler;

/// The learning rate of 0-based optimiser step `step`.
pub fn learning_rate(
    kind: LrScheduler,
    peak: f64,
    step: usize,
    warmup: usize,
    total: usize,
) -> f64 {
    if step < warmup {
        return peak * step as f64 / warmup.max(1) as f64;
    }
    let decay_steps = total.saturating_sub(warmup).max(1) as f64;
    let progress = (step - warmup) as f64 / decay_steps;
    let mult = match kind {
        LrScheduler::Constant => 1.0,
        LrScheduler::Linear => (1.0 - progress).max(0.0),
        LrScheduler::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos()),
    };
    peak * mult
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay() {
        let lr = |k, s| learning_rate(k, 1.0, s, 2, 10);
        assert_eq!([lr(LrScheduler::Linear, 0), lr(LrScheduler::Linear, 1)], [0.0, 0.5]);
        assert_eq!(lr(LrScheduler::Linear, 2), 1.0);
        assert!((lr(LrScheduler::Linear, 6) - 0.5).abs() < 1e-12);
        assert!((lr(LrScheduler::Cosine, 6) - 0.5).abs() < 1e-12);
        assert!(lr(LrScheduler::Cosine, 3) > lr(LrScheduler::Linear, 3));
        assert_eq!(lr(LrScheduler::Constant, 9), 1.0);
        assert!(lr(LrScheduler::Linear, 9) > 0.0);
    }
}
