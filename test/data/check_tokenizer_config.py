#!/usr/bin/python3
"""test/data/check_tokenizer_config.py — a model directory's tokenizer_config.json decides case and accents
in kd as in transformers: for a small cased vocabulary and each tokenizer_config.json ({"do_lower_case":
false}, true, strip_accents set apart from it, none at all), `kd tokenize --model DIR` gives the ids of
transformers' BertTokenizer.from_pretrained(DIR) (and of BertTokenizerFast, what AutoTokenizer picks) on
mixed-case, accented, CJK and punctuated text; the cased and uncased ids must differ, so the check has teeth.

usage: check_tokenizer_config.py PATH/TO/kd_tokenize_main (or kd). Exits 77 when transformers is not
importable (pip install transformers==4.49.0)."""
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
try:
    import transformers
    from transformers import BertTokenizer, BertTokenizerFast
    transformers.logging.set_verbosity_error()   # a directory without config.json makes it guess a class aloud
except ImportError as e:
    print(f"SKIP: transformers not available to {sys.executable} ({e})")
    sys.exit(77)

VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] +
         ["Hello", "hello", "World", "world", "Café", "Cafe", "café", "cafe", "Zoë", "Zoe", "zoë", "zoe", "NAÏVE",
          "naïve", "NAIVE", "naive", "the", "The", "##s", "##S", "!", ",", ".", "'", "東", "京", "Paris", "paris",
          "É", "é", "E", "e", "##é", "##e", "Straße", "straße", "strasse", "ß"])
TEXTS = ["Hello World!", "hello world", "Café, café and CAFE.", "Zoë's naïve NAÏVE Worlds", "東京 Paris",
         "The Straße", "É é E e", "HELLO", "  spaced\tout  "]
CONFIGS = [None, {"do_lower_case": False}, {"do_lower_case": True}, {"do_lower_case": False, "strip_accents": True},
           {"do_lower_case": True, "strip_accents": False}, {"do_lower_case": False, "strip_accents": None},
           {"do_lower_case": False, "tokenize_chinese_chars": False}]


def kd_ids(kd, d):
    out = subprocess.run([kd, "tokenize", "--model", d], input="\n".join(TEXTS) + "\n", capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise SystemExit(f"FAIL: kd tokenize --model {d}: exit {out.returncode}: {out.stderr}")
    return [json.loads(line) for line in out.stdout.splitlines()]


def main():
    kd = sys.argv[1]
    failures = 0
    seen = {}
    with tempfile.TemporaryDirectory() as d:
        open(os.path.join(d, "vocab.txt"), "w").write("\n".join(VOCAB) + "\n")
        for cfg in CONFIGS:
            path = os.path.join(d, "tokenizer_config.json")
            if os.path.exists(path):
                os.remove(path)
            if cfg is not None:
                json.dump(cfg, open(path, "w"))
            got = kd_ids(kd, d)
            slow = BertTokenizer.from_pretrained(d)
            fast = BertTokenizerFast.from_pretrained(d)
            bad = 0
            for text, ids in zip(TEXTS, got):
                want, want_fast = slow(text)["input_ids"], fast(text)["input_ids"]
                if ids != want or ids != want_fast:
                    print(f"FAIL {cfg}: {text!r}: kd {ids}, BertTokenizer {want}, BertTokenizerFast {want_fast}")
                    bad += 1
            failures += bad
            seen[json.dumps(cfg)] = got
            print(f"{json.dumps(cfg) if cfg is not None else '(no tokenizer_config.json)':62s} {len(TEXTS)} texts: "
                  f"{'same ids as transformers' if not bad else f'{bad} differ'} (do_lower_case {slow.do_lower_case})")
    cased, uncased = seen[json.dumps({"do_lower_case": False})], seen["null"]
    if cased == uncased:
        print("FAIL: cased and uncased ids are the same: the texts do not tell them apart")
        failures += 1
    print(f"check_tokenizer_config: {'ok' if failures == 0 else f'{failures} failures'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
