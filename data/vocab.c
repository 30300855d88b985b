/* data/vocab.c — the WordPiece vocabulary: token text <-> id, with an open-addressing hash table keyed
 * by FNV-1a 64 of the token bytes (lookups dominate tokenization time). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/vocab_hash.h"
#include "data/wordpiece.h"
#include "engine/fileio.h"

struct kd_vocab {
    char *text;          /* all tokens, each followed by NUL */
    size_t *off;         /* token i starts at text + off[i] */
    uint32_t *len;
    int32_t n;
    int32_t *slots;      /* id or -1; cap is a power of two */
    uint64_t *slot_hash;
    size_t cap;
    char *name;          /* the file (or name) it was read from, for messages */
};

static int32_t find_hashed(const kd_vocab *v, uint64_t h, const char *a, size_t na, const char *b,
                           size_t nb)
{
    size_t mask = v->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        int32_t id = v->slots[i];
        if (id < 0) return -1;
        if (v->slot_hash[i] == h && v->len[id] == na + nb) {
            const char *tok = v->text + v->off[id];
            if (memcmp(tok, a, na) == 0 && memcmp(tok + na, b, nb) == 0) return id;
        }
    }
}

int32_t kd_vocab_find(const kd_vocab *v, const char *s, size_t n)
{
    return find_hashed(v, kd_vocab_hash(KD_VOCAB_HASH_SEED, s, n), "", 0, s, n);
}

int32_t kd_vocab_find2(const kd_vocab *v, uint64_t h, const char *prefix, size_t np, const char *s,
                       size_t n)
{
    return find_hashed(v, h, prefix, np, s, n);
}

int32_t kd_vocab_size(const kd_vocab *v) { return v ? v->n : 0; }

const char *kd_vocab_token(const kd_vocab *v, int32_t id, size_t *len)
{
    if (!v || id < 0 || id >= v->n) return NULL;
    if (len) *len = v->len[id];
    return v->text + v->off[id];
}

void kd_vocab_free(kd_vocab *v)
{
    if (!v) return;
    free(v->text);
    free(v->off);
    free(v->len);
    free(v->slots);
    free(v->slot_hash);
    free(v->name);
    free(v);
}

const char *kd_vocab_name(const kd_vocab *v)
{
    return v->name ? v->name : "vocabulary";
}

kd_status kd_vocab_parse(const char *text, size_t len, const char *name, kd_vocab **out)
{
    *out = NULL;
    if (len == 0) return kd_fail(KD_ERR_FORMAT, "%s:1: empty vocabulary, expected one token per line", name);
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    if (text[len - 1] == '\n') lines--;
    if (lines > (size_t)INT32_MAX / 2)
        return kd_fail(KD_ERR_FORMAT, "%s: %zu lines, expected at most %d tokens", name, lines, INT32_MAX / 2);
    kd_vocab *v = calloc(1, sizeof *v);
    if (!v) return kd_fail(KD_ERR_NOMEM, "%s: out of memory for the vocabulary", name);
    v->text = malloc(len + 1);
    v->off = malloc(lines * sizeof *v->off);
    v->len = malloc(lines * sizeof *v->len);
    v->cap = 16;
    while (v->cap < 2 * lines) v->cap *= 2;
    v->slots = malloc(v->cap * sizeof *v->slots);
    v->slot_hash = malloc(v->cap * sizeof *v->slot_hash);
    v->name = strdup(name);
    if (!v->text || !v->off || !v->len || !v->slots || !v->slot_hash || !v->name) {
        kd_vocab_free(v);
        return kd_fail(KD_ERR_NOMEM, "%s: out of memory for the vocabulary", name);
    }
    memset(v->slots, 0xFF, v->cap * sizeof *v->slots);
    size_t pos = 0, w = 0;
    for (size_t li = 0; li < lines; li++) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t e = end;
        /* trailing whitespace trimmed, as the reference reader does (str::trim_end) */
        while (e > pos && (text[e - 1] == ' ' || text[e - 1] == '\t' || text[e - 1] == '\r' ||
                           text[e - 1] == '\v' || text[e - 1] == '\f'))
            e--;
        memcpy(v->text + w, text + pos, e - pos);
        v->off[li] = w;
        v->len[li] = (uint32_t)(e - pos);
        w += e - pos;
        v->text[w++] = '\0';
        pos = end + 1;
    }
    v->n = (int32_t)lines;
    for (int32_t id = 0; id < v->n; id++) {
        const char *tok = v->text + v->off[id];
        uint64_t h = kd_vocab_hash(KD_VOCAB_HASH_SEED, tok, v->len[id]);
        size_t mask = v->cap - 1, i = (size_t)h & mask;
        for (;; i = (i + 1) & mask) {
            int32_t o = v->slots[i];
            if (o < 0) break;
            if (v->slot_hash[i] == h && v->len[o] == v->len[id] && memcmp(v->text + v->off[o], tok, v->len[id]) == 0)
                break;   /* a repeated token: the later id wins */
        }
        v->slots[i] = id;
        v->slot_hash[i] = h;
    }
    *out = v;
    return KD_OK;
}

kd_status kd_vocab_load(const char *path, kd_vocab **out)
{
    *out = NULL;
    char *buf;
    size_t n;
    if (kd_read_file(path, &buf, &n) != KD_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", kd_last_error());
        return kd_fail(KD_ERR_IO, "%s (expected vocab.txt, one token per line)", why);
    }
    kd_status st = kd_vocab_parse(buf, n, path, out);
    free(buf);
    return st;
}
