/* data/batch.c — the batcher: tokenize once, order per epoch (seeded Fisher-Yates shuffle, optional
 * length bucketing), then cut batches padded to the longest row rounded up to pad_multiple. */
#include <stdlib.h>
#include <string.h>

#include "data/batch.h"
#include "engine/rng.h"

struct kd_batcher {
    kd_batcher_opts o;
    const kd_dataset *d;
    int32_t pad_id;
    size_t n;
    int32_t **ids;       /* per example, with [CLS]/[SEP] */
    int32_t **types;
    int32_t *len;
    size_t *order;       /* this epoch's example order, batch after batch */
    size_t pos;
};

kd_batcher_opts kd_batcher_opts_default(void)
{
    kd_batcher_opts o = {.batch_size = 32, .max_len = 128, .pad_multiple = 8, .shuffle = 1, .seed = 42,
                         .bucket = 0, .drop_last = 0, .progress = NULL, .progress_ctx = NULL};
    return o;
}

/* Uniform in [0, n) without modulo bias (rejection), from SplitMix64: the order depends only on (seed, epoch). */
static size_t below(uint64_t *s, size_t n)
{
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do r = kd_splitmix64(s);
    while (r >= lim);
    return (size_t)(r % n);
}

static void shuffle(size_t *a, size_t n, uint64_t *s)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = below(s, i);
        size_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

void kd_batcher_free(kd_batcher *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->n; i++) {
        free(b->ids ? b->ids[i] : NULL);
        free(b->types ? b->types[i] : NULL);
    }
    free(b->ids);
    free(b->types);
    free(b->len);
    free(b->order);
    free(b);
}

kd_status kd_batcher_new(const kd_dataset *d, const kd_tokenizer *t, const kd_batcher_opts *o, kd_batcher **out)
{
    *out = NULL;
    kd_batcher_opts opt = o ? *o : kd_batcher_opts_default();
    if (opt.batch_size <= 0) return kd_fail(KD_ERR_ARG, "batch size %d, expected at least 1", (int)opt.batch_size);
    if (opt.max_len == 0) opt.max_len = 512;
    if (opt.max_len < 2) return kd_fail(KD_ERR_ARG, "max length %d, expected at least 2", (int)opt.max_len);
    if (opt.pad_multiple == 0) opt.pad_multiple = 8;
    if (opt.pad_multiple < 0) return kd_fail(KD_ERR_ARG, "pad multiple %d, expected at least 1", (int)opt.pad_multiple);
    if (!d || d->n == 0) return kd_fail(KD_ERR_ARG, "batcher: an empty data set, expected at least one example");
    kd_batcher *b = calloc(1, sizeof *b);
    if (!b) return kd_fail(KD_ERR_NOMEM, "batcher: out of memory");
    b->o = opt;
    b->d = d;
    b->pad_id = t->pad_id >= 0 ? t->pad_id : 0;
    b->ids = calloc(d->n, sizeof *b->ids);
    b->types = calloc(d->n, sizeof *b->types);
    b->len = malloc(d->n * sizeof *b->len);
    b->order = malloc(d->n * sizeof *b->order);
    if (!b->ids || !b->types || !b->len || !b->order) {
        kd_batcher_free(b);
        return kd_fail(KD_ERR_NOMEM, "batcher: out of memory");
    }
    b->n = d->n;
    kd_encoding e;
    kd_encoding_init(&e);
    kd_status st = KD_OK;
    for (size_t i = 0; i < d->n && st == KD_OK; i++) {
        st = kd_encode(t, d->text[i], d->text_len[i], NULL, 0, (size_t)opt.max_len, &e);
        if (st != KD_OK) break;
        b->ids[i] = malloc(e.len * sizeof(int32_t));
        b->types[i] = malloc(e.len * sizeof(int32_t));
        if (!b->ids[i] || !b->types[i]) {
            st = kd_fail(KD_ERR_NOMEM, "batcher: out of memory");
            break;
        }
        memcpy(b->ids[i], e.ids, e.len * sizeof(int32_t));
        memcpy(b->types[i], e.type_ids, e.len * sizeof(int32_t));
        b->len[i] = (int32_t)e.len;
        if (opt.progress && ((i + 1) % 1024 == 0 || i + 1 == d->n)) opt.progress(opt.progress_ctx, i + 1, d->n);
    }
    kd_encoding_free(&e);
    if (st != KD_OK) {
        kd_batcher_free(b);
        return st;
    }
    kd_batcher_start_epoch(b, 0);
    *out = b;
    return KD_OK;
}

size_t kd_batcher_num_batches(const kd_batcher *b)
{
    size_t bs = (size_t)b->o.batch_size;
    return b->o.drop_last ? b->n / bs : (b->n + bs - 1) / bs;
}

int32_t kd_batcher_example_len(const kd_batcher *b, size_t i) { return i < b->n ? b->len[i] : 0; }

typedef struct len_index {
    int32_t len;
    size_t pos;     /* position in the shuffled order: ties keep it, as qsort is not stable */
    size_t index;
} len_index;

static int by_len(const void *x, const void *y)
{
    const len_index *a = x, *c = y;
    if (a->len != c->len) return a->len < c->len ? -1 : 1;
    return a->pos < c->pos ? -1 : a->pos > c->pos;
}

void kd_batcher_start_epoch(kd_batcher *b, uint64_t epoch)
{
    for (size_t i = 0; i < b->n; i++) b->order[i] = i;
    b->pos = 0;
    if (!b->o.shuffle) return;
    uint64_t s = b->o.seed ^ (0xD1B54A32D192ED03ull * (epoch + 1));
    shuffle(b->order, b->n, &s);
    if (!b->o.bucket) return;
    /* bucketing: sort windows of 50 batches by length so each batch holds similar lengths, then shuffle
     * the order of the full batches (the partial one stays last so drop_last drops it) */
    size_t bs = (size_t)b->o.batch_size, win = bs * 50;
    len_index *li = malloc((win < b->n ? win : b->n) * sizeof *li);
    for (size_t at = 0; li && at < b->n; at += win) {
        size_t m = b->n - at < win ? b->n - at : win;
        for (size_t k = 0; k < m; k++) li[k] = (len_index){b->len[b->order[at + k]], k, b->order[at + k]};
        qsort(li, m, sizeof *li, by_len);
        for (size_t k = 0; k < m; k++) b->order[at + k] = li[k].index;
    }
    free(li);   /* without memory for it the epoch is only shuffled, not bucketed */
    size_t full = b->n / bs;
    size_t *perm = malloc(full * sizeof *perm), *tmp = malloc(full * bs * sizeof *tmp);
    if (perm && tmp && full > 1) {
        for (size_t i = 0; i < full; i++) perm[i] = i;
        shuffle(perm, full, &s);
        for (size_t i = 0; i < full; i++) memcpy(tmp + i * bs, b->order + perm[i] * bs, bs * sizeof *tmp);
        memcpy(b->order, tmp, full * bs * sizeof *tmp);
    }
    free(perm);
    free(tmp);
}

void kd_batch_init(kd_batch *b) { memset(b, 0, sizeof *b); }

void kd_batch_free(kd_batch *b)
{
    free(b->ids);
    free(b->mask);
    free(b->type_ids);
    free(b->labels);
    free(b->index);
    memset(b, 0, sizeof *b);
}

int kd_batcher_next(kd_batcher *b, kd_batch *out)
{
    size_t bs = (size_t)b->o.batch_size;
    if (b->pos >= b->n) return 0;
    size_t rows = b->n - b->pos < bs ? b->n - b->pos : bs;
    if (rows < bs && b->o.drop_last) return 0;
    const size_t *idx = b->order + b->pos;
    int32_t longest = 0;
    for (size_t r = 0; r < rows; r++)
        if (b->len[idx[r]] > longest) longest = b->len[idx[r]];
    int32_t m = b->o.pad_multiple;
    int32_t len = (longest + m - 1) / m * m;
    if (len > b->o.max_len) len = longest > b->o.max_len ? longest : b->o.max_len;
    size_t tokens = rows * (size_t)len;
    if (tokens > out->cap_tokens) {
        int32_t *a = realloc(out->ids, tokens * sizeof *a);
        if (a) out->ids = a;
        int32_t *k = realloc(out->mask, tokens * sizeof *k);
        if (k) out->mask = k;
        int32_t *t = realloc(out->type_ids, tokens * sizeof *t);
        if (t) out->type_ids = t;
        if (!a || !k || !t) {
            kd_fail(KD_ERR_NOMEM, "batcher: out of memory for a batch of %zu tokens", tokens);
            return -1;
        }
        out->cap_tokens = tokens;
    }
    if (rows > out->cap_rows) {
        int32_t *l = realloc(out->labels, rows * sizeof *l);
        if (l) out->labels = l;
        size_t *ix = realloc(out->index, rows * sizeof *ix);
        if (ix) out->index = ix;
        if (!l || !ix) {
            kd_fail(KD_ERR_NOMEM, "batcher: out of memory");
            return -1;
        }
        out->cap_rows = rows;
    }
    out->batch = (int32_t)rows;
    out->len = len;
    for (size_t r = 0; r < rows; r++) {
        size_t i = idx[r];
        int32_t n = b->len[i];
        int32_t *ids = out->ids + r * (size_t)len, *mask = out->mask + r * (size_t)len, *ty = out->type_ids + r * (size_t)len;
        memcpy(ids, b->ids[i], (size_t)n * sizeof *ids);
        memcpy(ty, b->types[i], (size_t)n * sizeof *ty);
        for (int32_t k = 0; k < n; k++) mask[k] = 1;
        for (int32_t k = n; k < len; k++) {
            ids[k] = b->pad_id;
            mask[k] = 0;
            ty[k] = 0;
        }
        out->labels[r] = b->d->label[i];
        out->index[r] = i;
    }
    b->pos += rows;
    return 1;
}
