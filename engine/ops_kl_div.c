/* engine/ops_kl_div.c — KL divergence with batchmean reduction, as PyTorch's kl_div(input = log q,
 * target = p); the per-row work is one fused kernel.
 *   L = (1/N) sum_ij p_ij (log p_ij - logq_ij),       dlogq = -p / N,  dp = (log p + 1 - logq) / N */
#include "engine/internal.h"

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
        !kd_need_device("kl_div", "p", p, logq->device))
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
    kd_tensor *out = kd_row_mean(per, rows);
    if (!out) return NULL;
    kd_tensor *in[2] = { logq, p };
    kd_record(out, "kl_div", kl_div_backward, 2, in);
    return out;
}
