#!/usr/bin/env python3
"""Regenerate the SmolLM2-135M-Instruct GGUF reference fixtures in ./smollm2/.

    python make_smollm2_reference.py /path/to/SmolLM2-135M-Instruct.Q4_1.gguf [--out DIR] [--harness RUN_MJS]

Two independent readers of the same GGUF:
  * llama.cpp, through tools/llama-cpp/run.mjs (npm node-llama-cpp, prebuilt CPU binaries):
    token ids, chat-prompt ids, greedy continuations, last-position log-probs (top 20 kept);
  * transformers (gguf_file=..., dequantized to float32, eager attention):
    last-position logits over the full vocab, greedy continuations, its own GGUF tokenizer
    (compared against llama.cpp, mismatches recorded), the chat template rendering.

Needs: torch, transformers, gguf, safetensors, numpy, jinja2; node + `npm ci` in tools/llama-cpp.
CPU only; about a minute. Not run by CI.
"""
import argparse
import importlib.metadata as md
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[4]

CORPUS = [
    "",
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "It's what we'll do; they're sure I'd've DONE it, isn't it? The dog's bone.",
    "1234567890",
    "pi = 3.14159, e = 2.71828; 1,000,000 items on 2024-03-15 at 12:34:56 (v1.2.3)",
    "00000000000000000000 99999999999999999999999 -42 +7 0x1F 1e-5",
    "日本語のテキストと中文文本，还有한국어。",
    "Family: 👨‍👩‍👧‍👦, flags 🇯🇵🇺🇸, thumbs 👍🏽, heart on fire ❤️‍🔥",
    "Café naïve façade — résumé, Ångström, straße, Ærøskøbing, e\u0301 (combining).",
    "Привет, мир! مرحبا بالعالم नमस्ते ∀x∈ℝ: x² ≥ 0",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\n\nprint([fib(i) for i in range(10)])\n",
    "a  b   c    d\t\te\t \tf",
    "line one\r\nline two\r\n\r\n  indented\n\n\n",
    "trailing spaces   ",
    "   leading spaces and a tab\tend \n",
    "<|im_start|>user\nhi<|im_end|>\n",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more <repo_name>x <|im_end|>",
    "URL: https://example.com/path?q=1&r=2#frag, email: a.b@c.de, HELLO World hello WORLD HeLLo",
]

CONVERSATIONS = [
    {"name": "user_only",
     "messages": [{"role": "user", "content": "hi"}],
     "add_generation_prompt": True},
    {"name": "system_user",
     "messages": [{"role": "system", "content": "You are a terse assistant."},
                  {"role": "user", "content": "What is 2+2?"}],
     "add_generation_prompt": True},
    {"name": "multi_turn",
     "messages": [{"role": "user", "content": "Name a color."},
                  {"role": "assistant", "content": "Blue."},
                  {"role": "user", "content": "Another one?"}],
     "add_generation_prompt": True},
    {"name": "system_completed_no_gen_prompt",
     "messages": [{"role": "system", "content": "Answer in French."},
                  {"role": "user", "content": "Hello!"},
                  {"role": "assistant", "content": "Bonjour !"}],
     "add_generation_prompt": False},
]

# Prompts for logits/greedy: plain text, a chat prompt (rendered by the template), code.
PROMPTS = [
    ("text", "The quick brown fox jumps over the lazy dog."),
    ("chat", {"messages": [{"role": "system", "content": "Be brief."},
                           {"role": "user", "content": "What is 2+2?"}]}),
    ("text", "def add(a, b):\n    return"),
]
GREEDY_TOKENS = 16
TOPK = 20


def harness(run_mjs, *args):
    p = subprocess.run(["node", str(run_mjs), *args], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"harness failed ({' '.join(args[:1])}): {p.stderr}")
    return json.loads(p.stdout)


def render(template, messages, add_generation_prompt):
    # Exactly as transformers renders chat templates (utils/chat_template_utils.py).
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("--out", default=str(HERE / "smollm2"))
    ap.add_argument("--harness", default=str(REPO / "tools" / "llama-cpp" / "run.mjs"))
    a = ap.parse_args()
    gguf_path = Path(a.gguf).resolve()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(0)

    from gguf import GGUFReader
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reader = GGUFReader(str(gguf_path))
    template = reader.fields["tokenizer.chat_template"].contents()
    node_ver = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    nlc_ver = json.loads((Path(a.harness).parent / "node_modules" / "node-llama-cpp" / "package.json").read_text())["version"]
    versions = {"torch": torch.__version__, "transformers": md.version("transformers"),
                "gguf": md.version("gguf"), "jinja2": md.version("jinja2"),
                "tokenizers": md.version("tokenizers"), "node-llama-cpp": nlc_ver, "node": node_ver}
    model_arg = ["--model", str(gguf_path)]
    info = harness(a.harness, "info", *model_arg)

    # --- chat.json: template renders (transformers' apply_chat_template and plain jinja2 must agree)
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    chats = []
    for c in CONVERSATIONS:
        hf = tok.apply_chat_template(c["messages"], chat_template=template, tokenize=False,
                                     add_generation_prompt=c["add_generation_prompt"])
        assert hf == render(template, c["messages"], c["add_generation_prompt"]), c["name"]
        chats.append({**c, "rendered": hf})
    prompt_texts = []
    for kind, p in PROMPTS:
        prompt_texts.append(p if kind == "text" else render(template, p["messages"], True))

    # --- llama.cpp ids for corpus, chat renders, prompts (one harness call)
    texts = CORPUS + [c["rendered"] for c in chats] + prompt_texts
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(texts, f, ensure_ascii=False)
    try:
        all_ids = harness(a.harness, "tokenize", *model_arg, "--text-file", f.name)["ids"]
    finally:
        os.unlink(f.name)
    n_c, n_ch = len(CORPUS), len(chats)
    corpus_ids = all_ids[:n_c]
    for c, ids in zip(chats, all_ids[n_c:n_c + n_ch]):
        c["llama_cpp_ids"] = ids
    prompt_ids = all_ids[n_c + n_ch:]

    # transformers' own GGUF tokenizer, for the record
    hf_ids = [tok.encode(s, add_special_tokens=False) for s in CORPUS]
    mismatches = [{"index": i, "text": s, "transformers_ids": h}
                  for i, (s, l, h) in enumerate(zip(CORPUS, corpus_ids, hf_ids)) if l != h]

    (out / "corpus.json").write_text(json.dumps(CORPUS, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (out / "token_ids.json").write_text(json.dumps({
        "source": f"llama.cpp via node-llama-cpp {nlc_ver}: tools/llama-cpp/run.mjs tokenize "
                  f"(model.tokenize(text, true): special tokens parsed, no BOS) on {gguf_path.name}; "
                  "ids[i] belongs to corpus.json[i]",
        "ids": corpus_ids,
        "transformers_mismatches": mismatches,
        "transformers_mismatches_note": f"transformers {versions['transformers']} AutoTokenizer(gguf_file=...) "
                                        "encode(add_special_tokens=False) where it differs from llama.cpp; "
                                        "llama.cpp is the reference",
    }, ensure_ascii=False, indent=None) + "\n", encoding="utf-8")
    (out / "chat.json").write_text(json.dumps({
        "source": "tokenizer.chat_template from the GGUF, rendered with transformers apply_chat_template"
                  "(tokenize=False) == jinja2 ImmutableSandboxedEnvironment(trim_blocks, lstrip_blocks); "
                  "llama_cpp_ids = run.mjs tokenize of the rendered string",
        "chat_template": template,
        "conversations": chats,
    }, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    # --- transformers model: logits + greedy
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                 dtype=torch.float32, attn_implementation="eager")
    model.eval()
    cfg = model.config
    eog = set(info["eog_ids"])
    tensors, greedy = {}, []
    with torch.no_grad():
        for i, ids in enumerate(prompt_ids):
            x = torch.tensor([ids], dtype=torch.long)
            logits = model(x).logits[0, -1].float()
            tensors[f"input_ids_{i}"] = x[0].clone()
            tensors[f"logits_{i}"] = logits.contiguous()
            seq = list(ids)
            gen = []
            for _ in range(GREEDY_TOKENS):  # plain argmax loop, full recompute: no cache subtleties
                nxt = int(model(torch.tensor([seq])).logits[0, -1].argmax())
                gen.append(nxt)
                seq.append(nxt)
            tensors[f"greedy_{i}"] = torch.tensor(gen, dtype=torch.long)

            g = harness(a.harness, "greedy", *model_arg, "--prompt-ids", json.dumps(ids),
                        "--max-tokens", str(GREEDY_TOKENS))
            lp = harness(a.harness, "logits", *model_arg, "--prompt-ids", json.dumps(ids))
            llp = np.array([v if v is not None else -np.inf for v in lp["logprobs"]], dtype=np.float64)
            hlp = torch.log_softmax(logits.double(), -1).numpy()
            top = np.argsort(-llp, kind="stable")[:TOPK]
            hf_top = np.argsort(-hlp, kind="stable")[:TOPK]
            cut = next((k + 1 for k, t in enumerate(gen) if t in eog), len(gen))
            n = min(len(g["ids"]), cut)
            agree = gen[:n] == g["ids"][:n] and (g["stopped"] == "length") == (cut == len(gen))
            divergence = None
            if not agree:  # where and by how much the two runtimes part ways
                k = next((j for j in range(n) if gen[j] != g["ids"][j]), n)
                if k < len(gen) and k < len(g["ids"]):
                    ctx = list(ids) + gen[:k]
                    h = torch.log_softmax(model(torch.tensor([ctx])).logits[0, -1].double(), -1)
                    l = harness(a.harness, "logits", *model_arg, "--prompt-ids", json.dumps(ctx))["logprobs"]
                    a_t, b_t = gen[k], g["ids"][k]
                    divergence = {"step": k, "transformers_token": a_t, "llama_cpp_token": b_t,
                                  "transformers_logprobs": {str(a_t): float(h[a_t]), str(b_t): float(h[b_t])},
                                  "llama_cpp_logprobs": {str(a_t): l[a_t], str(b_t): l[b_t]}}
            greedy.append({
                "prompt_index": i,
                "prompt_text": prompt_texts[i],
                "input_ids": ids,
                "transformers": gen,
                "transformers_text": tok.decode(gen),
                "llama_cpp": g["ids"],
                "llama_cpp_stopped": g["stopped"],
                "llama_cpp_text": tok.decode(g["ids"]),
                "agree": agree,
                "divergence": divergence,
                "llama_cpp_top_logprobs": [[int(t), float(llp[t])] for t in top],
                "transformers_top_logprobs": [[int(t), float(hlp[t])] for t in hf_top],
                "logprob_max_abs_diff_on_llama_top": float(np.max(np.abs(llp[top] - hlp[top]))),
            })

    from safetensors.torch import save_file
    save_file(tensors, str(out / "logits.safetensors"), metadata={
        "source": f"transformers {versions['transformers']} / torch {versions['torch']}: "
                  f"AutoModelForCausalLM.from_pretrained(gguf_file={gguf_path.name}, float32, eager); "
                  "logits_i = last-position logits of input_ids_i; greedy_i = 16 argmax tokens",
    })
    (out / "greedy.json").write_text(json.dumps({
        "source": "transformers = argmax loop over the dequantized f32 model (no EOG stop); llama_cpp = "
                  "run.mjs greedy (temperature 0, stops after an EOG token, which is included). agree = "
                  "same ids up to the first EOG or 16 tokens. top_logprobs = log-softmax of the last-position "
                  "logits (llama.cpp: run.mjs logits)",
        "eog_ids": sorted(eog),
        "prompts": greedy,
    }, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    rope_theta = getattr(cfg, "rope_theta", None)
    if rope_theta is None:
        rope_theta = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta")
    facts = {
        "transformers_config": {
            "architectures": cfg.architectures, "hidden_size": cfg.hidden_size,
            "intermediate_size": cfg.intermediate_size, "num_hidden_layers": cfg.num_hidden_layers,
            "num_attention_heads": cfg.num_attention_heads, "num_key_value_heads": cfg.num_key_value_heads,
            "head_dim": getattr(cfg, "head_dim", cfg.hidden_size // cfg.num_attention_heads),
            "rope_theta": rope_theta, "rope_parameters": getattr(cfg, "rope_parameters", None),
            "rms_norm_eps": cfg.rms_norm_eps, "vocab_size": cfg.vocab_size,
            "max_position_embeddings": cfg.max_position_embeddings,
            "tie_word_embeddings": cfg.tie_word_embeddings,
            "bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id,
            "pad_token_id": cfg.pad_token_id,
            "lm_head_is_embed_tokens": model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(),
        },
        "llama_cpp": info,
        "gguf_file": gguf_path.name,
        "gguf_size_bytes": gguf_path.stat().st_size,
        "versions": versions,
    }
    (out / "model_facts.json").write_text(json.dumps(facts, indent=1, default=str) + "\n", encoding="utf-8")

    print(json.dumps({"tokenizer_mismatches": [m["index"] for m in mismatches],
                      "greedy_agree": [g["agree"] for g in greedy],
                      "divergence": [g["divergence"] for g in greedy],
                      "logprob_max_abs_diff": [g["logprob_max_abs_diff_on_llama_top"] for g in greedy],
                      "versions": versions}, indent=1))


if __name__ == "__main__":
    main()
