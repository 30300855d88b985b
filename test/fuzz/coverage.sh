#!/usr/bin/env bash
# test/fuzz/coverage.sh — the source lines the fuzzing corpus reaches: every target built as a plain program
# with clang's source-based coverage, run over the seeds and the corpus run.sh kept (OUT/corpus/<target>), and
# llvm-cov's report for the files that parse what a user hands kd.
#     test/fuzz/coverage.sh            (after test/fuzz/run.sh; OUT as there)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${COV_BUILD:-build-fuzz-cov}
out=${OUT:-build-fuzz/fuzz-out}
profdata=$(command -v llvm-profdata || command -v llvm-profdata-14)
cov=$(command -v llvm-cov || command -v llvm-cov-14)
[ -d "$out/corpus" ] || { echo "coverage.sh: no corpus under $out (run test/fuzz/run.sh first)"; exit 2; }
if [ ! -f "$build/build.ninja" ]; then
  CC=clang meson setup "$build" -Dcuda=disabled -Dbuildtype=debug \
    -Dc_args='-fprofile-instr-generate -fcoverage-mapping' -Dc_link_args='-fprofile-instr-generate' >/dev/null
fi
ninja -C "$build" >/dev/null
rm -rf "$out/prof" && mkdir -p "$out/prof"
export LLVM_PROFILE_FILE="$out/prof/other-%p.profraw"   # anything else instrumented that runs
export KD_SHARED=${KD_SHARED:-../shared}
objs=()
for t in safetensors st_index config tok_config vocab train_state optimizer tsv csv jsonl tweeteval tokenizer; do
  exe=$build/test/fuzz/fuzz_replay_$t
  [ -x "$exe" ] || exe=$build/test/data/fuzz_replay_$t
  dirs=()
  for d in "$out/corpus/$t" "$out/seeds/$t"; do [ -d "$d" ] && [ -n "$(ls -A "$d")" ] && dirs+=("$d"); done
  [ ${#dirs[@]} -gt 0 ] || continue
  LLVM_PROFILE_FILE="$out/prof/$t.profraw" "$exe" "${dirs[@]}" >/dev/null
  objs+=(-object "$exe")
done
"$profdata" merge -sparse "$out"/prof/*.profraw -o "$out/prof/all.profdata"
files=(engine/safetensors.c engine/safetensors_index.c engine/json.c engine/adamw.c models/bert_config.c
  data/tokenizer_config.c data/vocab.c data/wordpiece.c data/basic_tokenizer.c data/dataset.c data/read_tsv.c
  data/read_csv.c data/read_jsonl.c data/read_tweeteval.c train/checkpoint.c)
"$cov" report "${objs[@]:1}" -instr-profile="$out/prof/all.profdata" "${files[@]}" | tee "$out/coverage.txt"
