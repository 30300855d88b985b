#!/usr/bin/env python3
"""bench/kd_recipe_pytorch.py — the SST-2 recipe of the README in plain PyTorch, to set kd's numbers
beside: fine-tune a teacher from a Hugging Face-format directory (config.json + model.safetensors +
vocab.txt, e.g. all-MiniLM-L6-v2), then a 3-layer student initialised from the fine-tuned teacher's layers 0, 2, 4,
distilled (alpha 0.5, T 2) and, as the control, fine-tuned without KD. Same loss, optimiser (AdamW,
decay 0.01 except biases/LayerNorm), linear schedule with 10% warmup, clipping at 1.0, batch 16,
lr 5e-5, max length 128, a seeded subset of --train-samples examples.

Runs with Debian's /usr/bin/python3 + python3-torch; needs `transformers` for the BERT module and the
tokenizer. Exits 0 with a message when either is missing.

  /usr/bin/python3 bench/kd_recipe_pytorch.py --model DIR --data ../shared/data/sst2 --train-samples 2500
"""
import argparse
import copy
import csv
import math
import random
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--train-samples", type=int, default=2500)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--student-layers", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
        from transformers import BertForSequenceClassification, BertTokenizerFast
    except ImportError as e:
        print(f"kd_recipe_pytorch: skipped: {e} (needs python3-torch and transformers)")
        return 0
    if a.threads:
        torch.set_num_threads(a.threads)

    def read(path):
        with open(path, newline="") as f:
            r = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            next(r)
            return [(row[0].strip(), int(row[1])) for row in r]

    train, dev = read(f"{a.data}/train.tsv"), read(f"{a.data}/dev.tsv")
    rng = random.Random(a.seed)
    rng.shuffle(train)
    train = train[: a.train_samples]
    tok = BertTokenizerFast.from_pretrained(a.model)

    def batches(rows, bs, shuffle, epoch):
        idx = list(range(len(rows)))
        if shuffle:
            random.Random(a.seed * 1000 + epoch).shuffle(idx)
        for i in range(0, len(idx), bs):
            part = [rows[j] for j in idx[i:i + bs]]
            enc = tok([t for t, _ in part], padding=True, truncation=True, max_length=128, return_tensors="pt")
            yield enc, torch.tensor([y for _, y in part]), idx[i:i + bs]

    def evaluate(m):
        m.eval()
        right = 0
        with torch.no_grad():
            for enc, y, _ in batches(dev, 64, False, 0):
                right += (m(**enc).logits.argmax(-1) == y).sum().item()
        return right / len(dev)

    def train_model(m, teacher, alpha, T=2.0):
        torch.manual_seed(a.seed)
        decay = [p for n, p in m.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
        no_decay = [p for n, p in m.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=5e-5)
        total = math.ceil(len(train) / 16) * a.epochs
        warm = round(0.1 * total)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: s / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
        t0 = time.time()
        for ep in range(a.epochs):
            m.train()
            for enc, y, _ in batches(train, 16, True, ep):
                zs = m(**enc).logits
                loss = (1 - alpha) * F.cross_entropy(zs, y)
                if alpha > 0:
                    with torch.no_grad():
                        zt = teacher(**enc).logits
                    loss = loss + alpha * T * T * F.kl_div(F.log_softmax(zs / T, -1), F.softmax(zt / T, -1),
                                                           reduction="batchmean")
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
                opt.step()
                sched.step()
            print(f"  epoch {ep + 1}: dev accuracy {evaluate(m):.4f}", flush=True)
        return evaluate(m), time.time() - t0

    def student_from(teacher):
        s = copy.deepcopy(teacher)
        k = teacher.config.num_hidden_layers // a.student_layers
        s.bert.encoder.layer = torch.nn.ModuleList([s.bert.encoder.layer[i * k] for i in range(a.student_layers)])
        s.config.num_hidden_layers = a.student_layers
        return s

    torch.manual_seed(a.seed)
    teacher = BertForSequenceClassification.from_pretrained(a.model, num_labels=2)
    print("teacher (fine-tune):", flush=True)
    acc_t, sec_t = train_model(teacher, None, 0.0)
    teacher.eval()
    print("student + KD:", flush=True)
    acc_kd, sec_kd = train_model(student_from(teacher), teacher, 0.5)
    print("student, no KD:", flush=True)
    acc_no, sec_no = train_model(student_from(teacher), None, 0.0)
    print(f"teacher {acc_t:.4f} ({sec_t:.0f} s)  student+KD {acc_kd:.4f} ({sec_kd:.0f} s)  "
          f"student no-KD {acc_no:.4f} ({sec_no:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
