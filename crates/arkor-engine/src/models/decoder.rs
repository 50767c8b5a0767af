//! The shared pre-norm decoder every supported family runs on.
//!
//! Weights are read from memory-mapped safetensors (single file or shards), upcast to
//! fp32 and kept as plain tensors: the base model is frozen, it never owns a `Var`.
//! A LoRA [`Adapter`] is passed to each forward call instead of being baked into the
//! model, so one loaded base model serves any number of adapters (the inference service
//! applies them per request) and training sees exactly the same computation as chat.
//!
//! Block: `x += o(attn(rope(q(n1(x))), rope(k(n1(x))), v(n1(x))))` (Qwen3, Gemma 3: q and k
//! RMS-normalised per head before `rope`), then
//! `x += down(silu(gate(n2(x))) * up(n2(x)))`; each projection is
//! `frozen_linear(x, W) [+ bias] + scale * (dropout(x) A^T) B^T` when the adapter targets it.
//! Gemma ([`crate::models::GemmaBlock`]) also norms each branch's output before adding it,
//! uses `gelu_tanh` for `silu`, scales the embeddings and adds 1 to every norm weight (done
//! once at load). Attention may be limited to a sliding window per layer (Mistral, Gemma).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};

use std::sync::Arc;

use crate::layers::decode::LayerKv;
use crate::layers::quant::{BaseQuant, QuantMatrix};
use crate::layers::{self, Frozen, RopeTables};
use crate::lora::{Adapter, Proj};
use crate::models::{DecoderSpec, read_spec, weight_files};
use crate::{Error, Result};

/// How a forward pass is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardMode {
    /// No dropout.
    Inference,
    /// LoRA dropout on, with masks drawn from this seed (so a step is reproducible).
    Train {
        /// Seed of the dropout masks for this forward pass.
        dropout_seed: u64,
    },
}

/// Keys and values of earlier positions, one entry per layer.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
    /// The token ids cached, per batch row, kept only for a LongRoPE model (Phi-3): the
    /// pass that first crosses the pretraining context recomputes them.
    tokens: Vec<Vec<u32>>,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of positions already cached.
    pub fn len(&self) -> usize {
        self.layers.first().and_then(|l| l.as_ref()).map_or(0, LayerKv::len)
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Linear {
    weight: Frozen,
    bias: Option<Tensor>,
}

struct Block {
    /// Before attention (`input_layernorm`).
    attn_norm: Tensor,
    /// Before the MLP (`post_attention_layernorm`; Gemma: `pre_feedforward_layernorm`).
    mlp_norm: Tensor,
    /// On the attention and MLP outputs before the residual add (Gemma:
    /// `post_attention_layernorm`, `post_feedforward_layernorm`).
    out_norms: Option<(Tensor, Tensor)>,
    /// Per-head RMSNorm weights of queries and keys (`[head_dim]`, Qwen3, Gemma 3).
    qk_norm: Option<(Tensor, Tensor)>,
    /// Indexed by [`Proj::index`]; the projections of [`Proj::of`] the spec are present.
    proj: Vec<Option<Linear>>,
}

/// A loaded causal language model with frozen weights.
pub struct Model {
    spec: DecoderSpec,
    dir: PathBuf,
    device: Device,
    embed: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    lm_head: Tensor,
    rope: RopeTables,
    /// The sliding-window layers' rotation where it differs (Gemma 3).
    rope_local: Option<RopeTables>,
    /// Every norm weight under its Hugging Face name, as stored in the file (Gemma's
    /// weights are used as `1 + weight`).
    saved_norms: Vec<(String, Tensor)>,
}

struct WeightReader {
    st: MmapedSafetensors,
    files: Vec<PathBuf>,
    device: Device,
}

impl WeightReader {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self.st.load(name, &self.device).map_err(|_| Error::Tensor {
            path: self.files[0].clone(),
            name: name.to_owned(),
            message: format!("missing from {}", describe(&self.files)),
        })?;
        if t.dims() != shape {
            return Err(Error::Tensor {
                path: self.files[0].clone(),
                name: name.to_owned(),
                message: format!("expected shape {shape:?}, got {:?}", t.dims()),
            });
        }
        Ok(t.to_dtype(DType::F32)?)
    }

    fn has(&self, name: &str) -> bool {
        self.st.get(name).is_ok()
    }
}

fn describe(files: &[PathBuf]) -> String {
    match files {
        [one] => one.display().to_string(),
        many => {
            format!("{} shards in {}", many.len(), many[0].parent().unwrap_or(&many[0]).display())
        }
    }
}

impl Model {
    /// Loads a model directory in Hugging Face layout onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        Self::load_with(dir, device, BaseQuant::None)
    }

    /// Loads a model directory with the decoder blocks' projection weights kept as `quant`
    /// (quantized one weight at a time as it is read, so the fp32 model never exists whole).
    /// Embeddings, norms and the output head stay fp32. A quantized base runs on the CPU.
    pub fn load_with(dir: &Path, device: &Device, quant: BaseQuant) -> Result<Self> {
        if quant != BaseQuant::None && !device.is_cpu() {
            return Err(Error::config(
                "base_quant",
                format!(
                    "a {quant:?} base runs on the CPU only; use base_quant none on this device"
                ),
            ));
        }
        let spec = read_spec(dir)?;
        let files = weight_files(dir)?;
        // SAFETY: the files are only read; like every memory-mapped loader we rely on them
        // not being truncated while the model is alive (candle and transformers do the same).
        let st = unsafe { MmapedSafetensors::multi(&files) }
            .map_err(|e| Error::Model { path: dir.to_path_buf(), message: e.to_string() })?;
        let w = WeightReader { st, files, device: device.clone() };
        let s = &spec;
        let (h, hd) = (s.hidden_size, s.head_dim);
        let mut saved_norms = vec![];
        // A norm weight as the decoder uses it (Gemma's `1 + weight`), kept as saved too.
        let mut norm = |name: String, dim: usize| -> Result<Tensor> {
            let saved = w.get(&name, &[dim])?;
            let used = if s.gemma.is_some() { (&saved + 1.0)? } else { saved.clone() };
            saved_norms.push((name, saved));
            Ok(used)
        };
        let mut blocks = Vec::with_capacity(s.num_layers);
        for i in 0..s.num_layers {
            let mut proj: Vec<Option<Linear>> = (0..Proj::NAMES.len()).map(|_| None).collect();
            for &p in Proj::of(s) {
                let (out_dim, in_dim) = p.shape(s);
                let name = format!("model.layers.{i}.{}", p.module_path());
                let weight = w.get(&format!("{name}.weight"), &[out_dim, in_dim])?;
                let weight = match quant {
                    BaseQuant::None => Frozen::Dense(weight),
                    q => Frozen::Quant(Arc::new(QuantMatrix::from_tensor(&weight, q).map_err(
                        |e| Error::config("base_quant", format!("{name}.weight: {e}")),
                    )?)),
                };
                let bias = match (s.qkv_bias && p.is_qkv(), w.has(&format!("{name}.bias"))) {
                    (true, _) | (false, true) => Some(w.get(&format!("{name}.bias"), &[out_dim])?),
                    (false, false) => None,
                };
                proj[p.index()] = Some(Linear { weight, bias });
            }
            let layer = |n: &str| format!("model.layers.{i}.{n}.weight");
            let qk_norm = if s.qk_norm {
                Some((norm(layer("self_attn.q_norm"), hd)?, norm(layer("self_attn.k_norm"), hd)?))
            } else {
                None
            };
            let attn_norm = norm(layer("input_layernorm"), h)?;
            let (mlp_norm, out_norms) = if s.gemma.is_some() {
                let attn_out = norm(layer("post_attention_layernorm"), h)?;
                let mlp_norm = norm(layer("pre_feedforward_layernorm"), h)?;
                (mlp_norm, Some((attn_out, norm(layer("post_feedforward_layernorm"), h)?)))
            } else {
                (norm(layer("post_attention_layernorm"), h)?, None)
            };
            blocks.push(Block { qk_norm, attn_norm, mlp_norm, out_norms, proj });
        }
        let embed = w.get("model.embed_tokens.weight", &[s.vocab_size, h])?;
        let lm_head = if s.tie_word_embeddings || !w.has("lm_head.weight") {
            embed.clone()
        } else {
            w.get("lm_head.weight", &[s.vocab_size, h])?
        };
        let norm = norm("model.norm.weight".to_owned(), h)?;
        let long = s.rope_long.as_ref().map(|l| (&l.inv_freq[..], l.original_max_positions));
        let rope = RopeTables::scaled(
            &s.rope_inv_freq,
            s.rope_attention_factor,
            long,
            s.max_position_embeddings,
            device,
        )?;
        let rope_local = match &s.rope_local_inv_freq {
            Some(f) => Some(RopeTables::new(f, s.max_position_embeddings, device)?),
            None => None,
        };
        debug_assert!(s.rotary_dim() <= hd);
        Ok(Model {
            spec,
            dir: dir.to_path_buf(),
            device: device.clone(),
            embed,
            blocks,
            norm,
            lm_head,
            rope,
            rope_local,
            saved_norms,
        })
    }

    /// The architecture facts the model was built from.
    pub fn spec(&self) -> &DecoderSpec {
        &self.spec
    }

    /// The directory the weights were read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Runs the decoder on `ids` (`[batch, seq]`, u32) and returns the final hidden states
    /// `[batch, seq, hidden]`. With a cache, `ids` continue the cached positions.
    pub fn hidden_states(
        &self,
        ids: &Tensor,
        adapter: Option<&Adapter>,
        cache: Option<&mut KvCache>,
        mode: ForwardMode,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if let Some(cache) = cache {
            if self.crosses_long_context(cache, t) {
                // transformers' Phi-3 generation: the cache is recomputed with the long factors.
                let past = cache.len();
                let tokens = Tensor::new(cache.tokens.clone(), ids.device())?;
                let full = Tensor::cat(&[&tokens, ids], 1)?;
                *cache = KvCache::new();
                let h = self.hidden_states(&full, adapter, Some(cache), mode)?;
                return Ok(h.narrow(1, past, t)?);
            }
            let x = self.run(
                &ids.flatten_all()?,
                Rows::Uniform { batch: b, seq: t },
                RowAdapters::Same(adapter),
                &mut [&mut *cache],
                mode,
            )?;
            if self.spec.rope_long.is_some() {
                let rows: Vec<Vec<u32>> = ids.to_vec2()?;
                cache.tokens.resize(b, vec![]);
                for (kept, new) in cache.tokens.iter_mut().zip(rows) {
                    kept.extend(new);
                }
            }
            return Ok(x.reshape((b, t, self.spec.hidden_size))?);
        }
        let mut caches: Vec<&mut KvCache> = vec![];
        let x = self.run(
            &ids.flatten_all()?,
            Rows::Uniform { batch: b, seq: t },
            RowAdapters::Same(adapter),
            &mut caches,
            mode,
        )?;
        Ok(x.reshape((b, t, self.spec.hidden_size))?)
    }

    /// Runs independent sequences in one pass, each continuing its own cache with its own
    /// adapter (or none), and returns `[total, hidden]`. `ids` is `[total]` (u32): the new
    /// tokens of each sequence, of lengths `lens`, one after the other; `caches[i]` and
    /// `adapters[i]` belong to sequence `i`.
    ///
    /// This is how concurrent generations share a step: every frozen projection runs once
    /// over all the rows (the weights are read once for the whole batch), each adapter's
    /// low-rank product runs over its own rows, and attention runs per sequence on its cache.
    /// Each sequence's result equals [`Model::hidden_states`] on it alone, up to float
    /// summation order.
    pub fn hidden_states_cached(
        &self,
        ids: &Tensor,
        lens: &[usize],
        caches: &mut [&mut KvCache],
        adapters: &[Option<&Adapter>],
    ) -> Result<Tensor> {
        let total = ids.dim(0)?;
        if lens.iter().sum::<usize>() != total
            || lens.contains(&0)
            || caches.len() != lens.len()
            || adapters.len() != lens.len()
        {
            return Err(candle_core::Error::Msg(format!(
                "{} sequences of lengths {lens:?} with {} caches and {} adapters do not match \
                 the {total} ids given",
                lens.len(),
                caches.len(),
                adapters.len()
            ))
            .into());
        }
        if lens.iter().zip(caches.iter()).any(|(&len, c)| self.crosses_long_context(c, len)) {
            return self.recompute_crossing(ids, lens, caches, adapters);
        }
        let x = if let ([len], [adapter]) = (lens, adapters)
            && *len > 1
        {
            self.run(
                ids,
                Rows::Uniform { batch: 1, seq: *len },
                RowAdapters::Same(*adapter),
                caches,
                ForwardMode::Inference,
            )?
        } else {
            let adapters = if adapters.iter().all(|a| same_adapter(*a, adapters[0])) {
                RowAdapters::Same(adapters[0])
            } else {
                RowAdapters::PerSequence(adapters)
            };
            self.run(ids, Rows::Separate { lens }, adapters, caches, ForwardMode::Inference)?
        };
        if self.spec.rope_long.is_some() {
            let host: Vec<u32> = ids.to_vec1()?;
            let mut start = 0;
            for (cache, &len) in caches.iter_mut().zip(lens) {
                cache.tokens.resize(1, vec![]);
                cache.tokens[0].extend_from_slice(&host[start..start + len]);
                start += len;
            }
        }
        Ok(x)
    }

    /// Whether a pass of `new` tokens after `cache` is the first to reach past LongRoPE's
    /// pretraining context. transformers' Phi-3 then drops the cache built with the short
    /// factors and recomputes the whole sequence with the long ones (its
    /// `prepare_inputs_for_generation`), so greedy continuations equal full forward passes.
    fn crosses_long_context(&self, cache: &KvCache, new: usize) -> bool {
        self.spec.rope_long.as_ref().is_some_and(|l| {
            let past = cache.len();
            past > 0 && past <= l.original_max_positions && past + new > l.original_max_positions
        })
    }

    /// [`Model::hidden_states_cached`] where some sequences cross the pretraining context:
    /// those run again from their first token on a fresh cache, and only the rows of the new
    /// tokens are returned.
    fn recompute_crossing(
        &self,
        ids: &Tensor,
        lens: &[usize],
        caches: &mut [&mut KvCache],
        adapters: &[Option<&Adapter>],
    ) -> Result<Tensor> {
        let host: Vec<u32> = ids.to_vec1()?;
        let (mut all, mut all_lens, mut keep) = (vec![], vec![], vec![]);
        let mut start = 0;
        for (cache, &len) in caches.iter_mut().zip(lens) {
            let own = &host[start..start + len];
            start += len;
            let mut seq = vec![];
            if self.crosses_long_context(cache, len) {
                seq = cache.tokens.first().cloned().unwrap_or_default();
                **cache = KvCache::new();
            }
            seq.extend_from_slice(own);
            keep.push((all.len() + seq.len() - len, len));
            all_lens.push(seq.len());
            all.extend(seq);
        }
        let ids = Tensor::new(all, ids.device())?;
        let h = self.hidden_states_cached(&ids, &all_lens, caches, adapters)?;
        let parts = keep
            .iter()
            .map(|&(at, len)| h.narrow(0, at, len))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// Runs the decoder on several sequences packed end to end without padding and returns
    /// `[total, hidden]`. `ids` is `[total]` (u32): first `shared_prefix` tokens that every
    /// sequence starts with (stored once), then the rest of each sequence, of lengths
    /// `lens`, one after the other. Each sequence attends only to the shared prefix and to
    /// itself, with positions counted from the start of the prefix.
    ///
    /// The result equals [`Model::hidden_states`] on the full sequences right-padded into
    /// a batch (up to float summation order), without work on padding and with the shared
    /// prefix computed once: every projection runs once over the packed tokens and
    /// attention runs per sequence. Gradients that reach the prefix sum over the sequences.
    pub fn hidden_states_packed(
        &self,
        ids: &Tensor,
        shared_prefix: usize,
        lens: &[usize],
        adapter: Option<&Adapter>,
        mode: ForwardMode,
    ) -> Result<Tensor> {
        let rows = packed_rows(shared_prefix, lens, ids.dim(0)?)?;
        self.run(ids, rows, RowAdapters::Same(adapter), &mut [], mode)
    }

    /// The scaled embeddings of `ids` (`[tokens]`), the input of block 0. With
    /// [`Model::packed_block`] and [`Model::final_norm`], the pieces of
    /// [`Model::hidden_states_packed`], for training that recomputes each block in the
    /// backward pass instead of keeping its activations.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let x = self.embed.index_select(ids, 0)?;
        Ok(match self.spec.gemma {
            Some(_) => (x * (self.spec.hidden_size as f64).sqrt())?,
            None => x,
        })
    }

    /// Block `layer` over hidden states `x` (`[tokens, hidden]`) laid out as in
    /// [`Model::hidden_states_packed`].
    pub fn packed_block(
        &self,
        layer: usize,
        x: Tensor,
        shared_prefix: usize,
        lens: &[usize],
        adapter: Option<&Adapter>,
        mode: ForwardMode,
    ) -> Result<Tensor> {
        let rows = packed_rows(shared_prefix, lens, x.dim(0)?)?;
        self.blocks_over(x, layer..layer + 1, rows, RowAdapters::Same(adapter), &mut [], mode)
    }

    /// The final RMSNorm, after the last block.
    pub fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        Ok(layers::rms_norm(x, &self.norm, self.spec.rms_norm_eps)?)
    }

    /// Number of decoder blocks.
    pub fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    /// The decoder blocks over `ids` (`[tokens]`) laid out as `rows`; returns the final
    /// normed hidden states `[tokens, hidden]`.
    /// `caches`: none, or one for `Rows::Uniform` (its rows continue it); one per sequence
    /// for `Rows::Separate`.
    fn run(
        &self,
        ids: &Tensor,
        rows: Rows<'_>,
        adapters: RowAdapters<'_>,
        caches: &mut [&mut KvCache],
        mode: ForwardMode,
    ) -> Result<Tensor> {
        let body = |caches: &mut [&mut KvCache]| {
            let x = self.embed(ids)?;
            let x = self.blocks_over(x, 0..self.blocks.len(), rows, adapters, caches, mode)?;
            self.final_norm(&x)
        };
        if mode == ForwardMode::Inference && self.device.is_cpu() {
            // On a thread of the pool, each op's parallel part starts on this thread and
            // wakes the others, instead of queueing the work and putting this thread to
            // sleep until it is done: a decode step has hundreds of such small parts (this
            // halved its context switches).
            return rayon::scope(|_| body(caches));
        }
        body(caches)
    }

    /// Blocks `layers` over hidden states `x` (`[tokens, hidden]`) laid out as `rows`.
    fn blocks_over(
        &self,
        mut x: Tensor,
        layers: std::ops::Range<usize>,
        rows: Rows<'_>,
        adapters: RowAdapters<'_>,
        caches: &mut [&mut KvCache],
        mode: ForwardMode,
    ) -> Result<Tensor> {
        let s = &self.spec;
        let offsets: Vec<usize> = caches.iter().map(|c| c.len()).collect();
        for c in caches.iter_mut() {
            c.layers.resize(s.num_layers, None);
        }
        // One new token per sequence, for inference on the CPU: attention in one kernel.
        let one_token_each = match rows {
            Rows::Separate { lens } => lens.iter().all(|&l| l == 1),
            Rows::Uniform { batch, seq } => batch == 1 && seq == 1 && caches.len() == 1,
            Rows::Packed { .. } => false,
        };
        let decode_step = one_token_each
            && mode == ForwardMode::Inference
            && self.device.is_cpu()
            && self.embed.dtype() == DType::F32;
        let heads = layers::decode::Heads {
            heads: s.num_heads,
            kv_heads: s.num_kv_heads,
            head_dim: s.head_dim,
        };
        let general = |x: &Tensor, layer: usize, p: Proj, block: &Block| -> Result<Tensor> {
            let lin = block.proj[p.index()].as_ref().expect("the family's projections are loaded");
            let adapter = match (adapters, rows) {
                (RowAdapters::Same(adapter), _) => adapter,
                (RowAdapters::PerSequence(list), Rows::Separate { lens }) => {
                    let y = lin.weight.apply(x)?;
                    let mut y = add_lora_per_sequence(x, y, lens, list, layer, p)?;
                    if let Some(bias) = &lin.bias {
                        y = y.broadcast_add(bias)?;
                    }
                    return Ok(y);
                }
                (RowAdapters::PerSequence(_), _) => {
                    unreachable!("adapters per sequence come only with separate sequences")
                }
            };
            let pair = adapter.and_then(|a| a.pair(layer, p).map(|pair| (a, pair)));
            let mut y = match (pair, mode, &lin.weight) {
                (Some((adapter, pair)), ForwardMode::Train { dropout_seed }, _)
                    if adapter.dropout() > 0.0 =>
                {
                    // Dropout applies to the adapter's input only, so the two products
                    // see different inputs and stay separate.
                    let seed = dropout_seed ^ ((layer as u64) << 8 | p.index() as u64) << 32;
                    let xin = dropout(x, adapter.dropout(), seed)?;
                    let low = xin.matmul(&pair.a.t()?)?.matmul(&pair.b.t()?)?;
                    (lin.weight.apply(x)? + (low * adapter.scale())?)?
                }
                (Some((adapter, pair)), _, w) => {
                    layers::lora_linear(x, w, &pair.a, &pair.b, adapter.scale())?
                }
                (None, _, _) => lin.weight.apply(x)?,
            };
            if let Some(bias) = &lin.bias {
                y = y.broadcast_add(bias)?;
            }
            Ok(y)
        };
        // A decode step with one adapter (or none) for all rows and fp32 weights: the
        // projections that share their input in one pass of the few-row kernel (candle's
        // small ops and a dispatch to the threads per product cost more than the
        // arithmetic here).
        let few_rows = |x: &Tensor,
                        layer: usize,
                        ps: &[Proj],
                        block: &Block|
         -> Result<Option<Vec<Tensor>>> {
            let RowAdapters::Same(adapter) = adapters else { return Ok(None) };
            if !decode_step {
                return Ok(None);
            }
            let mut list = Vec::with_capacity(ps.len());
            for &p in ps {
                let lin =
                    block.proj[p.index()].as_ref().expect("the family's projections are loaded");
                let Frozen::Dense(w) = &lin.weight else { return Ok(None) };
                let lora = adapter.and_then(|a| {
                    a.pair(layer, p).map(|pair| (pair.a.as_tensor(), pair.b.as_tensor(), a.scale()))
                });
                list.push(layers::FewRowsProj { w, lora });
            }
            let mut ys = layers::linear_few_rows(x, &list)?;
            for (y, &p) in ys.iter_mut().zip(ps) {
                if let Some(bias) = block.proj[p.index()].as_ref().and_then(|l| l.bias.as_ref()) {
                    *y = y.broadcast_add(bias)?;
                }
            }
            Ok(Some(ys))
        };
        let projs = |x: &Tensor, layer: usize, ps: &[Proj], block: &Block| -> Result<Vec<Tensor>> {
            match few_rows(x, layer, ps, block)? {
                Some(ys) => Ok(ys),
                None => ps.iter().map(|&p| general(x, layer, p, block)).collect(),
            }
        };
        let proj = |x: &Tensor, layer: usize, p: Proj, block: &Block| -> Result<Tensor> {
            Ok(projs(x, layer, &[p], block)?.pop().expect("one projection"))
        };
        // Packed rows (a uniform batch is packed rows without a prefix) of a training pass:
        // each block half may run as one op.
        let packed = match rows {
            Rows::Uniform { batch, seq } if caches.is_empty() => Some((0, vec![seq; batch])),
            Rows::Packed { prefix, lens } => Some((prefix, lens.to_vec())),
            _ => None,
        };
        let halves = packed.as_ref().and(self.fused_halves(adapters, mode));
        for i in layers {
            let block = &self.blocks[i];
            let attention = halves.and_then(|adapter| self.fused_attention(block, i, adapter));
            let out_norm = |y: Tensor, which: usize| -> Result<Tensor> {
                Ok(match &block.out_norms {
                    Some(norms) => {
                        let w = if which == 0 { &norms.0 } else { &norms.1 };
                        layers::rms_norm(&y, w, s.rms_norm_eps)?
                    }
                    None => y,
                })
            };
            if let (Some(a), Some((prefix, lens))) = (attention, &packed) {
                x = layers::block::residual_self_attention(&x, &a, *prefix, lens)?;
            } else {
                let h = layers::rms_norm(&x, &block.attn_norm, s.rms_norm_eps)?;
                let (mut q, mut k, v) = if s.fused_projections() {
                    // Phi-3: one product, then the rows `[q; k; v]` as columns of the output.
                    let qkv = proj(&h, i, Proj::Qkv, block)?;
                    let (nq, nkv) = (s.num_heads * s.head_dim, s.num_kv_heads * s.head_dim);
                    (qkv.narrow(1, 0, nq)?, qkv.narrow(1, nq, nkv)?, qkv.narrow(1, nq + nkv, nkv)?)
                } else {
                    let [q, k, v] =
                        <[Tensor; 3]>::try_from(projs(&h, i, &[Proj::Q, Proj::K, Proj::V], block)?)
                            .expect("three projections");
                    (q, k, v)
                };
                if let Some((qn, kn)) = &block.qk_norm {
                    // Each head normalised on its own: `[rows, heads * hd]` as `[rows, heads, hd]`.
                    let per_head = |x: &Tensor, w: &Tensor, n: usize| -> Result<Tensor> {
                        let rows = x.dim(0)?;
                        let y = layers::rms_norm(
                            &x.reshape((rows, n, s.head_dim))?,
                            w,
                            s.rms_norm_eps,
                        )?;
                        Ok(y.reshape((rows, n * s.head_dim))?)
                    };
                    q = per_head(&q, qn, s.num_heads)?;
                    k = per_head(&k, kn, s.num_kv_heads)?;
                }
                let part = |start: usize, len: usize| -> Result<[Tensor; 3]> {
                    Ok([
                        q.narrow(0, start, len)?,
                        k.narrow(0, start, len)?,
                        v.narrow(0, start, len)?,
                    ])
                };
                let attn = match rows {
                    Rows::Uniform { batch, seq } => {
                        let offset = offsets.first().copied().unwrap_or(0);
                        let cache = caches.first_mut().map(|c| &mut c.layers[i]);
                        self.attention(&q, &k, &v, batch, seq, offset, cache, i)?
                    }
                    _ if decode_step => {
                        let mut layer: Vec<_> =
                            caches.iter_mut().map(|c| &mut c.layers[i]).collect();
                        layers::decode::decode_attention(
                            &q,
                            &k,
                            &v,
                            &mut layer,
                            &offsets,
                            self.rope_of(i),
                            heads,
                            layers::decode::Scores {
                                scale: s.attention_scale() as f32,
                                softcap: s
                                    .gemma
                                    .as_ref()
                                    .and_then(|g| g.attn_softcap)
                                    .map(|c| c as f32),
                                window: s.window(i),
                            },
                        )?
                    }
                    Rows::Separate { lens } => {
                        let mut parts = Vec::with_capacity(lens.len());
                        let mut start = 0;
                        for (j, &len) in lens.iter().enumerate() {
                            let [q, k, v] = part(start, len)?;
                            let cache = Some(&mut caches[j].layers[i]);
                            parts.push(self.attention(&q, &k, &v, 1, len, offsets[j], cache, i)?);
                            start += len;
                        }
                        Tensor::cat(&parts, 0)?
                    }
                    // Every sequence and the prefix in one op: slices of q, k and v per
                    // sequence would each get a full-size gradient in candle's backward pass.
                    Rows::Packed { prefix, lens } if self.fuses_attention() => {
                        let (q, k) = match self.rope_of(i) {
                            Some(rope) => (
                                rope.apply_rows_packed(&q, s.head_dim, prefix, lens)?,
                                rope.apply_rows_packed(&k, s.head_dim, prefix, lens)?,
                            ),
                            None => (q.clone(), k.clone()),
                        };
                        layers::attention::packed_attention(
                            &q,
                            &k,
                            &v,
                            self.heads_of(i),
                            prefix,
                            lens,
                        )?
                    }
                    Rows::Packed { prefix, lens } => {
                        let mut parts = Vec::with_capacity(lens.len() + 1);
                        // The prefix attends to itself; its keys and values then serve every
                        // sequence as if cached.
                        let mut prefix_kv = None;
                        if prefix > 0 {
                            let [q, k, v] = part(0, prefix)?;
                            parts.push(self.attention(
                                &q,
                                &k,
                                &v,
                                1,
                                prefix,
                                0,
                                Some(&mut prefix_kv),
                                i,
                            )?);
                        }
                        let mut start = prefix;
                        for &len in lens {
                            let [q, k, v] = part(start, len)?;
                            let mut kv = prefix_kv.clone();
                            parts.push(self.attention(
                                &q,
                                &k,
                                &v,
                                1,
                                len,
                                prefix,
                                Some(&mut kv),
                                i,
                            )?);
                            start += len;
                        }
                        Tensor::cat(&parts, 0)?
                    }
                };
                x = (x + out_norm(proj(&attn, i, Proj::O, block)?, 0)?)?;
            }
            if let Some(m) = halves.and_then(|adapter| self.fused_mlp(block, i, adapter)) {
                x = layers::block::residual_gated_mlp(&x, &m)?;
                continue;
            }
            let h = layers::rms_norm(&x, &block.mlp_norm, s.rms_norm_eps)?;
            let (gate, up) = if s.fused_projections() {
                // Phi-3: `[gate; up]` rows, transformers' `chunk(2)`.
                let gate_up = proj(&h, i, Proj::GateUp, block)?;
                let n = s.intermediate_size;
                (gate_up.narrow(1, 0, n)?, gate_up.narrow(1, n, n)?)
            } else {
                let [gate, up] =
                    <[Tensor; 2]>::try_from(projs(&h, i, &[Proj::Gate, Proj::Up], block)?)
                        .expect("two projections");
                (gate, up)
            };
            let act =
                if s.gemma.is_some() { (gate.gelu()? * up)? } else { layers::swiglu(&gate, &up)? };
            x = (x + out_norm(proj(&act, i, Proj::Down, block)?, 1)?)?;
        }
        Ok(x)
    }

    /// Causal self-attention of `batch` rows of `seq` new positions each, whose first
    /// position is `offset`; `q`, `k`, `v` are the projections `[batch * seq, heads * hd]`.
    /// With `cache`, the new keys and values are appended to the layer's cached ones.
    /// Returns `[batch * seq, heads * hd]`.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        batch: usize,
        seq: usize,
        offset: usize,
        cache: Option<&mut Option<LayerKv>>,
        layer: usize,
    ) -> Result<Tensor> {
        let s = &self.spec;
        let (nh, nkv, hd) = (s.num_heads, s.num_kv_heads, s.head_dim);
        let heads = |y: &Tensor, n: usize| -> Result<Tensor> {
            Ok(y.reshape((batch, seq, n, hd))?.transpose(1, 2)?.contiguous()?)
        };
        // Nothing cached before: the fused op, with the new keys and values copied into
        // the cache's head layout only when a cache is kept.
        if offset == 0 && cache.as_ref().is_none_or(|slot| slot.is_none()) && self.fuses_attention()
        {
            let (out, k, v) = self.attention_rows(q, k, v, batch, seq, layer)?;
            if let Some(slot) = cache {
                *slot = Some(LayerKv::Tensors(heads(&k, nkv)?, heads(&v, nkv)?));
            }
            return Ok(out);
        }
        let rope = self.rope_of(layer);
        let rotate = |x: Tensor| -> Result<Tensor> {
            Ok(match rope {
                Some(rope) => rope.apply(&x, offset)?,
                None => x,
            })
        };
        let q = rotate(heads(q, nh)?)?;
        let mut k = rotate(heads(k, nkv)?)?;
        let mut v = heads(v, nkv)?;
        if let Some(slot) = cache {
            if let Some(kv) = slot.as_ref() {
                let (pk, pv) = kv.tensors(&self.device)?;
                k = Tensor::cat(&[&pk, &k], 2)?;
                v = Tensor::cat(&[&pv, &v], 2)?;
            }
            *slot = Some(LayerKv::Tensors(k.clone(), v.clone()));
        }
        let repeat_kv = layers::attention::repeat_kv;
        let (k, v) = (repeat_kv(&k, nh / nkv)?, repeat_kv(&v, nh / nkv)?);
        let scores = q.matmul(&k.t()?)?;
        let (scale, window) = (s.attention_scale(), s.window(layer));
        let probs = match s.gemma.as_ref().and_then(|g| g.attn_softcap) {
            // The cap applies to the scaled scores, before the mask.
            Some(cap) => {
                let capped = layers::soft_cap((scores * scale)?, Some(cap))?;
                layers::causal_softmax(&capped, 1.0, offset, window)?
            }
            None => layers::causal_softmax(&scores, scale, offset, window)?,
        };
        Ok(probs.matmul(&v)?.transpose(1, 2)?.reshape((batch * seq, nh * hd))?)
    }

    /// The adapter of a training pass whose block halves may run as
    /// [`layers::block`]'s ops: training on the CPU in f32, one adapter for every row (or
    /// none) without dropout, a family without Gemma's norms and activation or Phi-3's fused
    /// projections. `None` inside: no adapter. `None` outside: the composed ops.
    fn fused_halves<'a>(
        &self,
        adapters: RowAdapters<'a>,
        mode: ForwardMode,
    ) -> Option<Option<&'a Adapter>> {
        let s = &self.spec;
        let (RowAdapters::Same(adapter), ForwardMode::Train { .. }) = (adapters, mode) else {
            return None;
        };
        let fits = self.device.is_cpu()
            && self.embed.dtype() == DType::F32
            && s.gemma.is_none()
            && !s.fused_projections()
            && adapter.is_none_or(|a| a.dropout() == 0.0);
        fits.then_some(adapter)
    }

    /// Projection `p` of `block` (layer `layer`) for [`layers::block`]'s ops.
    fn block_projection<'a>(
        block: &'a Block,
        layer: usize,
        p: Proj,
        adapter: Option<&'a Adapter>,
    ) -> Option<layers::block::Projection<'a>> {
        let lin = block.proj[p.index()].as_ref()?;
        let pair = adapter.and_then(|a| a.pair(layer, p));
        Some(layers::block::Projection {
            weight: &lin.weight,
            bias: lin.bias.as_ref(),
            lora: pair.map(|pair| (pair.a.as_tensor(), pair.b.as_tensor())),
        })
    }

    /// Block `layer`'s MLP half as [`layers::block::residual_gated_mlp`]'s one op, where
    /// [`Model::fused_halves`] allows it.
    fn fused_mlp<'a>(
        &'a self,
        block: &'a Block,
        layer: usize,
        adapter: Option<&'a Adapter>,
    ) -> Option<layers::block::GatedMlp<'a>> {
        let proj = |p| Self::block_projection(block, layer, p, adapter);
        Some(layers::block::GatedMlp {
            norm: &block.mlp_norm,
            eps: self.spec.rms_norm_eps,
            gate: proj(Proj::Gate)?,
            up: proj(Proj::Up)?,
            down: proj(Proj::Down)?,
            scale: adapter.map_or(1.0, |a| a.scale()),
        })
    }

    /// Block `layer`'s attention half as [`layers::block::residual_self_attention`]'s one
    /// op, where [`Model::fused_halves`] allows it and the layer has no per-head norms and
    /// rotates whole heads (or none).
    fn fused_attention<'a>(
        &'a self,
        block: &'a Block,
        layer: usize,
        adapter: Option<&'a Adapter>,
    ) -> Option<layers::block::SelfAttention<'a>> {
        let s = &self.spec;
        let rope = self.rope_of(layer);
        let whole = rope.is_none_or(|r| r.cos.dim(1).is_ok_and(|half| 2 * half == s.head_dim));
        if block.qk_norm.is_some() || !whole || !self.fuses_attention() {
            return None;
        }
        let proj = |p| Self::block_projection(block, layer, p, adapter);
        Some(layers::block::SelfAttention {
            norm: &block.attn_norm,
            eps: s.rms_norm_eps,
            q: proj(Proj::Q)?,
            k: proj(Proj::K)?,
            v: proj(Proj::V)?,
            o: proj(Proj::O)?,
            scale: adapter.map_or(1.0, |a| a.scale()),
            heads: self.heads_of(layer),
            rope,
        })
    }

    /// Whether attention may run as [`layers::attention::causal_attention`]'s fused op:
    /// fp32 on the CPU, without Gemma 2's soft cap (the same for every layer).
    fn fuses_attention(&self) -> bool {
        self.device.is_cpu()
            && self.embed.dtype() == DType::F32
            && self.spec.gemma.as_ref().and_then(|g| g.attn_softcap).is_none()
    }

    /// Causal self-attention in row layout: `batch` sequences of `seq` new positions,
    /// nothing before them. Returns the output `[batch * seq, heads * hd]` and the rotated
    /// keys and the values.
    fn attention_rows(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        batch: usize,
        seq: usize,
        layer: usize,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let hd = self.spec.head_dim;
        let (q, k) = match self.rope_of(layer) {
            Some(rope) => (rope.apply_rows(q, seq, hd, 0)?, rope.apply_rows(k, seq, hd, 0)?),
            None => (q.clone(), k.clone()),
        };
        let shape = self.heads_of(layer).causal(batch, seq, 0);
        let out = layers::attention::causal_attention(&q, &k, v, shape)?;
        Ok((out, k, v.clone()))
    }

    /// The heads and scores of `layer`'s attention.
    fn heads_of(&self, layer: usize) -> layers::attention::Heads {
        let s = &self.spec;
        layers::attention::Heads {
            heads: s.num_heads,
            kv_heads: s.num_kv_heads,
            head_dim: s.head_dim,
            scale: s.attention_scale() as f32,
            window: s.window(layer),
        }
    }

    /// The rotation of `layer`'s queries and keys: none in SmolLM3's NoPE layers, Gemma 3's
    /// local tables in its sliding-window layers.
    fn rope_of(&self, layer: usize) -> Option<&RopeTables> {
        if self.spec.layers_without_rope.contains(&layer) {
            return None;
        }
        match &self.rope_local {
            Some(local) if self.spec.window(layer).is_some() => Some(local),
            _ => Some(&self.rope),
        }
    }

    /// The output projection `[vocab, hidden]` (the embedding matrix when tied).
    pub fn lm_head(&self) -> &Tensor {
        &self.lm_head
    }

    /// Projects hidden states (`[..., hidden]`) to vocabulary logits (`[..., vocab]`),
    /// soft-capped where the family does (Gemma 2).
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let logits = layers::frozen_linear(hidden, &self.lm_head)?;
        Ok(layers::soft_cap(logits, self.spec.final_softcap())?)
    }

    /// Logits for every position: `[batch, seq, vocab]`.
    pub fn forward(&self, ids: &Tensor, adapter: Option<&Adapter>) -> Result<Tensor> {
        let hidden = self.hidden_states(ids, adapter, None, ForwardMode::Inference)?;
        self.logits(&hidden)
    }

    /// Base weights with `adapter` merged in (`W + scale * B A`), under their Hugging Face
    /// names, ready to be written as a standalone model.
    pub fn merged_weights(&self, adapter: Option<&Adapter>) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        out.insert("model.embed_tokens.weight".to_owned(), self.embed.clone());
        out.extend(self.saved_norms.iter().cloned());
        if !self.spec.tie_word_embeddings {
            out.insert("lm_head.weight".to_owned(), self.lm_head.clone());
        }
        for (i, block) in self.blocks.iter().enumerate() {
            let prefix = format!("model.layers.{i}");
            for &p in Proj::of(&self.spec) {
                let lin =
                    block.proj[p.index()].as_ref().expect("the family's projections are loaded");
                let mut w = lin.weight.dense(&self.device)?;
                if let Some((a, pair)) = adapter.and_then(|a| a.pair(i, p).map(|pair| (a, pair))) {
                    let delta = (pair.b.matmul(pair.a.as_tensor())? * a.scale())?;
                    w = (w + delta)?;
                }
                out.insert(format!("{prefix}.{}.weight", p.module_path()), w);
                if let Some(bias) = &lin.bias {
                    out.insert(format!("{prefix}.{}.bias", p.module_path()), bias.clone());
                }
            }
        }
        Ok(out)
    }
}

/// The layout of packed training rows: a shared prefix, then each row's own tokens.
fn packed_rows(shared_prefix: usize, lens: &[usize], total: usize) -> Result<Rows<'_>> {
    if shared_prefix + lens.iter().sum::<usize>() != total || lens.contains(&0) {
        return Err(candle_core::Error::Msg(format!(
            "packed sequences (prefix {shared_prefix}, then lengths {lens:?}) do not add up to \
             the {total} positions given"
        ))
        .into());
    }
    Ok(match lens {
        _ if shared_prefix > 0 => Rows::Packed { prefix: shared_prefix, lens },
        [_] => Rows::Uniform { batch: 1, seq: total },
        _ if lens.iter().all(|l| *l == lens[0]) => {
            Rows::Uniform { batch: lens.len(), seq: lens[0] }
        }
        _ => Rows::Packed { prefix: 0, lens },
    })
}

/// How the tokens of a forward pass form sequences.
#[derive(Clone, Copy, Debug)]
enum Rows<'a> {
    /// `batch` sequences of `seq` tokens each (padding included, if any).
    Uniform { batch: usize, seq: usize },
    /// A prefix of `prefix` tokens shared by every sequence (0: none), then the rest of
    /// each sequence, of these lengths, end to end.
    Packed { prefix: usize, lens: &'a [usize] },
    /// Independent sequences of these lengths, end to end, each continuing its own cache.
    Separate { lens: &'a [usize] },
}

/// Which adapter the rows of a forward pass use.
#[derive(Clone, Copy)]
enum RowAdapters<'a> {
    /// Every row uses this one (or none).
    Same(Option<&'a Adapter>),
    /// Sequence `i` of `Rows::Separate` uses `adapters[i]`.
    PerSequence(&'a [Option<&'a Adapter>]),
}

/// Whether two sequences use the same adapter (the same object, or both none).
fn same_adapter(a: Option<&Adapter>, b: Option<&Adapter>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => std::ptr::eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// `y` (the frozen projection of `x`, rows laid out as `lens`) plus each sequence's
/// low-rank term `scale (x A^T) B^T`; runs of sequences with the same adapter share one
/// product.
fn add_lora_per_sequence(
    x: &Tensor,
    y: Tensor,
    lens: &[usize],
    adapters: &[Option<&Adapter>],
    layer: usize,
    p: Proj,
) -> Result<Tensor> {
    if adapters.iter().all(|a| a.and_then(|a| a.pair(layer, p)).is_none()) {
        return Ok(y);
    }
    let mut parts = Vec::new();
    let (mut i, mut start) = (0, 0);
    while i < lens.len() {
        let mut j = i + 1;
        while j < lens.len() && same_adapter(adapters[j], adapters[i]) {
            j += 1;
        }
        let rows: usize = lens[i..j].iter().sum();
        let part = y.narrow(0, start, rows)?;
        parts.push(match adapters[i].and_then(|a| a.pair(layer, p).map(|pair| (a, pair))) {
            Some((a, pair)) => {
                let low = x.narrow(0, start, rows)?.matmul(&pair.a.t()?)?.matmul(&pair.b.t()?)?;
                (part + (low * a.scale())?)?
            }
            None => part,
        });
        (i, start) = (j, start + rows);
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// Inverted dropout with a mask drawn from `seed`.
fn dropout(x: &Tensor, p: f64, seed: u64) -> Result<Tensor> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let keep = 1.0 / (1.0 - p) as f32;
    let mask: Vec<f32> =
        (0..x.elem_count()).map(|_| if rng.random::<f64>() < p { 0.0 } else { keep }).collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?;
    Ok((x * mask)?)
}
