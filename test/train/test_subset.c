/* test/train/test_subset.c — the seeded training subset (train/subset.h) and its row listing: on a TSV of
 * 50 distinct sentences, every kept example is the file row its index names (text and label), the rows are
 * distinct, the same seed picks the same rows and another seed others; the listing is those rows,
 * ascending, one per line, with no temporary file left; keeping all is the identity; an unwritable path
 * fails naming it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/fileio.h"
#include "test/testutil.h"
#include "train/subset.h"

#define NROWS 50

static char root[64], tsv[128];

static void load(kd_dataset *d)
{
    CHECK(kd_dataset_load(tsv, NULL, d) == KD_OK && d->n == NROWS, "load %s: %s", tsv, kd_last_error());
}

/* Row r of the file is "sentence number r" with label r % 2. */
static int is_row(const kd_dataset *d, size_t i, size_t r)
{
    char want[64];
    snprintf(want, sizeof want, "sentence number %zu", r);
    return r < NROWS && strcmp(d->text[i], want) == 0 && d->text_len[i] == strlen(want) && d->label[i] == (int32_t)(r % 2);
}

/* Parse the listing into out[0..max); returns the line count, -1 on a malformed line. */
static long read_listing(const char *path, size_t *out, size_t max)
{
    char *buf;
    size_t len;
    if (kd_read_file(path, &buf, &len) != KD_OK) return -1;
    long n = 0;
    char *p = buf;
    while (*p) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (end == p || *end != '\n' || (size_t)n >= max) {
            n = -1;
            break;
        }
        out[n++] = (size_t)v;
        p = end + 1;
    }
    free(buf);
    return n;
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/kd_test_subset_XXXXXX");
    if (!mkdtemp(root)) {
        fprintf(stderr, "test_subset: cannot make a temporary directory\n");
        return 1;
    }
    snprintf(tsv, sizeof tsv, "%s/train.tsv", root);
    FILE *f = fopen(tsv, "w");
    CHECK(f != NULL, "write %s", tsv);
    if (!f) return kd_test_finish("test_subset");
    fprintf(f, "sentence\tlabel\n");
    for (int r = 0; r < NROWS; r++) fprintf(f, "sentence number %d\t%d\n", r, r % 2);
    fclose(f);

    /* 1. 20 of 50: each example is its row; rows distinct. */
    kd_dataset d, d2, d3;
    load(&d);
    size_t *rows = NULL, *rows2 = NULL, *rows3 = NULL;
    CHECK(kd_subset_select(&d, 20, 7, &rows) == KD_OK && d.n == 20 && rows, "select 20 of 50: %s", kd_last_error());
    int good = 1, distinct = 1, in_order = 1;
    char seen[NROWS] = { 0 };
    for (size_t i = 0; rows && i < d.n; i++) {
        good &= is_row(&d, i, rows[i]);
        if (rows[i] < NROWS) {
            distinct &= !seen[rows[i]];
            seen[rows[i]] = 1;
        }
        if (i && rows[i] < rows[i - 1]) in_order = 0;
    }
    CHECK(good, "every kept example is the row of the file its index names (text and label)");
    CHECK(distinct, "the 20 rows are distinct");
    CHECK(!in_order, "the subset is in shuffled order (the listing sorts it)");

    /* 2. Same seed, same rows; another seed, other rows. */
    load(&d2);
    load(&d3);
    CHECK(kd_subset_select(&d2, 20, 7, &rows2) == KD_OK && kd_subset_select(&d3, 20, 8, &rows3) == KD_OK,
          "select again: %s", kd_last_error());
    CHECK(rows && rows2 && memcmp(rows, rows2, 20 * sizeof *rows) == 0, "seed 7 twice: the same rows, same order");
    CHECK(rows && rows3 && memcmp(rows, rows3, 20 * sizeof *rows) != 0, "seed 8 picks other rows than seed 7");

    /* 3. The listing: the same rows, ascending, one per line, written atomically. */
    char path[160], tmp[170];
    snprintf(path, sizeof path, "%s/train_subset.txt", root);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(kd_subset_write(path, rows, 20) == KD_OK, "write the listing: %s", kd_last_error());
    size_t got[NROWS + 1];
    long n = read_listing(path, got, NROWS + 1);
    CHECK(n == 20, "20 lines of whole numbers, got %ld", n);
    int asc = n == 20, covers = n == 20;
    for (long i = 0; i < n; i++) {
        if (i && got[i] <= got[i - 1]) asc = 0;
        if (got[i] >= NROWS || !seen[got[i]]) covers = 0;
    }
    CHECK(asc && covers, "the listing is the selected rows, ascending");
    CHECK(access(tmp, F_OK) != 0, "no temporary file left beside it");

    /* 4. Keeping all (n >= the set's size): file order, identity rows; NULL rows write 0..n-1. */
    kd_dataset_free(&d2);
    free(rows2);
    rows2 = NULL;
    load(&d2);
    CHECK(kd_subset_select(&d2, 1000, 7, &rows2) == KD_OK && d2.n == NROWS && rows2, "keep all: %s", kd_last_error());
    int ident = rows2 != NULL;
    for (size_t i = 0; rows2 && i < d2.n; i++) ident &= rows2[i] == i && is_row(&d2, i, i);
    CHECK(ident, "keeping all leaves the file order and identity rows");
    CHECK(kd_subset_write(path, NULL, 5) == KD_OK, "write the identity listing: %s", kd_last_error());
    n = read_listing(path, got, NROWS + 1);
    CHECK(n == 5 && got[0] == 0 && got[1] == 1 && got[2] == 2 && got[3] == 3 && got[4] == 4, "identity listing 0..4");

    /* 5. An unwritable path fails, naming it. */
    CHECK(kd_subset_write("/dev/null/train_subset.txt", rows, 20) != KD_OK &&
              strstr(kd_last_error(), "/dev/null/train_subset.txt"),
          "unwritable listing path: %s", kd_last_error());

    free(rows);
    free(rows2);
    free(rows3);
    kd_dataset_free(&d);
    kd_dataset_free(&d2);
    kd_dataset_free(&d3);
    unlink(path);
    unlink(tsv);
    rmdir(root);
    return kd_test_finish("test_subset");
}
