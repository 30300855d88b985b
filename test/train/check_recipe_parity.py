#!/usr/bin/python3
"""test/train/check_recipe_parity.py — kd's training recipe equals PyTorch's step by step: with dropout off,
the same initial weights and the same batches, the first 100 optimizer steps of `kd finetune` and of
`kd distill` give PyTorch's losses (total, and for distill the soft and hard parts), learning rates and
gradient norms. This checks the loss, AdamW (decoupled decay, not on biases and LayerNorm weights), the
linear schedule with warmup and global-norm clipping, not only the forward.

usage: check_recipe_parity.py PATH/TO/kd. A tiny teacher is fine-tuned on a generated corpus with noisy
labels (so the loss stays away from 0); then kd finetune and kd distill run 100 steps with --dropout 0
--write-init --log-every 1, a warmup of 10 steps, a short last batch per epoch and a --max-grad-norm that
clips some steps; bench/kd_recipe_replay.py trains from their OUT/init on their OUT/batch_order.txt in
float64. Every step must agree within 1e-4 relative (kd computes in float32); NaN fails. Exits 77 when
/usr/bin/python3 has no torch (Debian's python3-torch)."""
import json
import math
import os
import random
import subprocess
import sys
import tempfile

try:
    import torch  # noqa: F401 (the replay needs it)
except ImportError as e:
    print(f"SKIP: torch not available to {sys.executable} ({e})")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
REPLAY = os.path.join(HERE, "..", "..", "bench", "kd_recipe_replay.py")
POS = ["good", "great", "charming", "fun", "moving"]
NEG = ["bad", "awful", "boring", "dull", "weak"]
OTHER = ["the", "film", "was", "is", "plot", "acting", "a", "very", "not", "and", "but", "story"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + POS + NEG + OTHER + ["##s", "##ly"]

STEPS, BATCH, ROWS, EPOCHS, WARMUP = 100, 8, 45, 17, 10
MAX_NORM = 1.0                             # clips about 4 steps in 10 of both runs
DECAY = "0.1"                              # the recipe's 0.01 would hide decay on the wrong parameters
TOTAL = math.ceil(ROWS / BATCH) * EPOCHS   # kd's schedule length: 6 batches (the last of 5) per epoch
REL = 1e-4                                 # kd's float32 against float64, over 100 steps


def corpus(rng, n):
    """Sentences whose label follows their sentiment words, one in four flipped."""
    out = []
    for _ in range(n):
        y = rng.randrange(2)
        words = [rng.choice(OTHER) for _ in range(rng.randrange(2, 7))]
        words.insert(rng.randrange(len(words) + 1), rng.choice(POS if y else NEG))
        if rng.random() < 0.25:
            y = 1 - y
        out.append(f"{' '.join(words)}\t{y}")
    return out


def kd_steps(out):
    steps = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl")) if '"train"' in line]
    return [s for s in steps if s.get("type") == "train"]


def compare(what, kd, ref, keys, max_norm):
    """Prints the worst relative difference per quantity; returns the number of failures."""
    fails = 0
    if len(kd) < STEPS or len(ref) < STEPS:
        print(f"FAIL: {what}: {len(kd)} kd steps, {len(ref)} PyTorch steps, expected {STEPS} of each")
        return 1
    worst = {k: (0.0, 0) for k in keys}
    for i in range(STEPS):
        a, b = kd[i], ref[i]
        if a["step"] != i + 1 or b["step"] != i + 1:
            print(f"FAIL: {what}: line {i + 1} is step {a['step']} (kd), {b['step']} (PyTorch)")
            return fails + 1
        for k in keys:
            x, w = a.get(k), b[k]
            err = abs(x - w) / abs(w) if isinstance(x, (int, float)) and w != 0 else abs(x - w) if x is not None else math.nan
            if not err <= REL:
                if fails < 10:
                    print(f"FAIL: {what}: step {i + 1}: {k} kd {x!r}, PyTorch {w!r} (relative {err:.3g})")
                fails += 1
            elif err > worst[k][0]:
                worst[k] = (err, i + 1)
    clipped = sum(1 for s in kd[:STEPS] if s["grad_norm"] > max_norm)
    print(f"{what}: {STEPS} steps compared; worst relative difference " +
          ", ".join(f"{k} {worst[k][0]:.2e} (step {worst[k][1]})" if worst[k][1] else f"{k} exact" for k in keys) +
          f"; {clipped} of {STEPS} steps clipped at {max_norm}; loss {ref[0]['loss']:.4f} at step 1, "
          f"{ref[STEPS - 1]['loss']:.4f} at step {STEPS}")
    if clipped == 0 or clipped == STEPS:
        print(f"FAIL: {what}: clipping should act on some steps and not on others ({clipped} clipped)")
        fails += 1
    return fails


def main():
    kd = sys.argv[1]
    failures = 0
    with tempfile.TemporaryDirectory() as d:
        vocab = os.path.join(d, "vocab.txt")
        open(vocab, "w").write("\n".join(VOCAB) + "\n")
        rng = random.Random(7)
        data = os.path.join(d, "data")
        os.mkdir(data)
        for split, n in (("train", ROWS), ("dev", 16)):
            open(os.path.join(data, f"{split}.tsv"), "w").write("sentence\tlabel\n" + "\n".join(corpus(rng, n)) + "\n")
        common = ["--data", data, "--batch-size", str(BATCH), "--max-len", "16", "--quiet", "--threads", "1"]
        teacher = os.path.join(d, "teacher")
        subprocess.run([kd, "finetune", "--model", "bert-tiny", "--vocab", vocab, "--out", teacher, "--epochs", "12",
                        "--lr", "2e-3"] + common, check=True)
        recipe = ["--epochs", str(EPOCHS), "--max-steps", str(STEPS), "--lr", "2e-4", "--warmup-steps", str(WARMUP),
                  "--weight-decay", DECAY, "--max-grad-norm", str(MAX_NORM), "--dropout", "0", "--write-init",
                  "--log-every", "1", "--seed", "3"] + common
        runs = [
            ("finetune", ["finetune", "--model", "bert-tiny", "--vocab", vocab], [],
             ["loss", "soft", "hard", "lr", "grad_norm"]),   # soft: 0 without a teacher
            ("distill", ["distill", "--teacher", teacher, "--student", "bert-tiny", "--student-layers", "1",
                         "--alpha", "0.5", "--temperature", "2"],
             ["--teacher", teacher, "--alpha", "0.5", "--temperature", "2"],
             ["loss", "soft", "hard", "lr", "grad_norm"]),
        ]
        for what, args, replay_args, keys in runs:
            out = os.path.join(d, what)
            subprocess.run([kd] + args + ["--out", out] + recipe, check=True)
            cfg = json.load(open(os.path.join(out, "init", "config.json")))
            if cfg["hidden_dropout_prob"] != 0 or cfg["attention_probs_dropout_prob"] != 0:
                print(f"FAIL: {what}: --dropout 0, but {out}/init/config.json has dropout "
                      f"{cfg['hidden_dropout_prob']}, {cfg['attention_probs_dropout_prob']}")
                failures += 1
            res = subprocess.run([sys.executable, REPLAY, "--init", os.path.join(out, "init"), "--order",
                                  os.path.join(out, "batch_order.txt"), "--train", os.path.join(data, "train.tsv"),
                                  "--lr", "2e-4", "--warmup-steps", str(WARMUP), "--total-steps", str(TOTAL),
                                  "--max-grad-norm", str(MAX_NORM), "--max-len", "16", "--weight-decay", DECAY,
                                  "--steps", str(STEPS)]
                                 + replay_args, capture_output=True, text=True)
            if res.returncode != 0:
                print(f"FAIL: {what}: kd_recipe_replay.py exited {res.returncode}: {res.stderr.strip()}")
                failures += 1
                continue
            ref = [json.loads(line) for line in res.stdout.splitlines()]
            failures += compare(what, kd_steps(out), ref, keys, MAX_NORM)
    print(f"check_recipe_parity: {'ok' if failures == 0 else f'{failures} failures'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
