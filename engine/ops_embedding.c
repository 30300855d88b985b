/* engine/ops_embedding.c — table lookup: out[i] = table[ids[i]]; the backward scatter-adds
 * dtable[ids[i]] += dout[i] (an id used twice gets both contributions). */
#include <stdio.h>

#include "engine/internal.h"

static void embedding_backward(kd_node *n)
{
    kd_tensor *table = n->in[0], *ids = n->in[1], *out = n->out;
    void *gt = kd_grad_buf(table);
    if (!gt) return;
    kd_embedding_args a = { .n = kd_numel(ids), .dim = table->shape[1], .rows = table->shape[0], .ids = kd_data(ids), .dtable = gt,
                            .dout = kd_data(out->grad) };
    kd_k_embedding_bwd(table->device, table->dtype, &a);
}

kd_tensor *kd_embedding(kd_tensor *table, kd_tensor *ids)
{
    if (!table || !ids) return NULL;
    char st[64], si[64];
    if (!kd_need_wide("embedding", "table", table) || !kd_need_device("embedding", "ids", ids, table->device))
        return NULL;
    if (ids->dtype != KD_I32) {
        kd_fail(KD_ERR_DTYPE, "embedding: ids have dtype %s, expected i32", kd_dtype_name(ids->dtype));
        return NULL;
    }
    if (table->ndim != 2 || ids->ndim + 1 > KD_MAX_DIMS) {
        kd_fail(KD_ERR_SHAPE, "embedding: table %s and ids %s: expected a [V, D] table", kd_shape_str(table, st, sizeof st),
                kd_shape_str(ids, si, sizeof si));
        return NULL;
    }
    table = kd_contiguous(table);
    ids = kd_contiguous(ids);
    if (!table || !ids) return NULL;
    int64_t n = kd_numel(ids), vocab = table->shape[0];
    const int32_t *id = kd_data(ids);
    /* Checked where the ids are: at once on the CPU; on a device at the next sync (its row is not read). */
    char what[160];
    snprintf(what, sizeof what, "embedding of table %s, ids %s", kd_shape_str(table, st, sizeof st),
             kd_shape_str(ids, si, sizeof si));
    if (kd_check_ids(ids, vocab, what) != KD_OK) return NULL;
    int64_t shape[KD_MAX_DIMS];
    for (int d = 0; d < ids->ndim; d++) shape[d] = ids->shape[d];
    shape[ids->ndim] = table->shape[1];
    kd_tensor *out = kd_empty_on(table->device, table->dtype, ids->ndim + 1, shape);
    if (!out) return NULL;
    kd_embedding_args a = { .n = n, .dim = table->shape[1], .rows = vocab, .ids = id, .table = kd_data(table),
                            .out = kd_data(out) };
    kd_k_embedding(table->device, table->dtype, &a);
    kd_tensor *in[2] = { table, ids };
    kd_record(out, "embedding", embedding_backward, 2, in);
    return out;
}
