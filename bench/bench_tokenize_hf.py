#!/usr/bin/env python3
"""bench/bench_tokenize_hf.py — Hugging Face `tokenizers` on all of SST-2 train, single-threaded
(TOKENIZERS_PARALLELISM=false, RAYON_NUM_THREADS=1), encoding one sentence at a time and as one batch;
median of repeats in tokens/s, the token count to compare with kd's, and with --kd BENCH_EXE the kd
figure from bench_tokenize and the ratio.

    python3 bench/bench_tokenize_hf.py [--shared ../shared] [--reps 5] [--kd build/bench/bench_tokenize]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

os.environ['TOKENIZERS_PARALLELISM'] = 'false'
os.environ['RAYON_NUM_THREADS'] = '1'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--shared', default=os.environ.get('KD_SHARED', '../shared'))
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--kd', help='path of bench_tokenize to run for the side-by-side figure')
    a = ap.parse_args()
    try:
        from tokenizers import BertWordPieceTokenizer
    except ImportError:
        print('tokenizers is not installed (pip install tokenizers): skipped')
        return 77
    train = os.path.join(a.shared, 'data', 'sst2', 'train.tsv')
    vocab = os.path.join(a.shared, 'data', 'bert-base-uncased', 'vocab.txt')
    if not os.path.exists(train) or not os.path.exists(vocab):
        print('no SST-2 / vocab under %s: skipped' % a.shared)
        return 77
    rows = open(train, encoding='utf-8').read().split('\n')[1:]
    rows = [r.split('\t')[0].rstrip(' ') for r in rows if r]
    tok = BertWordPieceTokenizer(vocab, lowercase=True)
    tokens = sum(len(e.ids) for e in tok.encode_batch(rows))
    print('HF tokenizers %s, 1 thread: %d sentences, %d tokens' % (__import__('tokenizers').__version__, len(rows), tokens))
    results = {}
    for name, fn in [('one by one', lambda: [tok.encode(r) for r in rows]), ('batch', lambda: tok.encode_batch(rows))]:
        fn()
        secs = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            fn()
            secs.append(time.perf_counter() - t0)
        med = statistics.median(secs)
        results[name] = tokens / med
        print('  %-10s median of %d: %.4f s, tokens_per_s=%.0f' % (name, a.reps, med, tokens / med))
    if a.kd:
        out = subprocess.run([a.kd, train, vocab], capture_output=True, text=True)
        print(out.stdout.strip())
        m = re.search(r'tokens_per_s=([0-9.]+)', out.stdout)
        t = re.search(r'(\d+) tokens', out.stdout)
        if m:
            kd = float(m.group(1))
            if t and int(t.group(1)) != tokens:
                print('TOKEN COUNTS DIFFER: kd %s, HF %d' % (t.group(1), tokens))
            for name, v in results.items():
                print('kd / HF (%s): %.2fx' % (name, kd / v))
    return 0


if __name__ == '__main__':
    sys.exit(main())
