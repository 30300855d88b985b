#!/usr/bin/env python3
"""bench/kd_recipe_pytorch.py — the SST-2 recipe of the README in plain PyTorch, to set kd's numbers
beside: fine-tune a teacher from a Hugging Face-format directory (config.json + model.safetensors +
vocab.txt, e.g. all-MiniLM-L6-v2), then a 3-layer student initialised from the fine-tuned teacher
(embeddings, layers 0, 2, 4, pooler and classifier, as `kd distill --init-from-teacher`), distilled
(alpha 0.5, T 2) and, as the control, fine-tuned without KD (alpha 0). Same loss, optimiser (AdamW,
betas 0.9/0.999, eps 1e-8, decay 0.01 except biases and LayerNorm weights), linear schedule with 10%
warmup, clipping at 1.0, batch 16, lr 5e-5, max length 128, dropout 0.1 in training, dev accuracy after
every epoch, the best epoch's weights kept (kd ships the best epoch's model, and distils from it).

No `transformers`: the model, the safetensors reader and the tokenizer are test/models/torch_bert.py's
(the reference kd's BERT is checked against). torch_bert's forward is eval-only, so the training
forward below adds Hugging Face's dropouts to the same computation; at start-up it is checked to agree
with torch_bert.logits when dropout is off. Runs with Debian's /usr/bin/python3 + python3-torch:

  /usr/bin/python3 bench/kd_recipe_pytorch.py --model DIR --data ../shared/data/sst2 --train-samples 2500
  /usr/bin/python3 bench/kd_recipe_pytorch.py --model DIR --data ../shared/data/sst2 \
      --subset-file KD_OUT/train_subset.txt --seed S

With --subset-file it trains on exactly the rows a kd run used (the train_subset.txt kd writes into its
output directory: one 0-based row index of train.tsv per line, the header not counted); without it, on a
seeded random sample of --train-samples examples of its own, not kd's.
"""
import argparse
import csv
import json
import math
import os
import random
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "models"))


def train_logits(P, cfg, ids, mask, types, drop):
    """torch_bert.logits with Hugging Face's dropouts: after the embeddings' LayerNorm, on the attention
    probabilities, on each sub-layer's output before the residual add, and on the pooled output. With
    drop False it computes torch_bert.logits (BertForSequenceClassification in eval mode)."""
    import torch
    import torch.nn.functional as F
    p_hidden, p_attn = cfg.get("hidden_dropout_prob", 0.1), cfg.get("attention_probs_dropout_prob", 0.1)
    B, T = ids.shape
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    dh, eps = H // nh, cfg.get("layer_norm_eps", 1e-12)
    hd = lambda t: F.dropout(t, p_hidden if drop else 0.0, drop)
    e = "bert.embeddings."
    x = P[e + "word_embeddings.weight"][ids] + P[e + "token_type_embeddings.weight"][types]
    x = x + P[e + "position_embeddings.weight"][torch.arange(T)]
    x = hd(F.layer_norm(x, (H,), P[e + "LayerNorm.weight"], P[e + "LayerNorm.bias"], eps))
    ext = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(torch.float32).min
    for l in range(cfg["num_hidden_layers"]):
        p = f"bert.encoder.layer.{l}."
        lin = lambda t, n: F.linear(t, P[p + n + ".weight"], P[p + n + ".bias"])
        heads = lambda t: t.view(B, T, nh, dh).transpose(1, 2)
        q, k, v = (heads(lin(x, "attention.self." + n)) for n in ("query", "key", "value"))
        s = q @ k.transpose(-1, -2) / math.sqrt(dh) + ext
        att = F.dropout(torch.softmax(s, dim=-1), p_attn if drop else 0.0, drop)
        att = (att @ v).transpose(1, 2).reshape(B, T, H)
        x = F.layer_norm(hd(lin(att, "attention.output.dense")) + x, (H,),
                         P[p + "attention.output.LayerNorm.weight"], P[p + "attention.output.LayerNorm.bias"], eps)
        f = lin(F.gelu(lin(x, "intermediate.dense")), "output.dense")
        x = F.layer_norm(hd(f) + x, (H,), P[p + "output.LayerNorm.weight"], P[p + "output.LayerNorm.bias"], eps)
    pooled = torch.tanh(F.linear(x[:, 0], P["bert.pooler.dense.weight"], P["bert.pooler.dense.bias"]))
    return F.linear(hd(pooled), P["classifier.weight"], P["classifier.bias"])


def read_rows(path, n):
    """The row indices of a kd train_subset.txt: whole numbers in [0, n), one per line, ascending (the data
    file's order), no repeats. None (after a message naming the line) on anything else."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for ln, line in enumerate(f, 1):
            t = line.strip()
            if not t.isdigit() or int(t) >= n or (rows and int(t) <= rows[-1]):
                print(f"kd_recipe_pytorch: {path}:{ln}: got '{t}', expected a row index in [0, {n}) above the "
                      f"previous line's", file=sys.stderr)
                return None
            rows.append(int(t))
    if not rows:
        print(f"kd_recipe_pytorch: {path}: no rows", file=sys.stderr)
        return None
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="teacher directory: config.json, model.safetensors, vocab.txt")
    ap.add_argument("--data", required=True, help="directory with train.tsv and dev.tsv (GLUE format)")
    ap.add_argument("--train-samples", type=int, default=2500,
                    help="size of this script's own seeded subset (ignored with --subset-file)")
    ap.add_argument("--subset-file", help="train on these rows of train.tsv: kd's OUT/train_subset.txt")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--student-layers", type=int, default=3)
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
        import torch_bert
    except ImportError as e:
        print(f"kd_recipe_pytorch: skipped: {e} (needs python3-torch and python3-numpy)")
        return 0
    torch.set_num_threads(a.threads)

    def read(path):
        with open(path, newline="", encoding="utf-8") as f:
            r = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            next(r)
            return [(row[0].strip(), int(row[1])) for row in r]

    train, dev = read(os.path.join(a.data, "train.tsv")), read(os.path.join(a.data, "dev.tsv"))
    if a.subset_file:
        rows = read_rows(a.subset_file, len(train))
        if rows is None:
            return 1
        train = [train[i] for i in rows]
        subset = f"the {len(rows)} rows of {a.subset_file}"
    else:
        random.Random(a.seed).shuffle(train)
        train = train[: a.train_samples]
        subset = f"a seeded sample of {len(train)}"
    tok = torch_bert.Tokenizer(os.path.join(a.model, "vocab.txt"))

    def encode(text):
        ids = tok.encode(text)
        if len(ids) > a.max_len:  # truncate, keeping [SEP] last
            ids = ids[: a.max_len - 1] + ids[-1:]
        return ids

    train = [(encode(t), y) for t, y in train]
    dev = [(encode(t), y) for t, y in dev]

    def batches(rows, bs, shuffle, epoch):
        idx = list(range(len(rows)))
        if shuffle:
            random.Random(a.seed * 1000 + epoch).shuffle(idx)
        for i in range(0, len(idx), bs):
            part = [rows[j] for j in idx[i:i + bs]]
            ids, mask = torch_bert.pad_batch([s for s, _ in part])
            ids, mask = torch.from_numpy(ids).long(), torch.from_numpy(mask).long()
            yield ids, mask, torch.zeros_like(ids), torch.tensor([y for _, y in part])

    # --- the teacher's weights, named as BertForSequenceClassification names them
    with open(os.path.join(a.model, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    raw = torch_bert.read_safetensors(os.path.join(a.model, "model.safetensors"))
    P = {}
    for n, v in raw.items():
        if n.endswith("position_ids"):
            continue
        name = n if n.startswith("bert.") or n.startswith("classifier.") else "bert." + n
        P[name] = torch.from_numpy(v).float()
    torch.manual_seed(a.seed)
    H, std = cfg["hidden_size"], cfg.get("initializer_range", 0.02)
    if "bert.pooler.dense.weight" not in P:
        P["bert.pooler.dense.weight"] = torch.randn(H, H) * std
        P["bert.pooler.dense.bias"] = torch.zeros(H)
    if "classifier.weight" not in P or P["classifier.weight"].shape[0] != 2:
        P["classifier.weight"] = torch.randn(2, H) * std
        P["classifier.bias"] = torch.zeros(2)

    # The training forward without dropout must be torch_bert's eval forward.
    with torch.no_grad():
        ids, mask, types, _ = next(batches(dev, 8, False, 0))
        diff = (train_logits(P, cfg, ids, mask, types, False) - torch_bert.logits(P, cfg, ids, mask, types)).abs().max()
    if not diff <= 1e-4:
        print(f"kd_recipe_pytorch: training forward differs from torch_bert.logits by {diff}", file=sys.stderr)
        return 1

    def evaluate(P, cfg):
        right = 0
        with torch.no_grad():
            for ids, mask, types, y in batches(dev, 64, False, 0):
                right += (torch_bert.logits(P, cfg, ids, mask, types).argmax(-1) == y).sum().item()
        return right / len(dev)

    def train_model(P, cfg, teacher, alpha, what):
        """Returns (best weights, best accuracy, best epoch, last accuracy, seconds)."""
        T = a.temperature
        torch.manual_seed(a.seed)
        P = {n: t.clone().requires_grad_(True) for n, t in P.items()}
        nodecay = lambda n: n.endswith("bias") or "LayerNorm.weight" in n
        opt = torch.optim.AdamW([{"params": [t for n, t in P.items() if not nodecay(n)], "weight_decay": 0.01},
                                 {"params": [t for n, t in P.items() if nodecay(n)], "weight_decay": 0.0}],
                                lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
        total = math.ceil(len(train) / a.batch_size) * a.epochs
        warm = round(0.1 * total)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: s / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
        best, best_acc, best_ep, acc, t0 = None, -1.0, 0, 0.0, time.time()
        for ep in range(a.epochs):
            for ids, mask, types, y in batches(train, a.batch_size, True, ep):
                zs = train_logits(P, cfg, ids, mask, types, True)
                loss = (1 - alpha) * F.cross_entropy(zs, y)
                if alpha > 0:
                    with torch.no_grad():
                        zt = torch_bert.logits(teacher[0], teacher[1], ids, mask, types)
                    loss = loss + alpha * T * T * F.kl_div(F.log_softmax(zs / T, -1), F.softmax(zt / T, -1),
                                                           reduction="batchmean")
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(list(P.values()), 1.0)
                opt.step()
                sched.step()
            acc = evaluate(P, cfg)
            if acc > best_acc:
                best_acc, best_ep = acc, ep + 1
                best = {n: t.detach().clone() for n, t in P.items()}
            print(f"  {what}: epoch {ep + 1}: dev accuracy {acc:.4f} ({time.time() - t0:.0f} s)", flush=True)
        return best, best_acc, best_ep, acc, time.time() - t0

    def student_from(P, cfg):
        k = cfg["num_hidden_layers"] // a.student_layers
        S = {n: t for n, t in P.items() if ".encoder.layer." not in n}
        for i in range(a.student_layers):
            src = f"bert.encoder.layer.{i * k}."
            for n, t in P.items():
                if n.startswith(src):
                    S[f"bert.encoder.layer.{i}." + n[len(src):]] = t
        return S, dict(cfg, num_hidden_layers=a.student_layers)

    nparams = lambda P: sum(t.numel() for t in P.values())
    print(f"kd_recipe_pytorch: torch {torch.__version__}, {torch.get_num_threads()} threads; {len(train)} training "
          f"examples ({subset}), {len(dev)} dev; batch {a.batch_size}, lr {a.lr}, {a.epochs} epochs, max length {a.max_len}, "
          f"seed {a.seed}", flush=True)
    rows = []
    Pt, best_t, ep_t, last_t, sec_t = train_model(P, cfg, None, 0.0, "teacher")
    rows.append(("teacher", nparams(Pt), best_t, ep_t, last_t, sec_t))
    Ps, scfg = student_from(Pt, cfg)
    _, best_kd, ep_kd, last_kd, sec_kd = train_model(Ps, scfg, (Pt, cfg), a.alpha, "student + KD")
    rows.append(("student + KD", nparams(Ps), best_kd, ep_kd, last_kd, sec_kd))
    _, best_no, ep_no, last_no, sec_no = train_model(Ps, scfg, None, 0.0, "student, no KD")
    rows.append(("student, no KD", nparams(Ps), best_no, ep_no, last_no, sec_no))
    print(f"{'model':<16}{'parameters':>12}{'best acc':>10}{'epoch':>7}{'last acc':>10}{'train s':>9}")
    for r in rows:
        print(f"{r[0]:<16}{r[1]:>12}{r[2]:>10.4f}{r[3]:>7}{r[4]:>10.4f}{r[5]:>9.0f}")
    print(f"KD student: {100 * best_kd / best_t:.1f}% of the teacher's accuracy, {100 * (best_kd - best_no):+.2f} "
          f"points over the same student without KD (best epochs); max RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
