//! Tensor names and layouts between transformers and GGUF (`llama`, `qwen2`, `qwen3`,
//! `gemma2`, `gemma3`, `phi3`).
//!
//! llama.cpp's converter renames every tensor (`model.layers.3.self_attn.q_proj.weight`
//! becomes `blk.3.attn_q.weight`; Gemma's extra norms have names of their own) and, for the
//! `llama` architecture only (Llama and Mistral checkpoints), permutes the rows
//! of the Q and K projections within each head from transformers' "rotate half" pairs
//! `(i, i + d/2)` to interleaved pairs `(2i, 2i + 1)`, the layout its rope kernel expects.
//! Qwen2 and Qwen3 files are not permuted. Import undoes the permutation, export re-applies it (also
//! to the rows of LoRA B, which are output rows of the same projection).

use candle_core::Tensor;

use crate::Result;
use crate::models::Family;

/// `general.architecture` of a family.
pub fn arch_name(family: Family) -> &'static str {
    match family {
        Family::Llama => "llama",
        Family::Qwen2 => "qwen2",
        Family::Qwen3 => "qwen3",
        Family::SmolLM3 => "smollm3",
        // llama.cpp's converter writes Mistral checkpoints as `llama`.
        Family::Mistral => "llama",
        Family::Gemma2 => "gemma2",
        Family::Gemma3 => "gemma3",
        Family::Phi3 => "phi3",
    }
}

/// transformers' `model_type` of a family (the text-only one for Gemma 3).
pub fn model_type(family: Family) -> &'static str {
    match family {
        Family::Gemma3 => "gemma3_text",
        Family::Mistral => "mistral",
        // Every other family's GGUF architecture name is its `model_type`.
        family => arch_name(family),
    }
}

/// transformers' `architectures` entry of a family.
pub fn hf_architecture(family: Family) -> &'static str {
    match family {
        Family::Llama => "LlamaForCausalLM",
        Family::Qwen2 => "Qwen2ForCausalLM",
        Family::Qwen3 => "Qwen3ForCausalLM",
        Family::SmolLM3 => "SmolLM3ForCausalLM",
        Family::Mistral => "MistralForCausalLM",
        Family::Gemma2 => "Gemma2ForCausalLM",
        Family::Gemma3 => "Gemma3ForCausalLM",
        Family::Phi3 => "Phi3ForCausalLM",
    }
}

/// Per-layer tensors: (GGUF name inside `blk.N.`, transformers name inside `model.layers.N.`).
const LAYER: &[(&str, &str)] = &[
    ("attn_norm", "input_layernorm"),
    ("ffn_norm", "post_attention_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("attn_q_norm", "self_attn.q_norm"),
    ("attn_k_norm", "self_attn.k_norm"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];

/// Gemma's four norms per layer: llama.cpp's `ffn_norm` is the norm before the MLP, which
/// Gemma calls `pre_feedforward_layernorm` (its `post_attention_layernorm` is a norm of the
/// attention output).
const GEMMA_NORMS: &[(&str, &str)] = &[
    ("post_attention_norm", "post_attention_layernorm"),
    ("ffn_norm", "pre_feedforward_layernorm"),
    ("post_ffw_norm", "post_feedforward_layernorm"),
];

/// Phi-3's fused projections: llama.cpp's `ffn_up` holds gate and up (`[gate; up]` rows,
/// split in half by its SwiGLU), `attn_qkv` the rows `[q; k; v]`.
const PHI3_FUSED: &[(&str, &str)] =
    &[("attn_qkv", "self_attn.qkv_proj"), ("ffn_up", "mlp.gate_up_proj")];

/// The per-layer name pairs of a family.
fn layer_names(family: Family) -> impl Iterator<Item = &'static (&'static str, &'static str)> {
    let gemma = matches!(family, Family::Gemma2 | Family::Gemma3);
    let phi3 = family == Family::Phi3;
    GEMMA_NORMS.iter().filter(move |_| gemma).chain(PHI3_FUSED.iter().filter(move |_| phi3)).chain(
        LAYER
            .iter()
            .filter(move |(g, _)| !((gemma && *g == "ffn_norm") || (phi3 && *g == "ffn_up"))),
    )
}

/// Whether llama.cpp reads the rows of Q and K interleaved (its `llama` architecture, which
/// Mistral is written as, and `smollm3`, converted as Llama), so that they are permuted on
/// the way in and out.
pub fn permutes(family: Family) -> bool {
    matches!(family, Family::Llama | Family::Mistral | Family::SmolLM3)
}

/// Whole-model tensors: (GGUF, transformers), suffix `.weight` included.
const GLOBAL: &[(&str, &str)] = &[
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];

/// The transformers name of a GGUF tensor, `None` for a name the family does not use.
pub fn hf_name(family: Family, gguf: &str) -> Option<String> {
    if let Some((_, hf)) = GLOBAL.iter().find(|(g, _)| *g == gguf) {
        return Some((*hf).to_owned());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, suffix) = rest.split_once('.')?;
    if suffix != "weight" && suffix != "bias" {
        return None;
    }
    let (_, hf) = layer_names(family).find(|(g, _)| *g == module)?;
    Some(format!("model.layers.{layer}.{hf}.{suffix}"))
}

/// The GGUF name of a transformers tensor, `None` for a name GGUF does not have.
pub fn gguf_name(family: Family, hf: &str) -> Option<String> {
    if let Some((g, _)) = GLOBAL.iter().find(|(_, h)| *h == hf) {
        return Some((*g).to_owned());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, suffix) = rest.rsplit_once('.')?;
    let (g, _) = layer_names(family).find(|(_, h)| *h == module)?;
    Some(format!("blk.{layer}.{g}.{suffix}"))
}

/// The number of heads whose rows llama.cpp permutes in this tensor (`llama` architecture):
/// Q with the query heads, K with the key/value heads; `None` for every other tensor.
pub fn permuted_heads(hf: &str, heads: usize, kv_heads: usize) -> Option<usize> {
    if hf.contains(".self_attn.q_proj.") {
        Some(heads)
    } else if hf.contains(".self_attn.k_proj.") {
        Some(kv_heads)
    } else {
        None
    }
}

/// GGUF rows to transformers rows: within each head, interleaved pairs back to halves.
/// Works on weights `[out, in]`, biases `[out]` and LoRA B `[out, r]`.
pub fn unpermute(w: &Tensor, heads: usize) -> Result<Tensor> {
    let dims = w.dims().to_vec();
    let (out, rest) = (dims[0], dims[1..].iter().product::<usize>());
    Ok(w.reshape((heads, out / heads / 2, 2, rest))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)?)
}

/// transformers rows to GGUF rows, the inverse of [`unpermute`].
pub fn permute(w: &Tensor, heads: usize) -> Result<Tensor> {
    let dims = w.dims().to_vec();
    let (out, rest) = (dims[0], dims[1..].iter().product::<usize>());
    Ok(w.reshape((heads, 2, out / heads / 2, rest))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for gguf in
            ["token_embd.weight", "output.weight", "blk.12.attn_k.bias", "blk.0.ffn_down.weight"]
        {
            let hf = hf_name(Family::Llama, gguf).unwrap();
            assert_eq!(gguf_name(Family::Llama, &hf).as_deref(), Some(gguf), "{hf}");
        }
        assert_eq!(
            hf_name(Family::Qwen2, "blk.3.attn_q.weight").unwrap(),
            "model.layers.3.self_attn.q_proj.weight"
        );
        assert_eq!(hf_name(Family::Llama, "rope_freqs.weight"), None);
        assert_eq!(hf_name(Family::Llama, "blk.x.attn_q.weight"), None);
    }

    #[test]
    fn gemma_norms_have_llama_cpp_names() {
        let pairs = [
            ("blk.1.attn_norm.weight", "model.layers.1.input_layernorm.weight"),
            ("blk.1.post_attention_norm.weight", "model.layers.1.post_attention_layernorm.weight"),
            ("blk.1.ffn_norm.weight", "model.layers.1.pre_feedforward_layernorm.weight"),
            ("blk.1.post_ffw_norm.weight", "model.layers.1.post_feedforward_layernorm.weight"),
            ("blk.1.attn_q_norm.weight", "model.layers.1.self_attn.q_norm.weight"),
        ];
        for family in [Family::Gemma2, Family::Gemma3] {
            for (gguf, hf) in pairs {
                assert_eq!(gguf_name(family, hf).as_deref(), Some(gguf));
                assert_eq!(hf_name(family, gguf).as_deref(), Some(hf));
            }
        }
        // Llama's norm after attention is the one before its MLP.
        assert_eq!(
            gguf_name(Family::Llama, "model.layers.1.post_attention_layernorm.weight").as_deref(),
            Some("blk.1.ffn_norm.weight")
        );
        assert_eq!(
            gguf_name(Family::Llama, "model.layers.1.pre_feedforward_layernorm.weight"),
            None
        );
    }

    #[test]
    fn phi3_fused_projections_have_llama_cpp_names() {
        let pairs = [
            ("blk.2.attn_qkv.weight", "model.layers.2.self_attn.qkv_proj.weight"),
            ("blk.2.ffn_up.weight", "model.layers.2.mlp.gate_up_proj.weight"),
            ("blk.2.ffn_down.weight", "model.layers.2.mlp.down_proj.weight"),
            ("blk.2.ffn_norm.weight", "model.layers.2.post_attention_layernorm.weight"),
        ];
        for (gguf, hf) in pairs {
            assert_eq!(gguf_name(Family::Phi3, hf).as_deref(), Some(gguf));
            assert_eq!(hf_name(Family::Phi3, gguf).as_deref(), Some(hf));
        }
        // Llama's `ffn_up` is the up projection alone.
        assert_eq!(
            hf_name(Family::Llama, "blk.2.ffn_up.weight").as_deref(),
            Some("model.layers.2.mlp.up_proj.weight")
        );
    }

    #[test]
    fn permutation_matches_llama_cpp_row_map() {
        // Two heads of width 4: gguf row h*4 + 2i + j holds hf row h*4 + j*2 + i.
        let hf =
            Tensor::arange(0f32, 8., &candle_core::Device::Cpu).unwrap().reshape((8, 1)).unwrap();
        let gguf = permute(&hf, 2).unwrap();
        let rows: Vec<f32> = gguf.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(rows, [0., 2., 1., 3., 4., 6., 5., 7.]);
        let back = unpermute(&gguf, 2).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(back, [0., 1., 2., 3., 4., 5., 6., 7.]);
    }
}
