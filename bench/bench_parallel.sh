#!/usr/bin/env bash
# bench/bench_parallel.sh — data-parallel training throughput on this machine: `kd finetune` on 1 process
# and under `mpirun -np N` (one thread a rank), the same global batch, tokens/s (non-padding tokens of the
# global batches per second of the training loop) and the gradients' all-reduce time per step as kd
# reports them, the median of --reps runs. It validates first: the first 5 steps' losses on N ranks must
# equal one process's within 1e-5 relative (dropout off), else it stops.
#
# usage: bench/bench_parallel.sh [--kd build/train/kd] [--model bert-mini] [--data DIR] [--vocab FILE]
#                                [--ranks "1 2"] [--batch 32] [--max-len 64] [--steps 30] [--reps 3]
# --data defaults to ../shared/data/sst2 (SST-2); --vocab to the BERT uncased vocabulary beside a model
# found there, else give one. Needs mpirun (Open MPI: the script allows running as root).
set -u
kd=build/train/kd model=bert-mini data="" vocab="" ranks="1 2" batch=32 maxlen=64 steps=30 reps=3
while [ $# -gt 0 ]; do
  case "$1" in
    --kd) kd="$2"; shift 2 ;; --model) model="$2"; shift 2 ;; --data) data="$2"; shift 2 ;;
    --vocab) vocab="$2"; shift 2 ;; --ranks) ranks="$2"; shift 2 ;; --batch) batch="$2"; shift 2 ;;
    --max-len) maxlen="$2"; shift 2 ;; --steps) steps="$2"; shift 2 ;; --reps) reps="$2"; shift 2 ;;
    *) echo "bench_parallel: unknown flag $1 (see the header)"; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
[ -n "$data" ] || data="$root/../shared/data/sst2"
if [ -z "$vocab" ]; then
  for v in "$root"/../runs/*/teacher/vocab.txt /work/runs/*/teacher/vocab.txt; do [ -f "$v" ] && vocab="$v" && break; done
fi
if [ ! -d "$data" ] || [ ! -f "$vocab" ]; then echo "bench_parallel: need --data DIR (train.*/dev.*) and --vocab FILE"; exit 2; fi
command -v mpirun >/dev/null || { echo "bench_parallel: no mpirun"; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 KD_THREADS=1
tmp=$(mktemp -d /tmp/kd_bench_parallel_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
args=(finetune --model "$model" --vocab "$vocab" --data "$data" --epochs 1 --batch-size "$batch" --max-len "$maxlen"
      --train-samples $(( batch * (steps + 10) )) --dropout 0 --threads 1 --quiet --log-every 1)

run() {   # run NP OUT STEPS: kd's summary line
  local np=$1 out=$2 n=$3
  rm -rf "$out"
  if [ "$np" = 1 ]; then "$kd" "${args[@]}" --max-steps "$n" --out "$out" 2>"$out.err"
  else mpirun --oversubscribe -np "$np" "$kd" "${args[@]}" --max-steps "$n" --out "$out" 2>"$out.err"; fi
}
loss_of() { sed -n 's/.*"loss":\([-0-9.e+]*\).*/\1/p' "$1/metrics.jsonl" | head -5; }

# validate: 5 steps on each rank count against one process
run 1 "$tmp/v1" 5 >/dev/null || { echo "bench_parallel: kd failed: $(cat "$tmp/v1.err")"; exit 1; }
for np in $ranks; do
  [ "$np" = 1 ] && continue
  run "$np" "$tmp/v$np" 5 >/dev/null || { echo "bench_parallel: mpirun -np $np kd failed: $(tail -5 "$tmp/v$np.err")"; exit 1; }
  if ! paste <(loss_of "$tmp/v1") <(loss_of "$tmp/v$np") | awk '{ d = $1 - $2; if (d < 0) d = -d; if (!(d <= 1e-5 * ($1 < 0 ? -$1 : $1)) || NF != 2) bad = 1 } END { exit bad }'; then
    echo "bench_parallel: validation failed: the first 5 losses on $np ranks differ from one process:"
    paste <(loss_of "$tmp/v1") <(loss_of "$tmp/v$np")
    exit 1
  fi
  echo "validated: the first 5 steps' losses on $np ranks = one process (rel 1e-5)"
done
bytes=$(stat -c %s "$tmp/v1/last/model.safetensors")
echo "model $model ($(( bytes / 4 / 1000 )) k parameters, $(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }') MB of f32 gradients), global batch $batch, max length $maxlen, $steps steps, 1 thread a rank, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %12s %10s %14s %10s %12s %10s\n' ranks "tokens/s" "step s" "all-reduce s" "wait s" "GB/s (bus)" speed-up
base=""
med() { sort -g | awk '{ a[NR] = $1 } END { print NR ? a[int((NR + 1) / 2)] : 0 }'; }
# The rank counts take turns within each repetition, so that a change in the machine's load between runs
# falls on all of them alike.
for r in $(seq 1 "$reps"); do
  for np in $ranks; do
    line=$(run "$np" "$tmp/r" "$steps" | grep "tokens/s")
    echo "$(sed -n 's/.* \([0-9.]*\) tokens\/s.*/\1/p' <<<"$line")" >> "$tmp/tps.$np"
    echo "$(sed -n "s/.*all-reduce \([0-9.]*\) s per step.*/\1/p" <<<"$line")" >> "$tmp/ar.$np"
    echo "$(sed -n "s/.*after \([0-9.]*\) s waiting.*/\1/p" <<<"$line")" >> "$tmp/wt.$np"
    grep '"type":"train"' "$tmp/r/metrics.jsonl" | tail -1 | sed -n 's/.*"samples_per_s":\([0-9.e+]*\).*/\1/p' >> "$tmp/sps.$np"
  done
done
for np in $ranks; do
  t=$(med < "$tmp/tps.$np") a=$(grep . "$tmp/ar.$np" | med) sp=$(med < "$tmp/sps.$np") wt=$(grep . "$tmp/wt.$np" | med)
  [ -n "$base" ] || base=$t
  # ring all-reduce bus bandwidth: 2 (N - 1) / N of the buffer through each rank per step
  awk -v np="$np" -v t="$t" -v a="${a:-0}" -v b="$bytes" -v base="$base" -v batch="$batch" -v sp="$sp" -v wt="${wt:-0}" 'BEGIN {
    step = sp > 0 ? batch / sp : 0; bw = (np > 1 && a > 0) ? 2 * (np - 1) / np * b / a / 1e9 : 0;
    printf "%-6d %12.0f %10.3f %14.4f %10.4f %12s %9.2fx\n", np, t, step, (np > 1 ? a : 0), (np > 1 ? wt : 0), (np > 1 ? sprintf("%.2f", bw) : "-"), t / base }'
done
echo "(step s: global batch / samples per s over the run; all-reduce s: the gradients' flat all-reduce with its"
echo " packing, per step; wait s: before it, for the slowest rank; GB/s (bus): 2 (N - 1) / N x gradient bytes /"
echo " all-reduce s; medians of $reps runs, the rank counts taking turns)"
