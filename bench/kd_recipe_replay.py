#!/usr/bin/env python3
"""bench/kd_recipe_replay.py — a kd training run replayed in plain PyTorch, step by step: from the model kd
trained (OUT/init, written by --write-init) and the batches it drew (OUT/batch_order.txt), with dropout
off (kd --dropout 0), the same loss, AdamW, linear schedule with warmup and global-norm clipping as
bench/kd_recipe_pytorch.py (whose training forward it uses). Prints per optimizer step the loss, its soft
and hard parts, the learning rate and the gradient norm before clipping, as JSON lines, to compare with
kd's metrics.jsonl written with --log-every 1 (test/train/check_recipe_parity.py does).

  /usr/bin/python3 bench/kd_recipe_replay.py --init OUT/init --order OUT/batch_order.txt \\
      --train DATA/train.tsv --total-steps N [--teacher DIR --alpha 0.5 --temperature 2] [--steps 100]

    L = alpha * T^2 * KL(softmax(z_T / T) || softmax(z_S / T)) + (1 - alpha) * CE(z_S, y)   (batchmean)

soft is T^2 * KL and hard is CE, before their weights (as kd logs them; soft is 0 without a teacher). The
learning rate of step s (1-based) is lr * (s - 1) / warmup during warmup, then decays linearly to 0 at
--total-steps (kd's train/schedule.c; kd's total is ceil(rows / batch) / accumulation * epochs, whatever
--max-steps stops it at). Runs in float64 by default, so that what differs from kd is kd's float32
rounding alone. Only a training file in GLUE TSV (a header, then sentence<TAB>label) and no transfer set.
"""
import argparse
import csv
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "test", "models"))


def read_order(path):
    """[(step, [row, ...]), ...] from a batch_order.txt: per micro-batch its optimizer step, then its rows."""
    out = []
    with open(path, encoding="utf-8") as f:
        for ln, line in enumerate(f, 1):
            t = line.split()
            if len(t) < 2 or not all(x.isdigit() for x in t):
                raise SystemExit(f"kd_recipe_replay: {path}:{ln}: got '{line.strip()}', expected a step and the "
                                 f"batch's training-file rows (a transfer set's tJ rows are not replayed)")
            step = int(t[0])
            if step < 1 or (out and step not in (out[-1][0], out[-1][0] + 1)):
                raise SystemExit(f"kd_recipe_replay: {path}:{ln}: step {step} does not follow step "
                                 f"{out[-1][0] if out else 0}")
            out.append((step, [int(x) for x in t[1:]]))
    return out


def load_model(d, torch, torch_bert, dtype):
    """(weights named as BertForSequenceClassification names them, config) of a Hugging Face directory."""
    with open(os.path.join(d, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    P = {}
    for n, v in torch_bert.read_safetensors(os.path.join(d, "model.safetensors")).items():
        if n.endswith("position_ids"):
            continue
        name = n if n.startswith("bert.") or n.startswith("classifier.") else "bert." + n
        P[name] = torch.from_numpy(v).to(dtype)
    return P, cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--init", required=True, help="the model before step 1: kd's OUT/init")
    ap.add_argument("--order", required=True, help="kd's OUT/batch_order.txt")
    ap.add_argument("--train", required=True, help="the training file kd read (GLUE TSV)")
    ap.add_argument("--teacher", help="the teacher's directory (distillation)")
    ap.add_argument("--alpha", type=float, default=0.0, help="weight of the soft term (0: fine-tuning)")
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--warmup-steps", type=int, required=True)
    ap.add_argument("--total-steps", type=int, required=True, help="the schedule's length (kd's run, in steps)")
    ap.add_argument("--max-grad-norm", type=float, default=1.0, help="0: no clipping")
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=0, help="optimizer steps to replay (0: all in --order)")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
        import torch_bert
        from kd_recipe_pytorch import train_logits
    except ImportError as e:
        print(f"kd_recipe_replay: skipped: {e} (needs python3-torch and python3-numpy)", file=sys.stderr)
        return 77
    torch.set_num_threads(a.threads)
    dtype = getattr(torch, a.dtype)

    P, cfg = load_model(a.init, torch, torch_bert, dtype)
    teacher = load_model(a.teacher, torch, torch_bert, dtype) if a.teacher else None
    if a.alpha > 0 and not teacher:
        raise SystemExit("kd_recipe_replay: --alpha > 0 needs --teacher")
    label_id = {str(v): int(k) for k, v in cfg.get("id2label", {}).items()}
    with open(a.train, newline="", encoding="utf-8") as f:
        r = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(r)
        rows = [(row[0], row[1].strip()) for row in r]
    tok_s = torch_bert.Tokenizer(os.path.join(a.init, "vocab.txt"))
    tok_t = torch_bert.Tokenizer(os.path.join(a.teacher, "vocab.txt")) if teacher else None

    def encode(tok, text):
        ids = tok.encode(text)
        return ids[: a.max_len - 1] + ids[-1:] if len(ids) > a.max_len else ids

    def tensors(tok, idx):
        ids, mask = torch_bert.pad_batch([encode(tok, rows[i][0]) for i in idx])
        ids, mask = torch.from_numpy(ids).long(), torch.from_numpy(mask).long()
        return ids, mask, torch.zeros_like(ids)

    order = read_order(a.order)
    for _, idx in order:
        for i in idx:
            if i >= len(rows) or rows[i][1] not in label_id:
                raise SystemExit(f"kd_recipe_replay: row {i} of {a.train}: not a row, or its label is not one "
                                 f"of {a.init}/config.json's id2label")

    P = {n: t.clone().requires_grad_(True) for n, t in P.items()}
    params = list(P.values())
    nodecay = lambda n: n.endswith("bias") or "LayerNorm" in n
    opt = torch.optim.AdamW([{"params": [t for n, t in P.items() if not nodecay(n)], "weight_decay": a.weight_decay},
                             {"params": [t for n, t in P.items() if nodecay(n)], "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    warm, total = a.warmup_steps, a.total_steps

    def lr_at(s):  # s: optimizer steps done before this one (kd_schedule_lr)
        if s < warm:
            return a.lr * s / warm
        return a.lr * max(0.0, (total - s) / (total - warm)) if total > warm else 0.0

    T = a.temperature
    groups = {}
    for step, idx in order:
        groups.setdefault(step, []).append(idx)
    last = max(groups) if a.steps <= 0 else min(a.steps, max(groups))
    for step in range(1, last + 1):
        mbs = groups[step]
        loss_sum, soft_sum, hard_sum = 0.0, 0.0, 0.0
        opt.zero_grad()
        for idx in mbs:
            ids, mask, types = tensors(tok_s, idx)
            y = torch.tensor([label_id[rows[i][1]] for i in idx])
            zs = train_logits(P, cfg, ids, mask, types, False)
            hard = F.cross_entropy(zs, y)
            loss = (1 - a.alpha) * hard
            soft = torch.zeros((), dtype=dtype)
            if a.alpha > 0:
                with torch.no_grad():
                    zt = torch_bert.logits(teacher[0], teacher[1], *tensors(tok_t, idx))
                soft = T * T * F.kl_div(F.log_softmax(zs / T, -1), F.softmax(zt / T, -1), reduction="batchmean")
                loss = loss + a.alpha * soft
            (loss / len(mbs)).backward()
            loss_sum, soft_sum, hard_sum = loss_sum + loss.item(), soft_sum + soft.item(), hard_sum + hard.item()
        if a.max_grad_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, a.max_grad_norm).item()
        else:
            norm = torch.linalg.vector_norm(torch.stack([p.grad.detach().norm() for p in params])).item()
        lr = lr_at(step - 1)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        n = len(mbs)
        print(json.dumps({"step": step, "loss": loss_sum / n, "soft": soft_sum / n, "hard": hard_sum / n, "lr": lr,
                          "grad_norm": norm}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
