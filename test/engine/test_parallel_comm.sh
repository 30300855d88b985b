#!/usr/bin/env bash
# test/engine/test_parallel_comm.sh — the communicator under mpirun: test_comm at -np 1 and -np 2 (every
# rank must pass its checks), then `test_comm hang` at -np 2 with KD_COMM_TIMEOUT=2, where one rank never
# reaches a barrier: the job must end within 30 s, non-zero, with the watchdog's message naming the rank
# that waited. Skips (77) without mpirun or when kd was built without MPI.
# usage: test_parallel_comm.sh PATH/TO/test_comm mpi|nompi
set -u
exe="$1"
if [ "${2:-}" != mpi ]; then echo "SKIP: kd built without MPI (-Dmpi)"; exit 77; fi
if ! command -v mpirun >/dev/null; then echo "SKIP: no mpirun"; exit 77; fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 KD_THREADS=1
mpi=(mpirun --oversubscribe)
pass=0 fail=0
for np in 1 2; do
  out=$(timeout 60 "${mpi[@]}" -np $np "$exe" 2>&1); rc=$?
  n=$(grep -c "failed$" <<<"$out"); ok=$(grep -c ": [0-9]* passed, 0 failed" <<<"$out")
  if [ $rc -eq 0 ] && [ "$n" -eq $np ] && [ "$ok" -eq $np ]; then
    pass=$((pass + 1)); echo "ok: test_comm at -np $np: every rank passed"
  else
    fail=$((fail + 1)); echo "FAIL: test_comm at -np $np (exit $rc):"; echo "$out"
  fi
done
t0=$(date +%s)
out=$(KD_COMM_TIMEOUT=2 timeout 60 "${mpi[@]}" -np 2 -x KD_COMM_TIMEOUT "$exe" hang 2>&1); rc=$?
dt=$(( $(date +%s) - t0 ))
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $dt -le 30 ] && grep -q "rank 0 of 2: barrier waited 2 s" <<<"$out"; then
  pass=$((pass + 1)); echo "ok: a rank that never arrives: the job ended in ${dt} s, exit $rc, with the watchdog's message"
else
  fail=$((fail + 1)); echo "FAIL: a rank that never arrives: exit $rc after ${dt} s:"; echo "$out"
fi
echo "test_parallel_comm: $pass passed, $fail failed"
[ $fail -eq 0 ]
