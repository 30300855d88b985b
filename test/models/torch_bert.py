"""test/models/torch_bert.py — the PyTorch reference for kd's BERT: a plain functional BERT over a dict of
tensors named as Hugging Face names them (no `transformers`), safetensors read/write by hand, and a small
BertTokenizer (uncased) for the golden scripts. Used only by the scripts that regenerate test goldens and
by the checkpoint round-trip test; run with Debian's /usr/bin/python3 (python3-torch)."""
import json
import math
import struct
import unicodedata

import numpy as np
import torch
import torch.nn.functional as F

ST_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def read_safetensors(path):
    """{name: numpy array}; BF16 is widened to F32 by shifting into the top half."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        buf = data[b:en]
        if e["dtype"] == "BF16":
            a = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(buf, dtype=np.dtype(ST_DTYPES[e["dtype"]]).newbyteorder("<"))
        out[name] = a.reshape(e["shape"]).copy()
    return out


def write_safetensors(path, tensors, dtype="F32"):
    """tensors: {name: numpy array}; stored as F32 (or F16 / BF16 for the reader's tests)."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype=np.float32)
        if dtype == "F32":
            b = a.astype("<f4").tobytes()
        elif dtype == "F16":
            b = a.astype("<f2").tobytes()
        else:  # BF16, round to nearest even
            u = a.view(np.uint32).astype(np.uint64)
            b = (((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def encode(P, cfg, ids, mask, types, prefix="bert."):
    """Last hidden states [B, T, H], as BertModel computes them in eval mode."""
    B, T = ids.shape
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    dh, eps = H // nh, cfg.get("layer_norm_eps", 1e-12)
    e = prefix + "embeddings."
    x = P[e + "word_embeddings.weight"][ids] + P[e + "token_type_embeddings.weight"][types]
    x = x + P[e + "position_embeddings.weight"][torch.arange(T)]
    x = F.layer_norm(x, (H,), P[e + "LayerNorm.weight"], P[e + "LayerNorm.bias"], eps)
    # Hugging Face's extended mask: (1 - mask) * finfo(float32).min, added to every score row.
    ext = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(torch.float32).min
    for l in range(cfg["num_hidden_layers"]):
        p = f"{prefix}encoder.layer.{l}."
        lin = lambda t, n: F.linear(t, P[p + n + ".weight"], P[p + n + ".bias"])
        heads = lambda t: t.view(B, T, nh, dh).transpose(1, 2)
        q, k, v = heads(lin(x, "attention.self.query")), heads(lin(x, "attention.self.key")), heads(lin(x, "attention.self.value"))
        s = q @ k.transpose(-1, -2) / math.sqrt(dh) + ext
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, H)
        x = F.layer_norm(lin(a, "attention.output.dense") + x, (H,), P[p + "attention.output.LayerNorm.weight"],
                         P[p + "attention.output.LayerNorm.bias"], eps)
        f = lin(F.gelu(lin(x, "intermediate.dense")), "output.dense")
        x = F.layer_norm(f + x, (H,), P[p + "output.LayerNorm.weight"], P[p + "output.LayerNorm.bias"], eps)
    return x


def logits(P, cfg, ids, mask, types, prefix="bert."):
    """BertForSequenceClassification's logits in eval mode: classifier(tanh(pooler([CLS])))."""
    h = encode(P, cfg, ids, mask, types, prefix)
    pooled = torch.tanh(F.linear(h[:, 0], P[prefix + "pooler.dense.weight"], P[prefix + "pooler.dense.bias"]))
    return F.linear(pooled, P["classifier.weight"], P["classifier.bias"])


class Tokenizer:
    """BertTokenizer for uncased vocabularies, enough for plain English sentences: clean, lower-case, strip
    accents, split on whitespace and punctuation, greedy longest-match WordPiece."""

    def __init__(self, vocab_path):
        with open(vocab_path, encoding="utf-8") as f:
            self.vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}

    @staticmethod
    def _is_punct(ch):
        cp = ord(ch)
        if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
            return True
        return unicodedata.category(ch).startswith("P")

    def _basic(self, text):
        text = unicodedata.normalize("NFD", text.lower())
        text = "".join(c for c in text if unicodedata.category(c) != "Mn")
        words, cur = [], ""
        for ch in text:
            if ch.isspace():
                if cur:
                    words.append(cur)
                cur = ""
            elif self._is_punct(ch):
                if cur:
                    words.append(cur)
                words.append(ch)
                cur = ""
            else:
                cur += ch
        if cur:
            words.append(cur)
        return words

    def _wordpiece(self, word):
        if len(word) > 100:
            return [self.vocab["[UNK]"]]
        out, start = [], 0
        while start < len(word):
            end, found = len(word), None
            while start < end:
                piece = ("##" if start > 0 else "") + word[start:end]
                if piece in self.vocab:
                    found = self.vocab[piece]
                    break
                end -= 1
            if found is None:
                return [self.vocab["[UNK]"]]
            out.append(found)
            start = end
        return out

    def encode(self, text):
        ids = [self.vocab["[CLS]"]]
        for w in self._basic(text):
            ids += self._wordpiece(w)
        return ids + [self.vocab["[SEP]"]]


def pad_batch(seqs, pad_id=0):
    T = max(len(s) for s in seqs)
    ids = np.full((len(seqs), T), pad_id, dtype=np.int32)
    mask = np.zeros((len(seqs), T), dtype=np.int32)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = s
        mask[i, :len(s)] = 1
    return ids, mask
