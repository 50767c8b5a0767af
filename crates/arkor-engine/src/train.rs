//! The training loop: LoRA on a frozen base model with AdamW.
//!
//! Step by step, for optimiser step `s` (0-based):
//! 1. check the cancellation token (cancel stops within one step);
//! 2. for each of `gradient_accumulation_steps` micro-batches, pick rows by a pure
//!    function of `(seed, s)` (a per-epoch shuffle), right-pad them, run forward and
//!    backward on `sum(token losses) / tokens in the whole step`, and add up gradients;
//! 3. clip the global gradient norm, take an AdamW step at the scheduled learning rate;
//! 4. every `logging_steps` emit metrics, every `eval_steps` the eval loss, every
//!    `save_steps` a checkpoint (adapter + optimiser moments + trainer state).
//!
//! Because the data order and the dropout masks depend only on the seed and the step,
//! resuming from `checkpoint-<s>` replays steps `s+1..` exactly as an uninterrupted run.
//! Errors are reported once as a `Failed` event and returned.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Tensor, Var};
use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::cancel::CancelToken;
use crate::config::{DRY_RUN_STEPS, TrainConfig};
use crate::data::{Example, PreparedDataset};
use crate::event::{EngineEvent, EventSink, RunInfo, StepMetrics};
use crate::layers;
use crate::lora::Adapter;
use crate::models::{ForwardMode, Model};
use crate::{Error, Result};

pub mod checkpoint;
pub mod optim;
pub mod schedule;

use checkpoint::TrainerState;
use optim::AdamW;

/// What a finished (or cancelled) run produced.
#[derive(Debug)]
pub struct TrainOutcome {
    /// Steps completed.
    pub steps: usize,
    /// `output/final` when the run completed, `None` when cancelled.
    pub final_dir: Option<PathBuf>,
    /// Loss of every completed step, in order (from the resume point when resuming).
    pub losses: Vec<f64>,
    /// Whether the cancellation token stopped the run.
    pub cancelled: bool,
}

/// Where a run starts and what it trains.
pub struct TrainRequest<'a> {
    /// The frozen base model.
    pub model: &'a Model,
    /// Tokenised rows.
    pub data: &'a PreparedDataset,
    /// The validated run configuration.
    pub config: &'a TrainConfig,
    /// Directory for checkpoints and the final adapter.
    pub output_dir: &'a Path,
    /// Resume from this `checkpoint-<step>` directory.
    pub resume_from: Option<&'a Path>,
}

/// Runs training to completion, cancellation or error, emitting events to `sink`.
pub fn train(
    req: &TrainRequest<'_>,
    sink: &mut dyn EventSink,
    cancel: &CancelToken,
) -> Result<TrainOutcome> {
    match run(req, sink, cancel) {
        Ok(outcome) => Ok(outcome),
        Err(e) => {
            sink.emit(EngineEvent::Failed { message: e.to_string() });
            Err(e)
        }
    }
}

/// Number of optimiser steps a config implies for `rows` training rows.
pub fn total_steps(config: &TrainConfig, rows: usize) -> usize {
    let micro_per_epoch = rows.div_ceil(config.batch_size).max(1);
    let steps_per_epoch = micro_per_epoch.div_ceil(config.gradient_accumulation_steps).max(1);
    let total = match config.max_steps {
        Some(s) => s,
        None => ((config.num_train_epochs * steps_per_epoch as f64).ceil() as usize).max(1),
    };
    if config.dry_run { total.min(DRY_RUN_STEPS) } else { total }
}

fn run(
    req: &TrainRequest<'_>,
    sink: &mut dyn EventSink,
    cancel: &CancelToken,
) -> Result<TrainOutcome> {
    let TrainRequest { model, data, config, output_dir, resume_from } = *req;
    config.validate()?;
    if data.train.is_empty() {
        return Err(Error::config("dataset", "no training rows after the eval split"));
    }
    let adapter =
        Adapter::new(model.spec(), &config.lora, &config.model, config.seed, model.device())?;
    let vars = adapter.vars();
    let mut optimizer = AdamW::new(vars.clone(), config.weight_decay)?;
    let total = total_steps(config, data.train.len());
    let mut state = TrainerState::new(total);
    if let Some(dir) = resume_from {
        state = checkpoint::restore(dir, model.spec(), &adapter, &mut optimizer, config)?;
    }
    std::fs::create_dir_all(output_dir)
        .map_err(|e| Error::io("failed to create", output_dir, e))?;
    checkpoint::write_config(output_dir, config)?;
    let batches = Batches::new(&data.train, config);
    sink.emit(EngineEvent::Started(RunInfo {
        total_steps: total,
        start_step: state.step,
        train_rows: data.train.len(),
        eval_rows: data.eval.len(),
        trainable_parameters: adapter.num_parameters(),
        dataset_summary: data.report.summary(),
    }));
    let started = Instant::now();
    let mut losses = vec![];
    let mut window = Window::default();
    while state.step < total {
        if cancel.is_cancelled() {
            sink.emit(EngineEvent::Cancelled { step: state.step });
            return Ok(TrainOutcome {
                steps: state.step,
                final_dir: None,
                losses,
                cancelled: true,
            });
        }
        let step_start = Instant::now();
        let step = state.step;
        let micro: Vec<Vec<&Example>> = (0..config.gradient_accumulation_steps)
            .map(|m| batches.rows(step * config.gradient_accumulation_steps + m))
            .collect();
        let trained: usize = micro.iter().flatten().map(|e| trained_tokens(e)).sum();
        let mut grads: Vec<Option<Tensor>> = vec![None; vars.len()];
        let mut loss_sum = 0.0;
        for (m, rows) in micro.iter().enumerate() {
            let batch = Batch::new(rows, model.device())?;
            let mode = ForwardMode::Train {
                dropout_seed: config.seed ^ ((step * 64 + m) as u64 + 1) << 16,
            };
            let scale = 1.0 / trained.max(1) as f64;
            let recompute = config.gradient_checkpointing;
            let pass = || batch.loss_and_grads(model, &adapter, &vars, mode, scale, recompute);
            // On the CPU, inside the rayon pool: see `Model::run`.
            let (sum, micro_grads) =
                if model.device().is_cpu() { rayon::scope(|_| pass()) } else { pass() }?;
            for (slot, g) in grads.iter_mut().zip(micro_grads) {
                *slot = match (slot.take(), g) {
                    (Some(acc), Some(g)) => Some((acc + g)?),
                    (acc, g) => acc.or(g),
                };
            }
            loss_sum += sum;
            window.rows += rows.len();
            window.tokens += batch.tokens;
            state.num_input_tokens_seen += batch.tokens as u64;
        }
        let loss = loss_sum / trained.max(1) as f64;
        if !loss.is_finite() {
            return Err(Error::Diverged { step: step + 1, loss: loss as f32 });
        }
        let grads = grads
            .into_iter()
            .zip(&vars)
            .map(|(g, (_, v))| g.map_or_else(|| v.zeros_like(), Ok))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let grad_norm = global_norm(&grads)?;
        let grads = clip(grads, grad_norm, config.max_grad_norm)?;
        let lr = schedule::learning_rate(
            config.lr_scheduler_type,
            config.learning_rate,
            step,
            config.warmup_steps,
            total,
        );
        optimizer.step(&grads, lr)?;
        state.step += 1;
        losses.push(loss);
        window.push(loss, step_start.elapsed().as_secs_f64());
        let epoch = batches.epoch_at(state.step * config.gradient_accumulation_steps);
        let last = state.step == total;
        if state.step.is_multiple_of(config.logging_steps) || last {
            let metrics = window.take(&state, total, lr, epoch, grad_norm, started);
            state.log_history.push(checkpoint::LogEntry::from(&metrics));
            sink.emit(EngineEvent::Log(metrics));
        }
        let eval_due = config.eval_steps.is_some_and(|n| state.step.is_multiple_of(n));
        if !data.eval.is_empty() && (eval_due || last) {
            let eval_loss = evaluate(model, &adapter, &data.eval, config.batch_size)?;
            state.log_history.push(checkpoint::LogEntry::eval(state.step, epoch, eval_loss));
            sink.emit(EngineEvent::Eval { step: state.step, eval_loss, epoch });
        }
        state.epoch = epoch;
        if config.save_steps.is_some_and(|n| state.step.is_multiple_of(n)) && !last {
            let dir = output_dir.join(format!("checkpoint-{}", state.step));
            let files = checkpoint::save(&dir, &adapter, &optimizer, &state)?;
            sink.emit(EngineEvent::CheckpointSaved { step: state.step, dir, files });
        }
    }
    let final_dir = output_dir.join("final");
    let files = adapter.save(&final_dir)?;
    let train_loss =
        if losses.is_empty() { 0.0 } else { losses.iter().sum::<f64>() / losses.len() as f64 };
    sink.emit(EngineEvent::Completed {
        step: state.step,
        dir: final_dir.clone(),
        files,
        train_loss,
    });
    Ok(TrainOutcome { steps: state.step, final_dir: Some(final_dir), losses, cancelled: false })
}

fn trained_tokens(e: &Example) -> usize {
    e.loss_mask.iter().skip(1).filter(|m| **m).count()
}

/// Mean token loss of `adapter` over `rows`.
pub fn evaluate(
    model: &Model,
    adapter: &Adapter,
    rows: &[Example],
    batch_size: usize,
) -> Result<f64> {
    let (mut sum, mut tokens) = (0.0, 0usize);
    for chunk in rows.chunks(batch_size.max(1)) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let batch = Batch::new(&refs, model.device())?;
        sum += batch.loss_sum(model, adapter, ForwardMode::Inference, false)?.to_scalar::<f32>()?
            as f64;
        tokens += refs.iter().map(|e| trained_tokens(e)).sum::<usize>();
    }
    Ok(sum / tokens.max(1) as f64)
}

/// The per-epoch shuffled order of training rows, as a pure function of the seed.
struct Batches<'a> {
    rows: &'a [Example],
    batch_size: usize,
    seed: u64,
    micro_per_epoch: usize,
}

impl<'a> Batches<'a> {
    fn new(rows: &'a [Example], config: &TrainConfig) -> Self {
        let micro_per_epoch = rows.len().div_ceil(config.batch_size);
        Self { rows, batch_size: config.batch_size, seed: config.seed, micro_per_epoch }
    }

    fn order(&self, epoch: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.rows.len()).collect();
        let mut rng =
            rand::rngs::StdRng::seed_from_u64(self.seed.wrapping_add(epoch as u64 * 0x9E37_79B9));
        idx.shuffle(&mut rng);
        idx
    }

    /// Rows of global micro-batch `g`.
    fn rows(&self, g: usize) -> Vec<&'a Example> {
        let epoch = g / self.micro_per_epoch;
        let k = g % self.micro_per_epoch;
        let order = self.order(epoch);
        let end = ((k + 1) * self.batch_size).min(order.len());
        order[k * self.batch_size..end].iter().map(|&i| &self.rows[i]).collect()
    }

    /// Fractional epoch after `micro` micro-batches.
    fn epoch_at(&self, micro: usize) -> f64 {
        micro as f64 / self.micro_per_epoch as f64
    }
}

/// A micro-batch packed without padding: the rows' input tokens end to end, with the
/// prefix they all share (typically the chat template's system prompt) stored once.
///
/// The decoder runs each row as its own sequence ([`Model::hidden_states_packed`]), so
/// the loss equals a right-padded batch's without computing padding or the shared prefix
/// more than once; the LM head and the cross-entropy run only at positions whose target is
/// trained.
struct Batch {
    /// `[total]` input ids: the shared prefix, then each row's remaining inputs.
    inputs: Tensor,
    /// Tokens every row's inputs start with, stored once at the front of `inputs`.
    prefix: usize,
    /// Length of each row's inputs after the prefix.
    lens: Vec<usize>,
    /// Indices into `inputs` whose next token is trained (a prefix position may appear
    /// once per row), with that token.
    trained_at: Vec<u32>,
    targets: Vec<u32>,
    tokens: usize,
}

/// Shorter shared prefixes are not worth a separate attention pass.
const MIN_SHARED_PREFIX: usize = 16;

impl Batch {
    fn new(rows: &[&Example], device: &candle_core::Device) -> Result<Self> {
        // Each row's inputs are its ids without the last one; a row of one token still runs
        // (one position, nothing trained) so a batch is never empty.
        let row_inputs: Vec<Vec<u32>> = rows
            .iter()
            .map(|e| {
                let n = e.input_ids.len().saturating_sub(1).max(1);
                (0..n).map(|i| e.input_ids.get(i).copied().unwrap_or(0)).collect()
            })
            .collect();
        let prefix = match &row_inputs[..] {
            [] | [_] => 0,
            [first, rest @ ..] => {
                let common = rest.iter().fold(first.len(), |p, r| {
                    p.min(first.iter().zip(r).take_while(|(a, b)| a == b).count())
                });
                // Every row keeps at least one token of its own.
                let p = common.min(row_inputs.iter().map(|r| r.len() - 1).min().unwrap_or(0));
                if p >= MIN_SHARED_PREFIX { p } else { 0 }
            }
        };
        let mut inputs = row_inputs.first().map_or(vec![], |r| r[..prefix].to_vec());
        let (mut lens, mut trained_at, mut targets) = (vec![], vec![], vec![]);
        let mut tokens = 0;
        for (e, ids) in rows.iter().zip(&row_inputs) {
            tokens += e.input_ids.len();
            let start = inputs.len();
            for i in 0..ids.len() {
                if e.loss_mask.get(i + 1).copied().unwrap_or(false) {
                    let at = if i < prefix { i } else { start + i - prefix };
                    trained_at.push(at as u32);
                    targets.push(e.input_ids[i + 1]);
                }
            }
            inputs.extend_from_slice(&ids[prefix..]);
            lens.push(ids.len() - prefix);
        }
        let inputs = Tensor::from_vec(inputs, prefix + lens.iter().sum::<usize>(), device)?;
        Ok(Self { inputs, prefix, lens, trained_at, targets, tokens })
    }

    /// Sum of the token losses (a scalar tensor, differentiable w.r.t. the adapter when
    /// `grad`).
    fn loss_sum(
        &self,
        model: &Model,
        adapter: &Adapter,
        mode: ForwardMode,
        grad: bool,
    ) -> Result<Tensor> {
        let hidden = model.hidden_states_packed(
            &self.inputs,
            self.prefix,
            &self.lens,
            Some(adapter),
            mode,
        )?;
        self.head_loss(model, hidden, grad)
    }

    /// The sum of the token losses computed from the final hidden states `hidden`.
    fn head_loss(&self, model: &Model, hidden: Tensor, grad: bool) -> Result<Tensor> {
        if self.trained_at.is_empty() {
            return Ok((hidden.sum_all()? * 0.0)?);
        }
        let in_order = self.trained_at.len() == hidden.dim(0)?
            && self.trained_at.iter().enumerate().all(|(i, at)| *at as usize == i);
        let hidden = if in_order {
            hidden
        } else {
            let idx = Tensor::new(self.trained_at.as_slice(), hidden.device())?;
            hidden.index_select(&idx, 0)?
        };
        let losses = layers::linear_cross_entropy(
            &hidden,
            model.lm_head(),
            &self.targets,
            model.spec().final_softcap(),
            grad,
        )?;
        Ok(losses.sum_all()?)
    }

    /// The loss sum, and each of `vars`' gradient of `scale * loss_sum`.
    ///
    /// With `recompute` (activation checkpointing), only each block's input is kept
    /// between the passes: the forward pass drops every block's graph, and the backward
    /// pass runs each block forward again, last to first, from its saved input, and
    /// backpropagates through it alone. The same arithmetic (dropout masks depend only on
    /// the seed, layer and projection), one more forward pass of compute, and activation
    /// memory of one block instead of all.
    fn loss_and_grads(
        &self,
        model: &Model,
        adapter: &Adapter,
        vars: &[(String, Var)],
        mode: ForwardMode,
        scale: f64,
        recompute: bool,
    ) -> Result<(f64, Vec<Option<Tensor>>)> {
        let mut grads = vec![None; vars.len()];
        let add = |grads: &mut Vec<Option<Tensor>>, store: &candle_core::backprop::GradStore| {
            for (slot, (_, var)) in grads.iter_mut().zip(vars) {
                if let Some(g) = store.get(var.as_tensor()) {
                    *slot = Some(match slot.take() {
                        Some(acc) => (acc + g)?,
                        None => g.clone(),
                    });
                }
            }
            Ok::<_, Error>(())
        };
        if !recompute {
            let sum = self.loss_sum(model, adapter, mode, true)?;
            add(&mut grads, &(&sum * scale)?.backward()?)?;
            return Ok((sum.to_scalar::<f32>()? as f64, grads));
        }
        let block = |i: usize, x: Tensor| {
            model.packed_block(i, x, self.prefix, &self.lens, Some(adapter), mode)
        };
        let mut inputs = Vec::with_capacity(model.num_layers());
        let mut x = model.embed(&self.inputs)?.detach();
        for i in 0..model.num_layers() {
            inputs.push(x.clone());
            x = block(i, x)?.detach();
        }
        let top = Var::from_tensor(&x)?;
        let sum = self.head_loss(model, model.final_norm(top.as_tensor())?, true)?;
        let store = (&sum * scale)?.backward()?;
        let mut upstream = store.get(top.as_tensor()).map(Tensor::detach);
        for (i, input) in inputs.into_iter().enumerate().rev() {
            let Some(g) = upstream else { break };
            let input = Var::from_tensor(&input)?;
            let y = block(i, input.as_tensor().clone())?;
            let store = (y * g)?.sum_all()?.backward()?;
            add(&mut grads, &store)?;
            upstream = store.get(input.as_tensor()).map(Tensor::detach);
        }
        Ok((sum.to_scalar::<f32>()? as f64, grads))
    }
}

fn global_norm(grads: &[Tensor]) -> Result<f64> {
    let mut sq = 0.0;
    for g in grads {
        sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
    }
    Ok(sq.sqrt())
}

fn clip(grads: Vec<Tensor>, norm: f64, max_norm: f64) -> Result<Vec<Tensor>> {
    if max_norm <= 0.0 || norm <= max_norm {
        return Ok(grads);
    }
    let scale = max_norm / (norm + 1e-6);
    Ok(grads.into_iter().map(|g| g * scale).collect::<candle_core::Result<_>>()?)
}

/// Accumulates metrics between two log events.
#[derive(Default)]
struct Window {
    losses: Vec<f64>,
    seconds: f64,
    rows: usize,
    tokens: usize,
}

impl Window {
    fn push(&mut self, loss: f64, seconds: f64) {
        self.losses.push(loss);
        self.seconds += seconds;
    }

    fn take(
        &mut self,
        state: &TrainerState,
        total_steps: usize,
        learning_rate: f64,
        epoch: f64,
        grad_norm: f64,
        started: Instant,
    ) -> StepMetrics {
        let w = std::mem::take(self);
        let secs = w.seconds.max(1e-9);
        StepMetrics {
            step: state.step,
            total_steps,
            loss: w.losses.iter().sum::<f64>() / w.losses.len().max(1) as f64,
            learning_rate,
            epoch,
            grad_norm,
            samples_per_second: w.rows as f64 / secs,
            tokens_per_second: w.tokens as f64 / secs,
            tokens_seen: state.num_input_tokens_seen,
            elapsed_seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// Every trainable variable of `adapter` with its gradient for one batch of `rows`, for
/// tests and diagnostics.
pub fn adapter_gradients(
    model: &Model,
    adapter: &Adapter,
    rows: &[Example],
) -> Result<Vec<(String, Var, Option<Tensor>)>> {
    adapter_gradients_with(model, adapter, rows, false)
}

/// [`adapter_gradients`], with the activations of each block recomputed in the backward
/// pass when `recompute` (the `gradient_checkpointing` setting).
pub fn adapter_gradients_with(
    model: &Model,
    adapter: &Adapter,
    rows: &[Example],
    recompute: bool,
) -> Result<Vec<(String, Var, Option<Tensor>)>> {
    let refs: Vec<&Example> = rows.iter().collect();
    let batch = Batch::new(&refs, model.device())?;
    let tokens: usize = refs.iter().map(|e| trained_tokens(e)).sum();
    let vars = adapter.vars();
    let scale = 1.0 / tokens.max(1) as f64;
    let mode = ForwardMode::Inference;
    let (_, grads) = batch.loss_and_grads(model, adapter, &vars, mode, scale, recompute)?;
    Ok(vars.into_iter().zip(grads).map(|((n, v), g)| (n, v, g)).collect())
}

/// Mean token loss of `rows` under `adapter` (or the base model), for tests.
pub fn loss(model: &Model, adapter: &Adapter, rows: &[Example]) -> Result<f64> {
    evaluate(model, adapter, rows, rows.len().max(1))
}
