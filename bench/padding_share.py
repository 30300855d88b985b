#!/usr/bin/env python3
"""bench/padding_share.py — how much of a padded batch is padding, for a data set and a batch order.

Token lengths come from `kd tokenize` (one JSON array of ids per line, [CLS]/[SEP] included); a batch is
padded to its longest row rounded up to a multiple of 8, as data/batch.c pads (capped at --max-len). The
batches are either the trainer's (a run's OUT/batch_order.txt: per line, the optimizer step, then the
0-based rows of the training file) or random shuffles of every row into batches of --batch-size.

    tail -n +2 train.tsv | cut -f1 | kd tokenize --model DIR --max-len 128 > lens.jsonl
    python3 bench/padding_share.py --lengths lens.jsonl [--order OUT/batch_order.txt] [--batch-size 32]
"""
import argparse
import json
import random


def padded(n, mult, cap):
    return min(cap, (n + mult - 1) // mult * mult)


def share(batches, lens, mult, cap):
    real = sum(lens[i] for b in batches for i in b)
    total = sum(len(b) * padded(max(lens[i] for i in b), mult, cap) for b in batches)
    return real, total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", required=True, help="kd tokenize output, one JSON array per line")
    ap.add_argument("--order", help="a run's batch_order.txt (rows of the training file per batch)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--multiple", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=3, help="random shuffles averaged over")
    a = ap.parse_args()
    with open(a.lengths) as f:
        lens = [len(json.loads(line)) for line in f if line.strip()]
    print(f"{len(lens)} rows, mean {sum(lens) / len(lens):.2f} tokens, longest {max(lens)}")
    if a.order:
        batches = []
        with open(a.order) as f:
            for line in f:
                parts = line.split()
                if len(parts) > 1 and all(p.isdigit() for p in parts[1:]):
                    batches.append([int(p) for p in parts[1:]])
        real, total = share(batches, lens, a.multiple, a.max_len)
        print(f"trainer order ({a.order}): {len(batches)} batches, {real} real of {total} padded tokens: "
              f"real {real / total:.3f}, padding {1 - real / total:.3f}")
    for seed in range(a.seeds):
        idx = list(range(len(lens)))
        random.Random(seed).shuffle(idx)
        batches = [idx[i:i + a.batch_size] for i in range(0, len(idx), a.batch_size)]
        real, total = share(batches, lens, a.multiple, a.max_len)
        print(f"random order, seed {seed}, batch {a.batch_size}: {len(batches)} batches, {real} real of {total} "
              f"padded tokens: real {real / total:.3f}, padding {1 - real / total:.3f}")


if __name__ == "__main__":
    main()
