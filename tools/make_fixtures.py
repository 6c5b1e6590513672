#!/usr/bin/env python3
"""Builds the tiny reference checkpoints and their expected outputs with Hugging Face transformers.

Run on a machine with torch and transformers (the GPU host has both; a CPU is enough):

    python3 tools/make_fixtures.py OUT_DIR

For each model it writes OUT_DIR/<name>/ holding config.json, *.safetensors in the layout named
below, and reference.safetensors with, per prompt P:
    prompt.P   I32 [n]          the prompt token ids
    logits.P   F32 [n, V]       logits of every position (float32, eager attention, CPU)
    greedy.P   I32 [g]          greedy continuation (g new tokens)
    experts.P  I32 [L_moe, n, K] top-k expert ids per MoE layer, position and rank
Models (all float32, weights drawn large so routing and logits are far from uniform):
    qwen3moe        hub layout (per-expert tensors), hub config keys, 8 experts top-2, GQA 4/2,
                    head_dim 32 != hidden/heads
    qwen3moe-dense  mlp_only_layers=[1], top-3 without renormalisation, tied embeddings;
                    transformers-5 config keys (num_local_experts, rope_parameters, dtype) and
                    fused expert tensors (gate_up_proj [E, 2I, H], down_proj [E, H, I])
    qwen3moe-yarn   YaRN rope scaling, prompts longer than original_max_position_embeddings
    mixtral         hub layout (block_sparse_moe.*, w1/w2/w3), sharded in two files with
                    model.safetensors.index.json
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM
from transformers import MixtralConfig, Qwen3MoeConfig

VOCAB = 512
PROMPT_LENGTHS = {"a": 1, "b": 5, "c": 17, "d": 40}
GREEDY_TOKENS = 8


def init_weights(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif "embed" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            elif name.endswith("gate.weight") or ".gate." in name and "proj" not in name:
                p.copy_(torch.randn(p.shape, generator=g))  # router: strong preferences
            else:
                fan_in = p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / fan_in**0.5))


def hub_state_dict(model, cfg, arch):
    """The model's tensors under the names published on the hub (one tensor per expert)."""
    out = {}
    E = cfg.num_experts if arch == "qwen3_moe" else cfg.num_local_experts
    I = cfg.moe_intermediate_size if arch == "qwen3_moe" else cfg.intermediate_size
    moe = "mlp" if arch == "qwen3_moe" else "block_sparse_moe"
    names = ("gate_proj", "up_proj", "down_proj") if arch == "qwen3_moe" else ("w1", "w3", "w2")
    for k, v in model.state_dict().items():
        v = v.detach().contiguous().clone()
        if ".mlp.experts.gate_up_proj" in k:
            prefix = k.split(".mlp.experts.")[0]
            assert v.shape[0] == E and v.shape[1] == 2 * I, (k, v.shape)
            for e in range(E):
                out[f"{prefix}.{moe}.experts.{e}.{names[0]}.weight"] = v[e, :I].contiguous()
                out[f"{prefix}.{moe}.experts.{e}.{names[1]}.weight"] = v[e, I:].contiguous()
        elif ".mlp.experts.down_proj" in k:
            prefix = k.split(".mlp.experts.")[0]
            for e in range(E):
                out[f"{prefix}.{moe}.experts.{e}.{names[2]}.weight"] = v[e].contiguous()
        elif ".mlp.gate.weight" in k and arch != "qwen3_moe":
            out[k.replace(".mlp.gate.", f".{moe}.gate.")] = v
        elif ".mlp.experts." in k and arch != "qwen3_moe":
            out[k.replace(".mlp.experts.", f".{moe}.experts.")] = v
        else:
            out[k] = v
    return out


def fused_state_dict(hub, cfg):
    """Hub tensors regrouped into transformers-5 fused expert tensors."""
    out, experts = {}, {}
    for k, v in hub.items():
        if ".mlp.experts." in k:
            prefix, rest = k.split(".mlp.experts.")
            e, proj = rest.split(".")[:2]
            experts.setdefault(prefix, {}).setdefault(int(e), {})[proj] = v
        else:
            out[k] = v
    for prefix, per in experts.items():
        E = len(per)
        out[f"{prefix}.mlp.experts.gate_up_proj"] = torch.stack(
            [torch.cat([per[e]["gate_proj"], per[e]["up_proj"]], 0) for e in range(E)]).contiguous()
        out[f"{prefix}.mlp.experts.down_proj"] = torch.stack([per[e]["down_proj"] for e in range(E)]).contiguous()
    return out


def record(model, cfg, arch, seed):
    g = torch.Generator().manual_seed(seed + 1000)
    ref = {}
    K = cfg.num_experts_per_tok
    for tag, n in PROMPT_LENGTHS.items():
        ids = torch.randint(0, VOCAB, (1, n), generator=g)
        captured = []

        def hook(_mod, _inp, out):
            captured.append(out[0] if isinstance(out, tuple) else out)

        handles = [m.register_forward_hook(hook) for m in router_modules(model, arch)]
        with torch.no_grad():
            out = model(ids)
        for h in handles:
            h.remove()
        ref[f"prompt.{tag}"] = ids[0].to(torch.int32)
        ref[f"logits.{tag}"] = out.logits[0].float().contiguous()
        sel = []
        E = cfg.num_experts if arch == "qwen3_moe" else cfg.num_local_experts
        for rl in captured:
            rl = rl.reshape(-1, rl.shape[-1]).float()
            assert rl.shape == (n, E), f"router output has shape {tuple(rl.shape)}, expected ({n}, {E})"
            sel.append(torch.topk(rl, K, dim=-1).indices.to(torch.int32))
        ref[f"experts.{tag}"] = torch.stack(sel).contiguous()
        # Greedy continuation by repeated full forward passes (no cache involved).
        seq = ids
        new = []
        for _ in range(GREEDY_TOKENS):
            with torch.no_grad():
                nxt = model(seq).logits[0, -1].argmax().item()
            new.append(nxt)
            seq = torch.cat([seq, torch.tensor([[nxt]])], 1)
        ref[f"greedy.{tag}"] = torch.tensor(new, dtype=torch.int32)
        lg = ref[f"logits.{tag}"]
        print(f"  prompt {tag}: n={n} logit std {lg.std().item():.3f}, greedy {new}, "
              f"experts used in layer 0: {sorted(set(sel[0].flatten().tolist()))}")
    return ref


def make_config(cls, **kw):
    """Builds a config on transformers 4 or 5: version 5 takes rope_parameters instead of
    rope_theta and rope_scaling."""
    import inspect
    if "rope_parameters" in inspect.signature(cls.__init__).parameters:
        rp = {"rope_type": "default", "rope_theta": kw.pop("rope_theta")}
        rp.update(kw.pop("rope_scaling", None) or {})
        kw["rope_parameters"] = rp
    return cls(**kw)


def router_modules(model, arch):
    """The router module of each MoE layer, in layer order."""
    mods = []
    for layer in model.model.layers:
        block = getattr(layer, "mlp", None)
        if block is None or not hasattr(block, "gate") or not hasattr(block, "experts"):
            block = getattr(layer, "block_sparse_moe", None)
        if block is not None and hasattr(block, "gate") and hasattr(block, "experts"):
            mods.append(block.gate)
    return mods


def write_config(path, d):
    with open(path, "w") as f:
        json.dump(d, f, indent=2, sort_keys=True)


def qwen_hub_config(name, cfg):
    d = {
        "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers, "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads, "head_dim": cfg.head_dim,
        "num_experts": cfg.num_experts, "num_experts_per_tok": cfg.num_experts_per_tok,
        "moe_intermediate_size": cfg.moe_intermediate_size, "intermediate_size": cfg.intermediate_size,
        "norm_topk_prob": cfg.norm_topk_prob, "rms_norm_eps": cfg.rms_norm_eps,
        "max_position_embeddings": cfg.max_position_embeddings, "tie_word_embeddings": cfg.tie_word_embeddings,
        "mlp_only_layers": list(cfg.mlp_only_layers), "decoder_sparse_step": cfg.decoder_sparse_step,
        "attention_bias": False, "torch_dtype": "float32", "bos_token_id": None, "eos_token_id": 2,
    }
    rp = dict(getattr(cfg, "rope_parameters", None) or {})
    d["rope_theta"] = rp.get("rope_theta", getattr(cfg, "rope_theta", None))
    if rp.get("rope_type", "default") != "default":
        d["rope_scaling"] = {k: v for k, v in rp.items() if k != "rope_theta"}
    elif getattr(cfg, "rope_scaling", None):
        d["rope_scaling"] = dict(cfg.rope_scaling)
    return d


def to_v5_keys(d):
    """The same config with the key names transformers 5 writes."""
    d = dict(d)
    d["num_local_experts"] = d.pop("num_experts")
    d["dtype"] = d.pop("torch_dtype")
    rp = {"rope_type": "default", "rope_theta": d.pop("rope_theta")}
    rp.update(d.pop("rope_scaling", {}))
    d["rope_parameters"] = rp
    return d


def build(out_root, name, arch, cfg, seed, layout):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float().eval()
    init_weights(model, seed)
    if name == "qwen3moe":
        print("  internal tensors of layer 0:",
              {k: tuple(v.shape) for k, v in model.state_dict().items() if k.startswith("model.layers.0.")})
    d = os.path.join(out_root, name)
    os.makedirs(d, exist_ok=True)
    hub = hub_state_dict(model, cfg, arch)
    if cfg.tie_word_embeddings:
        hub.pop("lm_head.weight", None)
    if arch == "qwen3_moe":
        conf = qwen_hub_config(name, cfg)
    else:
        conf = {
            "architectures": ["MixtralForCausalLM"], "model_type": "mixtral",
            "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
            "num_hidden_layers": cfg.num_hidden_layers, "num_attention_heads": cfg.num_attention_heads,
            "num_key_value_heads": cfg.num_key_value_heads, "num_local_experts": cfg.num_local_experts,
            "num_experts_per_tok": cfg.num_experts_per_tok, "intermediate_size": cfg.intermediate_size,
            "rms_norm_eps": cfg.rms_norm_eps, "rope_theta": 1e6, "max_position_embeddings": cfg.max_position_embeddings,
            "tie_word_embeddings": False, "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2,
        }
    if layout == "fused":
        save_file(fused_state_dict(hub, cfg), os.path.join(d, "model.safetensors"))
        write_config(os.path.join(d, "config.json"), to_v5_keys(conf))
    elif layout == "sharded":
        keys = sorted(hub)
        half = len(keys) // 2
        shards = {"model-00001-of-00002.safetensors": keys[:half], "model-00002-of-00002.safetensors": keys[half:]}
        weight_map = {}
        for fname, ks in shards.items():
            save_file({k: hub[k] for k in ks}, os.path.join(d, fname))
            weight_map.update({k: fname for k in ks})
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=1, sort_keys=True)
        write_config(os.path.join(d, "config.json"), conf)
    else:
        save_file(hub, os.path.join(d, "model.safetensors"))
        write_config(os.path.join(d, "config.json"), conf)
    # The saved hub layout must load back into transformers with identical logits.
    reloaded = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager").float().eval() \
        if layout != "fused" else model
    ref = record(model, cfg, arch, seed)
    with torch.no_grad():
        again = reloaded(ref["prompt.c"][None].long()).logits[0]
    diff = (again - ref["logits.c"]).abs().max().item()
    print(f"  reload check: max |diff| = {diff:.3g}")
    assert diff < 1e-5, "the written checkpoint does not reproduce the model"
    rope = getattr(model.model, "rotary_emb", None)
    if rope is not None:
        ref["rope.inv_freq"] = rope.inv_freq.float().contiguous()
        ref["rope.attention_scaling"] = torch.tensor([float(rope.attention_scaling)])
    save_file(ref, os.path.join(d, "reference.safetensors"))


def main():
    out_root = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
    import transformers
    print("transformers", transformers.__version__, "torch", torch.__version__)
    common = dict(vocab_size=VOCAB, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=256, rms_norm_eps=1e-6)
    models = [
        ("qwen3moe", "qwen3_moe", make_config(Qwen3MoeConfig,
            **common, num_hidden_layers=3, head_dim=32, num_experts=8, num_experts_per_tok=2,
            moe_intermediate_size=32, intermediate_size=96, norm_topk_prob=True, rope_theta=10000.0,
            tie_word_embeddings=False), 11, "hub"),
        ("qwen3moe-dense", "qwen3_moe", make_config(Qwen3MoeConfig,
            **common, num_hidden_layers=3, head_dim=32, num_experts=8, num_experts_per_tok=3,
            moe_intermediate_size=32, intermediate_size=96, norm_topk_prob=False, mlp_only_layers=[1],
            rope_theta=10000.0, tie_word_embeddings=True), 12, "fused"),
        ("qwen3moe-yarn", "qwen3_moe", make_config(Qwen3MoeConfig,
            **common, num_hidden_layers=2, head_dim=32, num_experts=8, num_experts_per_tok=2,
            moe_intermediate_size=32, intermediate_size=96, norm_topk_prob=True,
            rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16},
            rope_theta=10000.0, tie_word_embeddings=False), 13, "hub"),
        ("mixtral", "mixtral", make_config(MixtralConfig,
            vocab_size=VOCAB, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=256, rms_norm_eps=1e-5, num_hidden_layers=2, num_local_experts=8,
            num_experts_per_tok=2, intermediate_size=48, rope_theta=1e6, tie_word_embeddings=False), 14, "sharded"),
    ]
    for name, arch, cfg, seed, layout in models:
        print(name)
        build(out_root, name, arch, cfg, seed, layout)


if __name__ == "__main__":
    main()
