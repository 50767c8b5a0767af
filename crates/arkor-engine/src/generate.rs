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
use crate::constrain::Constraint;
use crate::lora::Adapter;
use crate::models::{ForwardMode, KvCache, Model};
use crate::tokenizer::{ChatMessage, TextTokenizer};
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
    let eos = tokenizer.eos_token_ids();
    let mut constraint = match &params.constraint {
        Some(c) => Some(tokenizer.constrain(c, model.spec().vocab_size)?),
        None => None,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(params.seed);
    let mut cache = KvCache::new();
    let mut stream = tokenizer.decode_stream();
    let mut seen: Vec<u32> = prompt_ids.to_vec();
    let mut out = StopFilter::new(&params.stop);
    let mut tokens = vec![];
    let mut next_input = prompt_ids.to_vec();
    let mut finish = FinishReason::Length;
    while tokens.len() < params.max_tokens && cache.len() + next_input.len() <= max_positions {
        if cancel.is_cancelled() {
            finish = FinishReason::Cancelled;
            break;
        }
        let ids = Tensor::new(next_input.as_slice(), model.device())?.unsqueeze(0)?;
        let hidden =
            model.hidden_states(&ids, adapter, Some(&mut cache), ForwardMode::Inference)?;
        let last = hidden.narrow(1, next_input.len() - 1, 1)?;
        let mut logits = model.logits(&last)?.flatten_all()?.to_vec1::<f32>()?;
        if let Some(c) = &mut constraint {
            c.mask(&mut logits)?;
        }
        let id = sample(logits, &seen, params, &mut rng);
        if eos.contains(&id) {
            finish = FinishReason::Stop;
            break;
        }
        if let Some(c) = &mut constraint {
            c.accept(id)?;
        }
        tokens.push(id);
        seen.push(id);
        next_input = vec![id];
        if let Some(text) = stream.step(id)?
            && out.push(&text, on_text)
        {
            finish = FinishReason::Stop;
            break;
        }
        // A complete constrained reply that admits nothing more ends without asking the
        // model for its end-of-sequence token.
        if constraint.as_ref().is_some_and(|c| c.is_finished()) {
            finish = FinishReason::Stop;
            break;
        }
    }
    if !out.stopped
        && let Some(text) = stream.flush()?
    {
        out.push(&text, on_text);
    }
    let text = out.finish(on_text);
    Ok(Generation { text, tokens, prompt_tokens: prompt_ids.len(), finish_reason: finish })
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
struct StopFilter<'a> {
    stops: &'a [String],
    text: String,
    emitted: usize,
    stopped: bool,
}

impl<'a> StopFilter<'a> {
    fn new(stops: &'a [String]) -> Self {
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
        for s in self.stops {
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
        let mut f = StopFilter::new(&stops);
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
