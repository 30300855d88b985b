/* test/data/test_batch.c — the batcher on the demo corpus with its own vocabulary: every example once
 * per epoch, same seed same order, another epoch another order, padding to a multiple of 8 with [PAD]
 * and a zero mask, truncation to max_len, drop_last, and that length bucketing reduces padding. */
#include <stdlib.h>
#include <string.h>

#include "data/batch.h"
#include "data/demo_corpus.h"
#include "test/testutil.h"

/* Walk one epoch; check each batch; return the padded token count and fill seen[] counts and the
 * order of examples. */
static size_t walk(kd_batcher *b, const kd_dataset *d, int32_t max_len, int32_t mult, int *seen, size_t *order,
                   size_t *nbatches)
{
    kd_batch bt;
    kd_batch_init(&bt);
    size_t padded = 0, k = 0;
    *nbatches = 0;
    int r;
    while ((r = kd_batcher_next(b, &bt)) == 1) {
        (*nbatches)++;
        int32_t longest = 0;
        for (int32_t i = 0; i < bt.batch; i++) {
            int32_t n = kd_batcher_example_len(b, bt.index[i]);
            if (n > longest) longest = n;
            int32_t msum = 0;
            for (int32_t j = 0; j < bt.len; j++) msum += bt.mask[i * bt.len + j];
            CHECK(msum == n, "mask sums to the example's length %d, got %d", n, msum);
            CHECK(bt.ids[i * bt.len] == 2 && bt.ids[i * bt.len + n - 1] == 3, "[CLS] ... [SEP] (ids 2, 3 here)");
            for (int32_t j = n; j < bt.len; j++)
                if (bt.ids[i * bt.len + j] != 0 || bt.type_ids[i * bt.len + j] != 0) {
                    CHECK(0, "padding is [PAD] (0) with type 0");
                    break;
                }
            CHECK(n <= max_len, "truncated to %d, got %d", max_len, n);
            CHECK(bt.labels[i] == d->label[bt.index[i]], "label of example %zu", bt.index[i]);
            seen[bt.index[i]]++;
            order[k++] = bt.index[i];
        }
        CHECK(bt.len % mult == 0 || bt.len == max_len, "padded length %d is a multiple of %d", bt.len, mult);
        CHECK(bt.len >= longest && bt.len < longest + mult, "padded to the longest (%d) rounded up, got %d", longest,
              bt.len);
        padded += (size_t)bt.batch * (size_t)bt.len;
    }
    CHECK(r == 0, "epoch ends cleanly");
    kd_batch_free(&bt);
    return padded;
}

int main(void)
{
    kd_demo_opts o = kd_demo_opts_default();
    o.n_train = 1003;
    o.n_dev = 10;
    kd_dataset tr, dv;
    CHECK(kd_demo_corpus_make(&o, &tr, &dv) == KD_OK, "demo corpus: %s", kd_last_error());
    size_t vlen;
    char *vtext = kd_demo_corpus_vocab(&vlen);
    kd_vocab *v;
    CHECK(kd_vocab_parse(vtext, vlen, "demo vocab", &v) == KD_OK, "vocab: %s", kd_last_error());
    free(vtext);
    kd_tokenizer *t;
    CHECK(kd_tokenizer_new(v, NULL, &t) == KD_OK, "tokenizer: %s", kd_last_error());

    kd_batcher_opts bo = kd_batcher_opts_default();
    bo.batch_size = 16;
    bo.max_len = 20;
    bo.seed = 7;
    kd_batcher *b1, *b2;
    CHECK(kd_batcher_new(&tr, t, &bo, &b1) == KD_OK, "batcher: %s", kd_last_error());
    CHECK(kd_batcher_new(&tr, t, &bo, &b2) == KD_OK, "batcher 2: %s", kd_last_error());
    CHECK(kd_batcher_num_batches(b1) == 63, "1003 / 16 -> 63 batches, got %zu", kd_batcher_num_batches(b1));
    int *seen = calloc(tr.n, sizeof *seen);
    size_t *o1 = malloc(tr.n * sizeof *o1), *o2 = malloc(tr.n * sizeof *o2), *o3 = malloc(tr.n * sizeof *o3);
    size_t nb;
    int truncated = 0;
    for (size_t i = 0; i < tr.n; i++) truncated += kd_batcher_example_len(b1, i) == 20;
    CHECK(truncated > 0, "some examples reach max_len 20 (%d do)", truncated);

    walk(b1, &tr, 20, 8, seen, o1, &nb);
    CHECK(nb == 63, "63 batches walked, got %zu", nb);
    int once = 1;
    for (size_t i = 0; i < tr.n; i++) once &= seen[i] == 1;
    CHECK(once, "every example exactly once per epoch");
    memset(seen, 0, tr.n * sizeof *seen);
    walk(b2, &tr, 20, 8, seen, o2, &nb);
    CHECK(memcmp(o1, o2, tr.n * sizeof *o1) == 0, "same seed, same order");
    kd_batcher_start_epoch(b2, 1);
    walk(b2, &tr, 20, 8, seen, o3, &nb);
    CHECK(memcmp(o1, o3, tr.n * sizeof *o1) != 0, "another epoch, another order");
    kd_batcher_start_epoch(b1, 1);
    walk(b1, &tr, 20, 8, seen, o2, &nb);
    CHECK(memcmp(o2, o3, tr.n * sizeof *o1) == 0, "epoch 1 reproducible");
    int sorted = 1;
    for (size_t i = 0; i < tr.n; i++) sorted &= o1[i] == i;
    CHECK(!sorted, "shuffled");
    kd_batcher_free(b1);
    kd_batcher_free(b2);

    /* no shuffle: file order; pad multiple 1: exact longest; drop_last */
    bo.shuffle = 0;
    bo.pad_multiple = 1;
    bo.drop_last = 1;
    CHECK(kd_batcher_new(&tr, t, &bo, &b1) == KD_OK, "batcher: %s", kd_last_error());
    memset(seen, 0, tr.n * sizeof *seen);
    walk(b1, &tr, 20, 1, seen, o1, &nb);
    CHECK(nb == 62, "drop_last: 62 full batches, got %zu", nb);
    sorted = 1;
    for (size_t i = 0; i < 62 * 16; i++) sorted &= o1[i] == i;
    CHECK(sorted, "no shuffle: file order");
    kd_batcher_free(b1);

    /* bucketing pads less than plain shuffling */
    bo.shuffle = 1;
    bo.drop_last = 0;
    bo.pad_multiple = 8;
    bo.max_len = 64;
    bo.bucket = 0;
    CHECK(kd_batcher_new(&tr, t, &bo, &b1) == KD_OK, "batcher: %s", kd_last_error());
    bo.bucket = 1;
    CHECK(kd_batcher_new(&tr, t, &bo, &b2) == KD_OK, "batcher: %s", kd_last_error());
    memset(seen, 0, tr.n * sizeof *seen);
    size_t p_plain = walk(b1, &tr, 64, 8, seen, o1, &nb);
    memset(seen, 0, tr.n * sizeof *seen);
    size_t p_bucket = walk(b2, &tr, 64, 8, seen, o2, &nb);
    once = 1;
    for (size_t i = 0; i < tr.n; i++) once &= seen[i] == 1;
    CHECK(once, "bucketing: every example exactly once");
    CHECK(p_bucket < p_plain, "bucketing pads less: %zu < %zu tokens", p_bucket, p_plain);
    printf("padded tokens per epoch: plain %zu, bucketed %zu\n", p_plain, p_bucket);
    kd_batcher_free(b1);
    kd_batcher_free(b2);

    /* bad options */
    bo.batch_size = 0;
    CHECK(kd_batcher_new(&tr, t, &bo, &b1) == KD_ERR_ARG, "batch size 0 is an error");
    bo.batch_size = 4;
    bo.max_len = 1;
    CHECK(kd_batcher_new(&tr, t, &bo, &b1) == KD_ERR_ARG, "max_len 1 is an error");

    free(seen);
    free(o1);
    free(o2);
    free(o3);
    kd_tokenizer_free(t);
    kd_dataset_free(&tr);
    kd_dataset_free(&dv);
    return kd_test_finish("test_batch");
}
