//! Text generation with a KV cache: greedy or sampled, streamed as text deltas.
//!
//! Per token: run the new position(s) through the model with the cache, apply the
//! repetition penalty, then either take the argmax (temperature 0) or sample from the
//! temperature-scaled distribution restricted by top-k and top-p. Sampling uses a seeded
//! generator, so the same seed and prompt give the same reply.
//!
//! Streaming: token ids go through the tokenizer's incremental decoder, which only
//! releases complete UTF-8 text; text that could be the start of a stop string is held
//! back until it is known not to be one, so callers never see a partial stop string.

use candle_core::{D, Tensor};
use rand::{Rng, SeedableRng};

use crate::cancel::CancelToken;
use crate::constrain::{Constraint, ConstraintState};
use crate::lora::Adapter;
use crate::models::{KvCache, Model};
use crate::tokenizer::{ChatMessage, DecodeStream, TextTokenizer};
use crate::{Error, Result};

/// Decoding settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// 0 means greedy decoding.
    pub temperature: f64,
    /// Nucleus sampling mass in (0, 1]; 1 disables it.
    pub top_p: f64,
    /// Keep only the `k` most likely tokens; `None` disables it.
    pub top_k: Option<usize>,
    /// Divides positive (multiplies negative) logits of tokens already seen; 1 disables it.
    pub repetition_penalty: f64,
    /// Seed of the sampler.
    pub seed: u64,
    /// Stop when the reply contains one of these strings (it is cut before the match).
    pub stop: Vec<String>,
    /// Hold the reply to a JSON schema, regex, choice or grammar.
    pub constraint: Option<Constraint>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            temperature: 0.7,
            top_p: 0.9,
            top_k: None,
            repetition_penalty: 1.0,
            seed: 0,
            stop: vec![],
            constraint: None,
        }
    }
}

impl SamplingParams {
    fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(Error::config(
                "temperature",
                format!("expected >= 0, got {}", self.temperature),
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::config(
                "top_p",
                format!("expected a value in (0, 1], got {}", self.top_p),
            ));
        }
        if self.top_k == Some(0) {
            return Err(Error::config("top_k", "expected a positive integer, got 0"));
        }
        if !(self.repetition_penalty > 0.0) {
            return Err(Error::config(
                "repetition_penalty",
                format!("expected a positive number, got {}", self.repetition_penalty),
            ));
        }
        Ok(())
    }
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-sequence token or a stop string.
    Stop,
    /// `max_tokens` or the model's context length was reached.
    Length,
    /// The cancellation token fired.
    Cancelled,
}

/// A finished reply.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// The reply text (stop string and EOS excluded).
    pub text: String,
    /// Generated token ids (EOS excluded).
    pub tokens: Vec<u32>,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Why it stopped.
    pub finish_reason: FinishReason,
}

/// Renders `messages` with the model's chat template and generates the assistant reply.
pub fn chat(
    model: &Model,
    adapter: Option<&Adapter>,
    tokenizer: &TextTokenizer,
    messages: &[ChatMessage],
    params: &SamplingParams,
    cancel: &CancelToken,
    on_text: &mut dyn FnMut(&str),
) -> Result<Generation> {
    let prompt = tokenizer.render_chat(messages, true)?;
    let ids = tokenizer.encode(&prompt, false)?;
    generate(model, adapter, tokenizer, &ids, params, cancel, on_text)
}

/// Generates a continuation of `prompt_ids`, calling `on_text` with each new piece of text.
pub fn generate(
    model: &Model,
    adapter: Option<&Adapter>,
    tokenizer: &TextTokenizer,
    prompt_ids: &[u32],
    params: &SamplingParams,
    cancel: &CancelToken,
    on_text: &mut dyn FnMut(&str),
) -> Result<Generation> {
    let mut seq = Sequence::new(model, tokenizer, prompt_ids, params.clone())?;
    while seq.wants_step() {
        if cancel.is_cancelled() {
            seq.cancel();
            break;
        }
        let logits = next_logits(model, &mut [(&mut seq, adapter)])?;
        if let Some(logits) = logits.into_iter().next()
            && seq.accept(logits, on_text)?
        {
            break;
        }
    }
    seq.finish(on_text)
}

/// One generation in progress: its cache, sampler, constraint and text so far.
///
/// [`generate`] steps one alone; a caller serving several at once steps them together
/// with [`next_logits`] (one forward pass for all of them) and feeds each its row with
/// [`Sequence::accept`]. Each sequence's reply is the same either way, up to float
/// summation order.
pub struct Sequence<'t> {
    params: SamplingParams,
    max_positions: usize,
    eos: Vec<u32>,
    constraint: Option<ConstraintState>,
    rng: rand::rngs::StdRng,
    cache: KvCache,
    stream: DecodeStream<'t>,
    seen: Vec<u32>,
    out: StopFilter,
    tokens: Vec<u32>,
    /// Tokens the next forward pass runs: the prompt, then each sampled token.
    pending: Vec<u32>,
    prompt_tokens: usize,
    /// Set once the sequence has ended.
    finish: Option<FinishReason>,
}

impl<'t> Sequence<'t> {
    /// Checks the prompt and settings and compiles the constraint; runs nothing yet.
    pub fn new(
        model: &Model,
        tokenizer: &'t TextTokenizer,
        prompt_ids: &[u32],
        params: SamplingParams,
    ) -> Result<Self> {
        params.validate()?;
        if prompt_ids.is_empty() {
            return Err(Error::config("prompt", "the prompt encodes to no tokens"));
        }
        let max_positions = model.spec().max_position_embeddings;
        if prompt_ids.len() >= max_positions {
            return Err(Error::config(
                "prompt",
                format!(
                    "{} prompt tokens exceed the model's {max_positions} positions",
                    prompt_ids.len()
                ),
            ));
        }
        let constraint = match &params.constraint {
            Some(c) => Some(tokenizer.constrain(c, model.spec().vocab_size)?),
            None => None,
        };
        Ok(Sequence {
            max_positions,
            eos: tokenizer.eos_token_ids().to_vec(),
            constraint,
            rng: rand::rngs::StdRng::seed_from_u64(params.seed),
            cache: KvCache::new(),
            stream: tokenizer.decode_stream(),
            seen: prompt_ids.to_vec(),
            out: StopFilter::new(params.stop.clone()),
            tokens: vec![],
            pending: prompt_ids.to_vec(),
            prompt_tokens: prompt_ids.len(),
            finish: None,
            params,
        })
    }

    /// Whether the sequence needs another forward pass; false once it ended or reached
    /// `max_tokens` or the model's positions (then it ends for length).
    pub fn wants_step(&mut self) -> bool {
        if self.finish.is_none()
            && (self.tokens.len() >= self.params.max_tokens
                || self.cache.len() + self.pending.len() > self.max_positions)
        {
            self.finish = Some(FinishReason::Length);
        }
        self.finish.is_none()
    }

    /// Ends the sequence as cancelled.
    pub fn cancel(&mut self) {
        self.finish.get_or_insert(FinishReason::Cancelled);
    }

    /// Takes the logits of the sequence's last position after a forward pass, picks the
    /// next token and passes any new text to `on_text`; returns true when the sequence
    /// ended (EOS, a stop string, or a complete constrained reply).
    pub fn accept(&mut self, mut logits: Vec<f32>, on_text: &mut dyn FnMut(&str)) -> Result<bool> {
        if let Some(c) = &mut self.constraint {
            c.mask(&mut logits)?;
        }
        let id = sample(logits, &self.seen, &self.params, &mut self.rng);
        if self.eos.contains(&id) {
            self.finish = Some(FinishReason::Stop);
            return Ok(true);
        }
        if let Some(c) = &mut self.constraint {
            c.accept(id)?;
        }
        self.tokens.push(id);
        self.seen.push(id);
        self.pending = vec![id];
        if let Some(text) = self.stream.step(id)?
            && self.out.push(&text, on_text)
        {
            self.finish = Some(FinishReason::Stop);
            return Ok(true);
        }
        // A complete constrained reply that admits nothing more ends without asking the
        // model for its end-of-sequence token.
        if self.constraint.as_ref().is_some_and(|c| c.is_finished()) {
            self.finish = Some(FinishReason::Stop);
            return Ok(true);
        }
        Ok(false)
    }

    /// Releases the text held back for stop strings and returns the reply.
    pub fn finish(mut self, on_text: &mut dyn FnMut(&str)) -> Result<Generation> {
        if !self.out.stopped
            && let Some(text) = self.stream.flush()?
        {
            self.out.push(&text, on_text);
        }
        let text = self.out.finish(on_text);
        Ok(Generation {
            text,
            tokens: self.tokens,
            prompt_tokens: self.prompt_tokens,
            finish_reason: self.finish.unwrap_or(FinishReason::Length),
        })
    }
}

/// Runs one forward pass over the pending tokens of every sequence (each with its adapter,
/// or none) and returns each sequence's next-token logits, in order. The frozen weights are
/// read once for the whole batch, which is what makes serving concurrent requests this way
/// faster than one after the other.
pub fn next_logits(
    model: &Model,
    batch: &mut [(&mut Sequence<'_>, Option<&Adapter>)],
) -> Result<Vec<Vec<f32>>> {
    let mut ids = Vec::new();
    let mut lens = Vec::with_capacity(batch.len());
    for (seq, _) in batch.iter() {
        ids.extend_from_slice(&seq.pending);
        lens.push(seq.pending.len());
    }
    let adapters: Vec<Option<&Adapter>> = batch.iter().map(|(_, a)| *a).collect();
    let mut caches: Vec<&mut KvCache> = batch.iter_mut().map(|(s, _)| &mut s.cache).collect();
    let ids = Tensor::new(ids.as_slice(), model.device())?;
    let hidden = model.hidden_states_cached(&ids, &lens, &mut caches, &adapters)?;
    // Each sequence's last row.
    let mut last = Vec::with_capacity(lens.len());
    let mut end = 0;
    for len in &lens {
        end += len;
        last.push((end - 1) as u32);
    }
    let last = Tensor::new(last.as_slice(), model.device())?;
    let hidden = hidden.index_select(&last, 0)?;
    Ok(model.logits(&hidden)?.to_vec2::<f32>()?)
}

/// Picks the next token from raw logits.
fn sample(mut logits: Vec<f32>, seen: &[u32], p: &SamplingParams, rng: &mut impl Rng) -> u32 {
    if p.repetition_penalty != 1.0 {
        let pen = p.repetition_penalty as f32;
        let mut done = std::collections::HashSet::new();
        for &id in seen {
            if done.insert(id) && (id as usize) < logits.len() {
                let l = &mut logits[id as usize];
                *l = if *l > 0.0 { *l / pen } else { *l * pen };
            }
        }
    }
    if p.temperature == 0.0 {
        return argmax(&logits);
    }
    let t = p.temperature as f32;
    let mut cand: Vec<(u32, f32)> =
        logits.iter().enumerate().map(|(i, l)| (i as u32, l / t)).collect();
    // Tokens a constraint forbids never compete (and are not sorted).
    cand.retain(|c| c.1 > f32::NEG_INFINITY);
    if cand.is_empty() {
        return argmax(&logits);
    }
    cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if let Some(k) = p.top_k {
        cand.truncate(k.max(1));
    }
    let max = cand[0].1;
    let mut probs: Vec<f32> = cand.iter().map(|(_, l)| (l - max).exp()).collect();
    let sum: f32 = probs.iter().sum();
    probs.iter_mut().for_each(|q| *q /= sum);
    if p.top_p < 1.0 {
        let mut cum = 0.0;
        let keep = probs
            .iter()
            .position(|q| {
                cum += q;
                cum >= p.top_p as f32
            })
            .map_or(probs.len(), |i| i + 1);
        probs.truncate(keep);
    }
    let total: f32 = probs.iter().sum();
    let mut r = rng.random::<f32>() * total;
    for (i, q) in probs.iter().enumerate() {
        r -= q;
        if r <= 0.0 {
            return cand[i].0;
        }
    }
    cand[probs.len() - 1].0
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// Withholds text that might begin a stop string and cuts the reply at the first match.
struct StopFilter {
    stops: Vec<String>,
    text: String,
    emitted: usize,
    stopped: bool,
}

impl StopFilter {
    fn new(stops: Vec<String>) -> Self {
        Self { stops, text: String::new(), emitted: 0, stopped: false }
    }

    /// Adds decoded text; returns true when a stop string was found.
    fn push(&mut self, piece: &str, on_text: &mut dyn FnMut(&str)) -> bool {
        if self.stopped {
            return true;
        }
        self.text.push_str(piece);
        let search_from =
            self.emitted.saturating_sub(self.stops.iter().map(String::len).max().unwrap_or(0));
        let found = self
            .stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.text[floor_char(&self.text, search_from)..].find(s.as_str()))
            .min()
            .map(|i| i + floor_char(&self.text, search_from));
        if let Some(at) = found {
            self.text.truncate(at);
            self.stopped = true;
            self.release(self.text.len(), on_text);
            return true;
        }
        let hold = self.held_back();
        self.release(self.text.len() - hold, on_text);
        false
    }

    /// Length of the longest suffix of the text that is a proper prefix of a stop string.
    fn held_back(&self) -> usize {
        let mut hold = 0;
        for s in &self.stops {
            for (i, _) in s.char_indices().skip(1) {
                if self.text.ends_with(&s[..i]) {
                    hold = hold.max(i);
                }
            }
        }
        hold.min(self.text.len() - self.emitted)
    }

    fn release(&mut self, upto: usize, on_text: &mut dyn FnMut(&str)) {
        if upto > self.emitted {
            on_text(&self.text[self.emitted..upto]);
            self.emitted = upto;
        }
    }

    fn finish(mut self, on_text: &mut dyn FnMut(&str)) -> String {
        let len = self.text.len();
        self.release(len, on_text);
        self.text
    }
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Greedy next-token ids for every position of `ids` (`[1, seq]`); used by tests to
/// compare the cached and uncached paths.
pub fn greedy_next_tokens(
    model: &Model,
    adapter: Option<&Adapter>,
    ids: &[u32],
) -> Result<Vec<u32>> {
    let t = Tensor::new(ids, model.device())?.unsqueeze(0)?;
    let logits = model.forward(&t, adapter)?;
    Ok(logits.argmax(D::Minus1)?.flatten_all()?.to_vec1::<u32>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_filter(stops: &[&str], pieces: &[&str]) -> (Vec<String>, String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut f = StopFilter::new(stops);
        let mut seen = vec![];
        let mut stopped = false;
        for p in pieces {
            if f.push(p, &mut |t| seen.push(t.to_owned())) {
                stopped = true;
                break;
            }
        }
        let text = f.finish(&mut |t| seen.push(t.to_owned()));
        (seen, text, stopped)
    }

    #[test]
    fn stop_strings_are_cut_and_never_streamed() {
        let (seen, text, stopped) = run_filter(&["</end>"], &["Hel", "lo </", "en", "d> more"]);
        assert_eq!(text, "Hello ");
        assert_eq!(seen.concat(), "Hello ");
        assert!(stopped);
        let (seen, text, stopped) = run_filter(&["</end>"], &["a </", "b"]);
        assert_eq!((seen.concat(), text, stopped), ("a </b".to_owned(), "a </b".to_owned(), false));
    }

    #[test]
    fn sampling_is_seeded_and_respects_top_k() {
        let logits = vec![1.0, 3.0, 2.0, 0.5];
        let p =
            SamplingParams { temperature: 1.0, top_p: 1.0, top_k: Some(2), ..Default::default() };
        let draw = |seed| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            (0..50).map(|_| sample(logits.clone(), &[], &p, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert!(draw(7).iter().all(|t| *t == 1 || *t == 2));
        let greedy = SamplingParams { temperature: 0.0, ..Default::default() };
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        assert_eq!(sample(logits.clone(), &[], &greedy, &mut rng), 1);
        let penalised =
            SamplingParams { temperature: 0.0, repetition_penalty: 2.0, ..Default::default() };
        assert_eq!(sample(logits, &[1], &penalised, &mut rng), 2);
    }
}
