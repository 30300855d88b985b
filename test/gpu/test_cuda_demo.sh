#!/usr/bin/env bash
# test/gpu/test_cuda_demo.sh — the demo's whole pipeline on the GPU (teacher fine-tuning, distillation,
# the student without distillation; bf16 GEMMs) reaches the CPU's dev accuracies within noise: each of the
# three final accuracies within 3 points of the CPU run's, and the distilled student at least 20 points
# above chance. Exits 77 when kd cannot open a CUDA device.
# usage: test_cuda_demo.sh PATH/TO/kd
set -u
kd="$1"
tmp=$(mktemp -d /tmp/kd_test_cuda_demo_XXXXXX)
trap 'rm -rf "$tmp"' EXIT

if ! "$kd" demo --device cuda --help >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "no CUDA device: skipped"; exit 77
fi
if ! "$kd" demo --quiet --device cuda --out "$tmp/gpu" >"$tmp/gpu.log" 2>&1; then
  if grep -q "device cuda:" "$tmp/gpu.log"; then cat "$tmp/gpu.log"; echo "skipped"; exit 77; fi
  echo "FAIL: kd demo --device cuda:"; cat "$tmp/gpu.log"; exit 1
fi
"$kd" demo --quiet --out "$tmp/cpu" >"$tmp/cpu.log" 2>&1 || { echo "FAIL: kd demo (cpu)"; cat "$tmp/cpu.log"; exit 1; }
cat "$tmp/gpu.log"
python3 - "$tmp" <<'PY'
import json, sys
tmp = sys.argv[1]
bad = 0
for m in ("teacher", "student-kd", "student-nokd"):
    acc = {}
    for dev in ("cpu", "gpu"):
        ev = [json.loads(l) for l in open(f"{tmp}/{dev}/{m}/metrics.jsonl") if l.startswith('{"type":"eval"')]
        acc[dev] = ev[-1]["accuracy"]
    ok = abs(acc["gpu"] - acc["cpu"]) <= 0.03
    print(f"{m}: dev accuracy cpu {acc['cpu']:.4f} gpu {acc['gpu']:.4f} {'ok' if ok else 'FAIL (more than 3 points apart)'}")
    bad += not ok
    if m == "student-kd" and acc["gpu"] < 0.7:
        print(f"FAIL: the distilled student reached only {acc['gpu']:.4f} on the GPU"); bad += 1
print(f"test_cuda_demo: {3 + 1 - bad} passed, {bad} failed")
sys.exit(1 if bad else 0)
PY
