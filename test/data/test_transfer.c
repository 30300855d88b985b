/* test/data/test_transfer.c — transfer sets: plain text (blank lines skipped, CRLF, a last line without a
 * newline), a labelled TSV with its labels dropped, repeats dropped against the labelled set and within,
 * the concatenated view, and bad input (invalid UTF-8, only blank lines, a missing file) as errors naming
 * the file and line. Files are written to a fresh temporary directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/readers.h"
#include "test/testutil.h"

static char dir[256];

static const char *put(const char *name, const char *content)
{
    static char path[4][512];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, 512, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) {
        perror(p);
        exit(1);
    }
    fputs(content, f);
    fclose(f);
    return p;
}

static void expect_texts(const kd_dataset *d, const char *const *want, size_t n, const char *what)
{
    CHECK(d->n == n, "%s: %zu texts, want %zu", what, d->n, n);
    for (size_t i = 0; i < n && i < d->n; i++) {
        CHECK(strcmp(d->text[i], want[i]) == 0 && d->text_len[i] == strlen(want[i]), "%s: text %zu is '%s', want '%s'",
              what, i, d->text[i], want[i]);
        CHECK(d->label[i] == KD_NO_LABEL, "%s: text %zu has label %d, want none", what, i, (int)d->label[i]);
    }
}

static void bad(const char *path, const char *expect)
{
    kd_dataset d;
    kd_status st = kd_dataset_load_unlabelled(path, &d);
    CHECK(st != KD_OK && strstr(kd_last_error(), expect) != NULL, "%s: error '%s', want one containing '%s'", path,
          kd_last_error(), expect);
    CHECK(d.n == 0 && d.text == NULL, "%s: nothing kept after an error", path);
    printf("%s -> %s\n", path, kd_last_error());
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/kd_test_transfer_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    kd_dataset plain, tsv, labelled, transfer = {0};
    const char *p = put("more.txt", "a fine film\n\n  \r\nnot good at all\r\na fine film\nthe end");
    CHECK(kd_dataset_load_unlabelled(p, &plain) == KD_OK, "plain text: %s", kd_last_error());
    const char *want_plain[] = { "a fine film", "not good at all", "a fine film", "the end" };
    expect_texts(&plain, want_plain, 4, "plain text");
    CHECK(plain.labels.n == 0, "plain text has no label names");

    p = put("more.tsv", "sentence\tlabel\nit is great\t1\nboring\t0\n");
    CHECK(kd_dataset_load_unlabelled(p, &tsv) == KD_OK, "tsv: %s", kd_last_error());
    const char *want_tsv[] = { "it is great", "boring" };
    expect_texts(&tsv, want_tsv, 2, "tsv with its labels dropped");
    CHECK(tsv.labels.n == 0, "tsv: label names dropped");

    p = put("train.tsv", "sentence\tlabel\nboring\t0\nthe end\t1\n");
    CHECK(kd_dataset_load(p, NULL, &labelled) == KD_OK, "labelled: %s", kd_last_error());
    size_t kept = 99;
    CHECK(kd_transfer_add(&transfer, &plain, &labelled, &kept) == KD_OK, "add plain: %s", kd_last_error());
    CHECK(kept == 2, "plain: %zu kept, want 2 (a repeat and a labelled text dropped)", kept);
    CHECK(plain.n == 0 && plain.text == NULL, "the added set is emptied");
    CHECK(kd_transfer_add(&transfer, &tsv, &labelled, &kept) == KD_OK, "add tsv: %s", kd_last_error());
    CHECK(kept == 1, "tsv: %zu kept, want 1 ('boring' is labelled)", kept);
    const char *want_all[] = { "a fine film", "not good at all", "it is great" };
    expect_texts(&transfer, want_all, 3, "merged transfer set");

    kd_dataset all;
    CHECK(kd_dataset_concat_view(&labelled, &transfer, &all) == KD_OK, "view: %s", kd_last_error());
    CHECK(all.n == 5 && all.text[0] == labelled.text[0] && all.text[2] == transfer.text[0] && all.label[0] == 0 &&
              all.label[1] == 1 && all.label[4] == KD_NO_LABEL && all.labels.n == 2,
          "view: labelled rows then transfer rows, texts shared");
    kd_dataset_view_free(&all);
    printf("plain text 4, tsv 2, merged without repeats 3, view 5\n");

    bad(put("bad.txt", "fine\nbad \xff byte\n"), "bad.txt:2: invalid UTF-8");
    bad(put("blank.txt", "\n \n\t\n"), "only blank lines");
    char missing[600];
    snprintf(missing, sizeof missing, "%s/none.txt", dir);
    bad(missing, "no such file");

    kd_dataset_free(&transfer);
    kd_dataset_free(&labelled);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return kd_test_finish("test_transfer");
}
