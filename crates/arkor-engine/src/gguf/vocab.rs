//! Vocabularies between `tokenizer.ggml.*` metadata and `tokenizer.json`, both ways:
//! byte-level BPE (`gpt2`) and SentencePiece BPE (`llama`: Llama 2, Mistral, Gemma, Phi-3).
//!
//! A GGUF stores the vocabulary (tokens in GPT-2's byte alphabet, merges in rank order,
//! token types) and the *name* of its pre-tokenizer (`tokenizer.ggml.pre`), not the
//! pre-tokenizer itself: llama.cpp keeps one regex set per name. Import therefore maps
//! each supported name to the Hugging Face pre-tokenizer that splits text the same way,
//! and refuses names it does not know rather than tokenizing differently from llama.cpp.
//! Export goes the other way: it recognises the pre-tokenizer of a `tokenizer.json` and
//! writes the llama.cpp name for it.

use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use serde_json::{Value as Json, json};

use super::{GgufFile, as_usize};
use crate::{Error, Result};

/// Qwen2's split regex (transformers' `tokenizer.json` and llama.cpp's `qwen2` entry).
const QWEN2_RE: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's split regex: Qwen2's with digit runs of up to three.
const LLAMA3_RE: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GPT-4o's split regex (o200k: Phi-4-mini), as its `tokenizer.json` spells it; llama.cpp's
/// `gpt-4o` entry rewrites the mark classes as lookaheads and agrees with it on text without
/// combining marks.
const GPT4O_RE: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// `tokenizer.ggml.token_type` values.
const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;
const BYTE: i32 = 6;

/// Texts llama.cpp takes as end-of-turn markers in any vocabulary (`llama-vocab.cpp`).
const EOT_TEXTS: [&str; 8] = [
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "<|eom_id|>",
];

/// How a family of `tokenizer.ggml.pre` names splits text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PreTokenizer {
    /// Single digits, then GPT-2's byte-level regex (SmolLM, StarCoder).
    DigitsByteLevel,
    /// NFC, then Qwen2's regex.
    Qwen2,
    /// Llama 3's regex.
    Llama3,
    /// GPT-4o's regex (Phi-4-mini).
    Gpt4o,
    /// GPT-2's byte-level regex alone.
    Gpt2,
}

impl PreTokenizer {
    fn from_gguf(name: &str) -> Option<Self> {
        Some(match name {
            "smollm" | "starcoder" | "refact" | "codeshell" | "command-r" => Self::DigitsByteLevel,
            "qwen2" | "deepseek-r1-qwen" => Self::Qwen2,
            "llama-bpe" | "llama3" | "smaug-bpe" | "falcon3" | "dbrx" => Self::Llama3,
            "gpt-4o" => Self::Gpt4o,
            "gpt-2" | "default" | "mpt" | "olmo" => Self::Gpt2,
            _ => return None,
        })
    }

    fn gguf_name(self) -> &'static str {
        match self {
            Self::DigitsByteLevel => "smollm",
            Self::Qwen2 => "qwen2",
            Self::Llama3 => "llama-bpe",
            Self::Gpt4o => "gpt-4o",
            Self::Gpt2 => "gpt-2",
        }
    }

    fn normalizer(self) -> Json {
        match self {
            Self::Qwen2 => json!({"type": "NFC"}),
            _ => Json::Null,
        }
    }

    fn pre_tokenizer(self) -> Json {
        let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": use_regex, "use_regex": use_regex});
        let split = |re: &str| json!({"type": "Split", "pattern": {"Regex": re}, "behavior": "Isolated", "invert": false});
        match self {
            Self::DigitsByteLevel => json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
            Self::Qwen2 => {
                json!({"type": "Sequence", "pretokenizers": [split(QWEN2_RE), byte_level(false)]})
            }
            Self::Llama3 => {
                json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_RE), byte_level(false)]})
            }
            Self::Gpt4o => {
                json!({"type": "Sequence", "pretokenizers": [split(GPT4O_RE), byte_level(false)]})
            }
            Self::Gpt2 => byte_level(true),
        }
    }

    /// Recognises the pre-tokenizer of a `tokenizer.json`.
    fn from_tokenizer_json(pre: &Json) -> Option<Self> {
        let kind = |v: &Json| v["type"].as_str().unwrap_or_default().to_owned();
        let regex_byte_level =
            |v: &Json| kind(v) == "ByteLevel" && v["use_regex"].as_bool() != Some(false);
        if regex_byte_level(pre) {
            return Some(Self::Gpt2);
        }
        let parts = pre["pretokenizers"].as_array()?;
        match parts.as_slice() {
            [d, b]
                if kind(d) == "Digits" && d["individual_digits"] == true && regex_byte_level(b) =>
            {
                Some(Self::DigitsByteLevel)
            }
            [s, b] if kind(s) == "Split" && kind(b) == "ByteLevel" => {
                match s["pattern"]["Regex"].as_str()? {
                    QWEN2_RE => Some(Self::Qwen2),
                    LLAMA3_RE => Some(Self::Llama3),
                    GPT4O_RE => Some(Self::Gpt4o),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// The Hugging Face tokenizer files rebuilt from a GGUF.
pub struct HfTokenizerFiles {
    /// `tokenizer.json`.
    pub tokenizer_json: Json,
    /// `tokenizer_config.json` (special tokens, `add_bos_token`, chat template).
    pub tokenizer_config: Json,
    /// `generation_config.json` (BOS and EOS ids).
    pub generation_config: Json,
}

fn strings(file: &GgufFile, key: &str) -> Result<Vec<String>> {
    let fail =
        |m: String| Error::Gguf { path: file.path().to_path_buf(), message: format!("{key}: {m}") };
    match file.metadata(key) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(fail(format!("expected strings, got {:?}", other.value_type()))),
            })
            .collect(),
        Some(other) => Err(fail(format!("expected an array, got {:?}", other.value_type()))),
        None => Err(fail("missing".to_owned())),
    }
}

/// Rebuilds `tokenizer.json`, `tokenizer_config.json` and `generation_config.json` from the
/// `tokenizer.*` metadata of a byte-level BPE (`gpt2`) or SentencePiece BPE (`llama`) GGUF.
pub fn tokenizer_from_gguf(file: &GgufFile) -> Result<HfTokenizerFiles> {
    let fail = |m: String| Error::Gguf { path: file.path().to_path_buf(), message: m };
    let text = |key: &str| match file.metadata(key) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let id = |key: &str| file.metadata(key).and_then(|v| as_usize(v).ok());
    let flag = |key: &str| match file.metadata(key) {
        Some(Value::Bool(b)) => Some(*b),
        _ => None,
    };
    let tokens = strings(file, "tokenizer.ggml.tokens")?;
    let types: Vec<i32> = match file.metadata("tokenizer.ggml.token_type") {
        Some(Value::Array(items)) => {
            items.iter().map(|v| as_usize(v).map_or(NORMAL, |n| n as i32)).collect()
        }
        _ => vec![NORMAL; tokens.len()],
    };
    let sentencepiece = text("tokenizer.ggml.model").as_deref() == Some("llama");
    // llama.cpp treats end-of-turn markers as control tokens whatever the file types them as
    // (its converter types a SentencePiece model's user-defined pieces as normal), so they
    // stay whole in text and end generation.
    let end_of_turn = |i: usize| sentencepiece && EOT_TEXTS.contains(&tokens[i].as_str());
    let kind = |i: usize| match types.get(i).copied().unwrap_or(NORMAL) {
        UNUSED => UNUSED,
        _ if end_of_turn(i) => CONTROL,
        kind => kind,
    };
    let (model, normalizer, pre_tokenizer, decoder, add_bos_default) = match text(
        "tokenizer.ggml.model",
    )
    .as_deref()
    {
        Some("gpt2") => {
            let (model, pre) = byte_level_model(file, &tokens, &kind)?;
            let decoder = json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true});
            (model, pre.normalizer(), pre.pre_tokenizer(), decoder, false)
        }
        Some("llama") => {
            // llama.cpp prefixes a space to the text and to what follows each special
            // token unless the file says otherwise; `Prepend` does the same, as it runs on
            // every piece of text between added tokens.
            let prefix = flag("tokenizer.ggml.add_space_prefix").unwrap_or(true);
            let model =
                sentencepiece_model(file, &tokens, &kind, id("tokenizer.ggml.unknown_token_id"))?;
            let replace =
                json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"});
            let normalizer = if prefix {
                json!({"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u{2581}"}, replace]})
            } else {
                replace
            };
            let mut decoders = vec![
                json!({"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "}),
                json!({"type": "ByteFallback"}),
                json!({"type": "Fuse"}),
            ];
            if prefix {
                decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
            }
            // llama.cpp adds a BOS to SentencePiece prompts unless told not to.
            (model, normalizer, Json::Null, json!({"type": "Sequence", "decoders": decoders}), true)
        }
        Some(other) => {
            return Err(fail(format!(
                "tokenizer.ggml.model: \"{other}\" vocabularies are not supported yet (supported: \
                     gpt2, the byte-level BPE of SmolLM, Qwen and Llama 3; llama, the SentencePiece \
                     BPE of Llama 2, Mistral, Gemma and Phi-3)"
            )));
        }
        None => return Err(fail("missing metadata key tokenizer.ggml.model".to_owned())),
    };
    let mut added = vec![];
    for (i, token) in tokens.iter().enumerate() {
        let kind = kind(i);
        if kind == CONTROL || kind == USER_DEFINED || kind == UNKNOWN {
            added.push(json!({"id": i, "content": token, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": kind != USER_DEFINED}));
        }
    }
    let token_of = |key: &str| id(key).and_then(|i| tokens.get(i)).cloned();
    let bos = token_of("tokenizer.ggml.bos_token_id");
    let eos = token_of("tokenizer.ggml.eos_token_id");
    let add_bos = flag("tokenizer.ggml.add_bos_token").unwrap_or(add_bos_default);
    let post_processor = match (&bos, add_bos) {
        (Some(bos), true) => {
            let bos_id = id("tokenizer.ggml.bos_token_id");
            json!({"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {bos.as_str(): {"id": bos, "ids": [bos_id], "tokens": [bos]}}})
        }
        _ => Json::Null,
    };
    let tokenizer_json = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post_processor,
        "decoder": decoder,
        "model": model,
    });
    let mut eos_ids: Vec<usize> = id("tokenizer.ggml.eos_token_id").into_iter().collect();
    let markers = (0..tokens.len()).filter(|&i| end_of_turn(i) && kind(i) == CONTROL);
    for eot in id("tokenizer.ggml.eot_token_id").into_iter().chain(markers) {
        if !eos_ids.contains(&eot) {
            eos_ids.push(eot);
        }
    }
    let tokenizer_config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos,
        "eos_token": eos,
        "pad_token": token_of("tokenizer.ggml.padding_token_id"),
        "unk_token": token_of("tokenizer.ggml.unknown_token_id"),
        "add_bos_token": add_bos,
        "add_eos_token": flag("tokenizer.ggml.add_eos_token").unwrap_or(false),
        "model_max_length": id(&format!("{}.context_length", super::names::arch_name(file.family()))).unwrap_or(2048),
        "chat_template": text("tokenizer.chat_template"),
    });
    let generation_config = json!({
        "bos_token_id": id("tokenizer.ggml.bos_token_id"),
        "eos_token_id": eos_ids,
    });
    // Fail here, naming the file, rather than later in the tokenizer loader.
    tokenizers::Tokenizer::from_bytes(tokenizer_json.to_string().as_bytes())
        .map_err(|e| fail(format!("rebuilt tokenizer does not load: {e}")))?;
    Ok(HfTokenizerFiles { tokenizer_json, tokenizer_config, generation_config })
}

/// The BPE model of a `gpt2` vocabulary (tokens in GPT-2's byte alphabet, merges in rank
/// order) and the pre-tokenizer its `tokenizer.ggml.pre` names.
fn byte_level_model(
    file: &GgufFile,
    tokens: &[String],
    kind: &dyn Fn(usize) -> i32,
) -> Result<(Json, PreTokenizer)> {
    let fail = |m: String| Error::Gguf { path: file.path().to_path_buf(), message: m };
    let pre_name = match file.metadata("tokenizer.ggml.pre") {
        Some(Value::String(s)) => s.clone(),
        _ => "default".to_owned(),
    };
    let pre = PreTokenizer::from_gguf(&pre_name).ok_or_else(|| {
        fail(format!(
            "tokenizer.ggml.pre: unsupported pre-tokenizer \"{pre_name}\" (supported: smollm, \
             starcoder, qwen2, llama-bpe, gpt-4o, gpt-2 and their aliases); tokenizing with another one \
             would not match llama.cpp"
        ))
    })?;
    let merges: Vec<Json> = strings(file, "tokenizer.ggml.merges")?
        .iter()
        .map(|m| {
            let (a, b) = m
                .split_once(' ')
                .ok_or_else(|| fail(format!("tokenizer.ggml.merges: \"{m}\" is not two parts")))?;
            Ok(json!([a, b]))
        })
        .collect::<Result<_>>()?;
    let mut vocab = serde_json::Map::with_capacity(tokens.len());
    for (i, token) in tokens.iter().enumerate() {
        if kind(i) != UNUSED {
            vocab.insert(token.clone(), i.into());
        }
    }
    let model = json!({"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
        "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
        "ignore_merges": pre == PreTokenizer::Llama3, "vocab": vocab, "merges": merges});
    Ok((model, pre))
}

/// The byte-fallback BPE of a SentencePiece (`llama`) vocabulary. The file has no merges:
/// llama.cpp joins the adjacent pair whose joined text is the token with the highest score.
/// A BPE with every such pair as a merge, ranked by that score, tokenizes the same way.
fn sentencepiece_model(
    file: &GgufFile,
    tokens: &[String],
    kind: &dyn Fn(usize) -> i32,
    unk: Option<usize>,
) -> Result<Json> {
    let fail = |m: String| Error::Gguf { path: file.path().to_path_buf(), message: m };
    let scores: Vec<f32> = match file.metadata("tokenizer.ggml.scores") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::F32(x) => Ok(*x),
                other => Err(fail(format!(
                    "tokenizer.ggml.scores: expected f32 values, got {:?}",
                    other.value_type()
                ))),
            })
            .collect::<Result<_>>()?,
        _ => {
            return Err(fail(
                "tokenizer.ggml.scores: missing (a llama vocabulary needs its scores)".to_owned(),
            ));
        }
    };
    if scores.len() != tokens.len() {
        return Err(fail(format!(
            "tokenizer.ggml.scores: {} scores for {} tokens",
            scores.len(),
            tokens.len()
        )));
    }
    let mut vocab = serde_json::Map::with_capacity(tokens.len());
    let mut mergeable = std::collections::HashMap::with_capacity(tokens.len());
    for (i, token) in tokens.iter().enumerate() {
        let kind = kind(i);
        if kind == UNUSED {
            continue;
        }
        vocab.insert(token.clone(), i.into());
        if kind == NORMAL || kind == USER_DEFINED {
            mergeable.entry(token.as_str()).or_insert(i);
        }
    }
    // (left, right, score of the joined token), each token's splits in id order, then all of
    // them best first; equal scores keep longer left pieces first, as transformers orders
    // merges it derives from a SentencePiece vocabulary.
    let mut merges: Vec<(&str, &str, f32)> = vec![];
    for (i, token) in tokens.iter().enumerate() {
        if mergeable.get(token.as_str()) != Some(&i) {
            continue;
        }
        let mut local = vec![];
        for (at, _) in token.char_indices().skip(1) {
            let (l, r) = token.split_at(at);
            if let (Some(&li), Some(&ri)) = (mergeable.get(l), mergeable.get(r)) {
                local.push((li, ri, l, r));
            }
        }
        local.sort_unstable();
        merges.extend(local.into_iter().map(|(_, _, l, r)| (l, r, scores[i])));
    }
    merges.sort_by(|a, b| {
        b.2.total_cmp(&a.2)
            .then(b.0.chars().count().cmp(&a.0.chars().count()))
            .then(b.1.chars().count().cmp(&a.1.chars().count()))
    });
    let merges: Vec<Json> = merges.into_iter().map(|(l, r, _)| json!([l, r])).collect();
    Ok(json!({"type": "BPE", "dropout": null, "unk_token": unk.and_then(|u| tokens.get(u)),
        "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": true,
        "byte_fallback": true, "ignore_merges": false, "vocab": vocab, "merges": merges}))
}

/// The `tokenizer.*` GGUF metadata of a Hugging Face model directory with a byte-level
/// BPE `tokenizer.json`; `rows` is the embedding's row count (ids without a token become
/// unused `[PADn]` entries, as llama.cpp's converter writes them).
pub fn gguf_metadata_from_dir(dir: &Path, rows: usize) -> Result<Vec<(String, Value)>> {
    let read = |name: &str| -> Result<Option<Json>> {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| Error::InvalidFile { path, message: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("failed to read", path, e)),
        }
    };
    let path = dir.join("tokenizer.json");
    let invalid = |message: String| Error::InvalidFile { path: path.clone(), message };
    let tok = read("tokenizer.json")?.ok_or_else(|| invalid("missing".to_owned()))?;
    let config = read("tokenizer_config.json")?.unwrap_or(Json::Null);
    let generation = read("generation_config.json")?.unwrap_or(Json::Null);
    let model = &tok["model"];
    if model["type"] != "BPE" {
        return Err(invalid(format!(
            "field model.type: expected \"BPE\" (byte-level), got {}",
            model["type"]
        )));
    }
    // A byte-fallback BPE is a SentencePiece vocabulary (Llama 2, Mistral, Gemma, Phi-3):
    // llama.cpp's `llama` tokenizer, which needs scores instead of merges.
    let sentencepiece = model["byte_fallback"] == true;
    let pre = if sentencepiece {
        None
    } else {
        Some(PreTokenizer::from_tokenizer_json(&tok["pre_tokenizer"]).ok_or_else(|| {
            invalid("field pre_tokenizer: not one llama.cpp knows (byte-level GPT-2, SmolLM digits, Qwen2, Llama 3 or GPT-4o split)".to_owned())
        })?)
    };
    let mut tokens: Vec<Option<String>> = vec![None; rows];
    let mut types = vec![NORMAL; rows];
    let mut place = |id: usize, token: &str, kind: i32| -> Result<()> {
        let slot = tokens.get_mut(id).ok_or_else(|| {
            invalid(format!(
                "token id {id} ({token:?}) is outside the model's {rows} embedding rows"
            ))
        })?;
        *slot = Some(token.to_owned());
        types[id] = kind;
        Ok(())
    };
    for (token, id) in model["vocab"]
        .as_object()
        .ok_or_else(|| invalid("field model.vocab: expected an object".to_owned()))?
    {
        place(id.as_u64().unwrap_or(u64::MAX) as usize, token, NORMAL)?;
    }
    // transformers 5 leaves `model.unk_token` empty and names it in the config.
    let unk_text = model["unk_token"]
        .as_str()
        .or(config["unk_token"].as_str())
        .or(config["unk_token"]["content"].as_str());
    for added in tok["added_tokens"].as_array().into_iter().flatten() {
        let kind = match (added["special"] == true, added["content"].as_str()) {
            (true, content) if sentencepiece && content == unk_text => UNKNOWN,
            (true, _) => CONTROL,
            (false, _) => USER_DEFINED,
        };
        place(
            added["id"].as_u64().unwrap_or(u64::MAX) as usize,
            added["content"].as_str().unwrap_or_default(),
            kind,
        )?;
    }
    let token_id = |t: &Json| -> Option<usize> {
        let text = t.as_str().or_else(|| t["content"].as_str())?;
        tokens.iter().position(|x| x.as_deref() == Some(text))
    };
    let merges: Vec<Value> = model["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| match m {
            Json::String(s) => Value::String(s.clone()),
            Json::Array(p) => Value::String(format!(
                "{} {}",
                p[0].as_str().unwrap_or_default(),
                p[1].as_str().unwrap_or_default()
            )),
            _ => Value::String(String::new()),
        })
        .collect();
    let bos =
        token_id(&config["bos_token"]).or(generation["bos_token_id"].as_u64().map(|n| n as usize));
    let eos = token_id(&config["eos_token"])
        .or(generation["eos_token_id"].as_u64().map(|n| n as usize))
        .or(generation["eos_token_id"][0].as_u64().map(|n| n as usize));
    let pad = token_id(&config["pad_token"]);
    let template = config["chat_template"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| std::fs::read_to_string(dir.join("chat_template.jinja")).ok());
    let (kind_name, pre_name) = match pre {
        Some(pre) => ("gpt2", pre.gguf_name()),
        None => ("llama", "default"),
    };
    if sentencepiece {
        for (t, k) in tokens.iter().zip(types.iter_mut()) {
            if *k == NORMAL && t.as_deref().is_some_and(is_byte_token) {
                *k = BYTE;
            }
        }
    }
    let mut out = vec![
        ("tokenizer.ggml.model".to_owned(), Value::String(kind_name.to_owned())),
        ("tokenizer.ggml.pre".to_owned(), Value::String(pre_name.to_owned())),
        (
            "tokenizer.ggml.tokens".to_owned(),
            Value::Array(
                tokens
                    .iter()
                    .enumerate()
                    .map(|(i, t)| Value::String(t.clone().unwrap_or_else(|| format!("[PAD{i}]"))))
                    .collect(),
            ),
        ),
        (
            "tokenizer.ggml.token_type".to_owned(),
            Value::Array(
                tokens
                    .iter()
                    .zip(&types)
                    .map(|(t, k)| Value::I32(if t.is_some() { *k } else { UNUSED }))
                    .collect(),
            ),
        ),
    ];
    if sentencepiece {
        out.push((
            "tokenizer.ggml.scores".to_owned(),
            Value::Array(sentencepiece_scores(&tokens, &types, &merges)),
        ));
    } else {
        out.push(("tokenizer.ggml.merges".to_owned(), Value::Array(merges)));
    }
    let unk = unk_text
        .and_then(|u| tokens.iter().position(|x| x.as_deref() == Some(u)))
        .filter(|_| sentencepiece);
    for (key, idv) in [
        ("bos_token_id", bos),
        ("eos_token_id", eos),
        ("padding_token_id", pad),
        ("unknown_token_id", unk),
    ] {
        if let Some(v) = idv {
            out.push((format!("tokenizer.ggml.{key}"), Value::U32(v as u32)));
        }
    }
    // transformers 5 writes the BOS into the post-processor instead of `add_bos_token`.
    let post_bos = tok["post_processor"]["single"][0]["SpecialToken"].is_object();
    out.push((
        "tokenizer.ggml.add_bos_token".to_owned(),
        Value::Bool(config["add_bos_token"] == true || post_bos),
    ));
    out.push((
        "tokenizer.ggml.add_space_prefix".to_owned(),
        Value::Bool(sentencepiece && prefixes_a_space(&tok)),
    ));
    if let Some(t) = template {
        out.push(("tokenizer.chat_template".to_owned(), Value::String(t)));
    }
    Ok(out)
}

/// `<0x0A>`: a SentencePiece byte piece.
fn is_byte_token(t: &str) -> bool {
    t.len() == 6
        && t.starts_with("<0x")
        && t.ends_with('>')
        && u8::from_str_radix(&t[3..5], 16).is_ok()
}

/// Whether a SentencePiece `tokenizer.json` puts a space before the text, as
/// `add_dummy_prefix` does: Llama's `Metaspace` pre-tokenizer or a `Prepend("▁")`
/// normalizer (Gemma has neither).
fn prefixes_a_space(tok: &Json) -> bool {
    fn any(v: &Json, f: &dyn Fn(&Json) -> bool) -> bool {
        f(v) || ["normalizers", "pretokenizers"]
            .iter()
            .any(|k| v[*k].as_array().is_some_and(|items| items.iter().any(|i| any(i, f))))
    }
    let metaspace = |v: &Json| {
        v["type"] == "Metaspace" && v["prepend_scheme"] != "never" && v["add_prefix_space"] != false
    };
    let prepend = |v: &Json| v["type"] == "Prepend" && v["prepend"] == "\u{2581}";
    any(&tok["pre_tokenizer"], &metaspace) || any(&tok["normalizer"], &prepend)
}

/// Scores for a SentencePiece vocabulary whose `tokenizer.json` has merges instead: llama.cpp
/// joins the adjacent pair whose joined token scores highest, so a token made by the merge of
/// rank `r` scores `-r`; tokens no merge makes score below every merged one (they only start
/// a word), and special and byte pieces score 0 as llama.cpp's converter writes them.
fn sentencepiece_scores(tokens: &[Option<String>], types: &[i32], merges: &[Value]) -> Vec<Value> {
    let mut rank: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (r, m) in merges.iter().enumerate() {
        if let Value::String(m) = m
            && let Some((a, b)) = m.split_once(' ')
        {
            rank.entry(format!("{a}{b}")).or_insert(r);
        }
    }
    let n = merges.len() as f32;
    tokens
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (t, kind))| {
            let score = match (t, *kind) {
                (Some(t), NORMAL) => rank.get(t).map_or(-n - i as f32, |&r| -(r as f32)),
                (None, _) => -10000.0,
                _ => 0.0,
            };
            Value::F32(score)
        })
        .collect()
}
