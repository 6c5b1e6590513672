#!/usr/bin/env python3
"""Trains coldstream's demo model: a small Qwen3-MoE (transformers' Qwen3MoeForCausalLM) on the
demo corpus, in a fixed wall-clock budget on one GPU, and exports it in Hugging Face hub layout.

    python3 tools/demo/train.py --smoke                       # seconds: every stage, tiny model
    python3 tools/demo/train.py --deadline $((START + 480))   # the real run (see run_gpu.sh)

Inputs: --data (tokenize_corpus.sh output: train.u16[.xz], heldout.u16, heldout_small.u16,
chat_heldout.u16, meta.json) and --tokenizer (tools/demo/tokenizer/tokenizer.model).
Outputs: --out holds the model directory (config.json, model.safetensors with hub names,
tokenizer.model, train_log.txt, metrics.json, loss.png); --artifacts (default $OUT, where the GPU
host returns files from) gets demo-model.tar.gz.NN parts of at most 15 MiB plus copies of
train_log.txt, metrics.json and loss.png.

Training: random windows of --seq-len tokens, bf16 autocast over fp32 weights, fused AdamW,
warmup then cosine decay over the *time* left (the step count adapts to the machine), the
load-balancing loss of transformers (E * sum f_e P_e per layer, coefficient
router_aux_loss_coef), torch.compile when it works (falls back to eager), and grouped-GEMM
experts (torch._grouped_mm) checked against a per-expert loop before use.
Held-out perplexity: non-overlapping windows of --seq-len tokens, each scored on its positions
1..n-1 from a fresh context, exactly as `coldstream perplexity --ctx` scores them.
"""
import argparse
import copy
import json
import lzma
import math
import os
import random
import shutil
import sys
import time
import traceback

T0 = time.time()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ARCH = dict(vocab_size=8192, hidden_size=256, num_hidden_layers=8, num_attention_heads=4,
            num_key_value_heads=2, head_dim=64, num_experts=32, num_experts_per_tok=4,
            moe_intermediate_size=128, intermediate_size=512, rms_norm_eps=1e-6,
            rope_theta=10000.0, max_position_embeddings=512, tie_word_embeddings=True,
            router_aux_loss_coef=0.01)
SMOKE_ARCH = dict(ARCH, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, head_dim=32, num_experts=8, num_experts_per_tok=2,
                  moe_intermediate_size=32, intermediate_size=64)
LOG_LINES = []


def log(msg):
    line = f"[{time.time() - T0:7.1f}s] {msg}"
    print(line, flush=True)
    LOG_LINES.append(line)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(REPO, "demo-data", "tokens"))
    ap.add_argument("--tokenizer", default=os.path.join(REPO, "tools", "demo", "tokenizer",
                                                        "tokenizer.model"))
    ap.add_argument("--out", default=None,
                    help="model directory (default /tmp/coldstream-demo/demo-model)")
    ap.add_argument("--artifacts", default=os.environ.get("OUT"),
                    help="where the tar parts and copies of log/metrics/plot go (default $OUT)")
    ap.add_argument("--deadline", type=float, default=None,
                    help="absolute time (seconds since the epoch) by which everything is done")
    ap.add_argument("--time-budget", type=float, default=480,
                    help="seconds from the start, when --deadline is not given")
    ap.add_argument("--reserve", type=float, default=60,
                    help="seconds kept after training for export and evaluation")
    ap.add_argument("--smoke", action="store_true", help="tiny model, a few steps, every stage")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=128, help="sequences per step")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--min-lr-ratio", type=float, default=0.1)
    ap.add_argument("--warmup-steps", type=int, default=150)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--compile", choices=["auto", "on", "off"], default="auto")
    ap.add_argument("--moe-impl", choices=["auto", "grouped", "loop"], default="auto")
    ap.add_argument("--eval-every", type=float, default=40, help="seconds between held-out evals")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: time)")
    ap.add_argument("--debug-nan-step", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--eval-max-windows", type=int, default=0,
                    help="evaluate at most this many windows per set (0: all)")
    a = ap.parse_args()
    if a.smoke:
        a.seq_len, a.batch_size, a.warmup_steps = min(a.seq_len, 128), min(a.batch_size, 8), 5
        a.max_steps = a.max_steps or 12
        a.eval_max_windows = a.eval_max_windows or 4
        a.eval_every = 1e9
        if a.compile == "auto":
            a.compile = "off"
    a.deadline = a.deadline or (T0 + a.time_budget)
    a.out = a.out or os.path.join("/tmp/coldstream-demo",
                                  "demo-model-smoke" if a.smoke else "demo-model")
    return a


def load_tokens(data_dir, name, required=True):
    import numpy as np
    for fn in (name + ".u16", name + ".u16.xz"):
        path = os.path.join(data_dir, fn)
        if os.path.exists(path):
            raw = open(path, "rb").read()
            if fn.endswith(".xz"):
                raw = lzma.decompress(raw)
            return np.frombuffer(raw, dtype="<u2").astype(np.int32), path
    if required:
        raise SystemExit(f"train.py: {data_dir}/{name}.u16[.xz] is missing; run "
                         "tools/demo/tokenize_corpus.sh (or pass --data)")
    return None, None


def read_vocab_ids(tokenizer_model):
    vocab = os.path.splitext(tokenizer_model)[0] + ".vocab"
    pieces = [line.split("\t")[0] for line in open(vocab, encoding="utf-8")]
    return len(pieces), {p: i for i, p in enumerate(pieces)}


def param_report(arch, model):
    E, L, H, I = (arch["num_experts"], arch["num_hidden_layers"], arch["hidden_size"],
                  arch["moe_intermediate_size"])
    total = sum(p.numel() for p in model.parameters())
    expert = L * E * 3 * H * I
    non_expert = total - expert
    active = non_expert + L * arch["num_experts_per_tok"] * 3 * H * I
    packed = {f"int4_{bits}bit_bf16_rest_MB": round((expert * bits / 8 + non_expert * 2) / 1e6, 2)
              for bits in (4.5, 5.0)}
    return {"total": total, "expert": expert, "non_expert": non_expert, "active_per_token": active,
            "bf16_bytes": total * 2, **packed}


def check_moe(lib, model, arch, device, want):
    """Chooses the expert implementation: the grouped GEMM if it matches the per-expert loop
    (forward and gradients) on this machine, else the loop. Also compares the loop against the
    block's stock transformers forward (on a CPU copy), which checks how the fused expert
    tensors are read."""
    import torch
    E, K = arch["num_experts"], arch["num_experts_per_tok"]
    mlp = lib.moe_blocks(model)[0]
    x = torch.randn(2, 64, arch["hidden_size"], device=device) * 0.5
    info = {}
    try:
        cpu = copy.deepcopy(mlp).cpu().float()
        stock = cpu.forward(x.cpu())
        info["stock_returns_tuple"] = isinstance(stock, tuple)
        stock = stock[0] if isinstance(stock, tuple) else stock
        probs, w, i = lib.route(x.cpu().reshape(-1, x.shape[-1]), cpu.gate.weight, K, True)
        wgu, wd = lib.expert_weights(cpu, E, arch["hidden_size"], arch["moe_intermediate_size"])
        ours, _ = lib.experts_loop(x.cpu().reshape(-1, x.shape[-1]), i, w, wgu, wd, E)
        err = float((ours - stock.reshape(ours.shape)).abs().max() / stock.abs().max())
        info["loop_vs_stock_rel_err"] = err
        log(f"moe check: per-expert loop vs stock transformers block: rel err {err:.2e}")
        if err > 1e-4:
            log("WARNING: our reading of the fused expert tensors differs from transformers'; "
                "the export uses our reading, and the reload check at the end decides")
    except Exception as e:
        info["stock_error"] = repr(e)
        info["stock_returns_tuple"] = False
        log(f"moe check: the stock block could not run on the CPU ({e!r}); skipped")
    if want == "loop" or (device == "cpu" and want != "grouped"):
        return "loop", info
    try:
        worst = 0.0
        for case in ("routed", "empty experts"):
            xf = x.reshape(-1, x.shape[-1]).detach().requires_grad_(True)
            probs, w, i = lib.route(xf.detach(), mlp.gate.weight.detach(), K, True)
            if case == "empty experts":  # most experts get no token at all
                i = torch.arange(K, device=device).repeat(i.shape[0], 1)
            wgu, wd = lib.expert_weights(mlp, E, arch["hidden_size"],
                                         arch["moe_intermediate_size"])
            ref, _ = lib.experts_loop(xf, i, w, wgu, wd, E)
            got, _ = lib.experts_grouped(xf, i, w, wgu, wd, E)
            err = float((got - ref).abs().max() / ref.abs().max())
            gx_ref, gw_ref = torch.autograd.grad(ref.square().sum(), (xf, wgu))
            gx, gw = torch.autograd.grad(got.square().sum(), (xf, wgu))
            gerr = max(float((gx - gx_ref).abs().max() / gx_ref.abs().max()),
                       float((gw - gw_ref).abs().max() / gw_ref.abs().max()))
            log(f"moe check ({case}): grouped GEMM vs loop: rel err {err:.2e}, grads {gerr:.2e}")
            info[f"grouped_vs_loop_{case.replace(' ', '_')}"] = [err, gerr]
            worst = max(worst, err, gerr / 2) if math.isfinite(err + gerr) else math.inf
        if worst < 3e-2:
            return "grouped", info
        log("WARNING: grouped GEMM disagrees with the loop; using the loop")
    except Exception as e:
        info["grouped_error"] = repr(e)
        log(f"moe check: grouped GEMM unavailable ({e!r}); using the per-expert loop")
    return "loop", info


def main():
    a = parse_args()
    import numpy as np
    import torch
    import torch.nn.functional as F
    import transformers
    import train_lib as lib

    arch = dict(SMOKE_ARCH if a.smoke else ARCH)
    arch["max_position_embeddings"] = max(arch["max_position_embeddings"], a.seq_len)
    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, device {device}"
        f"{' (' + torch.cuda.get_device_name(0) + ')' if device == 'cuda' else ''}, "
        f"deadline in {a.deadline - time.time():.0f} s, smoke={a.smoke}")
    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    os.makedirs(a.out)
    metrics = {"args": {k: v for k, v in vars(a).items()}, "arch": arch,
               "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
               "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu"}

    if a.artifacts:
        os.makedirs(a.artifacts, exist_ok=True)

    def finish_files():
        try:
            with open(os.path.join(a.out, "train_log.txt"), "w") as f:
                f.write("\n".join(LOG_LINES) + "\n")
            with open(os.path.join(a.out, "metrics.json"), "w") as f:
                json.dump(metrics, f, indent=1, default=str)
            if a.artifacts:
                for fn in ("train_log.txt", "metrics.json", "loss.png", "loss.svg"):
                    if os.path.exists(os.path.join(a.out, fn)):
                        shutil.copy(os.path.join(a.out, fn), os.path.join(a.artifacts, fn))
        except Exception as e:
            log(f"writing the log and metrics failed: {e!r}")

    # Data and vocabulary.
    vocab_size, ids = read_vocab_ids(a.tokenizer)
    if vocab_size != arch["vocab_size"]:
        raise SystemExit(f"train.py: {a.tokenizer} has {vocab_size} pieces, the model expects "
                         f"{arch['vocab_size']}")
    train_np, train_path = load_tokens(a.data, "train")
    evalsets = {}
    for name in ("heldout", "heldout_small", "chat_heldout"):
        arr, _ = load_tokens(a.data, name, required=(name == "heldout"))
        if arr is not None:
            evalsets[name] = torch.from_numpy(arr)
    meta_path = os.path.join(a.data, "meta.json")
    if os.path.exists(meta_path):
        meta = json.load(open(meta_path))
        metrics["data_meta"] = meta
        import hashlib
        sha = hashlib.sha256(open(a.tokenizer, "rb").read()).hexdigest()
        if meta.get("vocab_size") not in (None, vocab_size) or \
                meta.get("tokenizer_sha256") not in (None, sha):
            raise SystemExit(f"train.py: {meta_path} was made with another tokenizer than "
                             f"{a.tokenizer}; run tools/demo/tokenize_corpus.sh again")
    if int(train_np.max()) >= vocab_size:
        raise SystemExit(f"train.py: {train_path} holds ids outside the vocabulary")
    data = torch.from_numpy(train_np).to(device)
    N = data.numel()
    log(f"train tokens {N:,} from {train_path}; eval sets: "
        + ", ".join(f"{k} {v.numel():,}" for k, v in evalsets.items()))

    # Model.
    model = lib.build_model(arch, device, a.seed)
    prm = param_report(arch, model)
    metrics["params"] = prm
    log("params: " + ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}"
                               for k, v in prm.items()))
    if not a.smoke and prm["bf16_bytes"] > 56 * 2**20:
        raise SystemExit("train.py: the BF16 checkpoint would not fit the 64 MiB the GPU host "
                         "returns")
    impl, info = check_moe(lib, model, arch, device, a.moe_impl)
    metrics["moe_check"] = dict(info, impl=impl)
    lib.patch_moe(model, arch, impl, info.get("stock_returns_tuple", False))
    model.train()

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or "embed" in n]
    opt_kw = dict(lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    groups = [{"params": decay, "weight_decay": a.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    try:
        opt = torch.optim.AdamW(groups, fused=(device == "cuda"), **opt_kw)
    except Exception as e:
        log(f"fused AdamW unavailable ({e!r}); using the default")
        opt = torch.optim.AdamW(groups, **opt_kw)

    V, T, B = arch["vocab_size"], a.seq_len, a.batch_size
    aux_coef = arch["router_aux_loss_coef"]

    def step_loss(x, y):
        lib.AUX.clear()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=(device == "cuda")):
            logits = model(input_ids=x, use_cache=False).logits
        ce = F.cross_entropy(logits.float().reshape(-1, V), y.reshape(-1))
        aux = torch.stack(list(lib.AUX)).mean()
        return ce + aux_coef * aux, ce, aux

    compiled = None
    if a.compile != "off" and device == "cuda":
        try:
            compiled = torch.compile(step_loss, dynamic=False)
        except Exception as e:
            log(f"torch.compile unavailable ({e!r})")
    gen = torch.Generator(device=device).manual_seed(a.seed)
    ar = torch.arange(T + 1, device=device)

    def batch():
        starts = torch.randint(0, N - T - 1, (B,), device=device, generator=gen)
        seq = data[starts[:, None] + ar[None]].long()
        return seq[:, :-1], seq[:, 1:]

    held_eval = evalsets["heldout"][: 64 * T] if not a.smoke else evalsets["heldout"][: 8 * T]
    history, evals = [], []
    params = [p for p in model.parameters()]
    snapshot, lr_scale, restores = None, 1.0, 0

    def take_snapshot():  # weights and optimizer state, on the GPU (cheap next to a step)
        return ([p.detach().clone() for p in params],
                [{k: (v.clone() if torch.is_tensor(v) else v) for k, v in opt.state[p].items()}
                 for p in params])

    def restore(snap):
        with torch.no_grad():
            for p, saved, st in zip(params, snap[0], snap[1]):
                p.copy_(saved)
                for k, v in st.items():
                    if torch.is_tensor(v) and k in opt.state[p]:
                        opt.state[p][k].copy_(v)
    train_end = a.deadline - a.reserve
    t_start = None  # set after the first (compiling) step
    step, tokens, last_eval, mid_saved = 0, 0, time.time(), False
    run_loss, run_aux, run_n = 0.0, 0.0, 0
    metrics["compile"] = "off"
    log(f"training: batch {B} x {T} = {B * T:,} tokens/step, peak lr {a.lr}, training ends in "
        f"{train_end - time.time():.0f} s")
    while True:
        now = time.time()
        if (a.max_steps and step >= a.max_steps) or (step > 0 and now >= train_end):
            break
        if t_start is None or step < a.warmup_steps:
            lr = a.lr * min(1.0, (step + 1) / a.warmup_steps)
        else:
            lr = a.lr
        if t_start is not None:
            p = min(1.0, (now - t_start) / max(1.0, train_end - t_start))
            if a.max_steps:
                p = step / a.max_steps
            lr *= a.min_lr_ratio + (1 - a.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p))
        lr *= lr_scale
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batch()
        if a.debug_nan_step and step == a.debug_nan_step:  # tests the recovery below
            with torch.no_grad():
                params[-1].fill_(float("nan"))
        fn = compiled or step_loss
        try:
            loss, ce, aux = fn(x, y)
            loss.backward()
        except Exception as e:
            opt.zero_grad(set_to_none=True)
            msg = f"{type(e).__name__}: {str(e)[:300]}"
            metrics.setdefault("step_errors", []).append(repr(e)[:2000])
            if compiled is not None:
                log(f"compiled step failed ({msg}); continuing eager")
                compiled = None
            elif impl == "grouped":
                log(f"step failed with grouped-GEMM experts ({msg}); switching to the loop")
                impl = "loop"
                lib.patch_moe(model, arch, impl, info.get("stock_returns_tuple", False))
            else:
                raise
            continue
        if a.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        tokens += B * T
        if t_start is None:
            loss_v = loss.item()  # waits for the first step (and the compilation) to finish
            t_start = time.time()
            metrics["compile"] = "on" if compiled else "off"
            metrics["first_step_seconds"] = round(t_start - now, 1)
            log(f"first step done in {t_start - now:.1f} s (compile {metrics['compile']}, "
                f"moe {impl}), loss {loss_v:.3f}")
            if not math.isfinite(loss_v):
                raise SystemExit("train.py: the first loss is not finite")
            if device == "cuda":
                metrics["peak_gpu_memory_GiB"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
                log(f"peak GPU memory so far {metrics['peak_gpu_memory_GiB']} GiB")
        run_loss += ce.detach()
        run_aux += aux.detach()
        run_n += 1
        if step % 25 == 0 or (a.smoke and step % 4 == 0):
            l, ax_ = (run_loss / run_n).item(), (run_aux / run_n).item()
            run_loss, run_aux, run_n = 0.0, 0.0, 0
            if not math.isfinite(l + ax_):
                metrics.setdefault("diverged_at_steps", []).append(step)
                if snapshot is None or restores >= 3:
                    log(f"loss is not finite at step {step} and there is nothing to go back to: "
                        "stopping")
                    if snapshot is not None:
                        restore(snapshot)
                    break
                restore(snapshot)
                restores += 1
                lr_scale *= 0.5
                log(f"loss is not finite at step {step}: back to the last good weights, "
                    f"learning rate x{lr_scale}")
                continue
            snapshot = take_snapshot()
            el = time.time() - t_start
            history.append({"step": step, "tokens": tokens, "seconds": round(el, 1),
                            "loss": round(l, 4), "aux": round(ax_, 4), "lr": lr})
            if step % 100 == 0 or a.smoke:
                log(f"step {step:5d}  tokens {tokens / 1e6:7.1f}M  loss {l:.4f}  aux {ax_:.3f}  "
                    f"lr {lr:.2e}  {tokens / max(el, 1e-6) / 1e3:.0f}k tok/s")
        if time.time() - last_eval > a.eval_every:
            ppl, nll, _, _ = lib.perplexity(model, held_eval, T, device, autocast=True)
            evals.append({"step": step, "tokens": tokens, "heldout_loss": round(nll, 4)})
            log(f"eval step {step}: held-out loss {nll:.4f} (ppl {ppl:.2f}) on "
                f"{held_eval.numel():,} tokens")
            last_eval = time.time()
        if not mid_saved and a.artifacts and t_start and not a.smoke and \
                time.time() - t_start > 0.5 * (train_end - t_start):
            try:  # insurance: weights come back even if a later stage dies
                lib.save_hf(model, arch, ids, a.out, a.tokenizer)
                lib.write_artifacts(a.out, a.artifacts)
                log(f"saved a mid-training copy at step {step}")
            except Exception as e:
                log(f"mid-training save failed: {e!r}")
            mid_saved = True
    train_seconds = time.time() - (t_start or time.time())
    metrics["train"] = {"steps": step, "tokens": tokens, "seconds": round(train_seconds, 1),
                        "tokens_per_second": round(tokens / max(train_seconds, 1e-6)),
                        "epochs": round(tokens / N, 2), "final_train_loss":
                        history[-1]["loss"] if history else None}
    metrics["history"], metrics["evals"] = history, evals
    log(f"training done: {step} steps, {tokens / 1e6:.1f}M tokens ({tokens / N:.2f} epochs) in "
        f"{train_seconds:.0f} s")

    # Export first, so the weights survive whatever comes after.
    lib.unpatch_moe(model)
    n_saved = lib.save_hf(model, arch, ids, a.out, a.tokenizer)
    log(f"saved {n_saved:,} parameters (BF16, hub names) to {a.out}")
    finish_files()
    if a.artifacts:
        parts, size = lib.write_artifacts(a.out, a.artifacts)
        log(f"artifacts: {len(parts)} parts, {size / 2**20:.1f} MiB")
    final_stages(a, lib, model, arch, ids, evalsets, device, metrics)
    try:
        title = (f"coldstream demo: {prm['total'] / 1e6:.1f}M params, {tokens / 1e6:.0f}M tokens, "
                 f"held-out ppl {metrics.get('eval', {}).get('heldout', {}).get('bf16_ppl', 0):.2f}")
        metrics["plot"] = os.path.basename(lib.plot_curve(history, evals,
                                                          os.path.join(a.out, "loss.png"), title))
    except Exception as e:
        log(f"plot failed: {e!r}")
    metrics["total_seconds"] = round(time.time() - T0, 1)
    log(f"all done in {time.time() - T0:.0f} s")
    finish_files()
    if a.artifacts:
        lib.write_artifacts(a.out, a.artifacts)
    print(json.dumps({"eval": metrics.get("eval"), "train": metrics["train"],
                      "reload_check": metrics.get("reload_check")}, indent=1))


def final_stages(a, lib, model, arch, ids, evalsets, device, metrics):
    """Reload check, official perplexities (the reloaded BF16 model), routing and samples.
    Each stage is optional: a failure is logged and recorded, never fatal."""
    import torch
    from transformers import AutoModelForCausalLM
    T = a.seq_len
    stock = None
    try:
        with torch.no_grad():  # train weights rounded to BF16: what was exported
            for p in model.parameters():
                p.copy_(p.to(torch.bfloat16).float())
        try:
            stock = AutoModelForCausalLM.from_pretrained(a.out, dtype=torch.float32,
                                                         attn_implementation="sdpa")
        except TypeError:  # transformers 4 spells it torch_dtype
            stock = AutoModelForCausalLM.from_pretrained(a.out, torch_dtype=torch.float32,
                                                         attn_implementation="sdpa")
        stock = stock.float().to(device).eval()
        probe = evalsets["heldout"][: 2 * T].reshape(2, T).to(device).long()
        with torch.no_grad():
            lib.patch_moe(model, arch, "loop",
                          metrics.get("moe_check", {}).get("stock_returns_tuple", False))
            ours = model(input_ids=probe, use_cache=False).logits.float()
            lib.unpatch_moe(model)
            theirs = stock(input_ids=probe, use_cache=False).logits.float()
        err = float((ours - theirs).abs().max() / theirs.abs().max())
        metrics["reload_check"] = {"rel_err": err, "ok": err < 1e-3}
        log(f"reload check (stock transformers on the export vs the training model, fp32): "
            f"rel err {err:.2e} -> {'OK' if err < 1e-3 else 'MISMATCH'}")
    except Exception as e:
        metrics["reload_check"] = {"ok": False, "error": repr(e)[:2000]}
        log(f"reload check failed: {e!r}\n{traceback.format_exc()}")
        lib.unpatch_moe(model)
    evm = stock if stock is not None else model
    metrics["eval_model"] = "reloaded export (stock transformers)" if stock is not None else \
        "training model (reload failed)"
    results = {}
    try:
        bf16 = copy.deepcopy(evm).to(torch.bfloat16)
        for name, toks in evalsets.items():
            ppl, nll, n, w = lib.perplexity(bf16, toks, T, device, deadline=a.deadline - 15,
                                            max_windows=a.eval_max_windows)
            results[name] = {"bf16_ppl": round(ppl, 4), "bf16_nll": round(nll, 5),
                             "predicted_tokens": n, "windows": w, "ctx": T}
            log(f"{name}: BF16 perplexity {ppl:.3f} ({n:,} predicted tokens, {w} windows of {T})")
        del bf16
        for name in ("heldout_small", "heldout"):
            if name in evalsets and time.time() < a.deadline - 25:
                ppl, nll, n, w = lib.perplexity(evm, evalsets[name], T, device,
                                                deadline=a.deadline - 15,
                                                max_windows=a.eval_max_windows)
                results[name].update(fp32_ppl=round(ppl, 4), fp32_windows=w)
                log(f"{name}: FP32 compute on the BF16 weights: perplexity {ppl:.3f}")
    except Exception as e:
        log(f"evaluation failed: {e!r}\n{traceback.format_exc()}")
        metrics["eval_error"] = repr(e)[:2000]
    metrics["eval"] = results
    try:
        metrics["routing"] = lib.routing_summary(evm, arch, evalsets["heldout"], T, device)
        for r in metrics["routing"]:
            log(f"routing layer {r['layer']}: entropy {r['entropy_bits']:.2f}/"
                f"{r['max_entropy_bits']:.0f} bits, max load {r['max_load_x_uniform']}x, min "
                f"{r['min_load_x_uniform']}x uniform, unused {r['experts_unused']}")
    except Exception as e:
        log(f"routing summary failed: {e!r}")
    if time.time() < a.deadline - 10:
        metrics["samples"] = samples(a, evm, ids, device)


def samples(a, model, ids, device):
    import torch
    try:
        import sentencepiece as spm
    except Exception as e:
        log(f"samples skipped: {e!r}")
        return []
    sp = spm.SentencePieceProcessor(model_file=a.tokenizer)
    prompts = ["What does the ls command do?", "What is the Python module json for?",
               "Define serendipity.", "Who are you?", "Tell me a fortune."]
    out = []
    stop = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    for q in prompts[: 2 if a.smoke else None]:
        if time.time() > a.deadline - 5:
            break
        text = f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"
        x = torch.tensor([sp.encode(text)], device=device)
        try:
            with torch.no_grad():
                g = model.generate(input_ids=x, attention_mask=torch.ones_like(x),
                                   max_new_tokens=8 if a.smoke else 96, do_sample=False,
                                   eos_token_id=stop, pad_token_id=stop[1],
                                   max_time=max(1.0, a.deadline - 8 - time.time()))
            reply = sp.decode(g[0, x.shape[1]:].tolist())
        except Exception as e:
            reply = f"(generation failed: {e!r})"
        out.append({"prompt": q, "greedy_reply": reply})
        log(f"sample: {q!r} -> {reply!r}")
    return out


if __name__ == "__main__":
    main()
