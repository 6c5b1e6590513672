"""Pieces of the demo model's training script (train.py): model construction, the MoE forward used
for training, the Hugging Face hub export, evaluation, the loss plot and the artifacts.

Dimension letters: N tokens, H hidden, E experts, K experts per token, I expert intermediate,
V vocabulary, S = N * K routed (token, expert) pairs.
"""
import io
import json
import math
import os
import tarfile
import time
import types

import torch
import torch.nn.functional as F

# Router statistics of the last forward pass, one entry per MoE layer (see moe_forward).
AUX = []


# --- model -------------------------------------------------------------------------------------

def make_config(arch):
    """A Qwen3MoeConfig on transformers 4 or 5 (5 takes rope_parameters instead of rope_theta)."""
    import inspect
    from transformers import Qwen3MoeConfig
    kw = dict(vocab_size=arch["vocab_size"], hidden_size=arch["hidden_size"],
              num_hidden_layers=arch["num_hidden_layers"],
              num_attention_heads=arch["num_attention_heads"],
              num_key_value_heads=arch["num_key_value_heads"], head_dim=arch["head_dim"],
              num_experts=arch["num_experts"], num_experts_per_tok=arch["num_experts_per_tok"],
              moe_intermediate_size=arch["moe_intermediate_size"],
              intermediate_size=arch["intermediate_size"], norm_topk_prob=True,
              decoder_sparse_step=1, mlp_only_layers=[], rms_norm_eps=arch["rms_norm_eps"],
              max_position_embeddings=arch["max_position_embeddings"],
              tie_word_embeddings=arch["tie_word_embeddings"], attention_bias=False,
              attention_dropout=0.0, output_router_logits=False,
              router_aux_loss_coef=arch["router_aux_loss_coef"], use_cache=False)
    if "rope_parameters" in inspect.signature(Qwen3MoeConfig.__init__).parameters:
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": arch["rope_theta"]}
    else:
        kw["rope_theta"] = arch["rope_theta"]
    cfg = Qwen3MoeConfig(**kw)
    for key in ("num_experts", "num_local_experts"):  # transformers 5 renames num_experts
        if not hasattr(cfg, key) or getattr(cfg, key) != arch["num_experts"]:
            try:
                setattr(cfg, key, arch["num_experts"])
            except Exception:
                pass
    return cfg


def build_model(arch, device, seed):
    from transformers import AutoModelForCausalLM
    torch.manual_seed(seed)
    cfg = make_config(arch)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")
    model = model.float().to(device)
    if arch["tie_word_embeddings"]:
        out_emb, in_emb = model.get_output_embeddings(), model.get_input_embeddings()
        if out_emb.weight is not in_emb.weight:
            try:
                model.tie_weights()
            except Exception:
                pass
        if out_emb.weight is not in_emb.weight:
            out_emb.weight = in_emb.weight
    init_weights(model, arch, seed)
    return model


def init_weights(model, arch, seed):
    """GPT-2 style: N(0, 0.02), output projections scaled by 1/sqrt(2 L), norms at one."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    scale_out = 1.0 / math.sqrt(2 * arch["num_hidden_layers"])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
                continue
            std = 0.02 * (scale_out if ("o_proj" in name or "down_proj" in name) else 1.0)
            p.copy_(torch.randn(p.shape, generator=g) * std)


def moe_blocks(model):
    return [layer.mlp for layer in model.model.layers]


def expert_weights(mlp, E, H, I):
    """(W_gu [E, 2I, H] with gate rows first, W_d [E, H, I]) as views of the block's parameters,
    for the fused layout of transformers 5 (either orientation) and the per-expert ModuleList
    of transformers 4."""
    ex = mlp.experts
    if isinstance(ex, torch.nn.ModuleList):
        wgu = torch.cat([torch.stack([e.gate_proj.weight for e in ex]),
                         torch.stack([e.up_proj.weight for e in ex])], dim=1)
        return wgu, torch.stack([e.down_proj.weight for e in ex])
    gu, d = ex.gate_up_proj, ex.down_proj
    transposed = bool(getattr(ex, "experts_are_transposed", False)) or \
        (tuple(d.shape) == (E, I, H) and I != H)
    if transposed:
        gu, d = gu.transpose(1, 2), d.transpose(1, 2)
    assert tuple(gu.shape) == (E, 2 * I, H) and tuple(d.shape) == (E, H, I), \
        f"unexpected expert shapes {tuple(gu.shape)} {tuple(d.shape)}"
    return gu, d


def route(x, gate_w, K, norm_topk):
    """Qwen3-MoE routing: softmax over all experts in fp32, top-k, renormalised."""
    logits = F.linear(x, gate_w)  # [N, E]
    probs = torch.softmax(logits.float(), dim=-1)
    topw, topi = torch.topk(probs, K, dim=-1)
    if norm_topk:
        topw = topw / topw.sum(dim=-1, keepdim=True)
    return probs, topw, topi


def experts_grouped(x, topi, topw, wgu, wd, E):
    """All routed (token, expert) pairs in two grouped GEMMs (torch._grouped_mm, bf16)."""
    N, K = topi.shape
    flat = topi.reshape(-1)
    order = torch.argsort(flat, stable=True)
    tok = order // K
    counts = torch.histc(flat.float(), bins=E, min=0, max=E - 1)
    offs = torch.cumsum(counts, 0).to(torch.int32)
    xs = x[tok].to(torch.bfloat16)
    h = torch._grouped_mm(xs, wgu.to(torch.bfloat16).transpose(-2, -1), offs=offs)  # [S, 2I]
    g, u = h.chunk(2, dim=-1)
    y = torch._grouped_mm(F.silu(g) * u, wd.to(torch.bfloat16).transpose(-2, -1), offs=offs)
    y = y.float() * topw.reshape(-1)[order].unsqueeze(-1).float()
    return torch.zeros(N, x.shape[-1], dtype=torch.float32, device=x.device).index_add_(0, tok, y), \
        counts


def experts_loop(x, topi, topw, wgu, wd, E):
    """Reference: one GEMM pair per expert (a host sync per layer; works on any device/dtype)."""
    N, K = topi.shape
    out = torch.zeros(N, x.shape[-1], dtype=torch.float32, device=x.device)
    counts = torch.zeros(E, dtype=torch.float32, device=x.device)
    for e in range(E):
        tok, slot = torch.where(topi == e)
        counts[e] = tok.numel()
        if tok.numel() == 0:
            continue
        h = F.linear(x[tok], wgu[e])
        g, u = h.chunk(2, dim=-1)
        y = F.linear(F.silu(g) * u, wd[e])
        out.index_add_(0, tok, y.float() * topw[tok, slot].unsqueeze(-1).float())
    return out, counts


def patch_moe(model, arch, impl, returns_tuple=False):
    """Replaces each MoE block's forward with Qwen3-MoE math over the block's own parameters,
    computing experts with `impl` ("grouped" or "loop") and appending to AUX, per layer, the
    load-balancing loss of transformers' load_balancing_loss_func: E * sum_e f_e * P_e, with f_e
    the share of tokens routed to e (over all K slots) and P_e the mean router probability."""
    E, K, H, I = (arch["num_experts"], arch["num_experts_per_tok"], arch["hidden_size"],
                  arch["moe_intermediate_size"])
    fn = experts_grouped if impl == "grouped" else experts_loop

    def forward(self, hidden_states):
        shape = hidden_states.shape
        x = hidden_states.reshape(-1, shape[-1])
        probs, topw, topi = route(x, self.gate.weight, K, True)
        wgu, wd = expert_weights(self, E, H, I)
        out, counts = fn(x, topi, topw, wgu, wd, E)
        if torch.is_grad_enabled():
            AUX.append(E * torch.sum(counts / x.shape[0] * probs.mean(0)))
        out = out.to(hidden_states.dtype).reshape(shape)
        return (out, probs) if returns_tuple else out

    for mlp in moe_blocks(model):
        if not hasattr(mlp, "_stock_forward"):
            mlp._stock_forward = mlp.forward
        mlp.forward = types.MethodType(forward, mlp)


def unpatch_moe(model):
    for mlp in moe_blocks(model):
        if hasattr(mlp, "_stock_forward"):
            mlp.forward = mlp._stock_forward


# --- export ------------------------------------------------------------------------------------

def hub_state_dict(model, arch, dtype=torch.bfloat16):
    """The model's tensors under the hub names (one tensor per expert), as `dtype`, on the CPU."""
    E, H, I = arch["num_experts"], arch["hidden_size"], arch["moe_intermediate_size"]
    out = {}
    for k, v in model.state_dict().items():
        if ".mlp.experts." in k or (k == "lm_head.weight" and arch["tie_word_embeddings"]):
            continue
        out[k] = v.detach().to("cpu", dtype).contiguous()
    for li, mlp in enumerate(moe_blocks(model)):
        wgu, wd = expert_weights(mlp, E, H, I)
        for e in range(E):
            p = f"model.layers.{li}.mlp.experts.{e}"
            out[f"{p}.gate_proj.weight"] = wgu[e, :I].detach().to("cpu", dtype).contiguous()
            out[f"{p}.up_proj.weight"] = wgu[e, I:].detach().to("cpu", dtype).contiguous()
            out[f"{p}.down_proj.weight"] = wd[e].detach().to("cpu", dtype).contiguous()
    return out


def hub_config(arch, ids):
    return {
        "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
        "vocab_size": arch["vocab_size"], "hidden_size": arch["hidden_size"],
        "num_hidden_layers": arch["num_hidden_layers"],
        "num_attention_heads": arch["num_attention_heads"],
        "num_key_value_heads": arch["num_key_value_heads"], "head_dim": arch["head_dim"],
        "num_experts": arch["num_experts"], "num_experts_per_tok": arch["num_experts_per_tok"],
        "moe_intermediate_size": arch["moe_intermediate_size"],
        "intermediate_size": arch["intermediate_size"], "norm_topk_prob": True,
        "rms_norm_eps": arch["rms_norm_eps"], "rope_theta": arch["rope_theta"],
        "max_position_embeddings": arch["max_position_embeddings"],
        "tie_word_embeddings": arch["tie_word_embeddings"], "mlp_only_layers": [],
        "decoder_sparse_step": 1, "attention_bias": False, "attention_dropout": 0.0,
        "hidden_act": "silu", "router_aux_loss_coef": arch["router_aux_loss_coef"],
        "output_router_logits": False, "torch_dtype": "bfloat16", "bos_token_id": None,
        "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
        "pad_token_id": ids["<|endoftext|>"], "use_cache": True,
    }


def save_hf(model, arch, ids, out_dir, tokenizer_model, extra_files=()):
    from safetensors.torch import save_file
    os.makedirs(out_dir, exist_ok=True)
    sd = hub_state_dict(model, arch)
    save_file(sd, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hub_config(arch, ids), f, indent=2, sort_keys=True)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({"eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
                   "pad_token_id": ids["<|endoftext|>"], "do_sample": True, "temperature": 0.7,
                   "top_k": 20, "top_p": 0.8}, f, indent=2)
    with open(tokenizer_model, "rb") as src, open(os.path.join(out_dir, "tokenizer.model"), "wb") as dst:
        dst.write(src.read())
    return sum(v.numel() for v in sd.values())


def write_artifacts(src_dir, dest_dir, name="demo-model.tar.gz", part_mib=15):
    """A gzip'd tar of src_dir cut into parts of at most part_mib MiB (the GPU host returns
    files of up to 16 MiB): dest_dir/name.00, .01, ... Reassemble with `cat name.* | tar xz`."""
    os.makedirs(dest_dir, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        tar.add(src_dir, arcname=os.path.basename(src_dir.rstrip("/")))
    data = buf.getvalue()
    for old in os.listdir(dest_dir):
        if old.startswith(name + "."):
            os.remove(os.path.join(dest_dir, old))
    step = part_mib << 20
    parts = []
    for k in range(0, len(data), step):
        path = os.path.join(dest_dir, f"{name}.{k // step:02d}")
        with open(path + ".tmp", "wb") as f:
            f.write(data[k:k + step])
        os.replace(path + ".tmp", path)
        parts.append(path)
    return parts, len(data)


# --- evaluation --------------------------------------------------------------------------------

def windows(tokens, ctx):
    """Non-overlapping windows [k ctx, (k + 1) ctx) of a token stream (the last one may be
    shorter; one of a single token predicts nothing and is dropped). Each window is scored on its
    positions 1 .. n-1 from a fresh context: the same definition as `coldstream perplexity`."""
    out = [tokens[s:s + ctx] for s in range(0, len(tokens), ctx)]
    return [w for w in out if len(w) >= 2]


@torch.no_grad()
def perplexity(model, tokens, ctx, device, batch=32, autocast=False, max_windows=None,
               deadline=None):
    """(perplexity, mean NLL in nats, predicted tokens, windows) of `tokens` (1-D int tensor)."""
    ws = windows(tokens, ctx)
    if max_windows:
        ws = ws[:max_windows]
    full = [w for w in ws if len(w) == ctx]
    rest = [w for w in ws if len(w) != ctx]
    nll, count, done = 0.0, 0, 0
    groups = [full[i:i + batch] for i in range(0, len(full), batch)] + [[w] for w in rest]
    for g in groups:
        if deadline and time.time() > deadline:
            break
        x = torch.stack(g).to(device).long()
        if autocast:
            with torch.autocast(device, dtype=torch.bfloat16):
                logits = model(input_ids=x, use_cache=False).logits
        else:
            logits = model(input_ids=x, use_cache=False).logits
        lp = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                             x[:, 1:].reshape(-1), reduction="sum")
        nll += lp.item()
        count += x[:, 1:].numel()
        done += len(g)
    mean = nll / max(count, 1)
    return math.exp(mean), mean, count, done


@torch.no_grad()
def routing_summary(model, arch, tokens, ctx, device, n_windows=16):
    """Per MoE layer: routing entropy (bits, of the expert load) and the load of the most and the
    least used expert as multiples of the uniform share, on held-out windows."""
    E, K = arch["num_experts"], arch["num_experts_per_tok"]
    loads = {}
    hooks = []

    def make_hook(li):
        def hook(mod, inp, out):
            x = inp[0].reshape(-1, inp[0].shape[-1])
            _, _, topi = route(x, mod.gate.weight, K, True)
            c = torch.bincount(topi.reshape(-1), minlength=E).float().cpu()
            loads[li] = loads.get(li, 0) + c
        return hook
    for li, mlp in enumerate(moe_blocks(model)):
        hooks.append(mlp.register_forward_hook(make_hook(li)))
    try:
        ws = [w for w in windows(tokens, ctx) if len(w) == ctx][:n_windows]
        if ws:
            model(input_ids=torch.stack(ws).to(device).long(), use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    out = []
    for li in sorted(loads):
        p = loads[li] / loads[li].sum()
        ent = float(-(p[p > 0] * p[p > 0].log2()).sum())
        out.append({"layer": li, "entropy_bits": round(ent, 3), "max_entropy_bits": math.log2(E),
                    "max_load_x_uniform": round(float(p.max() * E), 2),
                    "min_load_x_uniform": round(float(p.min() * E), 3),
                    "experts_unused": int((p == 0).sum())})
    return out


# --- plot --------------------------------------------------------------------------------------

def plot_curve(history, evals, path_png, title):
    """Loss curve as PNG (matplotlib) or, without matplotlib, as a hand-written SVG."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
        if history:
            ax.plot([h["tokens"] / 1e6 for h in history], [h["loss"] for h in history],
                    lw=1, label="train (cross-entropy)")
        if evals:
            ax.plot([e["tokens"] / 1e6 for e in evals], [e["heldout_loss"] for e in evals], "o-",
                    ms=3, label="held-out")
        ax.set_xlabel("training tokens (millions)")
        ax.set_ylabel("loss (nats/token)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path_png)
        plt.close(fig)
        return path_png
    except Exception:
        path = os.path.splitext(path_png)[0] + ".svg"
        pts = [(h["tokens"], h["loss"]) for h in history] or [(0, 0)]
        x1 = max(p[0] for p in pts) or 1
        ys = [p[1] for p in pts]
        y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
        poly = " ".join(f"{40 + 700 * x / x1:.1f},{20 + 340 * (y1 - y) / (y1 - y0):.1f}"
                        for x, y in pts)
        with open(path, "w") as f:
            f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="760" height="400">'
                    f'<rect width="760" height="400" fill="white"/>'
                    f'<polyline fill="none" stroke="#1f77b4" points="{poly}"/>'
                    f'<text x="40" y="395" font-size="12">{title} (loss {y0:.2f} .. {y1:.2f}, '
                    f'{x1 / 1e6:.0f}M tokens)</text></svg>')
        return path
