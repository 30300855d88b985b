/* data/augment.c — variants of training sentences for a teacher to label (see augment.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/augment.h"
#include "engine/fileio.h"
#include "engine/rng.h"

kd_augment_opts kd_augment_defaults(void)
{
    kd_augment_opts o = { .variants = 0, .p_mask = 0.1, .p_replace = 0.1, .p_ngram = 0.25, .max_ngram = 5,
                          .mask_token = "[MASK]", .seed = 42 };
    return o;
}

typedef struct word { const char *s; size_t n; } word;

/* The words of text (split at spaces), appended to *w. */
static int split_words(const char *t, size_t len, word **w, size_t *n, size_t *cap)
{
    for (size_t i = 0; i < len;) {
        while (i < len && (t[i] == ' ' || t[i] == '\t')) i++;
        size_t j = i;
        while (j < len && t[j] != ' ' && t[j] != '\t') j++;
        if (j == i) break;
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 64;
            word *g = realloc(*w, c * sizeof *g);
            if (!g) return 0;
            *w = g;
            *cap = c;
        }
        (*w)[(*n)++] = (word){ t + i, j - i };
        i = j;
    }
    return 1;
}

static double uniform(uint64_t *s) { return (double)(kd_splitmix64(s) >> 11) * 0x1p-53; }   /* [0, 1) */

kd_status kd_augment(const kd_dataset *d, const kd_augment_opts *o, kd_dataset *out)
{
    memset(out, 0, sizeof *out);
    if (o->variants < 0 || !(o->p_mask >= 0 && o->p_replace >= 0 && o->p_mask + o->p_replace <= 1) ||
        !(o->p_ngram >= 0 && o->p_ngram <= 1) || o->max_ngram < 1)
        return kd_fail(KD_ERR_ARG, "augment: variants %d, p_mask %g, p_replace %g, p_ngram %g, max n-gram %d: expected "
                                   "variants >= 0, probabilities in [0, 1] with p_mask + p_replace <= 1, n-gram >= 1",
                       o->variants, o->p_mask, o->p_replace, o->p_ngram, o->max_ngram);
    word *corpus = NULL, *sent = NULL;
    size_t nc = 0, cc = 0, ns, cs = 0;
    int ok = 1;
    for (size_t i = 0; i < d->n && ok; i++) ok = split_words(d->text[i], d->text_len[i], &corpus, &nc, &cc);
    size_t total = d->n * (size_t)o->variants;
    out->text = malloc((total ? total : 1) * sizeof *out->text);
    out->text_len = malloc((total ? total : 1) * sizeof *out->text_len);
    out->label = malloc((total ? total : 1) * sizeof *out->label);
    ok = ok && out->text && out->text_len && out->label;
    size_t mlen = strlen(o->mask_token);
    for (size_t i = 0; i < d->n && ok; i++) {
        ns = 0;
        if (!split_words(d->text[i], d->text_len[i], &sent, &ns, &cs)) ok = 0;
        /* The generator's state: a function of (seed, sentence), so variants do not shift with other rows. */
        uint64_t s = o->seed ^ (0xA24BAED4963EE407ull * (i + 1));
        for (int v = 0; v < o->variants && ok; v++) {
            /* Choose each word, then the n-gram window; write the words of the window. */
            size_t lo = 0, hi = ns, need = 1;
            word *pick = malloc((ns ? ns : 1) * sizeof *pick);
            if (!pick) {
                ok = 0;
                break;
            }
            for (size_t k = 0; k < ns; k++) {
                double x = uniform(&s);
                if (x < o->p_mask) pick[k] = (word){ o->mask_token, mlen };
                else if (x < o->p_mask + o->p_replace && nc) pick[k] = corpus[kd_splitmix64(&s) % nc];
                else pick[k] = sent[k];
            }
            if (ns && uniform(&s) < o->p_ngram) {
                size_t n = 1 + (size_t)(kd_splitmix64(&s) % (uint64_t)o->max_ngram);
                if (n > ns) n = ns;
                lo = (size_t)(kd_splitmix64(&s) % (uint64_t)(ns - n + 1));
                hi = lo + n;
            }
            for (size_t k = lo; k < hi; k++) need += pick[k].n + 1;
            char *t = malloc(need), *w = t;
            if (!t) {
                free(pick);
                ok = 0;
                break;
            }
            for (size_t k = lo; k < hi; k++) {
                if (k > lo) *w++ = ' ';
                memcpy(w, pick[k].s, pick[k].n);
                w += pick[k].n;
            }
            *w = '\0';
            free(pick);
            out->text[out->n] = t;
            out->text_len[out->n] = (size_t)(w - t);
            out->label[out->n++] = KD_NO_LABEL;
        }
    }
    free(corpus);
    free(sent);
    if (!ok) {
        kd_dataset_free(out);
        return kd_fail(KD_ERR_NOMEM, "augment: out of memory for %zu variants", total);
    }
    return KD_OK;
}

kd_status kd_dataset_write_texts(const kd_dataset *d, const char *path)
{
    kd_atomic_file af;
    kd_status st = kd_atomic_open(&af, path);
    if (st != KD_OK) return st;
    int ok = 1;
    for (size_t i = 0; i < d->n && ok; i++)
        ok = fwrite(d->text[i], 1, d->text_len[i], af.f) == d->text_len[i] && fputc('\n', af.f) != EOF;
    if (!ok) {
        st = kd_fail(KD_ERR_IO, "%s: write failed: %s", af.tmp, strerror(errno));
        kd_atomic_abort(&af);
        return st;
    }
    return kd_atomic_commit(&af);
}
