#!/usr/bin/env python3
"""bench/gpu/bench_kd_gpu_pytorch.py — PyTorch's side of kd's distillation step on a GPU: bench_bert's
kd-step (a bert-large teacher forward in eval mode without a graph, then the bert-base student's forward in
training mode with dropout 0.1, L = alpha T^2 KL(softmax(zT/T) || softmax(zS/T)) (batchmean) +
(1 - alpha) CE(zS, y) with alpha 0.5 and T 2, backward, gradient-norm clipping at 1.0, AdamW at lr 5e-5 with
weight decay 0.01 except biases and LayerNorm weights), in PyTorch eager under
torch.autocast(bfloat16) with float32 master weights and PyTorch's default AdamW implementation.

Per batch size it prints three cases, each timed alone: kd-step (the whole step), teacher-forward (the
teacher's forward only) and student-step (the step with the teacher's logits given, as
`kd distill --cache-teacher` runs it); for each the median of --reps timed steps after --warmup untimed
ones (torch.cuda.synchronize() before and after every step), tokens/s (B * T / step), TFLOP/s by
bench_bert's count (attention over all T positions, a training step = 3x its forward), and the peak of
torch.cuda.max_memory_allocated(), reset before each case (weights, gradients, AdamW state and
activations). The attention is F.scaled_dot_product_attention with a boolean padding mask; the kernels
PyTorch chose for it (flash, memory-efficient, cuDNN or math) are read from the profiler and printed;
with torch < 2.0 (no SDPA) or --attention manual it is softmax(QK^T / sqrt(d)) V written out.

The models are bench_kd_pytorch.py's (random weights named as BertForSequenceClassification names them,
normal(0, 0.02) matrices, seeds 2 for the teacher and 1 for the student), the batch is bench_bert's
make_batch (row b has T - (b * 7919 mod T/2) tokens, labels b mod 2), so the figures sit beside
bench_kd_pytorch's CPU ones and kd's. Before timing, the forward used here (float32, dropout off) is
checked against kd_recipe_pytorch.train_logits (the plain softmax(QK^T) V attention) on the same batch.

  python3 bench/gpu/bench_kd_gpu_pytorch.py [--sizes 16x128,64x128] [--reps 10] [--warmup 3]
      [--device cuda] [--no-autocast] [--preset-teacher bert-large] [--preset-student bert-base]
      [--attention sdpa|manual] [--adamw default|foreach|fused] [--teacher-weights f32|bf16]
      [--json results.json]

Smoke run on a CPU (tiny models: 2 layers, hidden 64, 2 heads, intermediate 128):

  python3 bench/gpu/bench_kd_gpu_pytorch.py --device cpu --preset-teacher tiny --preset-student tiny \
      --sizes 4x32,8x64 --reps 2 --warmup 1

Exits 1 with a message when torch is missing, the device is unavailable, the check fails, or a loss or
gradient norm is not finite; 2 on a bad flag.
"""
import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # importing the bench/ modules leaves no __pycache__ behind
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "..", "test", "models"))

TINY = (2, 64, 2, 128)  # layers, hidden, heads, intermediate
PRESET_NAMES = ("bert-large", "bert-base", "tiny")


def fail(prog, msg, rc=1):
    print(f"{prog}: {msg}", file=sys.stderr)
    return rc


def import_torch(prog):
    """torch, or None after a message."""
    try:
        import torch
        return torch
    except ImportError as e:
        print(f"{prog}: cannot import torch ({e}); install PyTorch for this interpreter", file=sys.stderr)
        return None


def open_device(torch, name, prog):
    """torch.device, or None after a message saying why the device cannot be used."""
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        print(f"{prog}: --device {name}: {e}", file=sys.stderr)
        return None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            print(f"{prog}: --device {name}: no CUDA device is available to torch {torch.__version__} "
                  f"(built for CUDA {torch.version.cuda}); use --device cpu for a smoke run", file=sys.stderr)
            return None
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        if idx >= torch.cuda.device_count():
            print(f"{prog}: --device {name}: only {torch.cuda.device_count()} CUDA device(s)", file=sys.stderr)
            return None
        torch.cuda.set_device(idx)
        dev = torch.device("cuda", idx)
    elif dev.type != "cpu":
        print(f"{prog}: --device {name}: expected cuda, cuda:N or cpu", file=sys.stderr)
        return None
    return dev


def device_name(torch, dev):
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        return f"{p.name} ({p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs)"
    return f"CPU, {torch.get_num_threads()} threads"


def sync(torch, dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def reset_peak(torch, dev):
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)


def peak_gib(torch, dev):
    """Peak of torch.cuda.max_memory_allocated since the last reset; None on the CPU."""
    return torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None


def fmt_gib(v):
    return "n/a on cpu" if v is None else f"{v:.2f} GiB"


def autocast(torch, dev, enabled):
    """bf16 autocast on the device (float32 weights stay the masters); a no-op context when disabled."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)


def bench_kd():
    """bench_kd_pytorch, with the tiny preset added to its table (the same config() and make_model())."""
    import bench_kd_pytorch
    bench_kd_pytorch.PRESETS.setdefault("tiny", TINY)
    return bench_kd_pytorch


def make_model(torch, preset, seed, dev, dtype=None):
    """bench_kd_pytorch.make_model's weights (generated on the CPU, so identical on every device), moved to
    dev; float32 unless dtype says otherwise."""
    P, c = bench_kd().make_model(torch, preset, seed)
    P = {n: t.to(dev, dtype=dtype or torch.float32) for n, t in P.items()}
    return P, c


def have_sdpa(torch):
    return hasattr(torch.nn.functional, "scaled_dot_product_attention")


def logits(P, c, ids, keep, types, drop, attention):
    """BertForSequenceClassification's logits, as kd_recipe_pytorch.train_logits computes them (Hugging
    Face's dropouts when drop is True: after the embeddings' LayerNorm, on the attention probabilities, on
    each sub-layer's output before the residual add, on the pooled output), with the attention either
    F.scaled_dot_product_attention (attention == "sdpa") or softmax(QK^T / sqrt(d) masked) V written out.
    ids, types: [B, T] int64; keep: [B, T] bool, True on real tokens."""
    import torch
    import torch.nn.functional as F
    B, T = ids.shape
    H, nh = c["hidden_size"], c["num_attention_heads"]
    dh, eps = H // nh, c.get("layer_norm_eps", 1e-12)
    p_hidden = c.get("hidden_dropout_prob", 0.1) if drop else 0.0
    p_attn = c.get("attention_probs_dropout_prob", 0.1) if drop else 0.0
    hd = lambda t: F.dropout(t, p_hidden, drop)
    e = "bert.embeddings."
    x = P[e + "word_embeddings.weight"][ids] + P[e + "token_type_embeddings.weight"][types] \
        + P[e + "position_embeddings.weight"][:T]
    x = hd(F.layer_norm(x, (H,), P[e + "LayerNorm.weight"], P[e + "LayerNorm.bias"], eps))
    m = keep[:, None, None, :]  # [B, 1, 1, T]: every query row sees the row's real keys
    for l in range(c["num_hidden_layers"]):
        p = f"bert.encoder.layer.{l}."
        lin = lambda t, n: F.linear(t, P[p + n + ".weight"], P[p + n + ".bias"])
        heads = lambda t: t.view(B, T, nh, dh).transpose(1, 2)
        q, k, v = (heads(lin(x, "attention.self." + n)) for n in ("query", "key", "value"))
        if attention == "sdpa":
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=m, dropout_p=p_attn)
        else:
            s = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
            s = s.masked_fill(~m, torch.finfo(s.dtype).min)
            att = F.dropout(torch.softmax(s, dim=-1), p_attn, drop) @ v
        att = att.transpose(1, 2).reshape(B, T, H)
        x = F.layer_norm(hd(lin(att, "attention.output.dense")) + x, (H,),
                         P[p + "attention.output.LayerNorm.weight"], P[p + "attention.output.LayerNorm.bias"], eps)
        f = lin(F.gelu(lin(x, "intermediate.dense")), "output.dense")
        x = F.layer_norm(hd(f) + x, (H,), P[p + "output.LayerNorm.weight"], P[p + "output.LayerNorm.bias"], eps)
    pooled = torch.tanh(F.linear(x[:, 0], P["bert.pooler.dense.weight"], P["bert.pooler.dense.bias"]))
    return F.linear(hd(pooled), P["classifier.weight"], P["classifier.bias"])


def kd_loss(torch, zs, zt, y, alpha, temp):
    """alpha T^2 KL(softmax(zt/T) || softmax(zs/T)) (batchmean) + (1 - alpha) CE(zs, y), in float32."""
    import torch.nn.functional as F
    zs, zt = zs.float(), zt.float()
    kl = F.kl_div(F.log_softmax(zs / temp, -1), F.softmax(zt / temp, -1), reduction="batchmean")
    return alpha * temp * temp * kl + (1 - alpha) * F.cross_entropy(zs, y)


def make_adamw(torch, P, lr, impl):
    """AdamW as bench_kd_pytorch and kd_recipe_pytorch build it (decay 0.01 except biases and LayerNorm
    weights); impl "default" leaves the implementation to PyTorch. Returns (optimizer, what ran)."""
    nodecay = lambda n: n.endswith("bias") or "LayerNorm.weight" in n
    groups = [{"params": [t for n, t in P.items() if not nodecay(n)], "weight_decay": 0.01},
              {"params": [t for n, t in P.items() if nodecay(n)], "weight_decay": 0.0}]
    kw = {}
    if impl == "foreach":
        kw["foreach"] = True
    elif impl == "fused":
        kw["fused"] = True
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, **kw)
    if impl != "default":
        return opt, impl
    # What PyTorch's default resolves to for these parameters (a private helper, present since 2.0).
    try:
        from torch.optim.optimizer import _default_to_fused_or_foreach
        fused, foreach = _default_to_fused_or_foreach(list(P.values()), differentiable=False, use_fused=False)
        what = "fused" if fused else "foreach" if foreach else "for-loop"
    except (ImportError, TypeError):
        what = "for-loop" if not opt.defaults.get("foreach") else "foreach"
    return opt, f"PyTorch's default ({what})"


def attention_kernels(torch, fn):
    """The aten::_scaled_dot_product_* ops that ran in fn() (the kernel SDPA dispatched to), from the
    profiler; 'not reported' when the profiler is unavailable."""
    try:
        from torch.profiler import ProfilerActivity, profile
    except ImportError:
        return "not reported"
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    names = sorted({ev.key for ev in prof.key_averages() if ev.key.startswith("aten::_scaled_dot_product")})
    return ", ".join(n[len("aten::"):] for n in names) or "none found"


def parse_sizes(text):
    """[(B, T)] from '16x128,64x128', or None."""
    out = []
    for part in text.split(","):
        b, sep, t = part.strip().lower().partition("x")
        if not sep or not b.isdigit() or not t.isdigit() or int(b) < 1 or int(t) < 2 or int(t) > 512:
            return None
        out.append((int(b), int(t)))
    return out or None


def write_json(path, obj):
    """Written to path.tmp and renamed, so an interrupted run leaves the previous file whole."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def add_model_flags(ap):
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (cuda)")
    ap.add_argument("--no-autocast", action="store_true", help="run in float32 (no bf16 autocast)")
    ap.add_argument("--preset-teacher", default="bert-large", choices=PRESET_NAMES)
    ap.add_argument("--preset-student", default="bert-base", choices=PRESET_NAMES)
    ap.add_argument("--attention", default="sdpa", choices=["sdpa", "manual"],
                    help="F.scaled_dot_product_attention, or softmax(QK^T) V written out (sdpa)")
    ap.add_argument("--adamw", default="default", choices=["default", "foreach", "fused"],
                    help="AdamW implementation (PyTorch's default)")
    ap.add_argument("--teacher-weights", default="f32", choices=["f32", "bf16"],
                    help="dtype the frozen teacher is stored in (f32: autocast casts it every forward)")
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")


def check_model_flags(a, prog, torch):
    """The attention variant to run, or None after a message."""
    if a.threads < 0 or a.lr <= 0 or not 0 <= a.alpha <= 1 or a.temperature <= 0:
        print(f"{prog}: expected --threads >= 0, --lr > 0, --alpha in [0, 1], --temperature > 0", file=sys.stderr)
        return None
    if a.attention == "sdpa" and not have_sdpa(torch):
        print(f"{prog}: torch {torch.__version__} has no F.scaled_dot_product_attention (torch >= 2.0): "
              f"running the written-out attention instead", flush=True)
        return "manual"
    return a.attention


def timed(torch, dev, step, check, reps, warmup):
    """Median seconds of step() over reps runs after warmup untimed ones, synchronised on both sides;
    check(out) runs after each (outside the timing) and raises on a bad result."""
    ts = []
    for _ in range(warmup + reps):
        sync(torch, dev)
        t0 = time.perf_counter()
        out = step()
        sync(torch, dev)
        ts.append(time.perf_counter() - t0)
        check(out)
    return statistics.median(ts[warmup:]), min(ts[warmup:])


class NotFinite(RuntimeError):
    pass


def main():
    prog = "bench_kd_gpu_pytorch"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="16x128,64x128", help="batch x tokens, comma-separated (16x128,64x128)")
    ap.add_argument("--reps", type=int, default=10, help="timed steps per case (10)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps before them (3)")
    add_model_flags(ap)
    a = ap.parse_args()
    sizes = parse_sizes(a.sizes)
    if sizes is None:
        return fail(prog, f"--sizes '{a.sizes}': expected BxT[,BxT...] with B >= 1 and 2 <= T <= 512", 2)
    if a.reps < 1 or a.warmup < 0:
        return fail(prog, "expected --reps >= 1 and --warmup >= 0", 2)
    torch = import_torch(prog)
    if torch is None:
        return 1
    attention = check_model_flags(a, prog, torch)
    if attention is None:
        return 2
    dev = open_device(torch, a.device, prog)
    if dev is None:
        return 1
    if a.threads:
        torch.set_num_threads(a.threads)
    bkd = bench_kd()
    from kd_recipe_pytorch import train_logits

    amp_on = not a.no_autocast
    amp = lambda: autocast(torch, dev, amp_on)
    print(f"{prog}: torch {torch.__version__} (CUDA {torch.version.cuda}), device {device_name(torch, dev)}; "
          f"{'bf16 autocast, float32 master weights' if amp_on else 'float32, no autocast'}", flush=True)
    torch.manual_seed(1)
    Pt, ct = make_model(torch, a.preset_teacher, 2, dev, torch.bfloat16 if a.teacher_weights == "bf16" else None)
    Ps, cs = make_model(torch, a.preset_student, 1, dev)
    if ct["vocab_size"] != cs["vocab_size"]:
        return fail(prog, "teacher and student vocabularies differ")
    for t in Ps.values():
        t.requires_grad_(True)
    params = list(Ps.values())
    opt, adamw_what = make_adamw(torch, Ps, a.lr, a.adamw)
    alpha, temp = a.alpha, a.temperature

    def batch(B, T):
        ids, mask, types, y = bkd.make_batch(torch, B, T, cs["vocab_size"])
        return ids.to(dev), mask.bool().to(dev), types.to(dev), y.to(dev)

    # Validate: the forward timed here, in float32 without dropout, against kd_recipe_pytorch.train_logits
    # (the written-out attention with Hugging Face's additive mask) on the first size's batch.
    B0, T0 = sizes[0]
    ids, keep, types, y = batch(B0, T0)
    with torch.no_grad():
        for what, P, c in (("teacher", Pt, ct), ("student", Ps, cs)):
            Pf = {n: t.float() for n, t in P.items()}
            ref = train_logits(Pf, c, ids, keep.long(), types, False)
            got = logits(Pf, c, ids, keep, types, False, attention)
            err = (got - ref).abs().max().item()
            tol = 1e-4 + 1e-3 * ref.abs().max().item()
            if not err <= tol:
                return fail(prog, f"check: {what} {attention} forward differs from kd_recipe_pytorch.train_logits by "
                                  f"{err:.3g} (tolerance {tol:.3g}) at {B0} x {T0}")
            print(f"  check: {what} forward ({attention}, float32) vs kd_recipe_pytorch.train_logits at {B0} x {T0}: "
                  f"max |difference| {err:.2e} <= {tol:.2e}", flush=True)
        del Pf, ref, got

    if attention == "sdpa":
        def teacher_once():
            with torch.no_grad(), amp():
                logits(Pt, ct, ids, keep, types, False, attention)

        def student_once():
            with amp():
                zs = logits(Ps, cs, ids, keep, types, True, attention)
            zs.float().sum().backward()
            for p in params:
                p.grad = None
        att_what = (f"F.scaled_dot_product_attention with a boolean padding mask; aten ops run: teacher forward "
                    f"{attention_kernels(torch, teacher_once)}; student forward + backward (dropout 0.1) "
                    f"{attention_kernels(torch, student_once)}")
    else:
        att_what = "softmax(QK^T / sqrt(d), masked) V written out (matmul, masked_fill, softmax, dropout, matmul)"
    print(f"  attention: {att_what}")
    print(f"  optimizer: AdamW {adamw_what}, lr {a.lr}, decay 0.01 (not on biases and LayerNorm weights), "
          f"clipping at 1.0; KD alpha {alpha}, T {temp}; {a.warmup} warm-up + median of {a.reps} timed steps",
          flush=True)

    def check_step(out):
        loss, gn = out
        if not (math.isfinite(loss.item()) and math.isfinite(gn.item())):
            raise NotFinite(f"loss {loss.item()} or gradient norm {gn.item()} not finite")

    def check_logits(z):
        if not bool(torch.isfinite(z).all()):
            raise NotFinite("teacher logits not finite")

    results = []
    for B, T in sizes:
        ids, keep, types, y = batch(B, T)
        with torch.no_grad(), amp():
            zt_fixed = logits(Pt, ct, ids, keep, types, False, attention).float()

        def teacher_forward():
            with torch.no_grad(), amp():
                return logits(Pt, ct, ids, keep, types, False, attention)

        def student_step(zt):
            with amp():
                zs = logits(Ps, cs, ids, keep, types, True, attention)
            loss = kd_loss(torch, zs, zt, y, alpha, temp)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            return loss.detach(), gn

        cases = (("kd-step", lambda: student_step(teacher_forward()), check_step,
                  bkd.forward_flops(ct, B, T) + 3 * bkd.forward_flops(cs, B, T)),
                 ("teacher-forward", teacher_forward, check_logits, bkd.forward_flops(ct, B, T)),
                 ("student-step", lambda: student_step(zt_fixed), check_step, 3 * bkd.forward_flops(cs, B, T)))
        row = {"batch": B, "tokens": T, "real_tokens": int(keep.sum().item())}
        for name, step, check, flops in cases:
            opt.zero_grad(set_to_none=True)
            sync(torch, dev)
            reset_peak(torch, dev)
            try:
                med, best = timed(torch, dev, step, check, a.reps, a.warmup)
            except NotFinite as e:
                return fail(prog, f"{name} at {B} x {T}: {e}")
            except RuntimeError as e:
                if "out of memory" in str(e):
                    return fail(prog, f"{name} at {B} x {T}: out of device memory ({e})")
                raise
            peak = peak_gib(torch, dev)
            row[name] = {"median_s": med, "min_s": best, "tokens_per_s": B * T / med,
                         "tflops": flops / med * 1e-12, "peak_gib": peak}
            print(f"  {name:<15} {B:>3} x {T:<4} median {med * 1e3:9.2f} ms (min {best * 1e3:.2f}) "
                  f"{B * T / med:10.0f} tokens/s {flops / med * 1e-12:8.3f} TFLOP/s  peak {fmt_gib(peak)}", flush=True)
        ratio = row["kd-step"]["median_s"] / row["student-step"]["median_s"]
        print(f"  {B} x {T}: kd-step / student-step {ratio:.2f} (what caching the teacher's logits would save); "
              f"{row['real_tokens']} of {B * T} tokens are real", flush=True)
        results.append(row)

    if a.json:
        write_json(a.json, {
            "bench": prog, "torch": torch.__version__, "cuda": torch.version.cuda,
            "device": device_name(torch, dev), "autocast": "bf16" if amp_on else None,
            "teacher": a.preset_teacher, "student": a.preset_student, "teacher_weights": a.teacher_weights,
            "attention": att_what, "adamw": adamw_what, "reps": a.reps, "warmup": a.warmup, "sizes": results})
        print(f"  results written to {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
