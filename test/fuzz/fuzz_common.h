/* test/fuzz/fuzz_common.h — what the file-format fuzz targets share: a private directory per process, a
 * file written from the fuzzer's bytes, and the small model whose checkpoint files seed the targets (the
 * optimizer target's parameters must match the seed's). */
#ifndef KD_FUZZ_COMMON_H
#define KD_FUZZ_COMMON_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/status.h"
#include "models/bert.h"

static char fuzz_dir_path[256];

/* The directory and its files (flat) go at exit. */
static void fuzz_dir_remove(void)
{
    DIR *d = opendir(fuzz_dir_path);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", fuzz_dir_path, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(fuzz_dir_path);
}

/* /tmp/kd_fuzz_<what>_<pid>, made once. */
static inline const char *fuzz_dir(const char *what)
{
    if (!fuzz_dir_path[0]) {
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "/tmp/kd_fuzz_%s_%ld", what, (long)getpid());
        KD_CHECK(mkdir(fuzz_dir_path, 0700) == 0 || access(fuzz_dir_path, W_OK) == 0);
        atexit(fuzz_dir_remove);
    }
    return fuzz_dir_path;
}

static inline void fuzz_put(const char *path, const void *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    KD_CHECK(f != NULL);
    if (n) KD_CHECK(fwrite(d, 1, n, f) == n);
    KD_CHECK(fclose(f) == 0);
}

/* One layer, hidden 8, two heads, 40 tokens, two labels: every tensor a checkpoint has, in a few KB. */
static inline kd_bert_config fuzz_small_config(void)
{
    kd_bert_config c;
    KD_CHECK(kd_bert_preset("bert-tiny", &c) == KD_OK);
    c.num_layers = 1;
    c.hidden_size = 8;
    c.num_heads = 2;
    c.intermediate_size = 16;
    c.vocab_size = 40;
    c.max_position = 16;
    c.num_labels = 2;
    kd_bert_default_labels(&c);
    KD_CHECK(kd_bert_config_check(&c, "fuzz") == KD_OK);
    return c;
}

#endif
