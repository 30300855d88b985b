/* engine/ops_cross_entropy.c — cross-entropy with class-index targets, mean over the batch, as PyTorch's
 * cross_entropy; the per-row work is one fused kernel.
 *   L = (1/N) sum_i [logsumexp(z_i) - z_i,t_i],       dz_i = (softmax(z_i) - onehot(t_i)) / N */
#include <stdio.h>

#include "engine/internal.h"

typedef struct cross_entropy_state { kd_tensor *lse; } cross_entropy_state;   /* per row, from the forward */

static void cross_entropy_backward(kd_node *n)
{
    kd_tensor *z = n->in[0], *t = n->in[1], *out = n->out;
    void *gz = kd_grad_buf(z);
    if (!gz) return;
    /* The gradient arriving at the loss is read by the kernel where it lives (no trip to the host). */
    kd_cross_entropy_args a = { .rows = z->shape[0], .cols = z->shape[1], .logits = kd_data(z), .targets = kd_data(t),
                       .lse = kd_data(((const cross_entropy_state *)n->state)->lse), .scale = 1.0 / (double)z->shape[0],
                       .upstream = kd_data(out->grad), .dlogits = gz };
    kd_k_cross_entropy_bwd(z->device, z->dtype, &a);
}

kd_tensor *kd_cross_entropy(kd_tensor *logits, kd_tensor *targets)
{
    if (!logits || !targets) return NULL;
    char sz[64], st[64];
    if (!kd_need_wide("cross_entropy", "logits", logits) ||
        !kd_need_device("cross_entropy", "targets", targets, logits->device))
        return NULL;
    if (targets->dtype != KD_I32) {
        kd_fail(KD_ERR_DTYPE, "cross_entropy: targets have dtype %s, expected i32 class indices", kd_dtype_name(targets->dtype));
        return NULL;
    }
    if (logits->ndim != 2 || targets->ndim != 1 || targets->shape[0] != logits->shape[0] || logits->shape[0] == 0) {
        kd_fail(KD_ERR_SHAPE, "cross_entropy: logits %s and targets %s: expected [N, C] and [N] with N > 0",
                kd_shape_str(logits, sz, sizeof sz), kd_shape_str(targets, st, sizeof st));
        return NULL;
    }
    logits = kd_contiguous(logits);
    targets = kd_contiguous(targets);
    if (!logits || !targets) return NULL;
    int64_t rows = logits->shape[0], cols = logits->shape[1];
    const int32_t *t = kd_data(targets);
    /* Checked where the values are: at once on the CPU, at the next sync on a device. */
    char what[128];
    snprintf(what, sizeof what, "cross_entropy: targets (class indices) for logits %s", kd_shape_str(logits, sz, sizeof sz));
    if (kd_check_ids(targets, cols, what) != KD_OK) return NULL;
    kd_tensor *loss = kd_empty_on(logits->device, logits->dtype, 1, &rows);
    kd_tensor *lse = kd_empty_on(logits->device, logits->dtype, 1, &rows);
    if (!loss || !lse) return NULL;
    kd_cross_entropy_args a = { .rows = rows, .cols = cols, .logits = kd_data(logits), .targets = t, .loss = kd_data(loss),
                       .lse = kd_data(lse) };
    kd_k_cross_entropy(logits->device, logits->dtype, &a);
    kd_tensor *out = kd_row_mean(loss, rows);
    if (!out) return NULL;
    kd_tensor *in[2] = { logits, targets };
    cross_entropy_state *s = kd_node_state(kd_record(out, "cross_entropy", cross_entropy_backward, 2, in), sizeof *s);
    if (s) s->lse = lse;
    return out;
}
