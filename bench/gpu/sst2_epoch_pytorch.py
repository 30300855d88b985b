#!/usr/bin/env python3
"""bench/gpu/sst2_epoch_pytorch.py — one epoch of SST-2 distillation, bert-large teacher -> bert-base
student, on a GPU in PyTorch eager under bf16 autocast, as `kd distill` runs its first epoch: GLUE's
train.tsv (header line, sentence<TAB>label) tokenized with Hugging Face `tokenizers`' BertWordPieceTokenizer
(lowercase) at max length 128 ([CLS] and [SEP] included), shuffled with --seed, batches of 16 padded to
their longest row, per step a teacher forward (eval mode, no graph) and the student's training step
(dropout 0.1, L = alpha T^2 KL + (1 - alpha) CE with alpha 0.5 and T 2, backward, clipping at 1.0, AdamW
at lr 5e-5 with decay 0.01 except biases and LayerNorm weights, kd's linear schedule: 10% warm-up, decay
to 0 over --schedule-epochs epochs of which this is the first). The model code, optimizer and attention
(F.scaled_dot_product_attention with a boolean padding mask) are bench_kd_gpu_pytorch.py's.

This is a timing benchmark: teacher and student are randomly initialised (bench_kd_pytorch's weights),
so the losses mean nothing, unless --teacher DIR names a Hugging Face checkpoint (config.json and
model.safetensors or pytorch_model.bin) for the teacher; the student is random either way. It reports the
epoch's wall time (tokenization excluded and reported apart; --warmup-steps untimed steps at learning
rate 0 run first, so the timing excludes the device's start-up), the steps, sentences/s, tokens/s (real
tokens, and padded tokens the GPU computed on) and the peak of torch.cuda.max_memory_allocated().
Losses and gradient norms are checked finite at the end of the epoch (a check per step would add a
host-device synchronisation to every step).

  python3 bench/gpu/sst2_epoch_pytorch.py [--data ../shared/data/sst2]
      [--vocab ../shared/data/bert-base-uncased/vocab.txt] [--batch-size 16] [--max-len 128] [--seed 42]
      [--limit N] [--device cuda] [--no-autocast] [--teacher DIR] [--preset-teacher bert-large]
      [--preset-student bert-base] [--attention sdpa|manual] [--adamw default|foreach|fused] [--json FILE]

Smoke run on a CPU:

  python3 bench/gpu/sst2_epoch_pytorch.py --device cpu --preset-teacher tiny --preset-student tiny --limit 64

Exits 1 with a message when torch or tokenizers is missing, the device is unavailable, an input file is
bad, or a loss or gradient norm is not finite; 2 on a bad flag.
"""
import argparse
import csv
import json
import math
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)

import bench_kd_gpu_pytorch as kg  # noqa: E402  (needs the path above)

PROG = "sst2_epoch_pytorch"
DEFAULT_DATA = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "data", "sst2"))
DEFAULT_VOCAB = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "data", "bert-base-uncased",
                                              "vocab.txt"))


def read_tsv(path):
    """[(sentence, label)] from a GLUE TSV whose header names 'sentence' and 'label' columns; None after a
    message naming the file and line on anything else."""
    try:
        f = open(path, newline="", encoding="utf-8")
    except OSError as e:
        print(f"{PROG}: {path}: {e.strerror}", file=sys.stderr)
        return None
    with f:
        r = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(r, None)
        if header is None or "sentence" not in header or "label" not in header:
            print(f"{PROG}: {path}:1: expected a header line with 'sentence' and 'label' columns, got {header}",
                  file=sys.stderr)
            return None
        si, li = header.index("sentence"), header.index("label")
        rows = []
        for ln, row in enumerate(r, 2):
            if len(row) <= max(si, li) or row[li].strip() not in ("0", "1"):
                print(f"{PROG}: {path}:{ln}: expected a sentence and a label 0 or 1 in columns {si + 1} and "
                      f"{li + 1}, got {row}", file=sys.stderr)
                return None
            rows.append((row[si].strip(), int(row[li])))
    if not rows:
        print(f"{PROG}: {path}: no examples after the header", file=sys.stderr)
        return None
    return rows


def load_teacher(torch, d, dev, dtype):
    """(P, config) from a Hugging Face BERT checkpoint directory, named as BertForSequenceClassification
    names them (kd_recipe_pytorch's rule); a missing pooler or 2-label classifier is drawn at random.
    None after a message."""
    try:
        with open(os.path.join(d, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        print(f"{PROG}: --teacher {d}: config.json: {e}", file=sys.stderr)
        return None
    for k in ("hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size", "vocab_size"):
        if not isinstance(cfg.get(k), int):
            print(f"{PROG}: --teacher {d}: config.json: expected a whole number '{k}'", file=sys.stderr)
            return None
    st, pt = os.path.join(d, "model.safetensors"), os.path.join(d, "pytorch_model.bin")
    if os.path.exists(st):
        sys.path.insert(0, os.path.join(HERE, "..", "..", "test", "models"))
        import torch_bert
        raw = {n: torch.from_numpy(v) for n, v in torch_bert.read_safetensors(st).items()}
    elif os.path.exists(pt):
        raw = torch.load(pt, map_location="cpu")
    else:
        print(f"{PROG}: --teacher {d}: no model.safetensors or pytorch_model.bin", file=sys.stderr)
        return None
    P = {}
    for n, v in raw.items():
        if n.endswith("position_ids"):
            continue
        P[n if n.startswith(("bert.", "classifier.")) else "bert." + n] = v.float()
    H, std = cfg["hidden_size"], cfg.get("initializer_range", 0.02)
    g = torch.Generator().manual_seed(2)
    if "bert.pooler.dense.weight" not in P:
        P["bert.pooler.dense.weight"] = torch.randn(H, H, generator=g) * std
        P["bert.pooler.dense.bias"] = torch.zeros(H)
    if "classifier.weight" not in P or P["classifier.weight"].shape[0] != 2:
        P["classifier.weight"] = torch.randn(2, H, generator=g) * std
        P["classifier.bias"] = torch.zeros(2)
    need = "bert.encoder.layer.%d.output.LayerNorm.bias" % (cfg["num_hidden_layers"] - 1)
    if need not in P or "bert.embeddings.word_embeddings.weight" not in P:
        print(f"{PROG}: --teacher {d}: the weights lack '{need}' or the word embeddings: not a BERT checkpoint?",
              file=sys.stderr)
        return None
    print(f"  teacher: {d}, {sum(t.numel() for t in P.values()) / 1e6:.1f} M parameters", flush=True)
    return {n: t.to(dev, dtype=dtype or torch.float32) for n, t in P.items()}, cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA, help="directory with GLUE's train.tsv (../shared/data/sst2)")
    ap.add_argument("--vocab", help="WordPiece vocab.txt (the teacher's with --teacher, else "
                    "../shared/data/bert-base-uncased/vocab.txt)")
    ap.add_argument("--teacher", metavar="DIR", help="Hugging Face checkpoint for the teacher (default: random)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=128, help="tokens per sentence, [CLS]/[SEP] included (128)")
    ap.add_argument("--seed", type=int, default=42, help="shuffle and dropout seed (42)")
    ap.add_argument("--limit", type=int, default=0, help="run only the first N sentences of the shuffled epoch")
    ap.add_argument("--warmup-steps", type=int, default=3, help="untimed steps at learning rate 0 first (3)")
    ap.add_argument("--schedule-epochs", type=int, default=3,
                    help="epochs the linear schedule spans, as kd distill's --epochs (3)")
    kg.add_model_flags(ap)
    a = ap.parse_args()
    if a.batch_size < 1 or not 2 <= a.max_len <= 512 or a.limit < 0 or a.warmup_steps < 0 or a.schedule_epochs < 1:
        return kg.fail(PROG, "expected --batch-size >= 1, --max-len in [2, 512], --limit >= 0, --warmup-steps >= 0, "
                             "--schedule-epochs >= 1", 2)
    try:
        from tokenizers import BertWordPieceTokenizer
    except ImportError as e:
        return kg.fail(PROG, f"cannot import tokenizers ({e}): pip install tokenizers")
    torch = kg.import_torch(PROG)
    if torch is None:
        return 1
    attention = kg.check_model_flags(a, PROG, torch)
    if attention is None:
        return 2
    dev = kg.open_device(torch, a.device, PROG)
    if dev is None:
        return 1
    if a.threads:
        torch.set_num_threads(a.threads)

    # --- data: the shuffled epoch, tokenized up front
    path = os.path.join(a.data, "train.tsv")
    rows = read_tsv(path)
    if rows is None:
        return 1
    order = list(range(len(rows)))
    random.Random(a.seed).shuffle(order)
    if a.limit:
        order = order[:a.limit]
    vocab = a.vocab or (os.path.join(a.teacher, "vocab.txt") if a.teacher and
                        os.path.exists(os.path.join(a.teacher, "vocab.txt")) else DEFAULT_VOCAB)
    if not os.path.isfile(vocab):
        return kg.fail(PROG, f"--vocab {vocab}: no such file")
    t0 = time.perf_counter()
    tok = BertWordPieceTokenizer(vocab, lowercase=True)
    tok.enable_truncation(max_length=a.max_len)  # counts the [CLS] and [SEP] the post-processor adds
    enc = tok.encode_batch([rows[i][0] for i in order])
    seqs = [e.ids for e in enc]
    labels = [rows[i][1] for i in order]
    t_tok = time.perf_counter() - t0
    if max(len(s) for s in seqs) > a.max_len:
        return kg.fail(PROG, f"tokenizer returned a row longer than --max-len {a.max_len}")
    n_vocab = tok.get_vocab_size()

    amp_on = not a.no_autocast
    amp = lambda: kg.autocast(torch, dev, amp_on)
    print(f"{PROG}: torch {torch.__version__} (CUDA {torch.version.cuda}), device {kg.device_name(torch, dev)}; "
          f"{'bf16 autocast, float32 master weights' if amp_on else 'float32, no autocast'}", flush=True)
    print(f"  data: {path}: {len(seqs)} of {len(rows)} sentences (seed {a.seed}), tokenized in {t_tok:.2f} s "
          f"(tokenizers {__import__('tokenizers').__version__}, vocabulary {vocab}, {n_vocab} entries)", flush=True)
    torch.manual_seed(a.seed)
    tdtype = torch.bfloat16 if a.teacher_weights == "bf16" else None
    if a.teacher:
        got = load_teacher(torch, a.teacher, dev, tdtype)
        if got is None:
            return 1
        Pt, ct = got
    else:
        Pt, ct = kg.make_model(torch, a.preset_teacher, 2, dev, tdtype)
    Ps, cs = kg.make_model(torch, a.preset_student, 1, dev)
    if n_vocab > min(ct["vocab_size"], cs["vocab_size"]):
        return kg.fail(PROG, f"--vocab {vocab} has {n_vocab} entries, more than the models' "
                             f"{min(ct['vocab_size'], cs['vocab_size'])}")
    if a.max_len > min(ct.get("max_position_embeddings", 512), cs["max_position_embeddings"]):
        return kg.fail(PROG, f"--max-len {a.max_len} exceeds the models' position embeddings")
    print("  TIMING BENCHMARK: " + ("the teacher is " + a.teacher + ", the student random"
                                    if a.teacher else "teacher and student are randomly initialised")
          + ": the losses and accuracies of this run mean nothing", flush=True)
    for t in Ps.values():
        t.requires_grad_(True)
    params = list(Ps.values())
    opt, adamw_what = kg.make_adamw(torch, Ps, a.lr, a.adamw)

    # Batches in the shuffled order, each padded to its longest row; pinned so the copies can overlap.
    pin = dev.type == "cuda"
    batches = []
    for i in range(0, len(seqs), a.batch_size):
        part = seqs[i:i + a.batch_size]
        T = max(len(s) for s in part)
        ids = torch.zeros(len(part), T, dtype=torch.long)
        keep = torch.zeros(len(part), T, dtype=torch.bool)
        for r, s in enumerate(part):
            ids[r, :len(s)] = torch.tensor(s, dtype=torch.long)
            keep[r, :len(s)] = True
        y = torch.tensor(labels[i:i + a.batch_size], dtype=torch.long)
        batches.append(tuple(t.pin_memory() if pin else t for t in (ids, keep, y)))
    steps = len(batches)
    real = sum(len(s) for s in seqs)
    padded = sum(b[0].numel() for b in batches)

    # kd's schedule: linear warm-up over 10% of all steps, then linear decay to 0 at the last epoch's end.
    total = steps * a.schedule_epochs
    warm = round(0.1 * total)
    lr_at = lambda s: a.lr * (s / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))

    def step(b, lr):
        ids, keep, y = (t.to(dev, non_blocking=True) for t in b)
        types = torch.zeros_like(ids)
        with torch.no_grad(), amp():
            zt = kg.logits(Pt, ct, ids, keep, types, False, attention)
        with amp():
            zs = kg.logits(Ps, cs, ids, keep, types, True, attention)
        loss = kg.kd_loss(torch, zs, zt, y, a.alpha, a.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        return loss.detach(), gn.detach()

    for i in range(min(a.warmup_steps, steps)):  # lr 0: AdamW leaves the weights as they are
        step(batches[i], 0.0)
    kg.sync(torch, dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    losses, norms = [], []
    t0 = time.perf_counter()
    for s, b in enumerate(batches):
        loss, gn = step(b, lr_at(s))
        losses.append(loss)
        norms.append(gn)
    kg.sync(torch, dev)
    wall = time.perf_counter() - t0
    peak = kg.peak_gib(torch, dev)
    losses, norms = torch.stack(losses).float().cpu(), torch.stack(norms).float().cpu()
    bad = (~torch.isfinite(losses) | ~torch.isfinite(norms)).nonzero()
    if len(bad):
        s = int(bad[0])
        return kg.fail(PROG, f"step {s + 1}: loss {losses[s].item()} or gradient norm {norms[s].item()} not finite")

    print(f"  attention: {attention}; optimizer: AdamW {adamw_what}, lr {a.lr} (10% warm-up, linear decay over "
          f"{a.schedule_epochs} epochs of {steps} steps), KD alpha {a.alpha}, T {a.temperature}; "
          f"{min(a.warmup_steps, steps)} untimed warm-up steps at lr 0")
    print(f"  epoch: {steps} steps of batch {a.batch_size} (max length {a.max_len}, padded per batch to a mean "
          f"{padded / len(seqs):.1f} tokens, real mean {real / len(seqs):.1f})")
    print(f"  wall {wall:.2f} s, {wall / steps * 1e3:.2f} ms/step, {len(seqs) / wall:.1f} sentences/s, "
          f"{real / wall:.0f} real tokens/s ({padded / wall:.0f} padded tokens/s), peak {kg.fmt_gib(peak)}")
    print(f"  loss: first step {losses[0].item():.4f}, last {losses[-1].item():.4f}, mean {losses.mean().item():.4f}",
          flush=True)
    if a.json:
        kg.write_json(a.json, {
            "bench": PROG, "torch": torch.__version__, "cuda": torch.version.cuda,
            "device": kg.device_name(torch, dev), "autocast": "bf16" if amp_on else None,
            "teacher": a.teacher or a.preset_teacher, "student": a.preset_student, "random_weights": not a.teacher,
            "attention": attention, "adamw": adamw_what, "sentences": len(seqs), "steps": steps,
            "batch_size": a.batch_size, "max_len": a.max_len, "seed": a.seed, "tokenize_s": t_tok,
            "wall_s": wall, "sentences_per_s": len(seqs) / wall, "real_tokens": real, "padded_tokens": padded,
            "real_tokens_per_s": real / wall, "padded_tokens_per_s": padded / wall, "peak_gib": peak,
            "loss_first": losses[0].item(), "loss_last": losses[-1].item()})
        print(f"  results written to {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
