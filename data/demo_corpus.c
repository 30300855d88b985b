/* data/demo_corpus.c — the built-in sentiment corpus: a seeded generator over the grammar documented
 * in data/demo_corpus.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/demo_corpus.h"
#include "engine/rng.h"

static const char *const subjects[] = {"the movie", "this film", "the plot", "the acting", "the script", "the ending",
                                       "the soundtrack", "the cast", "the story", "the dialogue", "the director",
                                       "the pacing"};
static const char *const verbs[] = {"is", "was", "feels", "seemed"};
static const char *const negations[] = {"not", "never", "hardly"};
static const char *const intensifiers[] = {"very", "really", "truly", "incredibly", "rather"};
static const char *const positive[] = {"good", "great", "charming", "moving", "clever", "beautiful", "gripping",
                                       "funny", "brilliant", "fresh", "delightful", "smart", "touching", "fun"};
static const char *const negative[] = {"bad", "boring", "dull", "awful", "tedious", "clumsy", "bland", "messy",
                                       "predictable", "weak", "silly", "forgettable", "painful", "flat"};
static const char *const neutral[] = {
    "the movie is two hours long", "the film was shot in spain", "the story takes place in a small town",
    "the cast includes three newcomers", "the film opens on friday", "the director also wrote the script",
    "the soundtrack was released separately", "the movie is based on a novel", "the plot follows two brothers",
    "the film was made in black and white", "the ending was filmed twice", "the dialogue is in french"};
#define COUNT(a) (sizeof(a) / sizeof *(a))

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t next(rng *r) { return kd_splitmix64(&r->s); }

static size_t pick(rng *r, size_t n) { return (size_t)(next(r) % n); }
static int chance(rng *r, double p) { return (double)(next(r) >> 11) * (1.0 / 9007199254740992.0) < p; }

kd_demo_opts kd_demo_opts_default(void)
{
    kd_demo_opts o = {.n_train = 4000, .n_dev = 500, .classes = 2, .seed = 1};
    return o;
}

/* Append a clause of the wanted polarity (+1/-1) to buf; returns the new length. */
static size_t clause(rng *r, int want, char *buf, size_t at, size_t cap)
{
    int neg = chance(r, 0.4);
    int adj_pol = neg ? -want : want;
    const char *adj = adj_pol > 0 ? positive[pick(r, COUNT(positive))] : negative[pick(r, COUNT(negative))];
    int n = snprintf(buf + at, cap - at, "%s %s", subjects[pick(r, COUNT(subjects))], verbs[pick(r, COUNT(verbs))]);
    at += (size_t)n;
    if (neg) at += (size_t)snprintf(buf + at, cap - at, " %s", negations[pick(r, COUNT(negations))]);
    if (chance(r, 0.3)) at += (size_t)snprintf(buf + at, cap - at, " %s", intensifiers[pick(r, COUNT(intensifiers))]);
    at += (size_t)snprintf(buf + at, cap - at, " %s", adj);
    if (neg && chance(r, 0.15)) at += (size_t)snprintf(buf + at, cap - at, " at all");
    else if (chance(r, 0.1)) at += (size_t)snprintf(buf + at, cap - at, " to watch");
    return at;
}

/* One sentence into buf; returns its label (0 negative, 1 positive; with 3 classes 0 neg, 1 neutral,
 * 2 pos). */
static int sentence(rng *r, int classes, char *buf, size_t cap)
{
    if (classes == 3 && chance(r, 1.0 / 3.0)) {
        snprintf(buf, cap, "%s .", neutral[pick(r, COUNT(neutral))]);
        return 1;
    }
    int label = chance(r, 0.5) ? 1 : -1;
    size_t at = 0;
    switch (pick(r, 4)) {
    case 0:
        at = clause(r, label, buf, at, cap);
        break;
    case 1: /* contrast: the clause after "but" decides, the first one says the opposite */
        at = clause(r, -label, buf, at, cap);
        at += (size_t)snprintf(buf + at, cap - at, " , but ");
        at = clause(r, label, buf, at, cap);
        break;
    case 2:
        at = (size_t)snprintf(buf, cap, "although ");
        at = clause(r, -label, buf, at, cap);
        at += (size_t)snprintf(buf + at, cap - at, " , ");
        at = clause(r, label, buf, at, cap);
        break;
    default:
        at = clause(r, label, buf, at, cap);
        at += (size_t)snprintf(buf + at, cap - at, " and ");
        at = clause(r, label, buf, at, cap);
        break;
    }
    snprintf(buf + at, cap - at, " .");
    if (classes == 3) return label > 0 ? 2 : 0;
    return label > 0 ? 1 : 0;
}

static kd_status make_split(rng *r, size_t n, int classes, kd_dataset *d)
{
    memset(d, 0, sizeof *d);
    if (n == 0) return KD_OK;
    d->text = calloc(n, sizeof *d->text);
    d->text_len = calloc(n, sizeof *d->text_len);
    d->label = calloc(n, sizeof *d->label);
    static const char *const names2[] = {"negative", "positive"};
    static const char *const names3[] = {"negative", "neutral", "positive"};
    kd_status st = d->text && d->text_len && d->label ? kd_labels_set(&d->labels, classes == 3 ? names3 : names2, classes)
                                                      : kd_fail(KD_ERR_NOMEM, "demo corpus: out of memory");
    char buf[512];
    for (size_t i = 0; i < n && st == KD_OK; i++) {
        d->label[i] = sentence(r, classes, buf, sizeof buf);
        d->text[i] = strdup(buf);
        if (!d->text[i]) st = kd_fail(KD_ERR_NOMEM, "demo corpus: out of memory");
        else d->text_len[i] = strlen(buf);
        d->n = i + 1;
    }
    d->format = KD_FORMAT_UNKNOWN;
    if (st != KD_OK) kd_dataset_free(d);
    return st;
}

kd_status kd_demo_corpus_make(const kd_demo_opts *o, kd_dataset *train, kd_dataset *dev)
{
    kd_demo_opts opt = o ? *o : kd_demo_opts_default();
    memset(train, 0, sizeof *train);
    memset(dev, 0, sizeof *dev);
    if (opt.classes != 2 && opt.classes != 3)
        return kd_fail(KD_ERR_ARG, "demo corpus: %d classes, expected 2 or 3", opt.classes);
    rng r_train = {opt.seed * 2 + 1}, r_dev = {opt.seed * 2 + 2};
    /* separate streams so the dev split does not change with the train size */
    for (int k = 0; k < 4; k++) {
        next(&r_train);
        next(&r_dev);
    }
    r_dev.s ^= 0xA5A5A5A5DEADBEEFull;
    kd_status st = make_split(&r_train, opt.n_train, opt.classes, train);
    if (st == KD_OK) st = make_split(&r_dev, opt.n_dev, opt.classes, dev);
    if (st != KD_OK) kd_dataset_free(train);
    return st;
}

int kd_demo_word_polarity(const char *word)
{
    for (size_t i = 0; i < COUNT(positive); i++)
        if (strcmp(word, positive[i]) == 0) return 1;
    for (size_t i = 0; i < COUNT(negative); i++)
        if (strcmp(word, negative[i]) == 0) return -1;
    return 0;
}

static int add_words(char **out, size_t *len, size_t *cap, const char *phrase)
{
    const char *p = phrase;
    while (*p) {
        while (*p == ' ') p++;
        const char *e = p;
        while (*e && *e != ' ') e++;
        if (e == p) break;
        size_t wl = (size_t)(e - p);
        /* skip words already listed */
        int seen = 0;
        for (const char *q = *out; q && q < *out + *len;) {
            const char *nl = strchr(q, '\n');
            if ((size_t)(nl - q) == wl && memcmp(q, p, wl) == 0) {
                seen = 1;
                break;
            }
            q = nl + 1;
        }
        if (!seen) {
            if (*len + wl + 2 > *cap) {
                size_t nc = *cap * 2 + wl + 64;
                char *nb = realloc(*out, nc);
                if (!nb) return 0;
                *out = nb;
                *cap = nc;
            }
            memcpy(*out + *len, p, wl);
            *len += wl;
            (*out)[(*len)++] = '\n';
            (*out)[*len] = '\0';
        }
        p = e;
    }
    return 1;
}

char *kd_demo_corpus_vocab(size_t *len)
{
    size_t n = 0, cap = 0;
    char *out = NULL;
    int ok = add_words(&out, &n, &cap, "[PAD] [UNK] [CLS] [SEP] [MASK] . , but although and at all to watch");
    const char *const *lists[] = {subjects, verbs, negations, intensifiers, positive, negative, neutral};
    size_t counts[] = {COUNT(subjects), COUNT(verbs), COUNT(negations), COUNT(intensifiers), COUNT(positive),
                       COUNT(negative), COUNT(neutral)};
    for (size_t l = 0; ok && l < COUNT(lists); l++)
        for (size_t i = 0; ok && i < counts[l]; i++) ok = add_words(&out, &n, &cap, lists[l][i]);
    if (!ok) {
        free(out);
        kd_fail(KD_ERR_NOMEM, "demo corpus: out of memory");
        return NULL;
    }
    *len = n;
    return out;
}
