#!/usr/bin/python3
"""test/models/gen_bert_golden.py — golden logits, loss and parameter gradients of a bert-mini-sized BERT
for sequence classification (4 layers, hidden 256, 4 heads, FFN 1024; vocabulary 1000 and 64 positions to
keep the file small; 3 labels) with random weights on a padded batch, from the plain PyTorch BERT of
torch_bert.py, in float64 from float32 weights, eval mode (no dropout).

Regenerate (from the repository root, with Debian's python3-torch):
    /usr/bin/python3 test/models/gen_bert_golden.py test/models/bert_golden.bin

Weights are not stored: each parameter is `offset + scale * (2u - 1)` rounded to float32, u drawn from a
SplitMix64 stream that test_bert_parity.c reproduces bit for bit (element i of a tensor with seed s is
mix(s * 2^40 + i), u = top 24 bits / 2^24). Gradients are stored as each tensor's L2 norm plus up to 512
sampled elements (all of them for small tensors).

File layout (little-endian): magic u32 0x4B444247 ("KDBG"), version u32 1; config i32 x 8 (vocab, hidden,
layers, heads, ffn, max_position, type_vocab, num_labels) and f64 layer_norm_eps; i32 B, T; ids, mask, type
ids i32 [B, T]; labels i32 [B]; logits f64 [B, num_labels]; loss f64; i32 parameter count; per parameter:
u16 name length, name bytes, f64 offset, f64 scale, u64 seed, i64 numel, f64 grad L2 norm, i32 samples,
then (i64 index, f64 grad) per sample."""
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_bert  # noqa: E402

MAGIC, VERSION = 0x4B444247, 1
CFG = dict(vocab_size=1000, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
           max_position_embeddings=64, type_vocab_size=2, num_labels=3, layer_norm_eps=1e-12)
M64 = (1 << 64) - 1


def uniform_stream(seed, n):
    """u in [0, 1) with 24 bits: SplitMix64's finaliser of seed * 2^40 + i + golden gamma."""
    with np.errstate(over="ignore"):
        z = (np.uint64(seed) << np.uint64(40)) + np.arange(n, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float64) / float(1 << 24)


def param_specs(c):
    """(name, shape, offset, scale) in kd's parameter order."""
    H, F, out = c["hidden_size"], c["intermediate_size"], []
    e = "bert.embeddings."
    out += [(e + "word_embeddings.weight", (c["vocab_size"], H), 0.0, 0.5),
            (e + "position_embeddings.weight", (c["max_position_embeddings"], H), 0.0, 0.5),
            (e + "token_type_embeddings.weight", (c["type_vocab_size"], H), 0.0, 0.5),
            (e + "LayerNorm.weight", (H,), 1.0, 0.2), (e + "LayerNorm.bias", (H,), 0.0, 0.1)]
    for l in range(c["num_hidden_layers"]):
        p = f"bert.encoder.layer.{l}."
        for n in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            out += [(p + n + ".weight", (H, H), 0.0, 0.1), (p + n + ".bias", (H,), 0.0, 0.1)]
            if n == "attention.output.dense":
                out += [(p + "attention.output.LayerNorm.weight", (H,), 1.0, 0.2),
                        (p + "attention.output.LayerNorm.bias", (H,), 0.0, 0.1)]
        out += [(p + "intermediate.dense.weight", (F, H), 0.0, 0.1), (p + "intermediate.dense.bias", (F,), 0.0, 0.1),
                (p + "output.dense.weight", (H, F), 0.0, 0.05), (p + "output.dense.bias", (H,), 0.0, 0.1),
                (p + "output.LayerNorm.weight", (H,), 1.0, 0.2), (p + "output.LayerNorm.bias", (H,), 0.0, 0.1)]
    out += [("bert.pooler.dense.weight", (H, H), 0.0, 0.1), ("bert.pooler.dense.bias", (H,), 0.0, 0.1),
            ("classifier.weight", (c["num_labels"], H), 0.0, 0.2), ("classifier.bias", (c["num_labels"],), 0.0, 0.1)]
    return out


def batch(c):
    """Four rows of lengths 16, 11, 6 and 3 ([CLS] ... [SEP], padded with 0); row 1 is a sentence pair."""
    rng = np.random.default_rng(2024)
    lens, T = [16, 11, 6, 3], 16
    ids = np.zeros((4, T), np.int32)
    mask = np.zeros((4, T), np.int32)
    types = np.zeros((4, T), np.int32)
    for b, n in enumerate(lens):
        ids[b, :n] = rng.integers(103, c["vocab_size"], n)
        ids[b, 0], ids[b, n - 1] = 101, 102
        mask[b, :n] = 1
    ids[1, 5] = 102          # first segment [0, 6), second [6, 11)
    types[1, 6:11] = 1
    return ids, mask, types, np.array([0, 2, 1, 2], np.int32)


def main():
    out = sys.argv[1]
    c = CFG
    specs = param_specs(c)
    P, meta = {}, []
    for k, (name, shape, off, scale) in enumerate(specs):
        n = int(np.prod(shape))
        w = (off + scale * (2.0 * uniform_stream(k + 1, n) - 1.0)).astype(np.float32)
        P[name] = torch.from_numpy(w.astype(np.float64).reshape(shape)).requires_grad_(True)
        meta.append((name, off, scale, k + 1, n))
    ids, mask, types, labels = batch(c)
    z = torch_bert.logits(P, c, torch.from_numpy(ids).long(), torch.from_numpy(mask), torch.from_numpy(types).long())
    loss = torch.nn.functional.cross_entropy(z, torch.from_numpy(labels).long())
    loss.backward()
    rng = np.random.default_rng(7)
    with open(out, "wb") as f:
        f.write(struct.pack("<2I", MAGIC, VERSION))
        f.write(struct.pack("<8i", c["vocab_size"], c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"],
                            c["intermediate_size"], c["max_position_embeddings"], c["type_vocab_size"], c["num_labels"]))
        f.write(struct.pack("<d", c["layer_norm_eps"]))
        f.write(struct.pack("<2i", *ids.shape))
        for a in (ids, mask, types, labels):
            f.write(a.astype("<i4").tobytes())
        f.write(z.detach().numpy().astype("<f8").tobytes())
        f.write(struct.pack("<d", loss.item()))
        f.write(struct.pack("<i", len(meta)))
        for name, off, scale, seed, n in meta:
            g = P[name].grad.numpy().reshape(-1)
            idx = np.arange(n) if n <= 512 else np.sort(rng.choice(n, 512, replace=False))
            nb = name.encode()
            f.write(struct.pack("<H", len(nb)) + nb)
            f.write(struct.pack("<ddQqdi", off, scale, seed, n, float(np.linalg.norm(g)), len(idx)))
            for i in idx:
                f.write(struct.pack("<qd", int(i), float(g[i])))
    print("logits", z.detach().numpy())
    print("loss", loss.item())
    print(f"wrote {out}: {len(meta)} parameters, {os.path.getsize(out)} bytes")


if __name__ == "__main__":
    main()
