/* test/data/test_augment.c — augmentation: the same seed gives the same variants, another seed others; with
 * every probability 0 a variant is its sentence; p_mask 1 masks every word; p_replace 1 draws every word from
 * the corpus; p_ngram 1 cuts each variant to 1..5 consecutive words of it; at the defaults the share of
 * masked words is p_mask and that of cut variants p_ngram (within 4 standard deviations); the texts file
 * holds one variant a line. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/augment.h"
#include "test/testutil.h"

static const char *const words[] = { "the", "film", "is", "a", "charming", "mess", "of", "ideas", "and", "jokes" };

static void corpus(kd_dataset *d, size_t n)
{
    memset(d, 0, sizeof *d);
    d->n = n;
    d->text = calloc(n, sizeof *d->text);
    d->text_len = calloc(n, sizeof *d->text_len);
    d->label = calloc(n, sizeof *d->label);
    for (size_t i = 0; i < n; i++) {
        char buf[256] = "";
        int len = 6 + (int)(i % 7);
        for (int k = 0; k < len; k++) {
            if (k) strcat(buf, " ");
            strcat(buf, words[(i * 7 + (size_t)k * 3) % 10]);
        }
        d->text[i] = strdup(buf);
        d->text_len[i] = strlen(buf);
        d->label[i] = (int32_t)(i & 1);
    }
}

static size_t count_words(const char *t)
{
    size_t n = 0;
    for (const char *p = t; *p;) {
        while (*p == ' ') p++;
        if (!*p) break;
        n++;
        while (*p && *p != ' ') p++;
    }
    return n;
}

static int is_corpus_word(const char *w, size_t n)
{
    for (int k = 0; k < 10; k++)
        if (strlen(words[k]) == n && memcmp(words[k], w, n) == 0) return 1;
    return 0;
}

int main(void)
{
    kd_dataset d, a, b;
    corpus(&d, 2000);
    kd_augment_opts o = kd_augment_defaults();
    o.variants = 3;
    CHECK(kd_augment(&d, &o, &a) == KD_OK && a.n == 6000, "3 variants of 2000 sentences: %s", kd_last_error());
    CHECK(kd_augment(&d, &o, &b) == KD_OK && b.n == a.n, "again");
    int same = 1, unlabelled = 1;
    for (size_t i = 0; i < a.n; i++) {
        same &= strcmp(a.text[i], b.text[i]) == 0;
        unlabelled &= a.label[i] == KD_NO_LABEL && a.text_len[i] == strlen(a.text[i]);
    }
    CHECK(same, "same seed, same variants");
    CHECK(unlabelled, "variants carry no label");
    /* the share of masked words and of cut variants at the defaults */
    size_t masked = 0, nwords = 0, cut = 0;
    for (size_t i = 0; i < a.n; i++) {
        size_t full = count_words(d.text[i / 3]), got = count_words(a.text[i]);
        cut += got < full;
        nwords += got;
        for (const char *p = strstr(a.text[i], "[MASK]"); p; p = strstr(p + 1, "[MASK]")) masked++;
    }
    double pm = (double)masked / (double)nwords, pc = (double)cut / (double)a.n;
    printf("defaults: %.4f of words masked (p_mask 0.1), %.4f of variants cut to an n-gram (p_ngram 0.25)\n", pm, pc);
    CHECK(fabs(pm - 0.1) < 4 * sqrt(0.09 / (double)nwords), "masked share %.4f ~ 0.1", pm);
    /* a cut keeps 1..5 of 6..12 words: always shorter */
    CHECK(fabs(pc - 0.25) < 4 * sqrt(0.1875 / (double)a.n), "cut share %.4f ~ 0.25", pc);
    kd_dataset_free(&b);
    o.seed = 43;
    CHECK(kd_augment(&d, &o, &b) == KD_OK, "seed 43");
    size_t differ = 0;
    for (size_t i = 0; i < a.n; i++) differ += strcmp(a.text[i], b.text[i]) != 0;
    CHECK(differ > a.n / 4, "another seed, other variants (%zu of %zu differ)", differ, a.n);
    kd_dataset_free(&a);
    kd_dataset_free(&b);

    o = kd_augment_defaults();
    o.variants = 1;
    o.p_mask = o.p_replace = o.p_ngram = 0;
    CHECK(kd_augment(&d, &o, &a) == KD_OK, "all probabilities 0");
    same = 1;
    for (size_t i = 0; i < a.n; i++) same &= strcmp(a.text[i], d.text[i]) == 0;
    CHECK(same, "with every probability 0 a variant is its sentence");
    kd_dataset_free(&a);

    o.p_mask = 1;
    CHECK(kd_augment(&d, &o, &a) == KD_OK, "p_mask 1");
    int all_masked = 1;
    for (size_t i = 0; i < a.n; i++) {
        size_t n = count_words(a.text[i]), m = 0;
        for (const char *p = strstr(a.text[i], "[MASK]"); p; p = strstr(p + 1, "[MASK]")) m++;
        all_masked &= m == n && n == count_words(d.text[i]);
    }
    CHECK(all_masked, "p_mask 1 masks every word");
    kd_dataset_free(&a);

    o.p_mask = 0;
    o.p_replace = 1;
    CHECK(kd_augment(&d, &o, &a) == KD_OK, "p_replace 1");
    int all_corpus = 1, changed = 0;
    for (size_t i = 0; i < a.n; i++) {
        changed += strcmp(a.text[i], d.text[i]) != 0;
        for (const char *p = a.text[i]; *p;) {
            const char *e = strchr(p, ' ');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            all_corpus &= is_corpus_word(p, n);
            p += n + (e != NULL);
        }
    }
    CHECK(all_corpus && changed > (int)a.n / 2, "p_replace 1: every word drawn from the corpus (%d changed)", changed);
    kd_dataset_free(&a);

    o.p_replace = 0;
    o.p_ngram = 1;
    CHECK(kd_augment(&d, &o, &a) == KD_OK, "p_ngram 1");
    int ngrams = 1;
    for (size_t i = 0; i < a.n; i++) {
        size_t n = count_words(a.text[i]);
        ngrams &= n >= 1 && n <= 5 && strstr(d.text[i], a.text[i]) != NULL;
    }
    CHECK(ngrams, "p_ngram 1: each variant is 1..5 consecutive words of its sentence");

    char dir[] = "/tmp/kd_test_augment_XXXXXX", path[64];
    CHECK(mkdtemp(dir) != NULL, "temp dir");
    snprintf(path, sizeof path, "%s/augmented.txt", dir);
    CHECK(kd_dataset_write_texts(&a, path) == KD_OK, "write: %s", kd_last_error());
    kd_dataset back;
    CHECK(kd_dataset_load_unlabelled(path, &back) == KD_OK && back.n == a.n && strcmp(back.text[7], a.text[7]) == 0,
          "the texts file reads back, one variant a line");
    kd_dataset_free(&back);
    unlink(path);
    rmdir(dir);
    kd_dataset_free(&a);

    o.p_mask = 0.7;
    o.p_replace = 0.7;
    CHECK(kd_augment(&d, &o, &a) == KD_ERR_ARG && strstr(kd_last_error(), "p_mask + p_replace"),
          "p_mask + p_replace > 1 is an error: %s", kd_last_error());
    kd_dataset_free(&d);
    return kd_test_finish("test_augment");
}
