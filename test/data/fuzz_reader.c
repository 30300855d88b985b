/* test/data/fuzz_reader.c — libFuzzer target for one data set reader (KD_FUZZ_EXT picks it: ".tsv",
 * ".csv", ".jsonl" or "_text.txt"): the input is written to a file (TweetEval: split at the first NUL
 * into the text and the labels file) and loaded. Either it loads, with every label in range and every
 * text valid, NUL-free UTF-8, or it fails with a message naming the file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/readers.h"
#include "data/utf8.h"

#ifndef KD_FUZZ_EXT
#define KD_FUZZ_EXT ".tsv"
#endif

static char base[256];

static void put(const char *path, const uint8_t *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    KD_CHECK(f != NULL);
    if (n) KD_CHECK(fwrite(d, 1, n, f) == n);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!base[0]) {
        snprintf(base, sizeof base, "/tmp/kd_fuzz_reader_%ld", (long)getpid());
        KD_CHECK(mkdir(base, 0700) == 0 || 1);
    }
    char path[512];
    snprintf(path, sizeof path, "%s/train%s", base, KD_FUZZ_EXT);
    if (strcmp(KD_FUZZ_EXT, "_text.txt") == 0) {
        const uint8_t *z = memchr(data, 0, size);
        size_t tn = z ? (size_t)(z - data) : size;
        put(path, data, tn);
        char lp[512];
        snprintf(lp, sizeof lp, "%s/train_labels.txt", base);
        put(lp, z ? z + 1 : data, z ? size - tn - 1 : 0);
    } else {
        put(path, data, size);
    }
    kd_dataset d;
    kd_status st = kd_dataset_load(path, NULL, &d);
    if (st == KD_OK) {
        KD_CHECK(d.n > 0 && d.labels.n > 0);
        for (size_t i = 0; i < d.n; i++) {
            KD_CHECK(d.label[i] >= 0 && d.label[i] < d.labels.n);
            KD_CHECK(strlen(d.text[i]) == d.text_len[i]);
            KD_CHECK(kd_utf8_valid_prefix(d.text[i], d.text_len[i]) == d.text_len[i]);
        }
        kd_dataset_free(&d);
    } else {
        KD_CHECK(strstr(kd_last_error(), base) != NULL);
    }
    return 0;
}
