#!/usr/bin/python3
"""test/train/check_pruned_transformers.py — a student distilled with --prune-vocab loads in Hugging Face
transformers (BertForSequenceClassification + BertTokenizerFast on its pruned vocab.txt) and gives kd's
logits, token for token the same pieces as with the teacher's full vocabulary; so does a student narrower
than the teacher (--init-from-teacher --student-hidden 64: sliced, head size 32).

usage: check_pruned_transformers.py PATH/TO/kd. A tiny teacher is fine-tuned on a small corpus, a student
distilled from it with --prune-vocab; then for every dev sentence: the pruned tokenizer's pieces equal the
full one's, and |kd - transformers| <= 1e-4 + 1e-3 |transformers| on the logits. Exits 77 when torch or
transformers is not importable (Debian's python3-torch; pip install transformers==4.49.0)."""
import json
import os
import subprocess
import sys
import tempfile

try:
    import torch
    from transformers import BertForSequenceClassification, BertTokenizerFast
except ImportError as e:
    print(f"SKIP: torch/transformers not available to {sys.executable} ({e})")
    sys.exit(77)

WORDS = ["the", "film", "was", "is", "good", "great", "bad", "awful", "plot", "acting", "boring", "charming"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + ["unused", "words", "here", "never", "seen", "##s", "##ing",
         "a", "b", "c", "d", "e", "##a", "##e"]


def same_logits(kd, out, tok, texts, what, atol=1e-4, rtol=1e-3):
    """The number of logits where kd predict and transformers on the checkpoint `out` disagree (beyond
    atol + rtol |transformers|); also used by check_transformers_roundtrip.py."""
    model = BertForSequenceClassification.from_pretrained(out).eval()
    res = subprocess.run([kd, "predict", "--model", out, "--logits", "--threads", "1"], input="\n".join(texts) + "\n",
                         capture_output=True, text=True, check=True)
    got = [json.loads(line)["logits"] for line in res.stdout.splitlines()]
    with torch.no_grad():
        enc = tok(texts, padding=True, return_tensors="pt")
        want = model(**enc).logits.tolist()
    failures, worst = 0, 0.0
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            err = abs(a - b)
            worst = max(worst, err)
            if not err <= atol + rtol * abs(b):
                failures += 1
    if len(got) != len(texts):
        print(f"FAIL: kd predict gave {len(got)} lines for {len(texts)} texts")
        failures += 1
    print(f"{what}, {len(texts)} sentences: logits kd vs transformers, worst |diff| {worst:.2e}")
    return failures


def main():
    kd = sys.argv[1]
    failures = 0
    with tempfile.TemporaryDirectory() as d:
        open(os.path.join(d, "vocab.txt"), "w").write("\n".join(VOCAB) + "\n")
        rows = []
        for i in range(48):
            y = i % 2
            rows.append(f"the {['plot', 'film', 'acting'][i % 3]} {['was', 'is'][i % 2]} "
                        f"{[['bad', 'awful', 'boring'], ['good', 'great', 'charming']][y][i % 3]}\t{y}")
        data = os.path.join(d, "data")
        os.mkdir(data)
        for split in ("train", "dev"):
            open(os.path.join(data, f"{split}.tsv"), "w").write("sentence\tlabel\n" + "\n".join(rows) + "\n")
        common = ["--data", data, "--epochs", "1", "--batch-size", "8", "--max-len", "16", "--lr", "1e-3", "--quiet",
                  "--threads", "1"]
        subprocess.run([kd, "finetune", "--model", "bert-tiny", "--vocab", os.path.join(d, "vocab.txt"), "--out",
                        os.path.join(d, "t")] + common, check=True)
        out = os.path.join(d, "s")
        subprocess.run([kd, "distill", "--teacher", os.path.join(d, "t"), "--init-from-teacher", "--prune-vocab",
                        "--out", out] + common, check=True)
        kept = open(os.path.join(out, "vocab.txt")).read().split("\n")[:-1]
        cfg = json.load(open(os.path.join(out, "config.json")))
        print(f"pruned vocabulary: {len(kept)} of {len(VOCAB)} pieces; config vocab_size {cfg['vocab_size']}")
        if cfg["vocab_size"] != len(kept) or len(kept) >= len(VOCAB) or "never" in kept:
            print("FAIL: the vocabulary was not pruned as expected")
            failures += 1
        texts = [r.split("\t")[0] for r in rows]
        tok = BertTokenizerFast(os.path.join(out, "vocab.txt"), do_lower_case=True)
        full = BertTokenizerFast(os.path.join(d, "vocab.txt"), do_lower_case=True)
        for t in texts:
            if tok.tokenize(t) != full.tokenize(t):
                print(f"FAIL: '{t}': pruned pieces {tok.tokenize(t)} != full {full.tokenize(t)}")
                failures += 1
        failures += same_logits(kd, out, tok, texts, "pruned student")
        # A student narrower than the teacher (sliced: 2 heads of 32, FFN 256), through the hidden projection.
        narrow = os.path.join(d, "n")
        subprocess.run([kd, "distill", "--teacher", os.path.join(d, "t"), "--init-from-teacher", "--student-hidden", "64",
                        "--hidden-weight", "1", "--out", narrow] + common, check=True)
        cfg = json.load(open(os.path.join(narrow, "config.json")))
        if (cfg["hidden_size"], cfg["intermediate_size"], cfg["num_attention_heads"]) != (64, 256, 2):
            print(f"FAIL: the narrow student's config: {cfg}")
            failures += 1
        failures += same_logits(kd, narrow, full, texts, "narrow student")
    print(f"check_pruned_transformers: {'ok' if failures == 0 else f'{failures} failures'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
