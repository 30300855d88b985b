/* engine/ops_loss.c — cross-entropy with class-index targets (mean over the batch) and KL divergence
 * with batchmean reduction, as PyTorch's cross_entropy and kl_div. Both fuse the per-row work in one
 * kernel; the scalar result is the mean (or batchmean) of the per-row values.
 *   CE:  L = (1/N) sum_i [logsumexp(z_i) - z_i,t_i],       dz_i = (softmax(z_i) - onehot(t_i)) / N
 *   KL:  L = (1/N) sum_ij p_ij (log p_ij - logq_ij),       dlogq = -p / N,  dp = (log p + 1 - logq) / N */
#include <math.h>

#include "engine/internal.h"

/* The mean of n per-row values, by the reduce kernel where the values are (summed in double, rounded once:
 * kernels.h). */
static kd_tensor *row_mean(kd_tensor *rows_out, int64_t n)
{
    kd_tensor *out = kd_zeros_on(rows_out->device, rows_out->dtype, 0, NULL);
    if (!out) return NULL;
    kd_reduce_args r;
    kd_map_setup(&r, KD_UN_COPY, rows_out);
    r.out = kd_data(out);
    r.a = kd_data(rows_out);
    r.a_stride[0] = 1;
    r.alpha = 1.0 / (double)n;
    kd_k_reduce(rows_out->device, rows_out->dtype, &r);
    return out;
}

static void cross_entropy_backward(kd_node *n)
{
    kd_tensor *z = n->in[0], *t = n->in[1], *out = n->out;
    void *gz = kd_grad_buf(z);
    if (!gz) return;
    /* The gradient arriving at the loss is read by the kernel where it lives (no trip to the host). */
    kd_cross_entropy_args a = { .rows = z->shape[0], .cols = z->shape[1], .logits = kd_data(z), .targets = kd_data(t),
                       .lse = kd_data(n->saved[0]), .scale = 1.0 / (double)z->shape[0],
                       .upstream = kd_data(out->grad), .dlogits = gz };
    kd_k_cross_entropy_bwd(z->device, z->dtype, &a);
}

kd_tensor *kd_cross_entropy(kd_tensor *logits, kd_tensor *targets)
{
    if (!logits || !targets) return NULL;
    char sz[64], st[64];
    if (!kd_need_wide("cross_entropy", "logits", logits) || !kd_need_device("cross_entropy", "logits", logits, logits->device) ||
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
    if (targets->device != KD_CPU) {
        /* Checked where the values are; a bad target is reported at the next sync. */
        if (kd_check_ids(targets, cols, "cross_entropy targets") != KD_OK) return NULL;
    }
    for (int64_t i = 0; i < rows && targets->device == KD_CPU; i++) {
        if (t[i] < 0 || t[i] >= cols) {
            kd_fail(KD_ERR_INDEX, "cross_entropy: target %d at row %lld is outside [0, %lld) for logits %s", t[i],
                    (long long)i, (long long)cols, kd_shape_str(logits, sz, sizeof sz));
            return NULL;
        }
    }
    kd_tensor *loss = kd_empty_on(logits->device, logits->dtype, 1, &rows), *lse = kd_empty_on(logits->device, logits->dtype, 1, &rows);
    if (!loss || !lse) return NULL;
    kd_cross_entropy_args a = { .rows = rows, .cols = cols, .logits = kd_data(logits), .targets = t, .loss = kd_data(loss),
                       .lse = kd_data(lse) };
    kd_k_cross_entropy(logits->device, logits->dtype, &a);
    kd_tensor *out = row_mean(loss, rows);
    if (!out) return NULL;
    kd_tensor *in[2] = { logits, targets };
    kd_node *n = kd_record(out, "cross_entropy", cross_entropy_backward, 2, in);
    if (n) n->saved[0] = lse;
    return out;
}

static void kl_div_backward(kd_node *n)
{
    kd_tensor *lq = n->in[0], *p = n->in[1], *out = n->out;
    kd_kl_div_args a = { .rows = lq->shape[0], .cols = lq->shape[1], .logq = kd_data(lq), .p = kd_data(p),
                     .scale = 1.0 / (double)lq->shape[0], .upstream = kd_data(out->grad),
                     .dlogq = kd_wants_grad(n, 0) ? kd_grad_buf(lq) : NULL,
                     .dp = kd_wants_grad(n, 1) ? kd_grad_buf(p) : NULL };
    kd_k_kl_div_bwd(lq->device, lq->dtype, &a);
}

kd_tensor *kd_kl_div(kd_tensor *logq, kd_tensor *p)
{
    if (!logq || !p) return NULL;
    char s1[64], s2[64];
    if (!kd_need_wide("kl_div", "logq", logq) || !kd_need_same_dtype("kl_div", logq, p) ||
        !kd_need_device("kl_div", "logq", logq, logq->device) || !kd_need_device("kl_div", "p", p, logq->device))
        return NULL;
    if (logq->ndim != 2 || !kd_same_shape(logq, p) || logq->shape[0] == 0) {
        kd_fail(KD_ERR_SHAPE, "kl_div: logq %s and p %s: expected equal shapes [N, C] with N > 0",
                kd_shape_str(logq, s1, sizeof s1), kd_shape_str(p, s2, sizeof s2));
        return NULL;
    }
    logq = kd_contiguous(logq);
    p = kd_contiguous(p);
    if (!logq || !p) return NULL;
    int64_t rows = logq->shape[0];
    kd_tensor *per = kd_empty_on(logq->device, logq->dtype, 1, &rows);
    if (!per) return NULL;
    kd_kl_div_args a = { .rows = rows, .cols = logq->shape[1], .logq = kd_data(logq), .p = kd_data(p), .out = kd_data(per) };
    kd_k_kl_div(logq->device, logq->dtype, &a);
    kd_tensor *out = row_mean(per, rows);
    if (!out) return NULL;
    kd_tensor *in[2] = { logq, p };
    kd_record(out, "kl_div", kl_div_backward, 2, in);
    return out;
}
