#!/usr/bin/env bash
# bench/bench_parallel.sh — data-parallel training throughput on this machine: `kd finetune` on 1 process
# and under `mpirun -np N` (one thread a rank), the same global batch, tokens/s (non-padding tokens of the
# global batches per second of the training loop) and the gradients' all-reduce time per step as kd
# reports them (in all, and the part the step waited for: the exposed time), the median of --reps runs;
# on N > 1 ranks once for each --bucket-mb (0: one flat all-reduce after the backward; > 0: buckets
# overlapped with the backward). It validates first: the first 5 steps' losses on N ranks must equal one
# process's within 1e-5 relative (dropout off), and each bucket size's the first size's exactly, else it
# stops.
#
# usage: bench/bench_parallel.sh [--kd build/train/kd] [--model bert-mini] [--data DIR] [--vocab FILE]
#                                [--ranks "1 2"] [--bucket-mb "0 25"] [--batch 32] [--max-len 64]
#                                [--steps 30] [--reps 3]
# --data defaults to ../shared/data/sst2 (SST-2); --vocab to the BERT uncased vocabulary beside a model
# found there, else give one. Needs mpirun (Open MPI: the script allows running as root).
set -u
kd=build/train/kd model=bert-mini data="" vocab="" ranks="1 2" buckets="0 25" batch=32 maxlen=64 steps=30 reps=3
while [ $# -gt 0 ]; do
  case "$1" in
    --kd) kd="$2"; shift 2 ;; --model) model="$2"; shift 2 ;; --data) data="$2"; shift 2 ;;
    --vocab) vocab="$2"; shift 2 ;; --ranks) ranks="$2"; shift 2 ;; --batch) batch="$2"; shift 2 ;;
    --bucket-mb) buckets="$2"; shift 2 ;;
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

run() {   # run NP BUCKET_MB OUT STEPS: kd's summary line
  local np=$1 mb=$2 out=$3 n=$4
  rm -rf "$out"
  if [ "$np" = 1 ]; then "$kd" "${args[@]}" --max-steps "$n" --out "$out" 2>"$out.err"
  else mpirun --oversubscribe -np "$np" "$kd" "${args[@]}" --bucket-mb "$mb" --max-steps "$n" --out "$out" 2>"$out.err"; fi
}
loss_of() { sed -n 's/.*"loss":\([-0-9.e+]*\).*/\1/p' "$1/metrics.jsonl" | head -5; }
configs=""   # NP:BUCKET_MB; one process once
for np in $ranks; do
  if [ "$np" = 1 ]; then configs="$configs 1:0"; else for mb in $buckets; do configs="$configs $np:$mb"; done; fi
done
first=${buckets%% *}

# validate: 5 steps of each configuration against one process, and each bucket size against the first
run 1 0 "$tmp/v1" 5 >/dev/null || { echo "bench_parallel: kd failed: $(cat "$tmp/v1.err")"; exit 1; }
for cf in $configs; do
  np=${cf%:*} mb=${cf#*:}
  [ "$np" = 1 ] && continue
  run "$np" "$mb" "$tmp/v$np.$mb" 5 >/dev/null || { echo "bench_parallel: mpirun -np $np kd --bucket-mb $mb failed: $(tail -5 "$tmp/v$np.$mb.err")"; exit 1; }
  if ! paste <(loss_of "$tmp/v1") <(loss_of "$tmp/v$np.$mb") | awk '{ d = $1 - $2; if (d < 0) d = -d; if (!(d <= 1e-5 * ($1 < 0 ? -$1 : $1)) || NF != 2) bad = 1 } END { exit bad }'; then
    echo "bench_parallel: validation failed: the first 5 losses on $np ranks (--bucket-mb $mb) differ from one process:"
    paste <(loss_of "$tmp/v1") <(loss_of "$tmp/v$np.$mb")
    exit 1
  fi
  same=""
  if [ "$mb" != "$first" ]; then
    if [ "$(loss_of "$tmp/v$np.$mb")" != "$(loss_of "$tmp/v$np.$first")" ]; then
      echo "bench_parallel: validation failed: the first 5 losses on $np ranks differ between --bucket-mb $first and $mb"
      exit 1
    fi
    same=", = --bucket-mb $first's exactly"
  fi
  echo "validated: the first 5 steps' losses on $np ranks, --bucket-mb $mb = one process's (rel 1e-5)$same"
done
bytes=$(stat -c %s "$tmp/v1/last/model.safetensors")
echo "model $model ($(( bytes / 4 / 1000 )) k parameters, $(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }') MB of f32 gradients), global batch $batch, max length $maxlen, $steps steps, 1 thread a rank, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-14s %10s %8s %14s %10s %11s %9s\n' ranks "all-reduce" "tokens/s" "step s" "all-reduce s" "exposed s" "GB/s (bus)" speed-up
base=""
med() { sort -g | awk '{ a[NR] = $1 } END { print NR ? a[int((NR + 1) / 2)] : 0 }'; }
# The rank counts take turns within each repetition, so that a change in the machine's load between runs
# falls on all of them alike.
for r in $(seq 1 "$reps"); do
  for cf in $configs; do
    np=${cf%:*} mb=${cf#*:}
    line=$(run "$np" "$mb" "$tmp/r" "$steps" | grep "tokens/s")
    echo "$(sed -n 's/.* \([0-9.]*\) tokens\/s.*/\1/p' <<<"$line")" >> "$tmp/tps.$cf"
    echo "$(sed -n "s/.*all-reduce \([0-9.]*\) s per step.*/\1/p" <<<"$line")" >> "$tmp/ar.$cf"
    echo "$(sed -n "s/.* \([0-9.]*\) s of it exposed.*/\1/p" <<<"$line")" >> "$tmp/ex.$cf"
    sed -n 's/.*exposed (\([0-9]*\) buckets* of \([0-9.e+]*\) MB.*/\1 x \2 MB/p; s/.*exposed (flat).*/flat/p' <<<"$line" > "$tmp/mode.$cf"
    grep '"type":"train"' "$tmp/r/metrics.jsonl" | tail -1 | sed -n 's/.*"samples_per_s":\([0-9.e+]*\).*/\1/p' >> "$tmp/sps.$cf"
  done
done
for cf in $configs; do
  np=${cf%:*}
  t=$(med < "$tmp/tps.$cf") a=$(grep . "$tmp/ar.$cf" | med) sp=$(med < "$tmp/sps.$cf") ex=$(grep . "$tmp/ex.$cf" | med)
  mode=$([ "$np" = 1 ] && echo "-" || cat "$tmp/mode.$cf")
  [ -n "$base" ] || base=$t
  # ring all-reduce bus bandwidth: 2 (N - 1) / N of the buffer through each rank per step (flat only: in
  # buckets the all-reduce time spans the backward it overlapped)
  awk -v np="$np" -v t="$t" -v a="${a:-0}" -v b="$bytes" -v base="$base" -v batch="$batch" -v sp="$sp" -v ex="${ex:-0}" -v mode="$mode" 'BEGIN {
    step = sp > 0 ? batch / sp : 0; bw = (np > 1 && a > 0 && mode == "flat") ? sprintf("%.2f", 2 * (np - 1) / np * b / a / 1e9) : "-";
    printf "%-6d %-14s %10.0f %8.3f %14s %10s %11s %8.2fx\n", np, mode, t, step, (np > 1 ? sprintf("%.4f", a) : "-"),
           (np > 1 ? sprintf("%.4f", ex) : "-"), bw, t / base }'
done
echo "(all-reduce: flat, or N buckets x --bucket-mb; step s: global batch / samples per s over the run;"
echo " all-reduce s: per step, from the first gradient handed to the communicator to the last unpacked (flat:"
echo " from the end of the backward, the wait for the slowest rank included); exposed s: the part of it the step"
echo " waited for (flat: all of it); GB/s (bus): 2 (N - 1) / N x gradient bytes / all-reduce s, flat only;"
echo " medians of $reps runs, the configurations taking turns)"
