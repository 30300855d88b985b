#!/usr/bin/env bash
# test/gpu/test_cuda_demo.sh — the demo's whole pipeline on the GPU (teacher fine-tuning, distillation,
# the student without distillation; mixed precision, cuda's default) reaches the CPU's f32 dev accuracies
# within noise. Any change of arithmetic sends these short runs down other trajectories (on the CPU alone,
# bf16 against f32 moved the distilled student by -5.4 and +2.0 points at seeds 1 and 2), so the test
# averages seeds 1 and 2: each model's mean GPU accuracy must be at most 4 points below the CPU's mean, and
# every distilled student must reach 0.7. Exits 77 when kd cannot open a CUDA device.
# usage: test_cuda_demo.sh PATH/TO/kd [device flags, default: --device cuda]
set -u
kd="$1"
shift
flags=("$@")
[ ${#flags[@]} -eq 0 ] && flags=(--device cuda)
tmp=$(mktemp -d /tmp/kd_test_cuda_demo_XXXXXX)
trap 'rm -rf "$tmp"' EXIT

if [ "${flags[*]}" = "--device cuda" ] && { ! "$kd" demo --device cuda --help >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; }; then
  echo "no CUDA device: skipped"; exit 77
fi
for seed in 1 2; do
  if ! "$kd" demo --quiet "${flags[@]}" --seed "$seed" --out "$tmp/dev$seed" >"$tmp/dev$seed.log" 2>&1; then
    if grep -q "device cuda:" "$tmp/dev$seed.log"; then cat "$tmp/dev$seed.log"; echo "skipped"; exit 77; fi
    echo "FAIL: kd demo ${flags[*]} --seed $seed:"; cat "$tmp/dev$seed.log"; exit 1
  fi
  "$kd" demo --quiet --precision f32 --seed "$seed" --out "$tmp/cpu$seed" >"$tmp/cpu$seed.log" 2>&1 ||
    { echo "FAIL: kd demo (cpu) --seed $seed"; cat "$tmp/cpu$seed.log"; exit 1; }
  cat "$tmp/dev$seed.log"
done
python3 - "$tmp" "${flags[*]}" <<'PY'
import json, math, sys
tmp, flags = sys.argv[1], sys.argv[2]
bad = checks = 0
for m in ("teacher", "student-kd", "student-nokd"):
    acc = {"cpu": [], "dev": []}
    for dev in acc:
        for seed in (1, 2):
            ev = [json.loads(l) for l in open(f"{tmp}/{dev}{seed}/{m}/metrics.jsonl") if l.startswith('{"type":"eval"')]
            acc[dev].append(ev[-1]["accuracy"])
    mc, md = sum(acc["cpu"]) / 2, sum(acc["dev"]) / 2
    ok = math.isfinite(md) and md >= mc - 0.04
    checks += 1
    bad += not ok
    print(f"{m}: mean dev accuracy over seeds 1, 2: cpu f32 {mc:.4f} {acc['cpu']}, {flags} {md:.4f} {acc['dev']} "
          f"{'ok' if ok else 'FAIL (more than 4 points below)'}")
    if m == "student-kd":
        for a in acc["dev"]:
            checks += 1
            if not a >= 0.7:
                print(f"FAIL: a distilled student reached only {a:.4f} with {flags}"); bad += 1
print(f"test_cuda_demo: {checks - bad} passed, {bad} failed")
sys.exit(1 if bad else 0)
PY
