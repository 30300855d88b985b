#!/usr/bin/env python3
"""data/gen_unicode_tables.py — generates data/unicode_tables.c, the per-code-point properties the BERT
tokenizer needs, from the Unicode Character Database (Debian: apt-get install unicode-data) plus
data/unicode_compat.txt (where the reference tokenizer's tables differ from this UCD version).

    python3 data/gen_unicode_tables.py [UCD_DIR] > data/unicode_tables.c      (UCD_DIR: /usr/share/unicode)

Per code point: flags (removed by clean-text, mapped to space, White_Space, BERT punctuation, Mn,
CJK ideograph), canonical combining class, full canonical decomposition (Hangul syllables are decomposed
algorithmically in C), and the lower-case mapping. Looked up through a two-stage table: stage1[cp >> 8]
picks a 256-entry block, the block gives an index into a table of distinct records.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
UCD = sys.argv[1] if len(sys.argv) > 1 else '/usr/share/unicode'
MAXCP = 0x110000

F_REMOVE, F_SPACE, F_WS, F_PUNCT, F_MN, F_CJK, F_LOWER2 = 1, 2, 4, 8, 16, 32, 64

# BERT's CJK blocks (the reference tokenizers' is_chinese_char): these become words of their own.
CJK = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
       (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]


def ranges(path, want=None):
    for line in open(path, encoding='utf-8'):
        line = line.split('#')[0].strip()
        if not line:
            continue
        fields = [x.strip() for x in line.split(';')]
        a, _, b = fields[0].partition('..')
        if want is None or fields[1] == want:
            yield int(a, 16), int(b or a, 16), fields[1]


def main():
    compat_old = None
    cat_override, lower_extra = {}, {}
    for line in open(os.path.join(HERE, 'unicode_compat.txt'), encoding='utf-8'):
        f = line.split('#')[0].split()
        if not f:
            continue
        if f[0] == 'old_version':
            compat_old = tuple(int(x) for x in f[1].split('.'))
        elif f[0] == 'cat':
            cat_override[int(f[1], 16)] = f[2]
        elif f[0] == 'lower':
            lower_extra[int(f[1], 16)] = int(f[2], 16)
        elif f[0] == 'range_lower':
            for c in range(int(f[1], 16), int(f[2], 16) + 1):
                lower_extra[c] = c + int(f[3], 16)
        else:
            raise SystemExit('unicode_compat.txt: unknown directive ' + f[0])
    if compat_old is None:
        raise SystemExit('unicode_compat.txt: old_version missing')

    age = {}
    for a, b, v in ranges(os.path.join(UCD, 'DerivedAge.txt')):
        ver = tuple(int(x) for x in v.split('.'))
        for c in range(a, b + 1):
            age[c] = ver

    cat, ccc, decomp, lower = {}, {}, {}, {}
    first = None
    for line in open(os.path.join(UCD, 'UnicodeData.txt'), encoding='utf-8'):
        f = line.rstrip('\n').split(';')
        cp = int(f[0], 16)
        if f[1].endswith(', First>'):
            first = cp
            continue
        cps = range(first, cp + 1) if f[1].endswith(', Last>') else [cp]
        for c in cps:
            cat[c] = f[2]
            if int(f[3]):
                ccc[c] = int(f[3])
            if f[5] and not f[5].startswith('<'):
                decomp[c] = [int(x, 16) for x in f[5].split()]
            if f[13]:
                lower[c] = int(f[13], 16)
    lower.update(lower_extra)

    white = set()
    for a, b, _ in ranges(os.path.join(UCD, 'PropList.txt'), 'White_Space'):
        white.update(range(a, b + 1))

    def old(c):
        return age.get(c, (99,)) <= compat_old

    def old_cat(c):
        if c in cat_override:
            return cat_override[c]
        return cat.get(c, 'Cn') if old(c) else 'Cn'

    def full_decomp(c):
        if c in decomp and old(c):
            return [y for x in decomp[c] for y in full_decomp(x)]
        return [c]

    pool = []            # decompositions, concatenated
    pool_at = {}
    records = {}         # record tuple -> index
    rec_list = []
    cp_rec = [0] * MAXCP

    def rec_index(r):
        if r not in records:
            records[r] = len(rec_list)
            rec_list.append(r)
        return records[r]

    rec_index((0, 0, 0, 0, 0))    # record 0: nothing special
    ascii_punct = set(b'!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~')
    for c in range(MAXCP):
        gc = old_cat(c)
        flags = 0
        if c in (9, 10, 13):
            flags |= F_SPACE
        elif c == 0 or c == 0xFFFD or gc in ('Cc', 'Cf', 'Co', 'Cs'):
            flags |= F_REMOVE
        elif c in white:
            flags |= F_SPACE
        if c in white:
            flags |= F_WS
        if (c < 128 and c in ascii_punct) or gc.startswith('P'):
            flags |= F_PUNCT
        if gc == 'Mn':
            flags |= F_MN
        if any(a <= c <= b for a, b in CJK):
            flags |= F_CJK
        cc = ccc.get(c, 0) if old(c) else 0
        d = full_decomp(c) if not (0xAC00 <= c <= 0xD7A3) else [c]
        doff, dlen = 0, 0
        if d != [c]:
            key = tuple(d)
            if key not in pool_at:
                pool_at[key] = len(pool)
                pool.extend(d)
            doff, dlen = pool_at[key], len(d)
        delta = 0
        if c == 0x130:
            flags |= F_LOWER2     # SpecialCasing: U+0130 -> U+0069 U+0307, unconditional
        elif c in lower:
            delta = lower[c] - c
        cp_rec[c] = rec_index((flags, cc, doff, dlen, delta))

    blocks, block_at, stage1 = [], {}, []
    for hi in range(MAXCP >> 8):
        blk = tuple(cp_rec[hi << 8:(hi + 1) << 8])
        if blk not in block_at:
            block_at[blk] = len(blocks)
            blocks.append(blk)
        stage1.append(block_at[blk])
    assert len(rec_list) < 65536 and len(blocks) < 65536 and len(pool) < 65536

    out = sys.stdout
    out.write('/* data/unicode_tables.c — GENERATED by data/gen_unicode_tables.py from the Unicode Character\n'
              ' * Database and data/unicode_compat.txt; do not edit. Regenerate with:\n'
              ' *     python3 data/gen_unicode_tables.py /usr/share/unicode > data/unicode_tables.c\n'
              ' * %d records, %d blocks of 256, %d decomposition code points. */\n' %
              (len(rec_list), len(blocks), len(pool)))
    out.write('#include "data/unicode_tables.h"\n\n')
    out.write('const kd_uc_record kd_uc_records[%d] = {\n' % len(rec_list))
    for r in rec_list:
        out.write('    {%d, %d, %d, %d, %d},\n' % r)
    out.write('};\n\n')
    out.write('const uint32_t kd_uc_decomp_pool[%d] = {\n' % max(1, len(pool)))
    for i in range(0, len(pool), 12):
        out.write('    ' + ', '.join('0x%X' % x for x in pool[i:i + 12]) + ',\n')
    out.write('};\n\n')
    out.write('const uint16_t kd_uc_stage1[%d] = {\n' % len(stage1))
    for i in range(0, len(stage1), 16):
        out.write('    ' + ', '.join(str(x) for x in stage1[i:i + 16]) + ',\n')
    out.write('};\n\n')
    out.write('const uint16_t kd_uc_stage2[%d] = {\n' % (len(blocks) * 256))
    for blk in blocks:
        for i in range(0, 256, 16):
            out.write('    ' + ', '.join(str(x) for x in blk[i:i + 16]) + ',\n')
    out.write('};\n')


if __name__ == '__main__':
    main()
