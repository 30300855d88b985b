#!/usr/bin/python3
"""test/models/check_torch_load.py — a checkpoint saved by kd loads in PyTorch and gives kd's logits.

Runs bert_export (argv[1]) into a temporary directory, reads config.json and model.safetensors there with
the plain PyTorch BERT of torch_bert.py (float32, as PyTorch runs the model), checks the Hugging Face
names, shapes and config fields, and compares the logits on the saved padded batch with kd's:
|kd - torch| <= 1e-5 + 1e-4 |torch|. Where transformers is installed, the same directory is loaded with
BertForSequenceClassification.from_pretrained and its logits on the batch (attention mask and token types
included) must be kd's within 1e-4 absolute, with kd's class names in its config (test/train/
check_transformers_roundtrip.py covers trained checkpoints and tokenizers both ways). Exits 77 when torch is not
importable (Debian's python3-torch)."""
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
except ImportError as e:
    print(f"SKIP: PyTorch not available to {sys.executable} ({e}); apt-get install python3-torch")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_bert  # noqa: E402


def check_transformers(d, a, kd):
    """kd's checkpoint in transformers itself: the failures (none when transformers is absent)."""
    try:
        import transformers
        from transformers import BertForSequenceClassification
    except ImportError as e:
        print(f"transformers not available ({e}): its load not checked")
        return 0
    transformers.logging.set_verbosity_error()
    model = BertForSequenceClassification.from_pretrained(d).eval()
    with torch.no_grad():
        z = model(input_ids=torch.from_numpy(a[0].copy()).long(), attention_mask=torch.from_numpy(a[1].copy()).long(),
                  token_type_ids=torch.from_numpy(a[2].copy()).long()).logits.numpy()
    failures = 0
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if names != ["negative", "neutral", "positive"]:
        print(f"FAIL transformers reads the class names {names}")
        failures += 1
    err = np.abs(kd - z)
    if not (err <= 1e-4).all():
        print(f"FAIL logits differ from transformers' at {np.argwhere(~(err <= 1e-4)).tolist()}:\nkd\n{kd}\ntransformers\n{z}")
        failures += 1
    print(f"logits [{z.shape[0]}, {z.shape[1]}] kd vs transformers {transformers.__version__}: max |diff| {err.max():.3g}")
    return failures


def main():
    failures = 0
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.argv[1], d], check=True)
        cfg = json.load(open(os.path.join(d, "config.json")))
        expect = {"model_type": "bert", "architectures": ["BertForSequenceClassification"], "num_labels": 3,
                  "id2label": {"0": "negative", "1": "neutral", "2": "positive"},
                  "label2id": {"negative": 0, "neutral": 1, "positive": 2}, "hidden_act": "gelu"}
        for k, v in expect.items():
            if cfg.get(k) != v:
                print(f"FAIL config.json {k}: {cfg.get(k)!r}, want {v!r}")
                failures += 1
        W = torch_bert.read_safetensors(os.path.join(d, "model.safetensors"))
        H, F = cfg["hidden_size"], cfg["intermediate_size"]
        shapes = {"bert.embeddings.word_embeddings.weight": (cfg["vocab_size"], H),
                  "bert.encoder.layer.1.intermediate.dense.weight": (F, H),
                  "bert.encoder.layer.1.output.dense.weight": (H, F), "bert.pooler.dense.weight": (H, H),
                  "classifier.weight": (3, H), "classifier.bias": (3,)}
        for k, s in shapes.items():
            if k not in W or W[k].shape != s:
                print(f"FAIL tensor {k}: {W[k].shape if k in W else 'missing'}, want {s}")
                failures += 1
        raw = open(os.path.join(d, "batch.bin"), "rb").read()
        B, T = struct.unpack("<2i", raw[:8])
        a = np.frombuffer(raw[8:], dtype="<i4", count=3 * B * T).reshape(3, B, T)
        kd = np.frombuffer(raw[8 + 12 * B * T:], dtype="<f4").reshape(B, -1)
        P = {k: torch.from_numpy(v) for k, v in W.items()}
        with torch.no_grad():
            z = torch_bert.logits(P, cfg, torch.from_numpy(a[0].copy()).long(), torch.from_numpy(a[1].copy()),
                                  torch.from_numpy(a[2].copy()).long()).numpy()
        bad = ~(np.abs(kd - z) <= 1e-5 + 1e-4 * np.abs(z))
        if bad.any():
            print(f"FAIL logits differ at {np.argwhere(bad).tolist()}:\nkd\n{kd}\ntorch\n{z}")
            failures += 1
        print(f"logits [{B}, {kd.shape[1]}] kd vs torch: max |diff| {np.abs(kd - z).max():.3g}")
        failures += check_transformers(d, a, kd)
    print(f"check_torch_load: {'ok' if failures == 0 else f'{failures} failures'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
