/* train/subset.c — the seeded training subset and its row listing (see subset.h). */
#include <stdlib.h>

#include "engine/fileio.h"
#include "train/subset.h"
#include "engine/rng.h"

static kd_status identity_rows(size_t n, size_t **rows)
{
    if (!rows) return KD_OK;
    *rows = malloc((n ? n : 1) * sizeof **rows);
    if (!*rows) return kd_fail(KD_ERR_NOMEM, "subset: out of memory for %zu row indices", n);
    for (size_t i = 0; i < n; i++) (*rows)[i] = i;
    return KD_OK;
}

kd_status kd_subset_select(kd_dataset *d, int64_t n, uint64_t seed, size_t **rows)
{
    if (rows) *rows = NULL;
    if (n <= 0 || (size_t)n >= d->n) return identity_rows(d->n, rows);
    size_t *perm = malloc(d->n * sizeof *perm);
    char *keep = calloc(d->n, 1);
    if (!perm || !keep) {
        free(perm);
        free(keep);
        return kd_fail(KD_ERR_NOMEM, "subset: out of memory");
    }
    for (size_t i = 0; i < d->n; i++) perm[i] = i;
    uint64_t s = seed ^ 0x5eed5eed5eedull;
    for (size_t i = d->n; i > 1; i--) {
        size_t j = (size_t)(kd_splitmix64(&s) % i), t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    /* Take the first n of the permutation, in that order. */
    for (size_t i = 0; i < (size_t)n; i++) keep[perm[i]] = 1;
    char **text = malloc((size_t)n * sizeof *text);
    size_t *len = malloc((size_t)n * sizeof *len);
    int32_t *lab = malloc((size_t)n * sizeof *lab);
    if (!text || !len || !lab) {
        free(text);
        free(len);
        free(lab);
        free(perm);
        free(keep);
        return kd_fail(KD_ERR_NOMEM, "subset: out of memory");
    }
    for (size_t i = 0; i < (size_t)n; i++) {
        text[i] = d->text[perm[i]];
        len[i] = d->text_len[perm[i]];
        lab[i] = d->label[perm[i]];
    }
    for (size_t i = 0; i < d->n; i++)
        if (!keep[i]) free(d->text[i]);
    free(d->text);
    free(d->text_len);
    free(d->label);
    d->text = text;
    d->text_len = len;
    d->label = lab;
    d->n = (size_t)n;
    free(keep);
    if (rows) {
        /* perm[0..n) are the kept rows in the subset's order; hand the array over, shrunk. */
        size_t *r = realloc(perm, (size_t)n * sizeof *r);
        *rows = r ? r : perm;
    } else {
        free(perm);
    }
    return KD_OK;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

kd_status kd_subset_write(const char *path, const size_t *rows, size_t n)
{
    size_t *sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted) return kd_fail(KD_ERR_NOMEM, "%s: out of memory for %zu row indices", path, n);
    for (size_t i = 0; i < n; i++) sorted[i] = rows ? rows[i] : i;
    if (rows) qsort(sorted, n, sizeof *sorted, cmp_size);
    kd_atomic_file af;
    kd_status st = kd_atomic_open(&af, path);
    if (st != KD_OK) {
        free(sorted);
        return st;
    }
    for (size_t i = 0; i < n; i++)
        if (fprintf(af.f, "%zu\n", sorted[i]) < 0) {
            kd_atomic_abort(&af);
            free(sorted);
            return kd_fail(KD_ERR_IO, "%s: write failed", path);
        }
    free(sorted);
    return kd_atomic_commit(&af);
}
