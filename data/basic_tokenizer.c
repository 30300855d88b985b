/* data/basic_tokenizer.c — BERT normalization (clean text, CJK ideographs as words, NFD and removal of
 * nonspacing marks, lower-casing) and pre-tokenization (split on White_Space, isolate punctuation).
 *
 * The order is the reference's: clean -> CJK spacing -> NFD -> drop Mn -> lower-case, then split. NFD
 * includes the canonical reordering of combining marks (stable sort by combining class within each
 * run of non-zero classes); Hangul syllables decompose algorithmically (Unicode ch. 3.12). */
#include <stdlib.h>
#include <string.h>

#include "data/basic_tokenizer.h"
#include "data/unicode_tables.h"
#include "data/utf8.h"

static int grow_cps(kd_encoding *e, size_t need)
{
    if (need <= e->cps_cap) return 1;
    size_t cap = e->cps_cap ? e->cps_cap : 256;
    while (cap < need) cap *= 2;
    uint32_t *p = realloc(e->cps, cap * sizeof *p);
    if (!p) return 0;
    e->cps = p;
    e->cps_cap = cap;
    return 1;
}

static int grow_word(kd_encoding *e, size_t need)
{
    if (need <= e->word_cap) return 1;
    size_t cap = e->word_cap ? e->word_cap : 256;
    while (cap < need) cap *= 2;
    char *p = realloc(e->word, cap);
    if (!p) return 0;
    e->word = p;
    e->word_cap = cap;
    return 1;
}

/* Hangul syllable s = 0xAC00 + (L * 21 + V) * 28 + T  ->  L + 0x1100, V + 0x1161, [T + 0x11A7]. */
static size_t hangul_nfd(uint32_t cp, uint32_t *out)
{
    uint32_t s = cp - 0xAC00u;
    out[0] = 0x1100u + s / 588u;
    out[1] = 0x1161u + (s % 588u) / 28u;
    if (s % 28u == 0) return 2;
    out[2] = 0x11A7u + s % 28u;
    return 3;
}

/* Stable insertion sort of each run of non-zero combining classes (canonical ordering). */
static void canonical_order(uint32_t *c, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        unsigned ci = kd_uc_lookup(c[i])->ccc;
        if (ci == 0) continue;
        size_t j = i;
        uint32_t x = c[i];
        while (j > 0) {
            unsigned cj = kd_uc_lookup(c[j - 1])->ccc;
            if (cj == 0 || cj <= ci) break;
            c[j] = c[j - 1];
            j--;
        }
        c[j] = x;
    }
}

kd_status kd_basic_tokenize(const kd_tokenizer_opts *opts, int strip, const char *text, size_t len,
                            kd_encoding *e, kd_word_fn fn, void *ctx)
{
    /* Every input byte gives at most 3 code points before NFD (CJK spacing) and a decomposition is
     * at most 4 per character (18 for a few compatibility-free sequences is not reached: the longest
     * canonical decomposition is 4); reserve 4 per byte plus the CJK spaces. */
    if (len > SIZE_MAX / 8 - 16 || !grow_cps(e, len * 6 + 16))
        return kd_fail(KD_ERR_NOMEM, "tokenizer: out of memory for %zu bytes of text", len);
    const unsigned char *u = (const unsigned char *)text;
    uint32_t *c = e->cps;
    size_t n = 0;
    int need_order = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp = u[i];
        if (cp < 0x80) {
            i++;
            if (cp < 0x20 || cp == 0x7F) {
                if (opts->clean_text) {
                    if (cp == '\t' || cp == '\n' || cp == '\r') cp = ' ';
                    else continue;
                }
            }
            if (opts->lowercase && cp - 'A' < 26u) cp += 32;
            c[n++] = cp;
            continue;
        }
        size_t used;
        cp = kd_utf8_next(u + i, len - i, &used);
        i += used;
        if (cp == KD_UTF8_BAD) cp = 0xFFFDu;
        const kd_uc_record *r = kd_uc_lookup(cp);
        if (opts->clean_text) {
            if (r->flags & KD_UC_REMOVE) continue;
            if (r->flags & KD_UC_SPACE) {
                c[n++] = ' ';
                continue;
            }
        }
        int cjk = opts->handle_chinese_chars && (r->flags & KD_UC_CJK);
        if (cjk) c[n++] = ' ';
        if (strip) {
            if (cp >= 0xAC00u && cp <= 0xD7A3u) {
                n += hangul_nfd(cp, c + n);
            } else if (r->decomp_len) {
                for (unsigned k = 0; k < r->decomp_len; k++) c[n++] = kd_uc_decomp_pool[r->decomp_off + k];
                need_order = 1;
            } else {
                c[n++] = cp;
                need_order |= r->ccc != 0;
            }
        } else {
            c[n++] = cp;
        }
        if (cjk) c[n++] = ' ';
    }
    if (strip && need_order) canonical_order(c, n);
    if (strip || opts->lowercase) {
        /* drop Mn, lower-case */
        size_t w = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t cp = c[i];
            if (cp < 0x80) {
                /* ASCII from a decomposition (E + U+0301) still needs lower-casing */
                if (opts->lowercase && cp - 'A' < 26u) cp += 32;
                c[w++] = cp;
                continue;
            }
            const kd_uc_record *r = kd_uc_lookup(cp);
            if (strip && (r->flags & KD_UC_MN)) continue;
            if (opts->lowercase) {
                if (r->flags & KD_UC_LOWER2) {
                    /* U+0130 -> i + U+0307: one more code point; w <= i keeps this in place */
                    if (w == i) {
                        if (!grow_cps(e, n + 1))
                            return kd_fail(KD_ERR_NOMEM, "tokenizer: out of memory");
                        c = e->cps;
                        memmove(c + i + 1, c + i, (n - i) * sizeof *c);
                        n++;
                        i++;
                    }
                    c[w++] = 'i';
                    c[w++] = 0x307u;
                    continue;
                }
                cp = (uint32_t)((int32_t)cp + r->lower_delta);
            }
            c[w++] = cp;
        }
        n = w;
    }
    /* pre-tokenize */
    if (!grow_word(e, n * 4 + 4)) return kd_fail(KD_ERR_NOMEM, "tokenizer: out of memory");
    char *word = e->word;
    size_t wb = 0, wc = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = c[i];
        unsigned flags;
        if (cp < 0x80) {
            if (cp == ' ') flags = KD_UC_WS;
            else if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9') || (cp >= 'A' && cp <= 'Z')) flags = 0;
            else flags = kd_uc_lookup(cp)->flags;
        } else {
            flags = kd_uc_lookup(cp)->flags;
        }
        if (flags & (KD_UC_WS | KD_UC_PUNCT)) {
            if (wc) {
                kd_status st = fn(ctx, word, wb, wc);
                if (st != KD_OK) return st;
                wb = wc = 0;
            }
            if (flags & KD_UC_WS) continue;
            char p[4];
            size_t pn = kd_utf8_put(cp, p);
            kd_status st = fn(ctx, p, pn, 1);
            if (st != KD_OK) return st;
            continue;
        }
        wb += kd_utf8_put(cp, word + wb);
        wc++;
    }
    if (wc) return fn(ctx, word, wb, wc);
    return KD_OK;
}
