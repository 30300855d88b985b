/* data/batch.h — batches of token ids for training and evaluation: examples tokenized once (with
 * [CLS]/[SEP], truncated to max_len), per-epoch shuffling from a seed, optional length bucketing, and
 * dynamic padding to the longest sequence of each batch rounded up to a multiple (8 by default).
 *
 * A batch is plain int32 arrays, row-major [batch, len]: ids (pads are [PAD]), attention mask (1 for a
 * token, 0 for padding), token_type_ids, and the labels [batch]. Same seed and epoch, same batches. */
#ifndef KD_BATCH_H
#define KD_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "data/readers.h"
#include "data/wordpiece.h"

typedef struct kd_batch {
    int32_t batch;        /* rows */
    int32_t len;          /* padded length */
    int32_t *ids;         /* [batch * len] */
    int32_t *mask;        /* [batch * len] */
    int32_t *type_ids;    /* [batch * len] */
    int32_t *labels;      /* [batch] */
    size_t *index;        /* [batch]: which examples of the data set */
    size_t cap_tokens, cap_rows;
} kd_batch;

typedef struct kd_batcher_opts {
    int32_t batch_size;   /* > 0 */
    int32_t max_len;      /* tokens per sequence incl. [CLS]/[SEP]; 0: 512 */
    int32_t pad_multiple; /* padded length rounded up to this (1: none); 0: 8 */
    int shuffle;          /* shuffle each epoch (training); off: file order */
    uint64_t seed;
    int bucket;           /* group similar lengths: sort windows of 50 batches by length, shuffle batches */
    int drop_last;        /* drop a final partial batch */
    /* Called as tokenizing goes (every 1024 examples and at the end) with the examples done and the total;
     * NULL: none. A large data set takes a while: the caller shows it (train/progress.h). */
    void (*progress)(void *ctx, size_t done, size_t total);
    void *progress_ctx;
} kd_batcher_opts;

kd_batcher_opts kd_batcher_opts_default(void);

typedef struct kd_batcher kd_batcher;

/* Tokenize every example of d with t (kept by pointer: both must outlive the batcher). */
kd_status kd_batcher_new(const kd_dataset *d, const kd_tokenizer *t, const kd_batcher_opts *o, kd_batcher **out);
void kd_batcher_free(kd_batcher *b);
size_t kd_batcher_num_batches(const kd_batcher *b);
/* Token count (with [CLS]/[SEP], after truncation) of example i. */
int32_t kd_batcher_example_len(const kd_batcher *b, size_t i);
/* Order the examples for this epoch (0, 1, ...): a shuffle seeded by (seed, epoch) when shuffling. */
void kd_batcher_start_epoch(kd_batcher *b, uint64_t epoch);
/* Fill out with the next batch of the epoch: 1 when one was made, 0 at the end, -1 on error. */
int kd_batcher_next(kd_batcher *b, kd_batch *out);

void kd_batch_init(kd_batch *b);
void kd_batch_free(kd_batch *b);

#endif
