"""SentencePiece vocabularies for arkor's GGUF tokenizer tests (Llama 2, Mistral, Gemma, Phi-3).

Those models ship a SentencePiece BPE vocabulary: `tokenizer.ggml.model = "llama"` in a GGUF
(tokens with scores and types, byte tokens `<0x0A>`, no merges), a byte-fallback BPE in
`tokenizer.json`. This script trains a small one with `sentencepiece` on a generated corpus, the
way those models' vocabularies are set up (BPE, byte fallback, digits split, whitespace kept),
builds a tiny model around it with transformers' own classes, and writes for each flavour:

- `spm/<name>/`: the Hugging Face directory (config, weights, `tokenizer.json` and
  `tokenizer_config.json` as transformers saves them; `tokenizer.model` is not kept);
- `spm/<name>.gguf`: the same model converted by llama.cpp's own `convert_hf_to_gguf.py` from the
  directory *with* `tokenizer.model`, the way GGUFs on the Hub are made;
- `spm/ids.json`: the texts of `spm/texts.json` tokenized by transformers from `tokenizer.json`
  and by `sentencepiece` from the model it was converted from. They differ on text after a
  leading space with Llama's `Metaspace` (`prepend_scheme: first`); llama.cpp follows
  `sentencepiece` there.

Flavours: `llama` (`LlamaForCausalLM`, `LlamaTokenizer`: a dummy prefix space, Metaspace) and
`gemma3` (`Gemma3ForCausalLM`, `GemmaTokenizer`: no prefix space, spaces replaced by `▁`).

    python make_spm_reference.py LLAMA_CPP_SOURCE_DIR

LLAMA_CPP_SOURCE_DIR is llama.cpp's source at the commit node-llama-cpp 3.21.1 pins (clone
`tools/llama-cpp/node_modules/node-llama-cpp/llama/gitRelease.bundle`); its `gguf-py` is used
from there. Needs `sentencepiece==0.2.1` besides `requirements.txt`.
"""

import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import sentencepiece as spm
import torch

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spm")
VOCAB = 384

WORDS = (
    "the a model learns from data and every answer it gives comes from what it saw before "
    "training tokens loss adapter weights small fast local machine ticket billing refund "
    "account password reset shipping order late broken screen battery charge laptop phone "
    "please help thanks hello world question reply assistant user system café naïve résumé "
    "über straße 東京 日本語 🙂 ✓ — … ~/path/to/file.txt http://example.com/a?b=c"
).split()


def corpus(seed, n):
    r = random.Random(seed)
    lines = []
    for _ in range(n):
        words = [r.choice(WORDS) for _ in range(r.randint(3, 14))]
        if r.random() < 0.3:
            words.insert(r.randint(0, len(words)), str(r.randint(0, 99999)))
        sep = r.choice([" ", " ", " ", "  ", "\t", "\n"])
        line = sep.join(words)
        if r.random() < 0.2:
            line = "  " + line
        lines.append(line + r.choice([".", "!", "?", "", ":\n"]))
    return lines


# Texts to tokenize: edge cases first (leading/trailing/multiple spaces, newlines, characters
# the vocabulary only has as bytes, added tokens), then unseen sentences.
TEXTS = [
    "Hello world",
    " Hello world",
    "  two leading spaces",
    "trailing space ",
    "a  b   c    d",
    "line one\nline two\n\nline four",
    "tabs\tand\ttabs",
    "numbers 1234567 and 3.14",
    "café naïve résumé über straße",
    "東京 日本語 한국어 Ελληνικά",
    "emoji 🙂🙂 ✓ — …",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n",
    "",
    " ",
    "\n",
    "x",
] + corpus(7, 24)


# Each flavour's special pieces where its models have them: Llama 2's `<unk> <s> </s>` at 0-2,
# Gemma's `<pad> <eos> <bos> <unk>` at 0-3; chat markers as user-defined pieces.
FLAVOURS = {
    "llama": dict(add_dummy_prefix=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                  user_defined_symbols=["<|im_start|>", "<|im_end|>"]),
    "gemma3": dict(add_dummy_prefix=False, pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>",
                   eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
                   user_defined_symbols=["<start_of_turn>", "<end_of_turn>"]),
}


def train(name):
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus(1, 3000)),
        model_writer=model,
        vocab_size=VOCAB,
        model_type="bpe",
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        character_coverage=0.995,
        num_threads=1,
        minloglevel=2,
        **FLAVOURS[name],
    )
    return model.getvalue()


def tiny(kind, vocab):
    torch.manual_seed(3)
    if kind == "llama":
        from transformers import LlamaConfig, LlamaForCausalLM
        cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                          bos_token_id=1, eos_token_id=2, tie_word_embeddings=True)
        return LlamaForCausalLM(cfg)
    from transformers import Gemma3TextConfig, Gemma3ForCausalLM
    cfg = Gemma3TextConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                           max_position_embeddings=128, query_pre_attn_scalar=16, sliding_window=4,
                           # Both layers local: llama.cpp's converter writes no layer pattern for
                           # Gemma 3 and llama.cpp then assumes real Gemma 3's (5 local, 1 global).
                           layer_types=["sliding_attention", "sliding_attention"],
                           bos_token_id=2, eos_token_id=1, pad_token_id=0)
    return Gemma3ForCausalLM(cfg)


def build(name, llama_cpp):
    from transformers import AutoTokenizer, GemmaTokenizer, LlamaTokenizer
    proto = train(name)
    out = os.path.join(HERE, name)
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        sp_path = os.path.join(tmp, "tokenizer.model")
        with open(sp_path, "wb") as f:
            f.write(proto)
        cls = LlamaTokenizer if name == "llama" else GemmaTokenizer
        # From the directory holding only `tokenizer.model`, transformers converts the
        # SentencePiece model into its fast tokenizer, as it does for a Hub checkpoint.
        tok = cls.from_pretrained(tmp)
        tiny(name, len(tok)).save_pretrained(out, safe_serialization=True)
        tok.save_pretrained(out)
        # Drop the temporary path transformers records, so two runs write the same bytes.
        config_path = os.path.join(out, "tokenizer_config.json")
        with open(config_path) as f:
            config = json.load(f)
        config.pop("vocab_file", None)
        with open(config_path, "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
            f.write("\n")
        # The Hub's GGUFs are converted from the directory with its SentencePiece model.
        shutil.copy(sp_path, os.path.join(out, "tokenizer.model"))
        gguf = os.path.join(HERE, f"{name}.gguf")
        env = dict(os.environ, PYTHONPATH=os.path.join(llama_cpp, "gguf-py"), NO_LOCAL_GGUF="")
        subprocess.run([sys.executable, os.path.join(llama_cpp, "convert_hf_to_gguf.py"), out,
                        "--outfile", gguf, "--outtype", "f32"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        os.remove(os.path.join(out, "tokenizer.model"))
    fast = AutoTokenizer.from_pretrained(out)
    sp = spm.SentencePieceProcessor(model_proto=proto)
    return {
        "transformers": [fast.encode(text, add_special_tokens=False) for text in TEXTS],
        "sentencepiece": [sp.encode(text) for text in TEXTS],
    }


def main():
    llama_cpp = sys.argv[1]
    os.makedirs(HERE, exist_ok=True)
    with open(os.path.join(HERE, "texts.json"), "w") as f:
        json.dump(TEXTS, f, ensure_ascii=False, indent=0)
    ids = {name: build(name, llama_cpp) for name in ["llama", "gemma3"]}
    with open(os.path.join(HERE, "ids.json"), "w") as f:
        json.dump(ids, f, separators=(",", ":"))


if __name__ == "__main__":
    main()
