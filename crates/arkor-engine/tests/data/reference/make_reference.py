"""Reference fixtures for arkor-engine's parity tests, produced with transformers + PEFT.

Run offline by a developer (CI only reads the outputs; it never installs PyTorch):

    python -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install -r requirements.txt
    /tmp/refvenv/bin/python make_reference.py generate
    /tmp/refvenv/bin/python make_reference.py generate-families
    /tmp/refvenv/bin/python make_reference.py generate-greedy
    /tmp/refvenv/bin/python make_reference.py generate-phi3
    /tmp/refvenv/bin/python make_reference.py check-adapter ADAPTER_DIR LOGITS.safetensors [MODEL]

`generate` writes, next to this script:
  tiny-llama/            LlamaForCausalLM: GQA (4 heads, 2 kv), tied embeddings, Llama 3
                         rope scaling, fp32, saved in 2 shards (model.safetensors.index.json)
  tiny-qwen2/            Qwen2ForCausalLM: q/k/v bias, untied head, saved in bfloat16
  peft-adapter/          a PEFT LoRA adapter on tiny-llama (r=4, alpha=8, all 7 projections)
  peft-adapter-rslora/   the same with use_rslora=True
  logits.safetensors     input ids and reference logits for each of the above

`generate-families` writes the families added after the first two, each a tiny random
checkpoint written by transformers' own class plus a PEFT adapter on it, without touching
the files above:
  tiny-qwen3/            Qwen3ForCausalLM: per-head q/k RMSNorm, head_dim 16 with hidden 32
                         (not hidden / heads), GQA, tied embeddings, fp32
  peft-adapter-qwen3/    a PEFT LoRA adapter on tiny-qwen3 (r=4, alpha=8, all 7 projections)
  tiny-smollm3/          SmolLM3ForCausalLM: layer 1 without rotary embedding (NoPE), GQA,
                         tied embeddings, fp32
  peft-adapter-smollm3/  the same kind of adapter on tiny-smollm3
  tiny-mistral/          MistralForCausalLM: sliding window of 4 (the 12-token inputs cross it)
  tiny-gemma2/           Gemma2ForCausalLM: sandwich norms, GeGLU, soft caps 1 and 2, query
                         scalar 16, layer 0 sliding (window 4), layer 1 global
  tiny-gemma3/           Gemma3ForCausalLM: as Gemma 2 without caps, q/k norms, local rope
                         base 100 on the sliding layer, 1e6 on the global one
  peft-adapter-<family>/ the same kind of adapter on each
  families.safetensors   input ids and reference logits (with and without the adapter); for
                         the sliding-window families also 20 greedy tokens after the inputs

`generate-greedy` reads tiny-llama, tiny-qwen2, tiny-qwen3 and tiny-smollm3 back from their
directories (nothing above changes) and writes:
  peft-adapter-qwen2/    the same kind of adapter on tiny-qwen2
  greedy.safetensors     20 greedy tokens after the inputs for each of the four, with and
                         without its adapter, and tiny-qwen2+peft.logits

`generate-phi3` writes, touching nothing else:
  tiny-phi3/             Phi3ForCausalLM: fused qkv_proj and gate_up_proj, LongRoPE (short
                         and long factors, pretraining context 16 of 128), partial rotary
                         factor 0.75, sliding window 6, GQA, untied head, fp32
  peft-adapter-phi3/     a PEFT LoRA adapter on tiny-phi3 (r=4, alpha=8, PEFT's Phi-3 names:
                         qkv_proj, o_proj, gate_up_proj, down_proj)
  phi3.safetensors       24-token input ids (past the context of 16 and the window) with
                         reference logits, and 20 greedy tokens after a 10-token prompt from
                         transformers' cached generate, with and without the adapter

`check-adapter` loads an adapter written by arkor into PEFT on top of MODEL (default
tiny-llama), runs the same input ids and compares with the tensor "logits" in the given
file (arkor's logits).
"""
import json
import os
import shutil
import sys

import torch

torch.set_num_threads(2)
HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB = 272


def input_ids():
    g = torch.Generator().manual_seed(1234)
    return torch.randint(0, VOCAB, (2, 12), generator=g)


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def built(cls, cfg, seed):
    """A model of class `cls` from `cfg` with weights drawn from `seed` (see randomise)."""
    torch.manual_seed(0)
    model = cls(cfg).eval()
    randomise(model, seed)
    return model


def llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-5,
        max_position_embeddings=128, tie_word_embeddings=True,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
        rope_theta=10000.0,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).eval()
    randomise(model, 1)
    return model


def qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = Qwen2Config(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6,
        max_position_embeddings=128, tie_word_embeddings=False, rope_theta=1000000.0,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).eval()
    randomise(model, 2)
    return model


def qwen3():
    from transformers import Qwen3Config, Qwen3ForCausalLM
    cfg = Qwen3Config(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6,
        max_position_embeddings=128, tie_word_embeddings=True, attention_bias=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
    )
    return built(Qwen3ForCausalLM, cfg, 5)


def smollm3():
    from transformers import SmolLM3Config, SmolLM3ForCausalLM
    cfg = SmolLM3Config(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6,
        max_position_embeddings=128, tie_word_embeddings=True,
        no_rope_layers=[1, 0], pad_token_id=None, bos_token_id=1, eos_token_id=2,
        rope_parameters={"rope_type": "default", "rope_theta": 2000000.0},
    )
    return built(SmolLM3ForCausalLM, cfg, 7)


def mistral():
    from transformers import MistralConfig, MistralForCausalLM
    cfg = MistralConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
        max_position_embeddings=128, tie_word_embeddings=False, sliding_window=4,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )
    return built(MistralForCausalLM, cfg, 9)


def gemma2():
    from transformers import Gemma2Config, Gemma2ForCausalLM
    # Caps small enough to bend these scores and logits; a query scalar unlike head_dim.
    cfg = Gemma2Config(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-6,
        max_position_embeddings=128, query_pre_attn_scalar=16, sliding_window=4,
        attn_logit_softcapping=1.0, final_logit_softcapping=2.0,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )
    return built(Gemma2ForCausalLM, cfg, 11)


def gemma3():
    from transformers import Gemma3TextConfig, Gemma3ForCausalLM
    cfg = Gemma3TextConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6,
        max_position_embeddings=128, query_pre_attn_scalar=16, sliding_window=4,
        layer_types=["sliding_attention", "full_attention"],
        rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 100.0}},
    )
    return built(Gemma3ForCausalLM, cfg, 13)


PHI3_ORIGINAL_MAX = 16


def phi3():
    """Phi-3 with Phi-4-mini's features at tiny size: LongRoPE (short and long factors that
    differ per frequency, pretraining context 16 of 128, so attention factor
    sqrt(1 + ln 8 / ln 16)), partial_rotary_factor 0.75 (12 of 16 head dims rotated), a
    sliding window of 6, untied head."""
    from transformers import Phi3Config, Phi3ForCausalLM
    g = torch.Generator().manual_seed(15)
    short = (1.0 + torch.rand(6, generator=g)).tolist()
    long = (2.0 + 6.0 * torch.rand(6, generator=g)).tolist()
    cfg = Phi3Config(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
        max_position_embeddings=128, original_max_position_embeddings=PHI3_ORIGINAL_MAX,
        tie_word_embeddings=False, sliding_window=6, pad_token_id=None, bos_token_id=1,
        eos_token_id=2,
        rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                         "partial_rotary_factor": 0.75,
                         "short_factor": short, "long_factor": long},
    )
    return built(Phi3ForCausalLM, cfg, 15)


def phi3_input_ids():
    """24 tokens a row: past the pretraining context of 16 and the window of 6."""
    g = torch.Generator().manual_seed(4321)
    return torch.randint(0, VOCAB, (2, 24), generator=g)


PHI3_TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
ALL_SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def lora(model, rslora, seed, targets=ALL_SEVEN):
    from peft import LoraConfig, get_peft_model
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
                     use_rslora=rslora, target_modules=targets)
    peft_model = get_peft_model(model, cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    return peft_model.eval()


@torch.no_grad()
def logits_of(model, ids=None):
    ids = input_ids() if ids is None else ids
    return model(input_ids=ids).logits.float().contiguous()


@torch.no_grad()
def greedy_of(model, steps=20):
    """The input ids followed by `steps` greedy tokens (full forward each step, no cache)."""
    ids = input_ids()
    for _ in range(steps):
        nxt = model(input_ids=ids).logits[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], dim=1)
    return ids


def save_model(model, name, dtype, shard):
    path = os.path.join(HERE, name)
    shutil.rmtree(path, ignore_errors=True)
    model.to(dtype).save_pretrained(path, safe_serialization=True, max_shard_size="40KB" if shard else "1GB")
    # Tokenizer files are not needed for logit parity; keep the folder minimal.
    return path


def peft_logits(path, adapter, rslora, seed, targets=ALL_SEVEN):
    """Saves a random PEFT adapter on the model at `path` as HERE/`adapter` and returns it
    loaded back with PeftModel."""
    from transformers import AutoModelForCausalLM
    from peft import PeftModel
    model = lora(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), rslora, seed,
                 targets)
    adapter_dir = os.path.join(HERE, adapter)
    shutil.rmtree(adapter_dir, ignore_errors=True)
    model.save_pretrained(adapter_dir)
    readme = os.path.join(adapter_dir, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), adapter_dir).eval()
    return loaded


def generate():
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM
    out = {}
    ids = input_ids()

    base = llama()
    path = save_model(base, "tiny-llama", torch.float32, shard=True)
    reloaded = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    out["tiny-llama.input_ids"] = ids
    out["tiny-llama.logits"] = logits_of(reloaded)
    plain = reloaded.model.rotary_emb.inv_freq
    print("llama3 inv_freq:", plain.tolist())

    for adapter, rslora, seed in [("peft-adapter", False, 3), ("peft-adapter-rslora", True, 4)]:
        key = "tiny-llama+peft" if not rslora else "tiny-llama+peft-rslora"
        out[f"{key}.logits"] = logits_of(peft_logits(path, adapter, rslora, seed))

    path = save_model(qwen2(), "tiny-qwen2", torch.bfloat16, shard=False)
    reloaded = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).float().eval()
    out["tiny-qwen2.input_ids"] = ids.clone()
    out["tiny-qwen2.logits"] = logits_of(reloaded)

    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(HERE, "logits.safetensors"))
    for name in ["tiny-llama", "tiny-qwen2"]:
        with open(os.path.join(HERE, name, "config.json")) as f:
            print(name, "config keys:", sorted(json.load(f).keys()))


def generate_families():
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM
    out = {}
    ids = input_ids()
    for name, make, seed in [("tiny-qwen3", qwen3, 6), ("tiny-smollm3", smollm3, 8),
                             ("tiny-mistral", mistral, 10), ("tiny-gemma2", gemma2, 12),
                             ("tiny-gemma3", gemma3, 14)]:
        path = save_model(make(), name, torch.float32, shard=False)
        reloaded = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        out[f"{name}.input_ids"] = ids.clone()
        out[f"{name}.logits"] = logits_of(reloaded)
        adapter = "peft-adapter-" + name.removeprefix("tiny-")
        peft = peft_logits(path, adapter, False, seed)
        out[f"{name}+peft.logits"] = logits_of(peft)
        if name not in ("tiny-qwen3", "tiny-smollm3"):
            out[f"{name}.greedy"] = greedy_of(reloaded)
            out[f"{name}+peft.greedy"] = greedy_of(peft)
        with open(os.path.join(path, "config.json")) as f:
            print(name, "config keys:", sorted(json.load(f).keys()))
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(HERE, "families.safetensors"))


def generate_greedy():
    """Greedy continuations of the models `generate` and `generate-families` wrote without
    them (read back from their directories, which stay untouched), and a PEFT adapter on
    tiny-qwen2, into `greedy.safetensors`."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM
    from peft import PeftModel
    out = {}
    for name, adapter, dtype in [("tiny-llama", "peft-adapter", torch.float32),
                                 ("tiny-qwen2", "peft-adapter-qwen2", torch.bfloat16),
                                 ("tiny-qwen3", "peft-adapter-qwen3", torch.float32),
                                 ("tiny-smollm3", "peft-adapter-smollm3", torch.float32)]:
        path = os.path.join(HERE, name)
        base = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).float().eval()
        out[f"{name}.greedy"] = greedy_of(base)
        if name == "tiny-qwen2":
            peft = peft_logits(path, adapter, False, 5)
            out[f"{name}+peft.logits"] = logits_of(peft)
        else:
            fresh = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
            peft = PeftModel.from_pretrained(fresh, os.path.join(HERE, adapter)).eval()
        out[f"{name}+peft.greedy"] = greedy_of(peft)
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(HERE, "greedy.safetensors"))


@torch.no_grad()
def cached_greedy_of(model, prompt, steps=20):
    """`prompt` followed by `steps` greedy tokens from transformers' own cached generation
    (the prompt in one pass, then one token at a time). For LongRoPE this is what differs
    from a full forward per step: the cached keys keep the short-factor rotation they were
    made with when later passes switch to the long factors."""
    # No end-of-sequence handling: every step is a plain argmax, as in arkor's test.
    eos = (model.config.eos_token_id, model.generation_config.eos_token_id)
    model.config.eos_token_id = model.generation_config.eos_token_id = None
    out = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt),
                         max_new_tokens=steps, do_sample=False, use_cache=True, pad_token_id=0)
    model.config.eos_token_id, model.generation_config.eos_token_id = eos
    assert out.shape[1] == prompt.shape[1] + steps
    return out


def generate_phi3():
    """tiny-phi3/, peft-adapter-phi3/ and phi3.safetensors; touches nothing else."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM
    out = {}
    ids = phi3_input_ids()
    path = save_model(phi3(), "tiny-phi3", torch.float32, shard=False)
    reloaded = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    peft = peft_logits(path, "peft-adapter-phi3", False, 16, PHI3_TARGETS)
    out["tiny-phi3.input_ids"] = ids
    out["tiny-phi3.logits"] = logits_of(reloaded, ids)
    out["tiny-phi3+peft.logits"] = logits_of(peft, ids)
    # A 10-token prompt: decoding crosses the window and, at position 16, the pretraining
    # context (from there transformers rotates new tokens with the long factors).
    prompt = ids[:, :10].clone()
    out["tiny-phi3.greedy"] = cached_greedy_of(reloaded, prompt)
    out["tiny-phi3+peft.greedy"] = cached_greedy_of(peft, prompt)
    rope = reloaded.model.rotary_emb
    print("attention factor:", rope.attention_scaling)
    with open(os.path.join(path, "config.json")) as f:
        print("tiny-phi3 config keys:", sorted(json.load(f).keys()))
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(HERE, "phi3.safetensors"))


def check_adapter(adapter_dir, logits_file, model_name="tiny-llama"):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM
    from peft import PeftModel
    base = AutoModelForCausalLM.from_pretrained(os.path.join(HERE, model_name), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    ours = load_file(logits_file)["logits"]
    theirs = logits_of(model, phi3_input_ids() if model_name == "tiny-phi3" else None)
    diff = (ours - theirs).abs()
    rel = (diff / theirs.abs().clamp(min=1.0)).max().item()
    print(f"max abs diff {diff.max().item():.3e}, max rel diff {rel:.3e}")
    print("PASS" if rel < 1e-4 else "FAIL")
    sys.exit(0 if rel < 1e-4 else 1)


if __name__ == "__main__":
    if sys.argv[1:2] == ["generate"]:
        generate()
    elif sys.argv[1:2] == ["generate-families"]:
        generate_families()
    elif sys.argv[1:2] == ["generate-greedy"]:
        generate_greedy()
    elif sys.argv[1:2] == ["generate-phi3"]:
        generate_phi3()
    elif sys.argv[1:2] == ["check-adapter"] and len(sys.argv) in (4, 5):
        check_adapter(*sys.argv[2:])
    else:
        print(__doc__)
        sys.exit(2)
