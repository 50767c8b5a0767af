"""PyTorch + PEFT side of `cargo run --release -p arkor-engine --example bench_engine -- --python PY`.

Loads the model directory the bench wrote, trains LoRA (r 16, alpha 16, all seven
projections, AdamW) on random tokens at the same batch shape, then decodes greedily with
the KV cache, and prints one JSON line: train tokens/s over the steps after the first,
peak RSS (VmHWM) in GiB, decode tokens/s; with --device cuda, on the GPU, and its peak
allocated GPU memory too. Versions: tests/data/reference/requirements.txt.
"""

import argparse
import json
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM


def peak_rss_gib():
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across execve, so a child started by
    # the Rust bench would report the bench's own peak.
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / (1024 * 1024)
    return float("nan")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model_dir")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--decode", type=int, default=128)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--prompt", type=int, default=16)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    a = p.parse_args()
    dev = torch.device(a.device)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(a.model_dir, dtype=torch.float32).to(dev)
    model.config.use_cache = False
    lora = LoraConfig(
        r=16,
        lora_alpha=16,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.0)
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(7)
    times = []
    for step in range(a.steps + 1):
        ids = torch.randint(0, vocab, (a.batch, a.seq + 1), generator=g).to(dev)
        sync()
        t0 = time.perf_counter()
        out = model(input_ids=ids[:, :-1], labels=ids[:, :-1])
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        dt = time.perf_counter() - t0
        times.append(dt)
        print(f"  pytorch train step {step + 1}: {a.batch * a.seq / dt:.1f} tokens/s", file=sys.stderr)
    train_tok_s = a.batch * a.seq * a.steps / sum(times[1:])
    peak_gib = peak_rss_gib()

    model.eval()
    model.config.use_cache = True
    prompt = torch.tensor([[i * 7 + 3 for i in range(a.prompt)]], device=dev)
    with torch.no_grad():
        t0 = time.perf_counter()
        out = model.generate(
            input_ids=prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=a.decode,
            min_new_tokens=a.decode,
            do_sample=False,
            pad_token_id=0,
        )
        sync()
        dt = time.perf_counter() - t0
    decode_tok_s = (out.shape[1] - a.prompt) / dt
    name = f"pytorch {torch.__version__} + peft"
    row = {"name": name, "train_tok_s": train_tok_s, "peak_gib": peak_gib, "decode_tok_s": decode_tok_s}
    if dev.type == "cuda":
        row["name"] += " (cuda)"
        row["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
    print(json.dumps(row))


if __name__ == "__main__":
    main()
