//! Concurrent generations on one base model, stepped together.
//!
//! Each loaded base model has one decode thread. Requests join its batch as they arrive
//! (their prompts run in the same forward pass as the others' next tokens) and leave when
//! they end, so N concurrent requests cost one pass over the weights per token instead of
//! N. Each request keeps its own adapter, cache, sampler and constraint; what it gets is
//! what it would get alone (see `Model::hidden_states_cached`).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc;

use arkor_engine::generate::{Generation, SamplingParams, Sequence, next_logits};
use arkor_engine::lora::Adapter;
use arkor_engine::models::Model;
use arkor_engine::tokenizer::TextTokenizer;

/// One generation to run.
pub(super) struct Job {
    pub ids: Vec<u32>,
    pub params: SamplingParams,
    pub adapter: Option<Arc<Adapter>>,
    /// Called with each new piece of text; returns false once nobody listens, which
    /// cancels the generation.
    pub on_text: Box<dyn FnMut(&str) -> bool + Send>,
    /// Called once with the outcome.
    pub done: Box<dyn FnOnce(anyhow::Result<Generation>) + Send>,
}

/// The decode thread of one base model; it ends when this is dropped and its running
/// generations have ended.
pub(super) struct Batcher {
    tx: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts the thread; it steps up to `max_batch` requests together, more wait.
    pub fn start(
        model: Arc<Model>,
        tokenizer: Arc<TextTokenizer>,
        max_batch: usize,
    ) -> std::io::Result<Batcher> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("arkor-decode".to_owned())
            .spawn(move || serve(&model, &tokenizer, &rx, max_batch))?;
        Ok(Batcher { tx })
    }

    pub fn submit(&self, job: Job) {
        if let Err(mpsc::SendError(job)) = self.tx.send(job) {
            (job.done)(Err(anyhow::anyhow!("the model's decode thread has stopped")));
        }
    }
}

struct Live<'t> {
    seq: Sequence<'t>,
    adapter: Option<Arc<Adapter>>,
    on_text: Box<dyn FnMut(&str) -> bool + Send>,
    done: Box<dyn FnOnce(anyhow::Result<Generation>) + Send>,
}

impl Live<'_> {
    fn end(self) {
        let Live { seq, mut on_text, done, .. } = self;
        done(
            seq.finish(&mut |t| {
                on_text(t);
            })
            .map_err(Into::into),
        );
    }
}

fn serve(model: &Model, tokenizer: &TextTokenizer, rx: &mpsc::Receiver<Job>, max_batch: usize) {
    let mut live: Vec<Live<'_>> = Vec::new();
    loop {
        if live.is_empty() {
            let Ok(job) = rx.recv() else { return };
            admit(model, tokenizer, job, &mut live);
        }
        while live.len() < max_batch {
            let Ok(job) = rx.try_recv() else { break };
            admit(model, tokenizer, job, &mut live);
        }
        let mut i = 0;
        while i < live.len() {
            if live[i].seq.wants_step() { i += 1 } else { live.remove(i).end() }
        }
        if live.is_empty() {
            continue;
        }
        let mut batch: Vec<_> =
            live.iter_mut().map(|Live { seq, adapter, .. }| (seq, adapter.as_deref())).collect();
        // A panic inside the engine fails this batch's requests, not the thread, so the
        // next requests on this base still run.
        let step = std::panic::catch_unwind(AssertUnwindSafe(|| next_logits(model, &mut batch)));
        let rows = match step {
            Ok(Ok(rows)) => rows,
            failed => {
                let message = match failed {
                    Ok(Err(e)) => format!("{e:#}"),
                    _ => "the decode step panicked".to_owned(),
                };
                for l in live.drain(..) {
                    (l.done)(Err(anyhow::anyhow!("{message}")));
                }
                continue;
            }
        };
        let outcomes: Vec<Outcome> = live
            .iter_mut()
            .zip(rows)
            .map(|(l, row)| {
                let mut gone = false;
                let on_text = &mut l.on_text;
                match l.seq.accept(row, &mut |t| gone |= !on_text(t)) {
                    Ok(_) if gone => {
                        l.seq.cancel();
                        Outcome::End
                    }
                    Ok(true) => Outcome::End,
                    Ok(false) => Outcome::Keep,
                    Err(e) => Outcome::Fail(e.into()),
                }
            })
            .collect();
        let mut kept = Vec::with_capacity(live.len());
        for (l, outcome) in live.drain(..).zip(outcomes) {
            match outcome {
                Outcome::Keep => kept.push(l),
                Outcome::End => l.end(),
                Outcome::Fail(e) => (l.done)(Err(e)),
            }
        }
        live = kept;
    }
}

/// What a step did to a generation.
enum Outcome {
    Keep,
    End,
    Fail(anyhow::Error),
}

/// Starts a job's sequence (or fails it at once: a bad prompt, a grammar that does not
/// compile) and places it next to the others with the same adapter.
fn admit<'t>(model: &Model, tokenizer: &'t TextTokenizer, job: Job, live: &mut Vec<Live<'t>>) {
    match Sequence::new(model, tokenizer, &job.ids, job.params) {
        Ok(seq) => {
            let key = |a: &Option<Arc<Adapter>>| a.as_ref().map_or(0, |a| Arc::as_ptr(a) as usize);
            let at = live
                .iter()
                .rposition(|l| key(&l.adapter) == key(&job.adapter))
                .map_or(live.len(), |i| i + 1);
            live.insert(
                at,
                Live { seq, adapter: job.adapter, on_text: job.on_text, done: job.done },
            );
        }
        Err(e) => (job.done)(Err(e.into())),
    }
}
