#!/usr/bin/env bash
# test/fuzz/test_fuzz_replay.sh — every file-format fuzz target, as a plain program, over the seeds kd writes
# (fuzz_seeds) and the kept inputs of regress/<target>/ (each once made a target fail; fixed since).
#     test_fuzz_replay.sh FUZZ_SEEDS REGRESS_DIR fuzz_replay_<target>...
set -u
seeds_bin=$1 regress=$2
shift 2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$seeds_bin" "$work/seeds" || { echo "FAIL: fuzz_seeds"; exit 1; }
fail=0
for exe in "$@"; do
  t=${exe##*/fuzz_replay_}
  dirs=("$work/seeds/$t")
  [ -d "$regress/$t" ] && dirs+=("$regress/$t")
  if out=$("$exe" "${dirs[@]}" 2>&1); then
    echo "ok   $t: $out"
  else
    echo "FAIL $t: $out"
    fail=1
  fi
done
exit $fail
