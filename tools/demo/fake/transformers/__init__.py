"""A small stand-in for Hugging Face transformers' Qwen3-MoE (transformers-5 layout: fused experts
gate_up_proj [E, 2I, H] and down_proj [E, H, I]), written from docs/../FACTS.md, so train.py's
code paths run on a machine without transformers (tools/demo/test_local.sh). Not used on the GPU
host; the C++ runtime's agreement with the exported checkpoint is what the local test checks."""
import json
import math
import os
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

__version__ = "0.0-fake"


class Qwen3MoeConfig:
    def __init__(self, **kw):
        self.__dict__.update(kw)
        self.num_local_experts = kw.get("num_experts")


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dt)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        D, Q, KV, H = c.head_dim, c.num_attention_heads, c.num_key_value_heads, c.hidden_size
        self.q_proj = nn.Linear(H, Q * D, bias=False)
        self.k_proj = nn.Linear(H, KV * D, bias=False)
        self.v_proj = nn.Linear(H, KV * D, bias=False)
        self.o_proj = nn.Linear(Q * D, H, bias=False)
        self.q_norm = RMSNorm(D, c.rms_norm_eps)
        self.k_norm = RMSNorm(D, c.rms_norm_eps)

    def forward(self, x):
        c = self.c
        B, T, _ = x.shape
        D, Q, KV = c.head_dim, c.num_attention_heads, c.num_key_value_heads
        q = self.q_norm(self.q_proj(x).view(B, T, Q, D)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(B, T, KV, D)).transpose(1, 2)
        v = self.v_proj(x).view(B, T, KV, D).transpose(1, 2)
        theta = c.rope_parameters["rope_theta"] if hasattr(c, "rope_parameters") else c.rope_theta
        inv = 1.0 / theta ** (torch.arange(0, D, 2, dtype=torch.float32) / D)
        ang = torch.arange(T, dtype=torch.float32)[:, None] * inv[None]
        cos, sin = torch.cat([ang.cos()] * 2, -1).to(x.device), torch.cat([ang.sin()] * 2, -1).to(x.device)

        def rot(t):
            t1, t2 = t[..., : D // 2], t[..., D // 2:]
            return (t * cos.to(t.dtype)) + (torch.cat([-t2, t1], -1) * sin.to(t.dtype))
        q, k = rot(q), rot(k)
        k = k.repeat_interleave(Q // KV, dim=1)
        v = v.repeat_interleave(Q // KV, dim=1)
        s = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(D)
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
        o = (s.softmax(-1) @ v.float()).to(q.dtype).transpose(1, 2).reshape(B, T, Q * D)
        return self.o_proj(o)


class Experts(nn.Module):
    def __init__(self, c):
        super().__init__()
        E, I, H = c.num_experts, c.moe_intermediate_size, c.hidden_size
        self.gate_up_proj = nn.Parameter(torch.zeros(E, 2 * I, H))
        self.down_proj = nn.Parameter(torch.zeros(E, H, I))


class MoeBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.gate = nn.Linear(c.hidden_size, c.num_experts, bias=False)
        self.experts = Experts(c)

    def forward(self, x):
        c = self.c
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        p = F.softmax(self.gate(x).float(), -1)
        w, i = p.topk(c.num_experts_per_tok, -1)
        w = w / w.sum(-1, keepdim=True)
        out = torch.zeros_like(x, dtype=torch.float32)
        I = c.moe_intermediate_size
        for e in range(c.num_experts):
            tok, slot = torch.where(i == e)
            if tok.numel():
                gu = x[tok] @ self.experts.gate_up_proj[e].t()
                h = F.silu(gu[:, :I]) * gu[:, I:]
                y = h @ self.experts.down_proj[e].t()
                out.index_add_(0, tok, y.float() * w[tok, slot, None])
        return out.to(x.dtype).reshape(shape)


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = MoeBlock(c)

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class Inner(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList([Layer(c) for _ in range(c.num_hidden_layers)])
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class Qwen3MoeForCausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.model = Inner(c)
        self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        if c.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def get_output_embeddings(self):
        return self.lm_head

    def tie_weights(self):
        self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, input_ids, use_cache=False, attention_mask=None):
        x = self.model.embed_tokens(input_ids)
        for layer in self.model.layers:
            x = layer(x)
        return types.SimpleNamespace(logits=self.lm_head(self.model.norm(x)))

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, max_new_tokens=8, do_sample=False,
                 eos_token_id=(), pad_token_id=None, max_time=None):
        import time
        x, t0 = input_ids, time.time()
        for _ in range(max_new_tokens):
            if max_time is not None and time.time() - t0 > max_time:
                break
            nxt = self(x).logits[:, -1].argmax(-1, keepdim=True)
            x = torch.cat([x, nxt], 1)
            if int(nxt) in list(eos_token_id):
                break
        return x


class AutoModelForCausalLM:
    @staticmethod
    def from_config(cfg, attn_implementation=None):
        return Qwen3MoeForCausalLM(cfg)

    @staticmethod
    def from_pretrained(path, dtype=torch.float32, attn_implementation=None):
        from safetensors.torch import load_file
        d = json.load(open(os.path.join(path, "config.json")))
        cfg = Qwen3MoeConfig(**d)
        m = Qwen3MoeForCausalLM(cfg)
        sd = load_file(os.path.join(path, "model.safetensors"))
        I = cfg.moe_intermediate_size
        with torch.no_grad():
            for name, p in m.named_parameters():
                if name.endswith("experts.gate_up_proj"):
                    pre = name[: -len("gate_up_proj")]
                    for e in range(cfg.num_experts):
                        p[e, :I] = sd.pop(f"{pre}{e}.gate_proj.weight").float()
                        p[e, I:] = sd.pop(f"{pre}{e}.up_proj.weight").float()
                elif name.endswith("experts.down_proj"):
                    pre = name[: -len("down_proj")]
                    for e in range(cfg.num_experts):
                        p[e] = sd.pop(f"{pre}{e}.down_proj.weight").float()
                elif name == "lm_head.weight" and cfg.tie_word_embeddings:
                    continue
                else:
                    p.copy_(sd.pop(name).float())
        if sd:
            raise ValueError(f"unused tensors: {sorted(sd)[:5]}")
        return m.to(dtype)


def _ref_grouped_mm(a, b, offs=None):
    """torch._grouped_mm for a 2-D a [M, K] and a 3-D b [G, K, N]: rows offs[g-1]..offs[g] of a
    times b[g] (older torch has no grouped GEMM; this lets the grouped path run in local tests)."""
    out, start = [], 0
    for g in range(b.shape[0]):
        end = int(offs[g])
        out.append(a[start:end] @ b[g])
        start = end
    return torch.cat(out, 0)


if not hasattr(torch, "_grouped_mm"):
    torch._grouped_mm = _ref_grouped_mm
