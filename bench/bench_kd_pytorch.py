#!/usr/bin/env python3
"""bench/bench_kd_pytorch.py — PyTorch's side of bench/bench_bert.c, in the same units: the knowledge-
distillation step at batch 16 x 128 (bert-large teacher forward under no_grad + bert-base student forward,
KD loss, backward, AdamW), the bert-base training step (forward, cross-entropy, backward, plain SGD update,
as bench_bert's), the bert-large forward at 16 x 128, and bert-base inference at batch 1 x 128. Same
random-weight models, same synthetic batch (bench_bert's generator: row lengths between T/2 and T), same
FLOP count. Each case runs in its own process, so its peak memory (maximum resident set, from
resource.getrusage: the interpreter and torch's libraries included, as bench_bert's child counts its own)
is its own; outputs are checked finite before timing; the median of the timed repeats is reported with
tokens/s and GFLOP/s, and the CPU seconds per timed step (the process's user + system time across the timed
steps over their number, as bench_bert counts them).

The model is test/models/torch_bert.py's plain functional BERT (no `transformers`), with Hugging Face's
dropouts in training (bench/kd_recipe_pytorch.py's train_logits). Runs with Debian's /usr/bin/python3 +
python3-torch (with libopenblas0-pthread: without it Debian's torch runs the reference BLAS), 2 threads by
default. The cases run with OPENBLAS_CORETYPE=SkylakeX (Haswell on a CPU without AVX-512) and
OMP_WAIT_POLICY=PASSIVE unless the environment sets them otherwise: the fastest PyTorch configuration
measured on the development machine.

  /usr/bin/python3 bench/bench_kd_pytorch.py [--case kd-step|base-train|large-forward|base-latency|all]
                                             [--reps 3] [--large-reps 1] [--threads 2] [--kd build/bench/bench_bert]
                                             [--precision f32|bf16|both] [--torch-python PYTHON]

--precision bf16 runs PyTorch's forwards (and losses) under torch.autocast("cpu", dtype=torch.bfloat16),
its mixed precision, and kd's bench_bert with --precision bf16 (bf16 activations, f32 master weights);
both runs every case in f32 and then in bf16.

With --kd, each case runs in kd's bench_bert first and then here, and a side-by-side table with the
ratios closes the run. --torch-python names a second Python whose PyTorch 2.x runs each case too, as one
more column (PyPI's torch in a venv: python3 -m venv ~/venv-torch2 && ~/venv-torch2/bin/pip install
torch numpy); one without torch, or with a 1.x, is skipped with a message, as is this interpreter's torch
when it has none. With a 2.x peer and the bf16 KD step measured, the run ends with the goal's verdict: kd's
bf16 KD step >= 1.3x PyTorch 2.x's bf16 autocast in wall and CPU seconds, with no more peak memory.
  /usr/bin/python3 bench/bench_kd_pytorch.py --kd build/bench/bench_bert --case kd-step --precision both \
      --torch-python ~/venv-torch2/bin/python

--gemm-probe [ROWS] prints this interpreter's PyTorch f32 and bf16 GEMM rates at a BERT linear's three
products (forward, input gradient, weight gradient; x ROWS x 768, W 3072 x 768): on a CPU without AVX-512
some of its bf16 products run far slower than f32, and this shows which.
  ~/venv-torch2/bin/python bench/bench_kd_pytorch.py --gemm-probe 512 --threads 2

--inference runs the inference table instead: bert-base and the SST-2 student (MiniLM-L6's shape, 3
layers) at batch 1 x 128 and 32 x 128, each in kd f32, kd bf16 and kd int8 (bench_bert --int8: the model as
`kd quantize` makes it, activations quantized per token; given by --kd), PyTorch f32
(the functional BERT above) and ONNX Runtime: the same configuration as a transformers
BertForSequenceClassification holding the same random weights, exported with torch.onnx.export (opset 14,
dynamic batch and length), run on the CPU execution provider with all graph optimisations and
intra-op threads = --threads, in f32 and after onnxruntime.quantization.quantize_dynamic (QInt8 weights,
int8 activations quantized per call). ORT's logits are checked against transformers' before timing (f32:
within 1e-3; int8: finite, its distance from f32 printed). Each in its own process; a table of seconds and
ratios closes the run. Peers that are not installed (onnxruntime, onnx, transformers, torch) are skipped.

  /usr/bin/python3 bench/bench_kd_pytorch.py --inference --kd build/bench/bench_bert [--reps 3] [--big-reps 2]

1 x 128 times 5 x --reps forwards (after 2 warm-up), 32 x 128 --big-reps (after 1).
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "models"))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # importing kd_recipe_pytorch leaves no __pycache__ in bench/

PRESETS = {"bert-large": (24, 1024, 16, 4096), "bert-base": (12, 768, 12, 3072), "minilm-l6": (6, 384, 12, 1536)}
# The inference table's models: (preset, layers or None for the preset's). The SST-2 student of the README
# is MiniLM-L6's shape cut to 3 layers (kd distill --init-from-teacher --student-layers 3).
INFER_MODELS = [("bert-base", None), ("minilm-l6", 3)]
INFER_SHAPES = [(1, 128), (32, 128)]
def _cpu_has_avx512():
    try:
        with open("/proc/cpuinfo") as f:
            return " avx512f " in f.read().replace("\n", " ")
    except OSError:
        return False


# OpenBLAS's SkylakeX kernels where the CPU runs AVX-512 (the fastest measured on the AVX-512 development
# machine), its Haswell ones elsewhere (SkylakeX would not run).
ENV_DEFAULTS = {"OPENBLAS_CORETYPE": "SkylakeX" if _cpu_has_avx512() else "Haswell", "OMP_WAIT_POLICY": "PASSIVE"}


def config(preset, layers=None):
    L, H, nh, F = PRESETS[preset]
    L = layers or L
    return {"num_hidden_layers": L, "hidden_size": H, "num_attention_heads": nh, "intermediate_size": F,
            "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "num_labels": 2}


def report_forward(name, c, B, T, med, reps, warmup):
    """The forward cases' two result lines (the side-by-side driver reads them)."""
    print(f"  {name} forward {B} x {T}: median {med:.3f} s over {reps} (after {warmup} warm-up), "
          f"{B * T / med:.0f} tokens/s, {forward_flops(c, B, T) / med * 1e-9:.1f} GFLOP/s")
    print(f"  memory (forward)      max RSS {max_rss_gib():.2f} GiB")
    return 0


def forward_flops(c, B, T):
    """bench_bert.c's count: 2 * (matmul parameters) per token plus attention's two batched products
    (4 * T * hidden per token per layer), plus pooler and classifier. A training step is ~3x this."""
    H, F, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    per_token = L * (2.0 * (4.0 * H * H + 2.0 * H * F) + 4.0 * T * H)
    return per_token * B * T + 2.0 * B * (H * H + H * c["num_labels"])


def make_model(torch, preset, seed, layers=None):
    """Random weights, named as BertForSequenceClassification names them: normal(0, 0.02) matrices,
    zero biases, unit LayerNorm weights."""
    c = config(preset, layers)
    L, H, F = c["num_hidden_layers"], c["hidden_size"], c["intermediate_size"]
    g = torch.Generator().manual_seed(seed)
    P = {}

    def lin(name, o, i):
        P[name + ".weight"] = torch.randn(o, i, generator=g) * 0.02
        P[name + ".bias"] = torch.zeros(o)

    def ln(name):
        P[name + ".weight"] = torch.ones(H)
        P[name + ".bias"] = torch.zeros(H)

    e = "bert.embeddings."
    P[e + "word_embeddings.weight"] = torch.randn(c["vocab_size"], H, generator=g) * 0.02
    P[e + "position_embeddings.weight"] = torch.randn(c["max_position_embeddings"], H, generator=g) * 0.02
    P[e + "token_type_embeddings.weight"] = torch.randn(c["type_vocab_size"], H, generator=g) * 0.02
    ln(e + "LayerNorm")
    for l in range(L):
        p = f"bert.encoder.layer.{l}."
        for n in ("query", "key", "value"):
            lin(p + "attention.self." + n, H, H)
        lin(p + "attention.output.dense", H, H)
        ln(p + "attention.output.LayerNorm")
        lin(p + "intermediate.dense", F, H)
        lin(p + "output.dense", H, F)
        ln(p + "output.LayerNorm")
    lin("bert.pooler.dense", H, H)
    lin("classifier", c["num_labels"], H)
    n = sum(t.numel() for t in P.values())
    print(f"  {preset} ({L} layers): {n / 1e6:.1f} M parameters", flush=True)
    return P, c


def make_batch(torch, B, T, vocab):
    """bench_bert.c's make_batch, the same LCG: row b has T - (b * 7919 mod T/2) tokens."""
    s, M = 12345, (1 << 64) - 1
    ids, mask = [[0] * T for _ in range(B)], [[0] * T for _ in range(B)]
    for b in range(B):
        n = T - (b * 7919) % (T // 2)
        for t in range(T):
            s = (s * 6364136223846793005 + 1442695040888963407) & M
            ids[b][t] = 101 if t == 0 else (1000 + (s >> 33) % (vocab - 1000)) if t < n else 0
            mask[b][t] = int(t < n)
    ids, mask = torch.tensor(ids), torch.tensor(mask)
    return ids, mask, torch.zeros_like(ids), torch.tensor([b % 2 for b in range(B)])


def max_rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed(step, reps, warmup):
    """The median wall time of `reps` steps after `warmup` untimed ones. CPU seconds per timed step are the
    process's CPU time (user + system, all threads) across the timed steps divided by `reps`, as bench_bert
    counts them: on a shared machine the wall time depends on the load, the CPU time much less."""
    t = []
    for r in range(reps + warmup):
        if r == warmup:
            c0 = time.process_time()
        t0 = time.perf_counter()
        step()
        t.append(time.perf_counter() - t0)
        # progress on stderr (the figures go to stdout): a bf16 step without native bf16 GEMMs takes minutes
        print(f"  {'warm-up' if r < warmup else 'timed'} step {r + 1}/{reps + warmup}: {t[-1]:.3f} s", file=sys.stderr,
              flush=True)
    cpu = (time.process_time() - c0) / reps
    print(f"  per timed step: {cpu:.3f} CPU s; load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return statistics.median(t[warmup:])


def run_case(name, a):
    import contextlib
    import torch
    import torch.nn.functional as F
    import torch_bert
    from kd_recipe_pytorch import train_logits

    amp = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if a.precision == "bf16" else contextlib.nullcontext

    rss_import = max_rss_gib()   # the interpreter and torch's libraries, before any tensor
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    print(f"[{name}] PyTorch {torch.__version__}, {torch.get_num_threads()} threads, {a.precision}, "
          + ", ".join(f"{k}={os.environ.get(k, '')}" for k in ENV_DEFAULTS), flush=True)
    print(f"  memory (import)       {rss_import:.2f} GiB resident after importing torch", flush=True)
    B, T = (1, 128) if name == "base-latency" else (16, 128)
    if name in ("large-forward", "base-latency"):
        preset = "bert-large" if name == "large-forward" else "bert-base"
        reps, warmup = (a.large_reps, 0) if name == "large-forward" else (5 * a.reps, 2)
        P, c = make_model(torch, preset, 1)
        ids, mask, types, _ = make_batch(torch, B, T, c["vocab_size"])

        def step():
            with torch.no_grad(), amp():
                z = torch_bert.logits(P, c, ids, mask, types)
            if not torch.isfinite(z).all():
                raise RuntimeError("forward: logits not finite")
        med = timed(step, reps, warmup)
        return report_forward(preset, c, B, T, med, reps, warmup)

    P, c = make_model(torch, "bert-base", 1)
    for t in P.values():
        t.requires_grad_(True)
    params = list(P.values())
    ids, mask, types, y = make_batch(torch, B, T, c["vocab_size"])
    if name == "base-train":
        # bench_bert's step: forward (train mode), cross-entropy, backward, SGD at 1e-4, zero the gradients.
        def step():
            with amp():
                loss = F.cross_entropy(train_logits(P, c, ids, mask, types, True), y)
            loss.backward()
            with torch.no_grad():
                gn = sum(float((p.grad * p.grad).sum()) for p in params)
                for p in params:
                    p.sub_(1e-4 * p.grad)
                    p.grad = None
            if not (torch.isfinite(loss) and gn == gn and gn < float("inf")):
                raise RuntimeError("training step: loss or gradient not finite")
        med = timed(step, a.reps, 1)
        fl = 3.0 * forward_flops(c, B, T)
        print(f"  bert-base training step {B} x {T}: median {med:.3f} s over {a.reps} (after 1 warm-up), "
              f"{B * T / med:.0f} tokens/s, ~{fl / med * 1e-9:.1f} GFLOP/s (3x forward FLOPs)")
        print(f"  memory (train step)   max RSS {max_rss_gib():.2f} GiB")
        return 0

    # kd-step: frozen bert-large teacher (eval, no_grad) + bert-base student, L = a T^2 KL + (1 - a) CE,
    # AdamW (decay 0.01 except biases and LayerNorm weights), clipping at 1.0: one step of kd distill.
    Pt, ct = make_model(torch, "bert-large", 2)
    nodecay = lambda n: n.endswith("bias") or "LayerNorm.weight" in n
    opt = torch.optim.AdamW([{"params": [t for n, t in P.items() if not nodecay(n)], "weight_decay": 0.01},
                             {"params": [t for n, t in P.items() if nodecay(n)], "weight_decay": 0.0}], lr=5e-5)
    Tk, alpha = 2.0, 0.5

    def step():
        with torch.no_grad(), amp():
            zt = torch_bert.logits(Pt, ct, ids, mask, types)
        with amp():
            zs = train_logits(P, c, ids, mask, types, True)
            loss = alpha * Tk * Tk * F.kl_div(F.log_softmax(zs / Tk, -1), F.softmax(zt / Tk, -1), reduction="batchmean") \
                + (1 - alpha) * F.cross_entropy(zs, y)
        opt.zero_grad()
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if not (torch.isfinite(loss) and torch.isfinite(gn)):
            raise RuntimeError("KD step: loss or gradient not finite")
    med = timed(step, a.reps, 1)   # AdamW's state is made in the warm-up step
    fl = forward_flops(ct, B, T) + 3.0 * forward_flops(c, B, T)
    print(f"  KD step {B} x {T} (bert-large teacher forward + bert-base student step, AdamW): median {med:.3f} s "
          f"over {a.reps} (after 1 warm-up), {B * T / med:.0f} tokens/s, ~{fl / med * 1e-9:.1f} GFLOP/s "
          f"(teacher forward + 3x student forward FLOPs)")
    print(f"  memory (KD step)      max RSS {max_rss_gib():.2f} GiB")
    return 0


def run_peer(a):
    """One inference case of a peer (--peer torch-f32|ort-f32|ort-int8) on --model/--layers at
    --batch x --seq: validate, warm up, time; prints bench_bert's figure lines."""
    import tempfile
    import torch
    torch.set_num_threads(a.threads)
    B, T = a.batch, a.seq
    reps, warmup = (5 * a.reps, 2) if B == 1 else (a.big_reps, 1)
    print(f"[{a.peer} {a.model} {B} x {T}] PyTorch {torch.__version__}, {a.threads} threads", flush=True)
    P, c = make_model(torch, a.model, 1, a.layers)
    ids, mask, types, _ = make_batch(torch, B, T, c["vocab_size"])
    if a.peer == "torch-f32":
        import torch_bert

        def step():
            with torch.no_grad():
                z = torch_bert.logits(P, c, ids, mask, types)
            if not torch.isfinite(z).all():
                raise RuntimeError("forward: logits not finite")
    else:
        import warnings
        warnings.filterwarnings("ignore")   # the tracer's notes on transformers' Python control flow
        import numpy as np
        import onnxruntime as ort
        import transformers
        from transformers import BertConfig, BertForSequenceClassification
        hf = BertConfig(vocab_size=c["vocab_size"], hidden_size=c["hidden_size"], num_hidden_layers=c["num_hidden_layers"],
                        num_attention_heads=c["num_attention_heads"], intermediate_size=c["intermediate_size"],
                        max_position_embeddings=c["max_position_embeddings"], type_vocab_size=c["type_vocab_size"],
                        layer_norm_eps=c["layer_norm_eps"], num_labels=c["num_labels"], hidden_act="gelu",
                        attn_implementation="eager")
        m = BertForSequenceClassification(hf).eval()
        missing, unexpected = m.load_state_dict(P, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise RuntimeError(f"weights do not fit transformers' model: missing {missing}, unexpected {unexpected}")
        with torch.no_grad():
            want = m(input_ids=ids, attention_mask=mask, token_type_ids=types).logits.numpy()
        names = ["input_ids", "attention_mask", "token_type_ids"]
        feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "token_type_ids": types.numpy()}
        tmp = tempfile.TemporaryDirectory()
        path = os.path.join(tmp.name, "model.onnx")
        t0 = time.perf_counter()
        torch.onnx.export(m, (ids, mask, types), path, input_names=names, output_names=["logits"], opset_version=14,
                          dynamic_axes={**{n: {0: "batch", 1: "seq"} for n in names}, "logits": {0: "batch"}})
        print(f"  exported to ONNX in {time.perf_counter() - t0:.1f} s (transformers {transformers.__version__}, "
              f"onnxruntime {ort.__version__})", flush=True)
        if a.peer == "ort-int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic
            q = os.path.join(tmp.name, "model.int8.onnx")
            t0 = time.perf_counter()
            quantize_dynamic(path, q, weight_type=QuantType.QInt8)
            print(f"  quantized (dynamic, QInt8 weights) in {time.perf_counter() - t0:.1f} s", flush=True)
            path = q
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        got = sess.run(None, feed)[0]
        diff = float(np.abs(got - want).max())
        if not np.isfinite(got).all() or (a.peer == "ort-f32" and not diff <= 1e-3):
            raise RuntimeError(f"ORT logits not finite or off transformers' (max |diff| {diff:.3g})")
        print(f"  logits checked: max |ORT - transformers| = {diff:.3g}", flush=True)

        def step():
            z = sess.run(None, feed)[0]
            if not np.isfinite(z).all():
                raise RuntimeError("forward: logits not finite")
    med = timed(step, reps, warmup)
    return report_forward(a.model, c, B, T, med, reps, warmup)


def gemm_probe(a):
    """PyTorch's f32 and bf16 GEMM rates at a BERT linear's three products (forward x W^T, the input's
    gradient g W, the weight's gradient g^T x; x [M, 768], W [3072, 768]), each the median of 3 calls after
    one: what its bf16 autocast step is made of on this CPU."""
    import torch
    torch.set_num_threads(a.threads)
    M, K, N = a.gemm_probe, 768, 3072
    print(f"PyTorch {torch.__version__}, {a.threads} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"x [{M}, {K}], W [{N}, {K}]")
    g = torch.Generator().manual_seed(1)
    x, w, gy = torch.randn(M, K, generator=g), torch.randn(N, K, generator=g), torch.randn(M, N, generator=g)
    for name, f in (("forward x W^T", lambda x, w, gy: x @ w.t()), ("input grad g W", lambda x, w, gy: gy @ w),
                    ("weight grad g^T x", lambda x, w, gy: gy.t() @ x)):
        row = []
        for dt in (torch.float32, torch.bfloat16):
            xx, ww, gg = x.to(dt), w.to(dt), gy.to(dt)
            f(xx, ww, gg)
            t = []
            for _ in range(3):
                t0 = time.perf_counter()
                f(xx, ww, gg)
                t.append(time.perf_counter() - t0)
            row.append(2.0 * M * N * K / statistics.median(t) * 1e-9)
        print(f"  {name:<18} f32 {row[0]:7.1f} GFLOP/s   bf16 {row[1]:7.2f} GFLOP/s   (bf16 / f32 {row[1] / row[0]:.3f})")
    return 0


def inference_table(a):
    """kd f32, kd bf16, kd int8, PyTorch f32, ORT f32, ORT int8 on each model and shape; then the table."""
    have = {}
    for mod in ("torch", "onnxruntime", "onnx", "transformers"):
        r = subprocess.run([sys.executable, "-c", f"import {mod}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        have[mod] = r.returncode == 0
    peers = [("PyTorch f32", "torch-f32", have["torch"])]
    ort_ok = have["torch"] and have["onnxruntime"] and have["onnx"] and have["transformers"]
    peers += [("ORT f32", "ort-f32", ort_ok), ("ORT int8", "ort-int8", ort_ok)]
    for label, _, ok in peers:
        if not ok:
            print(f"bench_kd_pytorch: {label} skipped (needs " + ("torch" if label.startswith("PyTorch") else
                  "torch, transformers, onnx and onnxruntime") + ")")
    env = dict(os.environ)
    for k, v in ENV_DEFAULTS.items():
        env.setdefault(k, v)
    rows, failed = [], 0
    for model, layers in INFER_MODELS:
        for B, T in INFER_SHAPES:
            res = {}
            if a.kd:
                for prec in ("f32", "bf16", "int8"):
                    # int8: the model as `kd quantize` makes it (dynamic per-token activations), f32 elsewhere
                    cmd = [a.kd, "--threads", str(a.threads), "--precision", "f32" if prec == "int8" else prec,
                           "--seq", str(T)] + (["--int8"] if prec == "int8" else [])
                    if B == 1:
                        cmd += ["--case", "base-latency", "--student-preset", model, "--reps", str(a.reps)]
                    else:
                        cmd += ["--case", "large-forward", "--teacher-preset", model, "--batch", str(B),
                                "--large-reps", str(a.big_reps), "--warmup", "1"]
                    if layers:
                        cmd += ["--layers", str(layers)]
                    r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
                    print(r.stdout, end="", flush=True)
                    failed |= r.returncode != 0
                    res["kd " + prec] = figures(r.stdout if r.returncode == 0 else None)
            for label, peer, ok in peers:
                if not ok:
                    continue
                cmd = [sys.executable, os.path.abspath(__file__), "--peer", peer, "--model", model, "--batch", str(B),
                       "--seq", str(T), "--threads", str(a.threads), "--reps", str(a.reps), "--big-reps", str(a.big_reps)]
                if layers:
                    cmd += ["--layers", str(layers)]
                r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
                print(r.stdout, end="", flush=True)
                if r.returncode != 0:
                    print(f"bench_kd_pytorch: {label} on {model} {B} x {T} failed", file=sys.stderr)
                    failed = 1
                res[label] = figures(r.stdout if r.returncode == 0 else None)
            name = f"{model}{f' ({layers} layers)' if layers else ''} {B} x {T}"
            rows.append((name, res))
    cols = ["kd f32", "kd bf16", "kd int8", "PyTorch f32", "ORT f32", "ORT int8"]
    for what, i, unit in (("median wall seconds per forward", 0, "s"), ("CPU seconds per forward (all threads)", 1, "s")):
        print(f"\n{what}, {a.threads} threads")
        print(f"{'model, batch':<34}" + "".join(f"{c:>12}" for c in cols))
        for name, res in rows:
            print(f"{name:<34}" + "".join(f"{(f'{res[c][i]:.3f}' if c in res and res[c][i] is not None else '-'):>12}"
                                          for c in cols))
    print("\nratios of wall times (above 1: the peer is slower than kd)")
    pairs = [("PyTorch f32", "kd f32"), ("ORT f32", "kd f32"), ("ORT f32", "kd bf16"), ("ORT int8", "kd f32"),
             ("ORT int8", "kd int8")]
    print(f"{'model, batch':<34}" + "".join(f"{p + ' / ' + k:>22}" for p, k in pairs))
    for name, res in rows:
        cell = lambda p, k: (f"{res[p][0] / res[k][0]:.2f}x" if p in res and k in res and res[p][0] and res[k][0]
                             else "-")
        print(f"{name:<34}" + "".join(f"{cell(p, k):>22}" for p, k in pairs))
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", default="all", choices=["all", "kd-step", "base-train", "large-forward", "base-latency"])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--large-reps", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="f32", choices=["f32", "bf16", "both"],
                    help="both: every case in f32 and then in bf16 (kd --precision bf16, PyTorch's bf16 autocast)")
    ap.add_argument("--kd", metavar="BENCH_BERT", help="kd's build/bench/bench_bert: run each case in kd first, "
                    "then in PyTorch, and print both side by side with the ratios")
    ap.add_argument("--torch-python", metavar="PYTHON", help="a Python with PyTorch 2.x (e.g. ~/venv-torch2/bin/python): "
                    "each case also runs there, as one more column of the table; skipped when it has no torch 2.x")
    ap.add_argument("--inference", action="store_true", help="the inference table: kd f32/bf16, PyTorch f32, ONNX "
                    "Runtime f32 and dynamic int8 on bert-base and the SST-2 student at 1 x 128 and 32 x 128")
    ap.add_argument("--big-reps", type=int, default=2, help="timed forwards at 32 x 128 (--inference)")
    ap.add_argument("--gemm-probe", type=int, nargs="?", const=512, metavar="ROWS", help="PyTorch's f32 and bf16 GEMM "
                    "rates at a BERT linear's forward, input-gradient and weight-gradient products (x: ROWS x 768, "
                    "512 rows without a number)")
    ap.add_argument("--peer", choices=["torch-f32", "ort-f32", "ort-int8"], help=argparse.SUPPRESS)
    ap.add_argument("--model", default="bert-base", choices=sorted(PRESETS), help=argparse.SUPPRESS)
    ap.add_argument("--layers", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--seq", type=int, default=128, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.peer:
        return run_peer(a)
    if a.gemm_probe is not None:
        if a.gemm_probe < 1:
            print("bench_kd_pytorch: --gemm-probe ROWS must be >= 1", file=sys.stderr)
            return 2
        return gemm_probe(a)
    if a.inference:
        return inference_table(a)
    if a.reps < 1 or a.large_reps < 1:
        print("bench_kd_pytorch: --reps and --large-reps must be >= 1", file=sys.stderr)
        return 2
    if a.case != "all" and not a.kd and not a.torch_python and a.precision != "both":
        # One case of this interpreter's PyTorch, in this process (the driver below runs each case so).
        try:
            import torch  # noqa: F401
        except ImportError as e:
            print(f"bench_kd_pytorch: skipped: {e} (needs python3-torch)")
            return 0
        return run_case(a.case, a)
    return compare(a)


def torch_version(python):
    """The version of `python`'s torch, or None (with the reason printed) where it cannot import torch."""
    try:
        r = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"bench_kd_pytorch: {python}: {e}")
        return None
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no message"])[-1]
        print(f"bench_kd_pytorch: {python} cannot import torch ({last})")
        return None
    return r.stdout.strip()


def peers(a):
    """[(label, python)] of the PyTorch builds that run the cases: this interpreter's (Debian's 1.13 when run
    with /usr/bin/python3) and --torch-python's, which must be a 2.x; those missing are skipped, said once."""
    out = []
    v = torch_version(sys.executable)
    if v:
        out.append((f"PyTorch {'.'.join(v.split('.')[:2])}", sys.executable))
    else:
        print(f"bench_kd_pytorch: PyTorch of {sys.executable} skipped")
    if a.torch_python:
        v = torch_version(a.torch_python)
        if v and v.split(".")[0].isdigit() and int(v.split(".")[0]) >= 2:
            out.append((f"PyTorch {'.'.join(v.split('.')[:2])}", a.torch_python))
            print(f"bench_kd_pytorch: PyTorch 2.x peer: {a.torch_python} (torch {v})")
        else:
            print(f"bench_kd_pytorch: PyTorch 2.x peer skipped: {a.torch_python} has "
                  + (f"torch {v}" if v else "no torch"))
    if len({label for label, _ in out}) < len(out):   # the same version twice: name them by interpreter
        out = [(f"{label} ({py})", py) for label, py in out]
    return out


def compare(a):
    """Each case (--case, or all four) at each precision, in its own process: kd's bench_bert (--kd) first,
    then every PyTorch of peers(); a side-by-side table of wall, CPU seconds and peak memory with ratios ends
    the run."""
    env = dict(os.environ)
    for k, v in ENV_DEFAULTS.items():
        env.setdefault(k, v)
    print("bench_kd_pytorch: each case in its own process, with "
          + " ".join(f"{k}={env[k]}" for k in ENV_DEFAULTS)
          + f", {a.threads} threads each", flush=True)
    cols = peers(a)
    cases = ("base-latency", "base-train", "large-forward", "kd-step") if a.case == "all" else (a.case,)
    precisions = ("f32", "bf16") if a.precision == "both" else (a.precision,)
    failed = 0
    rows = []
    for case in cases:
        for prec in precisions:
            res = {}
            if a.kd:
                r = subprocess.run([a.kd, "--case", case, "--reps", str(a.reps), "--large-reps", str(a.large_reps),
                                    "--threads", str(a.threads), "--precision", prec], stdout=subprocess.PIPE, text=True)
                print(r.stdout, end="", flush=True)
                if r.returncode != 0:
                    print(f"bench_kd_pytorch: kd's case {case} ({prec}) failed", file=sys.stderr)
                    failed = 1
                res["kd"] = figures(r.stdout if r.returncode == 0 else None)
            for label, py in cols:
                r = subprocess.run([py, os.path.abspath(__file__), "--case", case, "--reps", str(a.reps),
                                    "--large-reps", str(a.large_reps), "--threads", str(a.threads), "--precision", prec],
                                   env=env, stdout=subprocess.PIPE, text=True)
                print(r.stdout, end="", flush=True)
                if r.returncode != 0:
                    print(f"bench_kd_pytorch: {label}'s case {case} ({prec}) failed", file=sys.stderr)
                    failed = 1
                res[label] = figures(r.stdout if r.returncode == 0 else None)
            rows.append((f"{case} {prec}", res))
    if a.kd:
        side_by_side(rows, [label for label, _ in cols], a.threads)
        goal(rows, [label for label, _ in cols])
    return failed


def figures(text):
    """(median s, CPU s per step, max RSS GiB) from a case's output (kd's or ours), None where absent."""
    import re
    if not text:
        return (None, None, None)
    grab = lambda pat: (lambda m: float(m.group(1)) if m else None)(re.search(pat, text))
    return (grab(r"median ([0-9.]+) s"), grab(r"([0-9.]+) CPU s"), grab(r"max RSS ([0-9.]+) GiB"))


def side_by_side(rows, peers, threads):
    """rows: [(name, {column: figures()})]; kd's figures under "kd", each peer's under its label. One block per
    figure: wall, CPU seconds, peak memory, each with the ratio peer / kd."""
    cols = ["kd"] + peers
    heads = [p.split(" (")[0] + " / kd" for p in peers]
    w = max(len(c) for c in cols + heads) + 2
    print(f"\nside by side, {threads} threads each (ratio = PyTorch / kd: above 1 means kd is faster or smaller)")
    for what, i, fmt in (("median wall seconds per step", 0, "{:.3f}"),
                         ("CPU seconds per timed step (all threads)", 1, "{:.3f}"),
                         ("peak memory: max RSS of the case's process, GiB", 2, "{:.2f}")):
        print(f"\n{what}")
        print(f"{'case':<20}" + "".join(f"{c:>{w}}" for c in cols + heads))
        for name, res in rows:
            v = lambda c: res[c][i] if c in res else None
            cell = lambda c: fmt.format(v(c)) if v(c) is not None else "-"
            ratio = lambda p: f"{v(p) / v('kd'):.2f}x" if v(p) and v("kd") else "-"
            print(f"{name:<20}" + "".join(f"{cell(c):>{w}}" for c in cols) + "".join(f"{ratio(p):>{w}}" for p in peers))


def goal(rows, peers):
    """The mixed-precision goal, from the figures above: kd's bf16 KD step >= 1.3x PyTorch 2.x's bf16 autocast
    step in wall and CPU seconds, with no more peak memory."""
    res = dict(rows).get("kd-step bf16")
    two = [p for p in peers if p.startswith("PyTorch 2") or p.startswith("PyTorch 3")]
    if not res or not two or None in res.get("kd", (None,)) or None in res.get(two[0], (None,)):
        return
    k, p = res["kd"], res[two[0]]
    wall, cpu = p[0] / k[0], p[1] / k[1]
    met = wall >= 1.3 and cpu >= 1.3 and k[2] <= p[2]
    print(f"\ngoal: KD step 16 x 128 in bf16 >= 1.3x {two[0]}'s bf16 autocast (wall and CPU seconds), no more peak "
          f"memory: {'met' if met else 'missed'} (wall {wall:.2f}x, CPU {cpu:.2f}x, max RSS {k[2]:.2f} against "
          f"{p[2]:.2f} GiB)")


if __name__ == "__main__":
    sys.exit(main())
