#!/usr/bin/env python3
"""bench/gpu/bench_sdpa_pytorch.py — PyTorch's torch.nn.functional.scaled_dot_product_attention (bf16, on
cuda, no mask, no dropout) forward and backward at the shapes of bench_gpu_attention.c, timed the same way:
CUDA events, median of repeats, L2 flushed before each. With --kd LOG (the output of bench_gpu_attention)
it prints kd's bf16-storage tensor-core time (the "RESULT kd bf16" rows, kd_cu_attention_bf16) next to
PyTorch's and the ratio (> 1: kd is faster); both sides read and write bf16 q, k, v, O and gradients.

    python3 bench/gpu/bench_sdpa_pytorch.py [--reps N] [--quick] [--kd bench_gpu_attention.log]

Exits 0 with a message when torch or a CUDA device is missing (nothing to compare against)."""
import argparse
import sys

# The shapes of bench_gpu_attention.c, in its order: BERT base (12 heads) and large (16 heads) at 128
# tokens, batch 16 and 64, first.
SHAPES = [(16, 12, 128, 64), (64, 12, 128, 64), (16, 16, 128, 64), (64, 16, 128, 64), (32, 12, 128, 64),
          (8, 12, 512, 64), (8, 16, 512, 64), (16, 12, 256, 32), (4, 8, 1024, 128)]


def read_kd(path):
    """{(B, H, T, D): (fwd_ms, bwd_ms)} from the RESULT lines of bench_gpu_attention (bf16-storage rows;
    the "bf16in" rows, bf16 inputs with f32 outputs, are not PyTorch's bf16 SDPA and are skipped)."""
    out = {}
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) == 9 and p[0] == "RESULT" and p[1] == "kd" and p[2] == "bf16":
                out[tuple(int(x) for x in p[3:7])] = (float(p[7]), float(p[8]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--kd", help="bench_gpu_attention output to compare against")
    args = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("bench_sdpa_pytorch: torch is not installed, skipping the PyTorch comparison")
        return 0
    if not torch.cuda.is_available():
        print("bench_sdpa_pytorch: torch has no CUDA device, skipping the PyTorch comparison")
        return 0
    kd = read_kd(args.kd) if args.kd else {}
    dev = torch.device("cuda")
    flush = torch.empty(256 << 20, dtype=torch.uint8, device=dev)

    def time_ms(fn, reps):
        for _ in range(2):
            fn()
        ts = []
        for _ in range(reps):
            flush.random_(0, 255)
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            fn()
            e1.record()
            torch.cuda.synchronize()
            ts.append(e0.elapsed_time(e1))
        ts.sort()
        return ts[len(ts) // 2]

    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    print(f"{'B x H x T x D':<22} {'torch fwd':>10} {'TF/s':>7} {'torch bwd':>10} {'TF/s':>7}"
          f" {'kd fwd':>8} {'kd bwd':>8} {'fwd t/kd':>9} {'bwd t/kd':>9}")
    shapes = SHAPES[:4] if args.quick else SHAPES
    for (B, H, T, D) in shapes:
        torch.manual_seed(0)
        q, k, v = (torch.randn(B, H, T, D, device=dev, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        do = torch.randn(B, H, T, D, device=dev, dtype=torch.bfloat16)
        with torch.no_grad():
            ms_f = time_ms(lambda: F.scaled_dot_product_attention(q, k, v), args.reps)
        out = F.scaled_dot_product_attention(q, k, v)

        def bwd():
            q.grad = k.grad = v.grad = None
            out.backward(do, retain_graph=True)

        ms_b = time_ms(bwd, args.reps)
        flop = 4.0 * B * H * T * T * D
        row = f"{B}x{H}x{T}x{D}"
        line = f"{row:<22} {ms_f:10.3f} {flop / ms_f / 1e9:7.1f} {ms_b:10.3f} {2.5 * flop / ms_b / 1e9:7.1f}"
        if (B, H, T, D) in kd:
            kf, kb = kd[(B, H, T, D)]
            line += f" {kf:8.3f} {kb:8.3f} {ms_f / kf:9.2f} {ms_b / kb:9.2f}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
