/* test/data/test_demo_corpus.c — the demo corpus: deterministic per seed, balanced labels, the three
 * constructions present, labels that follow the grammar (checked by an independent reading of each
 * sentence), and that counting sentiment words does far worse than reading the structure. */
#include <stdlib.h>
#include <string.h>

#include "data/demo_corpus.h"
#include "test/testutil.h"

/* Polarity of one clause (words [a, b)): the adjective's, flipped by a negation. */
static int clause_polarity(char **w, size_t a, size_t b)
{
    int pol = 0, neg = 0;
    for (size_t i = a; i < b; i++) {
        if (!strcmp(w[i], "not") || !strcmp(w[i], "never") || !strcmp(w[i], "hardly")) neg = 1;
        int p = kd_demo_word_polarity(w[i]);
        if (p) pol = p;
    }
    return neg ? -pol : pol;
}

/* Read a sentence as the grammar says: the clause after "but" or after the comma of "although" decides. */
static int read_label(const char *s, int classes, int *bow)
{
    char *copy = strdup(s), *w[64];
    size_t n = 0;
    for (char *tok = strtok(copy, " "); tok && n < 64; tok = strtok(NULL, " ")) w[n++] = tok;
    int score = 0, any = 0;
    for (size_t i = 0; i < n; i++) {
        score += kd_demo_word_polarity(w[i]);
        any |= kd_demo_word_polarity(w[i]) != 0;
    }
    size_t start = 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(w[i], ",") || !strcmp(w[i], "and")) start = i + 1;   /* "X and Y": both agree */
    if (start < n && !strcmp(w[start], "but")) start++;
    int pol = clause_polarity(w, start, n);
    free(copy);
    /* the bag-of-words guess: more positive than negative words */
    if (classes == 3) {
        *bow = !any ? 1 : score >= 0 ? 2 : 0;
        return pol == 0 ? 1 : pol > 0 ? 2 : 0;
    }
    *bow = score >= 0;
    return pol > 0;
}

static void check(int classes)
{
    kd_demo_opts o = kd_demo_opts_default();
    o.classes = classes;
    o.n_train = 3000;
    o.n_dev = 300;
    kd_dataset a, ad, b, bd;
    CHECK(kd_demo_corpus_make(&o, &a, &ad) == KD_OK, "make: %s", kd_last_error());
    CHECK(kd_demo_corpus_make(&o, &b, &bd) == KD_OK, "make again: %s", kd_last_error());
    CHECK(a.n == 3000 && ad.n == 300 && a.labels.n == classes, "sizes and %d classes", classes);
    int same = 1;
    for (size_t i = 0; i < a.n; i++) same &= !strcmp(a.text[i], b.text[i]) && a.label[i] == b.label[i];
    CHECK(same, "same seed, same corpus");
    int overlap = 0;
    for (size_t i = 0; i < ad.n; i++) overlap += !strcmp(ad.text[i], a.text[i]);
    CHECK(overlap < 5, "dev is not a copy of train (%d equal lines at the same index)", overlap);
    int counts[3] = {0}, right = 0, bow_right = 0, but = 0, although = 0, nots = 0;
    for (size_t i = 0; i < a.n; i++) {
        counts[a.label[i]]++;
        int bow;
        right += read_label(a.text[i], classes, &bow) == a.label[i];
        bow_right += bow == a.label[i];
        but += strstr(a.text[i], ", but ") != NULL;
        although += strncmp(a.text[i], "although ", 9) == 0;
        nots += strstr(a.text[i], " not ") != NULL || strstr(a.text[i], " never ") != NULL;
    }
    double acc = right / (double)a.n, bow_acc = bow_right / (double)a.n;
    printf("%d classes: labels %d/%d/%d, grammar reading %.3f, word counting %.3f, 'but' %d, 'although' %d, "
           "negations %d\n", classes, counts[0], counts[1], counts[2], acc, bow_acc, but, although, nots);
    CHECK(acc == 1.0, "labels follow the grammar: %.4f", acc);
    CHECK(bow_acc < 0.72, "counting words is far from enough: %.3f", bow_acc);
    for (int c = 0; c < classes; c++) CHECK(counts[c] > (int)a.n / classes * 2 / 3, "class %d not rare: %d", c, counts[c]);
    CHECK(but > 300 && although > 300 && nots > 600, "contrast and negation are common");
    kd_dataset_free(&a);
    kd_dataset_free(&ad);
    kd_dataset_free(&b);
    kd_dataset_free(&bd);
}

int main(void)
{
    check(2);
    check(3);
    kd_demo_opts o = kd_demo_opts_default();
    o.classes = 4;
    kd_dataset a, b;
    CHECK(kd_demo_corpus_make(&o, &a, &b) == KD_ERR_ARG, "4 classes is an error");
    return kd_test_finish("test_demo_corpus");
}
