/* data/wordpiece.c — the tokenizer object, greedy longest-match WordPiece, special-token matching in
 * raw text, and encoding of single texts and pairs with [CLS]/[SEP], type ids and truncation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/basic_tokenizer.h"
#include "data/vocab_hash.h"
#include "data/wordpiece.h"

kd_tokenizer_opts kd_tokenizer_opts_default(void)
{
    kd_tokenizer_opts o = {.lowercase = 1, .strip_accents = -1, .clean_text = 1, .handle_chinese_chars = 1,
                           .max_chars_per_word = 100};
    return o;
}

kd_status kd_tokenizer_new(kd_vocab *vocab, const kd_tokenizer_opts *opts, kd_tokenizer **out)
{
    *out = NULL;
    if (!vocab) return kd_fail(KD_ERR_ARG, "kd_tokenizer_new: no vocabulary");
    kd_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        kd_vocab_free(vocab);
        return kd_fail(KD_ERR_NOMEM, "out of memory for the tokenizer");
    }
    t->vocab = vocab;
    t->opts = opts ? *opts : kd_tokenizer_opts_default();
    t->strip = t->opts.strip_accents < 0 ? t->opts.lowercase : t->opts.strip_accents;
    if (t->opts.max_chars_per_word <= 0) t->opts.max_chars_per_word = 100;
    static const char *const names[5] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    int32_t *slot[5] = {&t->pad_id, &t->unk_id, &t->cls_id, &t->sep_id, &t->mask_id};
    for (int i = 0; i < 5; i++) {
        *slot[i] = kd_vocab_find(vocab, names[i], strlen(names[i]));
        if (*slot[i] >= 0) {
            t->special_id[t->nspecial] = *slot[i];
            t->special_text[t->nspecial] = names[i];
            t->special_len[t->nspecial] = strlen(names[i]);
            t->nspecial++;
        }
    }
    if (t->unk_id < 0) {
        kd_status st = kd_fail(KD_ERR_FORMAT, "%s: no [UNK] token, expected a BERT vocab.txt with [UNK]",
                               kd_vocab_name(vocab));
        kd_tokenizer_free(t);
        return st;
    }
    for (int32_t id = 0; id < kd_vocab_size(vocab); id++) {
        size_t n;
        const char *s = kd_vocab_token(vocab, id, &n);
        if (n >= 2 && s[0] == '#' && s[1] == '#') {
            if (n - 2 > t->max_cont_piece) t->max_cont_piece = n - 2;
        }
        if (n > t->max_piece) t->max_piece = n;
    }
    *out = t;
    return KD_OK;
}

kd_status kd_tokenizer_load(const char *vocab_path, int lowercase, kd_tokenizer **out)
{
    *out = NULL;
    kd_vocab *v;
    kd_status st = kd_vocab_load(vocab_path, &v);
    if (st != KD_OK) return st;
    kd_tokenizer_opts o = kd_tokenizer_opts_default();
    o.lowercase = lowercase;
    return kd_tokenizer_new(v, &o, out);   /* its messages name vocab_path */
}

void kd_tokenizer_free(kd_tokenizer *t)
{
    if (!t) return;
    kd_vocab_free(t->vocab);
    free(t);
}

void kd_encoding_init(kd_encoding *e) { memset(e, 0, sizeof *e); }

void kd_encoding_free(kd_encoding *e)
{
    free(e->ids);
    free(e->type_ids);
    free(e->cps);
    free(e->word);
    free(e->second);
    memset(e, 0, sizeof *e);
}

static kd_status push_id(kd_encoding *e, int32_t id)
{
    if (e->len == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;
        int32_t *a = realloc(e->ids, cap * sizeof *a);
        if (!a) return kd_fail(KD_ERR_NOMEM, "tokenizer: out of memory");
        e->ids = a;
        int32_t *b = realloc(e->type_ids, cap * sizeof *b);
        if (!b) return kd_fail(KD_ERR_NOMEM, "tokenizer: out of memory");
        e->type_ids = b;
        e->cap = cap;
    }
    e->ids[e->len] = id;
    e->type_ids[e->len] = 0;
    e->len++;
    return KD_OK;
}

typedef struct wp_ctx {
    const kd_tokenizer *t;
    kd_encoding *e;
} wp_ctx;

/* Greedy longest match: from each start, the longest vocabulary piece (with "##" after the first);
 * no piece at some start makes the whole word [UNK]. Lengths are in bytes but only cut at character
 * boundaries, so this is the reference's character-wise search. */
static kd_status wordpiece_word(void *ctx, const char *w, size_t n, size_t nchars)
{
    wp_ctx *c = ctx;
    const kd_tokenizer *t = c->t;
    kd_encoding *e = c->e;
    if (nchars > (size_t)t->opts.max_chars_per_word) return push_id(e, t->unk_id);
    size_t mark = e->len, start = 0;
    const uint64_t cont_seed = kd_vocab_hash(KD_VOCAB_HASH_SEED, "##", 2);
    while (start < n) {
        size_t maxp = start ? t->max_cont_piece : t->max_piece;
        size_t end = n - start > maxp ? start + maxp : n;
        while (end > start && end < n && ((unsigned char)w[end] & 0xC0) == 0x80) end--;
        int32_t id = -1;
        while (end > start) {
            if (start) id = kd_vocab_find2(t->vocab, kd_vocab_hash(cont_seed, w + start, end - start), "##", 2,
                                           w + start, end - start);
            else id = kd_vocab_find2(t->vocab, kd_vocab_hash(KD_VOCAB_HASH_SEED, w, end), "", 0, w, end);
            if (id >= 0) break;
            end--;
            while (end > start && ((unsigned char)w[end] & 0xC0) == 0x80) end--;
        }
        if (id < 0) {
            e->len = mark;
            return push_id(e, t->unk_id);
        }
        kd_status st = push_id(e, id);
        if (st != KD_OK) return st;
        start = end;
    }
    return KD_OK;
}

kd_status kd_tokenize(const kd_tokenizer *t, const char *text, size_t len, kd_encoding *e)
{
    wp_ctx ctx = {t, e};
    size_t seg = 0, i = 0;
    /* Special tokens are matched in the raw text, leftmost then longest, before any normalization. */
    while (i < len) {
        const char *br = t->nspecial ? memchr(text + i, '[', len - i) : NULL;
        if (!br) break;
        i = (size_t)(br - text);
        int best = -1;
        for (int k = 0; k < t->nspecial; k++) {
            size_t sl = t->special_len[k];
            if (sl <= len - i && memcmp(text + i, t->special_text[k], sl) == 0 &&
                (best < 0 || sl > t->special_len[best]))
                best = k;
        }
        if (best < 0) {
            i++;
            continue;
        }
        if (i > seg) {
            kd_status st = kd_basic_tokenize(&t->opts, t->strip, text + seg, i - seg, e, wordpiece_word, &ctx);
            if (st != KD_OK) return st;
        }
        kd_status st = push_id(e, t->special_id[best]);
        if (st != KD_OK) return st;
        i += t->special_len[best];
        seg = i;
    }
    if (len > seg) return kd_basic_tokenize(&t->opts, t->strip, text + seg, len - seg, e, wordpiece_word, &ctx);
    return KD_OK;
}

kd_status kd_encode(const kd_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                    size_t max_len, kd_encoding *e)
{
    size_t added = b ? 3 : 2;
    if (max_len && max_len < added)
        return kd_fail(KD_ERR_ARG, "max length %zu is too short: expected at least %zu for [CLS]/[SEP]%s",
                       max_len, added, b ? " of a pair" : "");
    if (t->cls_id < 0 || t->sep_id < 0)
        return kd_fail(KD_ERR_FORMAT, "%s: no [CLS] or [SEP] token, expected a BERT vocab.txt",
                       kd_vocab_name(t->vocab));
    e->len = 0;
    kd_status st = push_id(e, t->cls_id);
    if (st == KD_OK) st = kd_tokenize(t, a, alen, e);
    if (st != KD_OK) return st;
    size_t n1 = e->len - 1, n2 = 0;
    if (b) {
        /* the second text is tokenized after the first, then moved aside for truncation */
        size_t at = e->len;
        st = kd_tokenize(t, b, blen, e);
        if (st != KD_OK) return st;
        n2 = e->len - at;
        if (n2 > e->second_cap) {
            int32_t *s = realloc(e->second, n2 * sizeof *s);
            if (!s) return kd_fail(KD_ERR_NOMEM, "tokenizer: out of memory");
            e->second = s;
            e->second_cap = n2;
        }
        if (n2) memcpy(e->second, e->ids + at, n2 * sizeof *e->ids);
        e->len = at;
    }
    if (max_len && n1 + n2 > max_len - added) {
        size_t target = max_len - added;
        if (!b) {
            n1 = target;
        } else {
            /* longest-first as the reference: with s <= l the lengths, l is cut to max(s, target - s)
             * when s fits, and when that still overflows each gets half (the first the smaller half) */
            int swap = n1 > n2;
            size_t s = swap ? n2 : n1, l = swap ? n1 : n2;
            l = s > target ? s : (s > target - s ? s : target - s);
            if (s + l > target) {
                s = target / 2;
                l = s + target % 2;
            }
            if (swap) {
                n1 = l;
                n2 = s;
            } else {
                n1 = s;
                n2 = l;
            }
            if (n1 > e->len - 1) n1 = e->len - 1;
        }
        e->len = 1 + n1;
    }
    st = push_id(e, t->sep_id);
    if (st != KD_OK || !b) return st;
    for (size_t i = 0; i < n2; i++) {
        st = push_id(e, e->second[i]);
        if (st != KD_OK) return st;
        e->type_ids[e->len - 1] = 1;
    }
    st = push_id(e, t->sep_id);
    if (st == KD_OK) e->type_ids[e->len - 1] = 1;
    return st;
}
