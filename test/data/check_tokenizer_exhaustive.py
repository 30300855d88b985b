#!/usr/bin/env python3
"""test/data/check_tokenizer_exhaustive.py — every Unicode code point through `kd tokenize` and through
Hugging Face `tokenizers`, in several contexts ("x{c}y", "{c}" + marks, "A{c}B" cased), and 50,000
seeded random strings mixing scripts, marks, emoji, spaces and special tokens; ids compared one by one.
Exits 77 when `tokenizers` or ../shared is absent.

    python3 test/data/check_tokenizer_exhaustive.py KD_TOKENIZE_EXE [SHARED_DIR]
"""
import os
import subprocess
import sys


def main():
    exe = sys.argv[1]
    shared = sys.argv[2] if len(sys.argv) > 2 else os.environ.get('KD_SHARED', '../shared')
    vocab = os.path.join(shared, 'data', 'bert-base-uncased', 'vocab.txt')
    try:
        os.environ['TOKENIZERS_PARALLELISM'] = 'true'
        from tokenizers import BertWordPieceTokenizer
    except ImportError:
        print('tokenizers not installed: skipped')
        return 77
    if not os.path.exists(vocab):
        print('no ../shared: skipped')
        return 77
    cps = [c for c in range(0x110000) if not (0xD800 <= c <= 0xDFFF) and c not in (0x0A, 0x0D)]
    contexts = [('uncased x{c}y', True, lambda ch: 'x' + ch + 'y'),
                ('uncased {c} + U+0301 + U+0323', True, lambda ch: ch + '\u0301\u0323' + ch),
                ('cased A{c}B', False, lambda ch: 'A' + ch + 'B')]
    # and random strings mixing ASCII words, accents, marks, CJK, emoji, spaces and special tokens
    import random
    rng = random.Random(12345)
    pools = [list(range(0x20, 0x7F)), list(range(0xA0, 0x250)), list(range(0x300, 0x370)), list(range(0x370, 0x530)),
             list(range(0x4E00, 0x4E80)), list(range(0x1F600, 0x1F650)), [0x20, 0x09, 0xA0, 0x3000, 0x200B, 0x2028],
             list(range(0x0E00, 0x0E80)), list(range(0x0600, 0x0700)), list(range(0xAC00, 0xAC80)), list(range(0x1E00, 0x1F00))]
    words = ['[SEP]', '[CLS]', '[MASK]', 'hello', 'Straße', 'unbelievable', '##ing', "don't", 'http://a.b/c?d=e']
    randoms = []
    for _ in range(50000):
        parts = []
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.15:
                parts.append(rng.choice(words))
            else:
                pool = rng.choice(pools)
                parts.append(''.join(chr(rng.choice(pool)) for _ in range(rng.randint(1, 6))))
        randoms.append(''.join(parts))
    contexts.append(('uncased random mixes', True, None))
    bad_total = 0
    for name, lower, make in contexts:
        tok = BertWordPieceTokenizer(vocab, lowercase=lower)
        texts = [make(chr(c)) for c in cps] if make else randoms
        want = [e.ids for e in tok.encode_batch(texts)]
        args = [exe, 'tokenize', '--vocab', vocab] + ([] if lower else ['--cased'])
        data = ('\n'.join(texts) + '\n').encode('utf-8')
        out = subprocess.run(args, input=data, capture_output=True, check=True).stdout.decode().split('\n')
        bad = 0
        for i, (w, g) in enumerate(zip(want, out)):
            if '[' + ','.join(map(str, w)) + ']' != g:
                if bad < 10:
                    print('MISMATCH %s %r: want %s, got %s' % (name, texts[i], w, g))
                bad += 1
        print('%s: %d/%d identical' % (name, len(texts) - bad, len(texts)))
        bad_total += bad
    return 1 if bad_total else 0


if __name__ == '__main__':
    sys.exit(main())
