/* bench/bench_tokenize.c — tokenizer throughput on all of SST-2 train, one core: validate (every
 * sentence encodes; the total token count is printed so it can be compared with the peer's), warm up,
 * then time whole passes and report the median in tokens/s and sentences/s.
 *
 * usage: bench_tokenize [SST2_TRAIN_TSV VOCAB_TXT] [--reps N]
 *        (default: $KD_SHARED/data/sst2/train.tsv and $KD_SHARED/data/bert-base-uncased/vocab.txt)
 * The Hugging Face side: bench/bench_tokenize_hf.py (prints the ratio to this program's figure). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/readers.h"
#include "data/wordpiece.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static size_t pass(const kd_tokenizer *t, const kd_dataset *d, kd_encoding *e, int *ok)
{
    size_t tokens = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (kd_encode(t, d->text[i], d->text_len[i], NULL, 0, 0, e) != KD_OK) *ok = 0;
        tokens += e->len;
    }
    return tokens;
}

int main(int argc, char **argv)
{
    char data_path[4096], vocab_path[4096];
    int reps = 7, pos = 0;
    const char *shared = getenv("KD_SHARED");
    snprintf(data_path, sizeof data_path, "%s/data/sst2/train.tsv", shared ? shared : "../shared");
    snprintf(vocab_path, sizeof vocab_path, "%s/data/bert-base-uncased/vocab.txt", shared ? shared : "../shared");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (pos == 0) snprintf(data_path, sizeof data_path, "%s", argv[i]), pos++;
        else snprintf(vocab_path, sizeof vocab_path, "%s", argv[i]);
    }
    if (reps < 1 || reps > 1000) reps = 7;
    kd_dataset d;
    if (kd_dataset_load(data_path, NULL, &d) != KD_OK) {
        fprintf(stderr, "bench_tokenize: %s (skipped)\n", kd_last_error());
        return 77;
    }
    kd_tokenizer *t;
    if (kd_tokenizer_load(vocab_path, 1, &t) != KD_OK) {
        fprintf(stderr, "bench_tokenize: %s (skipped)\n", kd_last_error());
        kd_dataset_free(&d);
        return 77;
    }
    kd_encoding e;
    kd_encoding_init(&e);
    size_t bytes = 0;
    for (size_t i = 0; i < d.n; i++) bytes += d.text_len[i];
    int ok = 1;
    size_t tokens = pass(t, &d, &e, &ok);   /* validation and warm-up */
    if (!ok) {
        fprintf(stderr, "bench_tokenize: encoding failed: %s\n", kd_last_error());
        return 1;
    }
    double *secs = malloc((size_t)reps * sizeof *secs);
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        size_t n = pass(t, &d, &e, &ok);
        secs[r] = now() - t0;
        if (n != tokens || !ok) {
            fprintf(stderr, "bench_tokenize: passes disagree (%zu vs %zu tokens)\n", n, tokens);
            return 1;
        }
    }
    qsort(secs, (size_t)reps, sizeof *secs, cmp_double);
    double med = secs[reps / 2];
    printf("kd tokenizer, 1 thread: %zu sentences, %zu bytes, %zu tokens ([CLS]/[SEP] included)\n", d.n, bytes, tokens);
    printf("median of %d passes: %.4f s (min %.4f, max %.4f)\n", reps, med, secs[0], secs[reps - 1]);
    printf("tokens_per_s=%.0f sentences_per_s=%.0f MB_per_s=%.1f\n", (double)tokens / med, (double)d.n / med,
           (double)bytes / med / 1e6);
    free(secs);
    kd_encoding_free(&e);
    kd_tokenizer_free(t);
    kd_dataset_free(&d);
    return 0;
}
