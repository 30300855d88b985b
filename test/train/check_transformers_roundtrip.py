#!/usr/bin/python3
"""test/train/check_transformers_roundtrip.py — checkpoints move both ways between kd and Hugging Face
transformers, with their logits, tokenizer and class names.

1. transformers -> kd. A tiny BertForSequenceClassification (random weights, std 0.2) with a cased vocabulary
   and tokenizer (do_lower_case false), saved whole and sharded (save_pretrained(max_shard_size="20KB"): an
   index and several shards): `kd predict --logits` gives transformers' logits within 1e-4 (absolute) on
   mixed-case texts, and names classes as transformers does (LABEL_0, LABEL_1: its config.json has no
   id2label); `kd eval` runs it on 0/1 data.
2. kd -> transformers. `kd finetune` from that checkpoint (cased) and from a preset (uncased, labels 0/1), with
   --max-len 12: AutoTokenizer.from_pretrained(OUT) gives `kd tokenize --model OUT`'s ids (case kept or folded as
   kd did) and truncates to 12 with truncation=True; BertForSequenceClassification.from_pretrained(OUT) gives
   `kd predict --logits`'s logits within 1e-4.
3. Class names round trip. A kd checkpoint (names 0, 1) loaded by transformers and saved again loads in kd with
   the same names; the transformers checkpoint (LABEL_i) fine-tuned by kd on 0/1 data, loaded by transformers and
   saved again (without id2label: the names are its defaults) is still LABEL_0, LABEL_1 in kd, evaluates on 0/1
   data, and teaches a student by `kd distill` without a label-set mismatch.

usage: check_transformers_roundtrip.py PATH/TO/kd. Exits 77 when torch or transformers is not importable
(Debian's python3-torch; pip install transformers==4.49.0)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
try:
    import torch
    import transformers
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertTokenizer
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
except ImportError as e:
    print(f"SKIP: torch/transformers not available to {sys.executable} ({e})")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_pruned_transformers import same_logits  # noqa: E402

WORDS = ["the", "The", "film", "Film", "was", "is", "good", "Good", "great", "bad", "awful", "Awful", "plot", "acting",
         "boring", "charming", "very", "!", "."]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + ["##s", "##ing", "a", "b", "c"]
TEXTS = ["The film was Good !", "the film was good", "The plot is Awful .", "very very boring acting",
         "Film was great , the acting charming", "GOOD", "the films were bad"]
ATOL = 1e-4


def run(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit(f"FAIL: {' '.join(args)}: exit {r.returncode}\n{r.stderr}")
    return r.stdout


def kd_labels(kd, d, texts):
    out = run([kd, "predict", "--model", d, "--threads", "1"], input="\n".join(texts) + "\n")
    return [json.loads(line)["label"] for line in out.splitlines()]


def kd_names(kd, d):
    """The class names kd reads from checkpoint d, in id order (kd predict's probabilities)."""
    return list(json.loads(run([kd, "predict", "--model", d, "--threads", "1"], input="x\n"))["probabilities"])


def id2label(d):
    cfg = BertForSequenceClassification.from_pretrained(d).config
    return [cfg.id2label[i] for i in range(cfg.num_labels)]


def check(ok, what):
    print(f"{'ok  ' if ok else 'FAIL'} {what}")
    return 0 if ok else 1


def hf_to_kd(kd, d, data):
    """1: a transformers checkpoint, whole and sharded, in kd."""
    failures = 0
    hf = os.path.join(d, "hf")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, initializer_range=0.2)
    model = BertForSequenceClassification(cfg).eval()
    os.makedirs(hf)
    open(os.path.join(hf, "vocab.txt"), "w").write("\n".join(VOCAB) + "\n")
    tok = BertTokenizer(os.path.join(hf, "vocab.txt"), do_lower_case=False)
    model.save_pretrained(hf)
    tok.save_pretrained(hf)
    sharded = os.path.join(d, "hf-sharded")
    model.save_pretrained(sharded, max_shard_size="20KB")
    tok.save_pretrained(sharded)
    shards = [f for f in os.listdir(sharded) if f.endswith(".safetensors")]
    failures += check(os.path.exists(os.path.join(sharded, "model.safetensors.index.json")) and len(shards) > 1 and
                      not os.path.exists(os.path.join(sharded, "model.safetensors")),
                      f"transformers wrote a sharded checkpoint: model.safetensors.index.json and {len(shards)} shards")
    failures += check("id2label" not in json.load(open(os.path.join(hf, "config.json"))),
                      "transformers' config.json leaves the default names LABEL_0, LABEL_1 out")
    for where in (hf, sharded):
        what = f"transformers -> kd ({'sharded' if where == sharded else 'one file'}, cased)"
        failures += same_logits(kd, where, AutoTokenizer.from_pretrained(where), TEXTS, what, atol=ATOL, rtol=0)
        with torch.no_grad():
            enc = AutoTokenizer.from_pretrained(where)(TEXTS, padding=True, return_tensors="pt")
            want = [model.config.id2label[i] for i in model(**enc).logits.argmax(-1).tolist()]
        got = kd_labels(kd, where, TEXTS)
        failures += check(got == want and kd_names(kd, where) == id2label(where),
                          f"kd predict names the classes as transformers does: {kd_names(kd, where)}, the same "
                          f"{len(got)} predictions")
        ev = subprocess.run([kd, "eval", "--model", where, "--data", os.path.join(data, "dev.tsv"), "--threads", "1",
                             "--quiet"], capture_output=True, text=True)
        failures += check(ev.returncode == 0 and "accuracy" in ev.stdout,
                          f"kd eval of a LABEL_i checkpoint on 0/1 data: {ev.stderr.strip() or 'runs'}")
    return failures, hf


def kd_to_hf(kd, d, hf, data):
    """2: kd's checkpoints (cased from the transformers one, uncased from a preset) in transformers."""
    failures = 0
    common = ["--data", data, "--epochs", "1", "--batch-size", "8", "--max-len", "12", "--lr", "1e-3", "--quiet",
              "--threads", "1"]
    cased = os.path.join(d, "kd-cased")
    run([kd, "finetune", "--model", hf, "--out", cased] + common)
    uncased = os.path.join(d, "kd-uncased")
    # the vocabulary alone (beside hf/vocab.txt, its cased tokenizer_config.json would be honoured)
    plain = os.path.join(d, "plain-vocab")
    os.mkdir(plain)
    shutil.copy(os.path.join(hf, "vocab.txt"), plain)
    run([kd, "finetune", "--model", "bert-tiny", "--vocab", os.path.join(plain, "vocab.txt"), "--out", uncased] + common)
    long_text = " ".join(["the film was good"] * 8)
    for out, lower in ((cased, False), (uncased, True)):
        name = os.path.basename(out)
        tc = json.load(open(os.path.join(out, "tokenizer_config.json")))
        failures += check(tc.get("do_lower_case") is lower and tc.get("model_max_length") == 12 and
                          tc.get("tokenizer_class") == "BertTokenizer" and
                          os.path.exists(os.path.join(out, "special_tokens_map.json")),
                          f"{name}: tokenizer_config.json do_lower_case {tc.get('do_lower_case')}, model_max_length "
                          f"{tc.get('model_max_length')}, special_tokens_map.json")
        auto = AutoTokenizer.from_pretrained(out)
        want = [auto(t)["input_ids"] for t in TEXTS]
        got = [json.loads(x) for x in run([kd, "tokenize", "--model", out], input="\n".join(TEXTS) + "\n").splitlines()]
        failures += check(got == want and auto.do_lower_case is lower,
                          f"{name}: AutoTokenizer ({type(auto).__name__}, do_lower_case {auto.do_lower_case}) gives "
                          f"kd's ids on {len(TEXTS)} mixed-case texts")
        trunc = auto(long_text, truncation=True)["input_ids"]
        kd_trunc = json.loads(run([kd, "tokenize", "--model", out, "--max-len", "12"], input=long_text + "\n"))
        failures += check(len(trunc) == 12 and trunc == kd_trunc,
                          f"{name}: truncation=True cuts a long text to {len(trunc)} ids, as kd's --max-len 12")
        failures += same_logits(kd, out, auto, TEXTS, f"kd -> transformers ({name})", atol=ATOL, rtol=0)
    return failures, cased, uncased


def resave(src, dst):
    """Load a checkpoint in transformers and save it again (model and tokenizer)."""
    BertForSequenceClassification.from_pretrained(src).save_pretrained(dst)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)


def names_round_trip(kd, d, hf, cased, uncased, data):
    """3: class names through kd -> transformers -> kd and transformers -> kd -> transformers -> kd."""
    failures = 0
    dev = os.path.join(data, "dev.tsv")
    # kd's names (the data's 0 and 1) survive transformers' load and save.
    kd_written = json.load(open(os.path.join(uncased, "config.json")))["id2label"]
    back = os.path.join(d, "kd-uncased-resaved")
    resave(uncased, back)
    failures += check(id2label(uncased) == ["0", "1"] and json.load(open(os.path.join(back, "config.json")))
                      .get("id2label") == kd_written and kd_names(kd, back) == ["0", "1"],
                      f"kd names {kd_written} -> transformers {id2label(uncased)} -> saved -> kd {kd_names(kd, back)}")
    # transformers' defaults survive kd's fine-tuning and transformers' save.
    kd_cfg = json.load(open(os.path.join(cased, "config.json")))
    again = os.path.join(d, "kd-cased-resaved")
    resave(cased, again)
    hf_cfg = json.load(open(os.path.join(again, "config.json")))
    got = kd_names(kd, again)
    failures += check(kd_cfg["id2label"] == {"0": "LABEL_0", "1": "LABEL_1"} and id2label(cased) == ["LABEL_0", "LABEL_1"]
                      and "id2label" not in hf_cfg and got == ["LABEL_0", "LABEL_1"],
                      f"transformers LABEL_i -> kd finetune {kd_cfg['id2label']} -> transformers "
                      f"{id2label(cased)} -> saved (id2label {'left out' if 'id2label' not in hf_cfg else 'written'})"
                      f" -> kd {got}")
    ev = subprocess.run([kd, "eval", "--model", again, "--data", dev, "--threads", "1", "--quiet"], capture_output=True,
                        text=True)
    failures += check(ev.returncode == 0, f"kd eval of the resaved checkpoint on 0/1 data: {ev.stderr.strip() or 'runs'}")
    student = os.path.join(d, "student")
    dist = subprocess.run([kd, "distill", "--teacher", hf, "--student", "bert-tiny", "--data", data, "--out", student,
                           "--epochs", "1", "--max-len", "12", "--quiet", "--threads", "1"], capture_output=True, text=True)
    names = json.load(open(os.path.join(student, "config.json")))["id2label"] if dist.returncode == 0 else None
    failures += check(dist.returncode == 0 and names == {"0": "LABEL_0", "1": "LABEL_1"},
                      f"kd distill from the LABEL_i teacher on 0/1 data: student names {names} {dist.stderr.strip()}")
    return failures


def main():
    kd = sys.argv[1]
    failures = 0
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "data")
        os.mkdir(data)
        rows = [f"{t}\t{i % 2}" for i, t in enumerate(TEXTS * 4)]
        for split in ("train", "dev"):
            open(os.path.join(data, f"{split}.tsv"), "w").write("sentence\tlabel\n" + "\n".join(rows) + "\n")
        f, hf = hf_to_kd(kd, d, data)
        failures += f
        f, cased, uncased = kd_to_hf(kd, d, hf, data)
        failures += f
        failures += names_round_trip(kd, d, hf, cased, uncased, data)
        shutil.rmtree(data)
    print(f"check_transformers_roundtrip: {'ok' if failures == 0 else f'{failures} failures'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
