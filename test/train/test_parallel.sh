#!/usr/bin/env bash
# test/train/test_parallel.sh — data-parallel training under `mpirun -np 2` (one thread a rank) on a tiny
# model and corpus (320 rows, global batch 16, 20 steps, dropout 0):
#   - kd finetune on 2 ranks against one process at the same global batch: the loss and gradient norm of
#     every step within 1e-5 relative, the weights after 20 steps within 1e-5 + 1e-5 |w| (below);
#   - 3 ranks at global batch 15, whose shards are uneven (the epoch's last batch of 5 rows: 1, 2, 2);
#   - kd distill the same way, with --cache-teacher (rank 0's logits broadcast), with the teacher run on
#     each rank's shard, and with unlabelled rows (--augment) and the hidden-state and attention losses;
#   - a 2-rank run stopped at step 10 and resumed equals the uninterrupted 2-rank run bit for bit (with
#     dropout 0.1: each rank's dropout stream is keyed by the micro-batch); --resume on 1 process of that
#     2-rank checkpoint is refused naming both counts;
#   - the gradients in buckets overlapped with the backward against the flat all-reduce (below), with and
#     without --grad-accum;
#   - a rank killed (SIGKILL) in the middle of a run: the job ends within 30 s, non-zero, with a message.
# The tolerance. Two ranks sum their shards' gradients (each a sum over its rows x padded length) where one
# process sums all the rows at once: the gradients differ by rounding (relative ~1e-7; the logged losses and
# norms show it), and so does AdamW's update m / (sqrt(v) + eps) of each weight, by about lr x 1e-7 per
# step: after 20 steps at lr 1e-3 the weights should agree to within a few ulps of their own size, where
# rounding the stored f32 weight dominates (an ulp of a LayerNorm weight near 1 is 1.2e-7). We allow
# 1e-5 + 1e-5 |w|, about 100 ulps (measured: 1.9e-7 at most). One kind of parameter is apart: an attention key's bias, whose gradient is zero in exact
# arithmetic (softmax ignores a shift shared by every key), so its computed gradient is rounding noise that
# AdamW scales up to lr-sized steps, in each run on its own: it is held only to what AdamW can move two
# copies apart in 20 steps, 2 x lr x 20 = 4e-2 (measured: 2e-6 to 8e-5). A wrong shard, a lost or doubled
# gradient moves the other weights by O(lr) = 1e-3 within a step or two (a run on another batch is checked
# to fail), and a doubled gradient shows in the norm. Skips (77) without mpirun or an MPI build.
# usage: test_parallel.sh PATH/TO/kd PATH/TO/st_compare mpi|nompi
set -u
kd="$1" cmp="$2"
if [ "${3:-}" != mpi ]; then echo "SKIP: kd built without MPI (-Dmpi)"; exit 77; fi
if ! command -v mpirun >/dev/null; then echo "SKIP: no mpirun"; exit 77; fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 KD_THREADS=1
mpi=(timeout 300 mpirun --oversubscribe -np 2)
tmp=$(mktemp -d /tmp/kd_test_parallel_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ngood\nbad\nfilm\nthe\nwas\nis\ngreat\nawful\nplot\nnot\nvery\n' > "$tmp/vocab.txt"
# 320 sentences of 2..12 words from a fixed LCG; label 1 when the good words outnumber the bad ones.
awk 'BEGIN { split("good bad film the was is great awful plot not very", w, " "); s = 12345;
  print "sentence\tlabel";
  for (i = 0; i < 320; i++) {
    s = (s * 1103515245 + 12345) % 2147483648; n = 2 + int(s / 65536) % 11; t = ""; p = 0;
    for (j = 0; j < n; j++) { s = (s * 1103515245 + 12345) % 2147483648; x = w[1 + int(s / 65536) % 11];
      t = t (j ? " " : "") x; p += (x == "good" || x == "great") - (x == "bad" || x == "awful") }
    print t "\t" (p > 0 ? 1 : 0) } }' > "$tmp/train.tsv"
head -81 "$tmp/train.tsv" > "$tmp/dev.tsv"
common=(--data "$tmp" --epochs 1 --batch-size 16 --max-len 16 --lr 1e-3 --max-steps 20 --log-every 1 --threads 1 --quiet)
ft=(finetune --model bert-tiny --vocab "$tmp/vocab.txt" "${common[@]}")
tol=(1e-5 1e-5 key.bias 4e-2)   # st_compare ATOL RTOL LOOSE LOOSE_ATOL (the header says why)

# step-by-step loss and gradient norm of two metrics.jsonl files, relative 1e-5 (NaN fails)
same_steps() {
  awk -v tol=1e-5 'function num(k,   m) { if (match($0, "\"" k "\":[-0-9.e+naNinf]+")) return substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 3); return "x" }
    FNR == 1 { f++ } /"type":"train"/ { st = num("step"); if (f == 1) { L[st] = num("loss"); G[st] = num("grad_norm"); next }
      n++; for (q = 0; q < 2; q++) { a = q ? G[st] : L[st]; b = q ? num("grad_norm") : num("loss");
        d = a - b; if (d < 0) d = -d; r = tol * (a < 0 ? -a : a);
        if (a == "" || b == "x" || a ~ /[nN][aA][nN]|[iI][nN][fF]/ || b ~ /[nN][aA][nN]|[iI][nN][fF]/ || !(d <= r)) { print "step " st ": " (q ? "grad_norm" : "loss") " " a " vs " b; bad++ } } }
    END { if (n < 20) { print "only " n " steps compared"; bad++ } exit bad > 0 }' "$1" "$2"
}

run1() { "$kd" "$@" >"$tmp/run.log" 2>&1 || { bad "kd $* failed: $(tail -3 "$tmp/run.log")"; return 1; }; }
run2() { "${mpi[@]}" "$kd" "$@" >"$tmp/run.log" 2>&1 || { bad "mpirun -np 2 kd $* failed: $(tail -5 "$tmp/run.log")"; return 1; }; }

# --- finetune: 2 ranks against 1 process
if run1 "${ft[@]}" --dropout 0 --out "$tmp/one" && run2 "${ft[@]}" --dropout 0 --out "$tmp/two"; then
  if m=$(same_steps "$tmp/one/metrics.jsonl" "$tmp/two/metrics.jsonl"); then ok "finetune: 20 steps' loss and gradient norm of 2 ranks = 1 process (rel 1e-5)"
  else bad "finetune: 2 ranks' steps differ from 1 process: $m"; fi
  if m=$("$cmp" "$tmp/one/last/model.safetensors" "$tmp/two/last/model.safetensors" "${tol[@]}"); then ok "finetune: weights after 20 steps, 2 ranks vs 1 process: $(tail -1 <<<"$m")"
  else bad "finetune: weights of 2 ranks vs 1 process: $m"; fi
  if grep -q '"world_size":2' "$tmp/two/metrics.jsonl" && grep -q '"allreduce_s":' "$tmp/two/metrics.jsonl" && [ -f "$tmp/two/model.safetensors" ]; then
    ok "finetune on 2 ranks: rank 0 wrote the model and metrics with world_size and all-reduce time"
  else bad "finetune on 2 ranks: no model, or metrics without world_size/allreduce_s"; fi
  # A wrong reduction must fail the comparison: one process at half the batch has other gradients.
  run1 "${ft[@]}" --dropout 0 --batch-size 8 --max-steps 20 --out "$tmp/half" >/dev/null
  if ! "$cmp" "$tmp/one/last/model.safetensors" "$tmp/half/last/model.safetensors" "${tol[@]}" >/dev/null; then
    ok "the weight comparison tells another batch apart (batch 8 vs 16 fails the tolerance)"
  else bad "the weight comparison passed a run on another batch"; fi
fi

# --- gradients in buckets overlapped with the backward (--bucket-mb 0.25: about 8 buckets of bert-tiny's
# 1.9 MB) against the flat all-reduce (--bucket-mb 0), 2 ranks: the same weights bit for bit (each element
# of a 2-rank sum is a + b, which IEEE addition gives exactly alike in any order or grouping, and packing
# is a copy), and within the tolerance above of one process. The same with --grad-accum 2 (only the last
# micro-batch's backward hands its gradients over).
bucket_pair() {   # bucket_pair WHAT FLAGS...: flat and bucketed on 2 ranks, and one process
  local what=$1; shift
  run2 "${ft[@]}" --dropout 0 "$@" --bucket-mb 0 --out "$tmp/flat" || return
  grep -q "exposed (flat)" "$tmp/run.log" || bad "$what: the flat run does not say flat: $(tail -2 "$tmp/run.log")"
  run2 "${ft[@]}" --dropout 0 "$@" --bucket-mb 0.25 --out "$tmp/buck" || return
  nb=$(sed -n 's/.*exposed (\([0-9]*\) buckets of 0.25 MB.*/\1/p' "$tmp/run.log")
  if [ -n "$nb" ] && [ "$nb" -ge 4 ]; then ok "$what: $(grep -o "all-reduce.*" "$tmp/run.log")"
  else bad "$what: expected 4 or more buckets of 0.25 MB, got: $(tail -2 "$tmp/run.log")"; fi
  if m=$("$cmp" "$tmp/flat/last/model.safetensors" "$tmp/buck/last/model.safetensors" 0 0); then
    ok "$what: weights after 20 steps, $nb buckets = flat, bit for bit: $(tail -1 <<<"$m")"
  else bad "$what: weights of $nb buckets differ from flat: $m"; fi
  run1 "${ft[@]}" --dropout 0 "$@" --out "$tmp/one_b" || return
  if m=$(same_steps "$tmp/one_b/metrics.jsonl" "$tmp/buck/metrics.jsonl") &&
     m2=$("$cmp" "$tmp/one_b/last/model.safetensors" "$tmp/buck/last/model.safetensors" "${tol[@]}"); then
    ok "$what: $nb buckets on 2 ranks = 1 process (steps rel 1e-5; weights: $(tail -1 <<<"$m2"))"
  else bad "$what: $nb buckets on 2 ranks differ from 1 process: $m ${m2:-}"; fi
  rm -rf "$tmp/flat" "$tmp/buck" "$tmp/one_b"
}
bucket_pair "finetune in buckets"
bucket_pair "finetune in buckets, --grad-accum 2" --batch-size 8 --grad-accum 2

# --- uneven shards: 3 ranks, global batch 15, 22 steps (5 rows each; the last batch of 5: 1, 2 and 2)
if run1 "${ft[@]}" --dropout 0 --batch-size 15 --max-steps 22 --out "$tmp/one15" &&
   timeout 300 mpirun --oversubscribe -np 3 "$kd" "${ft[@]}" --dropout 0 --batch-size 15 --max-steps 22 --out "$tmp/three15" >"$tmp/run.log" 2>&1; then
  if m=$(same_steps "$tmp/one15/metrics.jsonl" "$tmp/three15/metrics.jsonl") &&
     m2=$("$cmp" "$tmp/one15/last/model.safetensors" "$tmp/three15/last/model.safetensors" "${tol[@]}"); then
    ok "finetune, 3 ranks, batch 15 (uneven last batch): = 1 process (steps rel 1e-5; weights: $(tail -1 <<<"$m2"))"
  else bad "finetune, 3 ranks, batch 15: differs from 1 process: $m ${m2:-}"; fi
else bad "finetune at batch 15, 1 process or 3 ranks, failed: $(tail -5 "$tmp/run.log")"; fi

# --- distill: the fine-tuned model above teaches a fresh bert-tiny
ds=(distill --teacher "$tmp/one" --student bert-tiny --alpha 0.5 --temperature 2 "${common[@]}" --dropout 0)
if [ -f "$tmp/one/model.safetensors" ] && run1 "${ds[@]}" --out "$tmp/d1" && run2 "${ds[@]}" --cache-teacher --out "$tmp/d2c" &&
   run2 "${ds[@]}" --out "$tmp/d2"; then
  for o in d2c d2; do
    what=$([ $o = d2c ] && echo "--cache-teacher (rank 0's logits broadcast)" || echo "the teacher on each shard")
    if m=$(same_steps "$tmp/d1/metrics.jsonl" "$tmp/$o/metrics.jsonl") &&
       m2=$("$cmp" "$tmp/d1/last/model.safetensors" "$tmp/$o/last/model.safetensors" "${tol[@]}"); then
      ok "distill, $what: 2 ranks = 1 process (steps rel 1e-5; weights: $(tail -1 <<<"$m2"))"
    else bad "distill, $what: 2 ranks differ from 1 process: $m ${m2:-}"; fi
  done
fi

# --- distill with unlabelled rows (--augment 1: the hard term's share is the shard's labelled rows) and the
# intermediate losses (their share is the shard's tokens)
dsi=("${ds[@]}" --augment 1 --hidden-weight 1 --attention-weight 1)
if [ -f "$tmp/one/model.safetensors" ] && run1 "${dsi[@]}" --out "$tmp/di1" && run2 "${dsi[@]}" --out "$tmp/di2"; then
  if m=$(same_steps "$tmp/di1/metrics.jsonl" "$tmp/di2/metrics.jsonl") &&
     m2=$("$cmp" "$tmp/di1/last/model.safetensors" "$tmp/di2/last/model.safetensors" "${tol[@]}") &&
     cmp -s "$tmp/di1/augmented.txt" "$tmp/di2/augmented.txt"; then
    ok "distill with unlabelled rows and hidden/attention losses: 2 ranks = 1 process (steps rel 1e-5; weights: $(tail -1 <<<"$m2"))"
  else bad "distill with unlabelled rows and intermediate losses: 2 ranks differ from 1 process: $m ${m2:-}"; fi
fi

# --- resume across 2 ranks, with dropout
if run2 "${ft[@]}" --out "$tmp/full" && run2 "${ft[@]}" --max-steps 10 --out "$tmp/half2" &&
   run2 "${ft[@]}" --resume --out "$tmp/half2"; then
  if m=$("$cmp" "$tmp/full/last/model.safetensors" "$tmp/half2/last/model.safetensors" 0 0); then
    ok "2 ranks stopped at step 10 and resumed = uninterrupted, bit for bit: $(tail -1 <<<"$m")"
  else bad "2-rank resume differs from the uninterrupted 2-rank run: $m"; fi
  err=$("$kd" "${ft[@]}" --resume --out "$tmp/half2" 2>&1 >/dev/null); rc=$?
  if [ $rc -eq 1 ] && grep -q "written by a run on 2 processes; this run has 1" <<<"$err"; then ok "--resume of a 2-rank run on 1 process refused: ${err#kd finetune: }"
  else bad "--resume on 1 process of a 2-rank checkpoint: exit $rc, $err"; fi
fi

# --- a rank killed mid-run: the job must end, non-zero, with a message (Open MPI's, or kd's watchdog)
rm -rf "$tmp/kill"
"${mpi[@]}" "$kd" "${ft[@]}" --epochs 100000 --max-steps 1000000 --out "$tmp/kill" >"$tmp/kill.log" 2>&1 &
job=$!
victim=""
for _ in $(seq 1 100); do
  sleep 0.2
  for p in $(pgrep -f -- "--out $tmp/kill" 2>/dev/null); do
    if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then victim=$p; fi
  done
  [ -n "$victim" ] && [ -s "$tmp/kill/metrics.jsonl" ] && break
done
if [ -z "$victim" ]; then
  bad "no rank 1 to kill: $(cat "$tmp/kill.log")"; kill "$job" 2>/dev/null; wait "$job" 2>/dev/null
else
  t0=$(date +%s); kill -9 "$victim"; wait "$job"; rc=$?; dt=$(( $(date +%s) - t0 ))
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $dt -le 30 ] && grep -qiE "rank 1|signal 9|killed|waited" "$tmp/kill.log"; then
    ok "rank 1 killed: the job ended in ${dt} s with exit $rc and: $(grep -iE -m1 "rank 1|signal 9|waited" "$tmp/kill.log")"
  else bad "rank 1 killed: exit $rc after ${dt} s; log: $(cat "$tmp/kill.log")"; fi
fi

echo "test_parallel: $pass passed, $fail failed"
[ $fail -eq 0 ]
