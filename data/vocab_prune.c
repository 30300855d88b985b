/* data/vocab_prune.c — a smaller vocabulary for a student: the word pieces its text uses. Greedy longest-match
 * WordPiece keeps every seen text's pieces with the kept subset: at each position the longest match in the
 * full vocabulary is kept, and any longer match in the subset would be one in the full vocabulary too. The
 * single-character pieces are kept so that unseen words still split into characters, never into [UNK]. */
#include <stdlib.h>
#include <string.h>

#include "data/utf8.h"
#include "data/vocab_prune.h"

/* One code point (valid UTF-8), optionally after "##". */
static int single_char(const char *s, size_t n)
{
    if (n > 2 && s[0] == '#' && s[1] == '#') s += 2, n -= 2;
    if (n == 0 || n > 4 || kd_utf8_valid_prefix(s, n) != n) return 0;
    size_t cp = 0;
    for (size_t i = 0; i < n; i++) cp += ((unsigned char)s[i] & 0xC0) != 0x80;
    return cp == 1;
}

kd_status kd_vocab_prune(const kd_tokenizer *t, const kd_dataset *const *sets, int nsets, int32_t **keep, int32_t *n)
{
    *keep = NULL;
    *n = 0;
    int32_t v = kd_vocab_size(t->vocab);
    unsigned char *used = calloc((size_t)v, 1);
    if (!used) return kd_fail(KD_ERR_NOMEM, "vocabulary pruning: out of memory");
    for (int k = 0; k < t->nspecial; k++) used[t->special_id[k]] = 1;
    if (t->unk_id >= 0) used[t->unk_id] = 1;
    for (int32_t id = 0; id < v; id++) {
        size_t len;
        const char *tok = kd_vocab_token(t->vocab, id, &len);
        if (single_char(tok, len)) used[id] = 1;
    }
    kd_encoding e;
    kd_encoding_init(&e);
    kd_status st = KD_OK;
    for (int s = 0; s < nsets && st == KD_OK; s++)
        for (size_t i = 0; sets[s] && i < sets[s]->n && st == KD_OK; i++) {
            e.len = 0;
            st = kd_tokenize(t, sets[s]->text[i], sets[s]->text_len[i], &e);
            for (size_t j = 0; st == KD_OK && j < e.len; j++) used[e.ids[j]] = 1;
        }
    kd_encoding_free(&e);
    int32_t m = 0;
    for (int32_t id = 0; id < v; id++) m += used[id];
    int32_t *ids = st == KD_OK ? malloc((size_t)m * sizeof *ids) : NULL;
    if (st == KD_OK && !ids) st = kd_fail(KD_ERR_NOMEM, "vocabulary pruning: out of memory");
    if (ids) {
        m = 0;
        for (int32_t id = 0; id < v; id++)
            if (used[id]) ids[m++] = id;
        *keep = ids;
        *n = m;
    }
    free(used);
    return st;
}

char *kd_vocab_subset_text(const kd_vocab *v, const int32_t *keep, int32_t n, size_t *len)
{
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t l;
        if (!kd_vocab_token(v, keep[i], &l)) {
            kd_fail(KD_ERR_INDEX, "vocabulary subset: id %d outside the vocabulary of %d", (int)keep[i], (int)kd_vocab_size(v));
            return NULL;
        }
        total += l + 1;
    }
    char *text = malloc(total + 1), *w = text;
    if (!text) {
        kd_fail(KD_ERR_NOMEM, "vocabulary subset: out of memory");
        return NULL;
    }
    for (int32_t i = 0; i < n; i++) {
        size_t l;
        const char *tok = kd_vocab_token(v, keep[i], &l);
        memcpy(w, tok, l);
        w += l;
        *w++ = '\n';
    }
    *w = '\0';
    *len = total;
    return text;
}
