#!/usr/bin/env python3
"""test/bench/check_bench_kd_pytorch.py — bench/bench_kd_pytorch.py's bookkeeping, without running a model:
the figures read from bench_bert's and PyTorch's output (median, CPU seconds, peak RSS; the RSS after
importing torch must not be taken for the peak), the choice of PyTorch peers (a --torch-python without torch
or with a 1.x is skipped, a 2.x is a column), the side-by-side ratios (peer / kd) and the verdict on the
bf16 KD-step goal (>= 1.3x in wall and CPU seconds, no more peak memory). Prints each check; exits 1 on any
mismatch. Needs only Python's standard library."""
import contextlib
import io
import os
import stat
import sys
import tempfile

ROOT = os.environ.get("KD_SOURCE_ROOT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.dont_write_bytecode = True
import bench_kd_pytorch as bkp  # noqa: E402

failures = 0


def check(what, got, want):
    global failures
    ok = got == want
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {what}: got {got!r}" + ("" if ok else f", want {want!r}"))


# bench_bert's kd-step lines, as its printf()s write them.
KD_OUT = """[kd-step] kernels avx2, 2 threads
  bert-large: 335.1 M parameters
  step 0: loss 0.8841 (soft 0.0093, hard 0.7589), gradient norm 4.2151
  KD step 16 x 128 (bert-large teacher forward + bert-base student step, AdamW): median 24.412 s over 3 (after 2 warm-up), 84 tokens/s, ~54.2 GFLOP/s (teacher forward + 3x student forward FLOPs)
  memory (KD step)       arena peak 1.64 GiB + heap tensors 3.01 GiB = 4.65 GiB; max RSS 4.86 GiB
  per timed step: 0 page faults, 23.912 CPU s (11.956 s per thread); load average 3.50 3.10 2.90
  memory (optimizer)     AdamW m and v 0.81 GiB
"""
# The PyTorch side (run_case's kd-step lines).
PT_OUT = """[kd-step] PyTorch 2.9.1+cu130, 2 threads, bf16, OPENBLAS_CORETYPE=Haswell, OMP_WAIT_POLICY=PASSIVE
  memory (import)       0.41 GiB resident after importing torch
  bert-base (12 layers): 109.5 M parameters
  per timed step: 31.250 CPU s; load average 3.61 3.20 2.95
  KD step 16 x 128 (bert-large teacher forward + bert-base student step, AdamW): median 33.125 s over 3 (after 1 warm-up), 62 tokens/s, ~40.0 GFLOP/s (teacher forward + 3x student forward FLOPs)
  memory (KD step)      max RSS 5.92 GiB
"""
check("kd's figures", bkp.figures(KD_OUT), (24.412, 23.912, 4.86))
check("PyTorch's figures (peak, not the RSS after import)", bkp.figures(PT_OUT), (33.125, 31.25, 5.92))
check("a failed case", bkp.figures(None), (None, None, None))


def fake_python(d, name, body):
    """An executable that stands for a Python: `body` is its shell script."""
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write("#!/bin/sh\n" + body + "\n")
    os.chmod(p, os.stat(p).st_mode | stat.S_IXUSR)
    return p


class Args:
    torch_python = None


with tempfile.TemporaryDirectory() as d:
    check("no such interpreter", bkp.torch_version(os.path.join(d, "missing")), None)
    check("no torch", bkp.torch_version(fake_python(d, "notorch", "echo 'No module named torch' >&2; exit 1")), None)
    check("torch's version", bkp.torch_version(fake_python(d, "t2", "echo 2.9.1+cu130")), "2.9.1+cu130")
    for i, (label, body, want) in enumerate((("a 1.x is not the 2.x peer", "echo 1.13.1", False),
                                             ("no torch is skipped", "exit 1", False),
                                             ("a 2.x is a column", "echo 2.9.1+cu130", True))):
        a = Args()
        a.torch_python = fake_python(d, f"python{i}", body)
        got = bkp.peers(a)
        check(label, any(py == a.torch_python for _, py in got), want)
        if want:
            check("its label", [lb for lb, py in got if py == a.torch_python][0].split(" (")[0], "PyTorch 2.9")

rows = [("kd-step f32", {"kd": (20.0, 40.0, 5.0), "PyTorch 1.13": (30.0, 50.0, 6.0), "PyTorch 2.9": (25.0, 44.0, 5.5)}),
        ("kd-step bf16", {"kd": (10.0, 20.0, 4.0), "PyTorch 1.13": (None, None, None), "PyTorch 2.9": (15.0, 27.0, 4.5)})]
out = io.StringIO()
with contextlib.redirect_stdout(out):
    bkp.side_by_side(rows, ["PyTorch 1.13", "PyTorch 2.9"], 2)
    bkp.goal(rows, ["PyTorch 1.13", "PyTorch 2.9"])
text = out.getvalue()
print("\n".join("     " + ln for ln in text.strip().splitlines()))
lines = [ln.split() for ln in text.splitlines()]
wall = [ln for ln in lines if ln[:2] == ["kd-step", "f32"]][0]
check("wall row: kd, peers, peer / kd", wall[2:], ["20.000", "30.000", "25.000", "1.50x", "1.25x"])
bf_cpu = [ln for ln in lines if ln[:2] == ["kd-step", "bf16"]][1]
check("CPU row with a failed peer", bf_cpu[2:], ["20.000", "-", "27.000", "-", "1.35x"])
goal_line = [ln for ln in text.splitlines() if ln.startswith("goal:")]
check("goal met at 1.50x wall, 1.35x CPU, 4.0 <= 4.5 GiB", len(goal_line) == 1 and ": met (" in goal_line[0], True)

rows[1][1]["kd"] = (10.0, 21.0, 4.0)   # CPU 27 / 21 = 1.29x
out = io.StringIO()
with contextlib.redirect_stdout(out):
    bkp.goal(rows, ["PyTorch 1.13", "PyTorch 2.9"])
check("goal missed at 1.29x CPU", ": missed (" in out.getvalue(), True)
rows[1][1]["kd"] = (10.0, 20.0, 4.6)   # more memory than the peer
out = io.StringIO()
with contextlib.redirect_stdout(out):
    bkp.goal(rows, ["PyTorch 1.13", "PyTorch 2.9"])
check("goal missed with more peak memory", ": missed (" in out.getvalue(), True)
out = io.StringIO()
with contextlib.redirect_stdout(out):
    bkp.goal(rows, ["PyTorch 1.13"])
check("no verdict without a 2.x peer", out.getvalue(), "")

print("check_bench_kd_pytorch: " + ("all checks passed" if not failures else f"{failures} check(s) FAILED"))
sys.exit(1 if failures else 0)
