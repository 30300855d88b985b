/* train/subset.h — which training examples a run uses: the seeded subset of `--train-samples N` and the
 * listing of its rows (OUT/train_subset.txt), so that another tool can train on exactly the same
 * sentences. */
#ifndef KD_TRAIN_SUBSET_H
#define KD_TRAIN_SUBSET_H

#include <stddef.h>
#include <stdint.h>

#include "data/readers.h"

/* Keep n examples of d chosen by seed (a Fisher-Yates shuffle driven by splitmix64, then the first n of
 * the permutation, in that order: as datasets' shuffle(seed).select(range(n))); n <= 0 or n >= d->n keeps
 * all, in file order. rows (may be NULL) gets a malloc'd array of d->n entries: rows[i] is the 0-based
 * row of example i in the file as read (the first example after a header is row 0). */
kd_status kd_subset_select(kd_dataset *d, int64_t n, uint64_t seed, size_t **rows);

/* Write rows[0..n) to path, ascending (the data file's order), one decimal index per line, through a
 * temporary file renamed into place. rows NULL means the identity 0..n-1 (the whole file was used). */
kd_status kd_subset_write(const char *path, const size_t *rows, size_t n);

#endif
