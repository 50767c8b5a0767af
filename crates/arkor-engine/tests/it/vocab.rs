//! SentencePiece vocabularies (Llama 2, Mistral, Gemma, Phi-3) through GGUF: GGUFs converted
//! by llama.cpp's own script import with a tokenizer that gives llama.cpp's ids.
//! `tests/data/reference/make_spm_reference.py` trains the vocabularies and writes the files.

use std::path::{Path, PathBuf};

use arkor_engine::export::Quant;
use arkor_engine::gguf::import;
use arkor_engine::models::Model;
use arkor_engine::tokenizer::TextTokenizer;
use arkor_test_support::check::assert_close;
use arkor_test_support::real::{llama_cpp, llama_cpp_script};
use candle_core::{Device, Tensor};

use crate::export::greedy_both;

fn spm_reference() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/reference/spm")
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(value: &serde_json::Value) -> Vec<Vec<u32>> {
    serde_json::from_value(value.clone()).unwrap()
}

/// `texts.json` and one flavour's reference ids from `ids.json`.
fn reference(flavour: &str, source: &str) -> (Vec<String>, Vec<Vec<u32>>) {
    let texts = serde_json::from_value(read_json(&spm_reference().join("texts.json"))).unwrap();
    (texts, ids(&read_json(&spm_reference().join("ids.json"))[flavour][source]))
}

/// Texts with a chat marker: the marker is one piece to `sentencepiece`, but llama.cpp's
/// converter types such user-defined pieces as normal tokens, so llama.cpp (and arkor,
/// reading the same file) splits them.
fn has_marker(text: &str) -> bool {
    text.contains("<|im_") || text.contains("_of_turn>")
}

#[test]
fn sentencepiece_ggufs_import_with_llama_cpps_tokenization() {
    let tmp = tempfile::tempdir().unwrap();
    for flavour in ["llama", "gemma3"] {
        let gguf = spm_reference().join(format!("{flavour}.gguf"));
        let dir = import(&gguf, tmp.path()).unwrap();
        let tokenizer = TextTokenizer::from_dir(&dir).unwrap();
        let (texts, sentencepiece) = reference(flavour, "sentencepiece");
        let ours: Vec<Vec<u32>> =
            texts.iter().map(|t| tokenizer.encode(t, false).unwrap()).collect();
        for ((text, got), want) in texts.iter().zip(&ours).zip(&sentencepiece) {
            if !has_marker(text) {
                assert_eq!(got, want, "{flavour}: ids of {text:?} (sentencepiece's)");
                // Byte fallback and the prefix space undo on decoding (after a marker, the
                // space llama.cpp adds to the text that follows stays).
                assert_eq!(
                    &tokenizer.decode(got, false).unwrap(),
                    text,
                    "{flavour}: decode of {got:?}"
                );
            }
        }
        // The weights came through llama.cpp's converter (Q/K permuted, Gemma's norms as
        // 1 + w): the model computes what the Hugging Face directory it came from computes.
        let model = Model::load(&dir, &Device::Cpu).unwrap();
        let original = Model::load(&spm_reference().join(flavour), &Device::Cpu).unwrap();
        let prompt = tokenizer.encode(&texts[0], true).unwrap();
        let logits = |m: &Model| -> Vec<f32> {
            let t = Tensor::new(prompt.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
            m.forward(&t, None).unwrap().flatten_all().unwrap().to_vec1().unwrap()
        };
        assert_close(&logits(&model), &logits(&original), 1e-5);
        if let Some(script) = llama_cpp_script() {
            let (greedy, llama_greedy) =
                greedy_both(&model, None, &tokenizer, &prompt, &script, &gguf, None, 12);
            assert_eq!(greedy, llama_greedy, "{flavour}: greedy tokens");
            let args = ["tokenize", "--model", gguf.to_str().unwrap(), "--text-file"];
            let texts_file = spm_reference().join("texts.json");
            let llama = llama_cpp(&script, &[&args[..], &[texts_file.to_str().unwrap()]].concat());
            for ((text, got), want) in texts.iter().zip(&ours).zip(ids(&llama["ids"])) {
                assert_eq!(got, &want, "{flavour}: ids of {text:?} (llama.cpp's)");
            }
        }
        // Llama adds a BOS the way llama.cpp does; Gemma's file says which.
        let with_bos = tokenizer.encode("Hello", true).unwrap();
        assert_eq!(with_bos[0], if flavour == "llama" { 1 } else { 2 }, "{flavour}: BOS");
        assert_eq!(tokenizer.eos_token_ids()[0], if flavour == "llama" { 2 } else { 1 });
    }
}

#[test]
fn sentencepiece_models_export_to_ggufs_that_tokenize_like_llama_cpps_own_conversion() {
    let Some(script) = llama_cpp_script() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let texts_file = spm_reference().join("texts.json");
    let tokenize = |gguf: &Path| -> Vec<Vec<u32>> {
        let args = ["tokenize", "--model", gguf.to_str().unwrap(), "--text-file"];
        ids(&llama_cpp(&script, &[&args[..], &[texts_file.to_str().unwrap()]].concat())["ids"])
    };
    for (flavour, markers) in [
        ("llama", ["<|im_start|>", "<|im_end|>"]),
        ("gemma3", ["<start_of_turn>", "<end_of_turn>"]),
    ] {
        // From the directory with `tokenizer.json` only: no SentencePiece model, no scores.
        let dir = spm_reference().join(flavour);
        let model = Model::load(&dir, &Device::Cpu).unwrap();
        let tokenizer = TextTokenizer::from_dir(&dir).unwrap();
        let gguf = tmp.path().join(format!("{flavour}.gguf"));
        crate::gguf::export_gguf(&model, Quant::F32, &gguf);
        let ours = tokenize(&gguf);
        let converted = tokenize(&spm_reference().join(format!("{flavour}.gguf")));
        let (texts, sentencepiece) = reference(flavour, "sentencepiece");
        for (i, text) in texts.iter().enumerate() {
            if has_marker(text) {
                // The chat markers stay whole (llama.cpp's converter splits one of them).
                for m in markers.iter().filter(|m| text.contains(*m)) {
                    let id = tokenizer.token_id(m).unwrap();
                    assert!(ours[i].contains(&id), "{flavour}: {m} whole in {:?}", ours[i]);
                }
            } else {
                assert_eq!(ours[i], converted[i], "{flavour}: ids of {text:?}");
                assert_eq!(ours[i], sentencepiece[i], "{flavour}: ids of {text:?}");
            }
        }
        let prompt = ours[0].clone();
        let (greedy, llama_greedy) =
            greedy_both(&model, None, &tokenizer, &prompt, &script, &gguf, None, 12);
        assert_eq!(greedy, llama_greedy, "{flavour}: greedy tokens");
        // And the file comes back in with the same tokenization.
        let back =
            TextTokenizer::from_dir(&import(&gguf, &tmp.path().join("cache")).unwrap()).unwrap();
        for (text, want) in texts.iter().zip(&ours) {
            assert_eq!(&back.encode(text, false).unwrap(), want, "{flavour}: re-imported");
        }
    }
}

/// GPT-4o's split regex as `tokenizer.json` spells it (o200k: Phi-4-mini's vocabulary).
const GPT4O_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Phi-4-mini's kind of vocabulary: byte-level BPE split by GPT-4o's regex, which llama.cpp
/// calls `gpt-4o`. Merges that only apply when the split allows them (`1|2|3|4` across the
/// three-digit cut, `a|B` across the case change) make the split visible in the ids.
#[test]
fn a_gpt4o_split_vocabulary_exports_and_imports_with_llama_cpps_ids() {
    let Some(script) = llama_cpp_script() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    let spec = arkor_test_support::fixtures::llama_spec(41);
    arkor_engine::tiny::write_model(
        &dir,
        &arkor_engine::tiny::TinySpec { min_vocab_size: 512, ..spec },
    )
    .unwrap();
    let path = dir.join("tokenizer.json");
    let mut tok = read_json(&path);
    tok["pre_tokenizer"] = serde_json::json!({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": GPT4O_SPLIT}, "behavior": "Isolated", "invert": false},
        {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]});
    // A BPE's own ids run from 0 and the added (special) tokens follow them: the new tokens
    // take the specials' ids and the specials move up.
    let added = tok["added_tokens"].as_array_mut().unwrap();
    let mut next = added.iter().map(|t| t["id"].as_u64().unwrap()).min().unwrap();
    let merges = [("1", "2"), ("12", "3"), ("123", "4"), ("a", "B")];
    for t in added.iter_mut() {
        t["id"] = (t["id"].as_u64().unwrap() + merges.len() as u64).into();
    }
    for (a, b) in merges {
        tok["model"]["vocab"][format!("{a}{b}")] = next.into();
        tok["model"]["merges"].as_array_mut().unwrap().push(serde_json::json!([a, b]));
        next += 1;
    }
    std::fs::write(&path, tok.to_string()).unwrap();
    let tokenizer = TextTokenizer::from_dir(&dir).unwrap();
    let texts = [
        "1234567 xaBc theThe",
        "don't WAIT/\nnow",
        "x aB 12345 <|im_start|>user",
        "I'm\r\n\r\n  ok",
    ];
    let ours: Vec<Vec<u32>> = texts.iter().map(|t| tokenizer.encode(t, false).unwrap()).collect();
    assert!(ours[0].contains(&tokenizer.token_id("123").unwrap()), "{:?}", ours[0]);
    let model = Model::load(&dir, &Device::Cpu).unwrap();
    let gguf = tmp.path().join("gpt4o.gguf");
    crate::gguf::export_gguf(&model, Quant::F32, &gguf);
    let texts_file = tmp.path().join("texts.json");
    std::fs::write(&texts_file, serde_json::to_string(&texts).unwrap()).unwrap();
    let args = ["tokenize", "--model", gguf.to_str().unwrap(), "--text-file"];
    let llama = llama_cpp(&script, &[&args[..], &[texts_file.to_str().unwrap()]].concat());
    assert_eq!(ids(&llama["ids"]), ours, "llama.cpp's ids on the exported GGUF");
    let back = TextTokenizer::from_dir(&import(&gguf, &tmp.path().join("cache")).unwrap()).unwrap();
    for (text, want) in texts.iter().zip(&ours) {
        assert_eq!(&back.encode(text, false).unwrap(), want, "re-imported: {text:?}");
    }
}
