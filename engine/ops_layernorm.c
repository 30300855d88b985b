/* engine/ops_layernorm.c — LayerNorm over the last dim, forward and backward.
 *   xhat = (x - mean) * rstd,  y = xhat * gamma + beta,  rstd = 1 / sqrt(var + eps)  (biased var)
 *   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dy * gamma
 *   dgamma = sum_rows dy * xhat,  dbeta = sum_rows dy                                            */
#include "engine/internal.h"

typedef struct layernorm_state { kd_tensor *mean, *rstd; } layernorm_state;   /* per row, from the forward */

static void layernorm_backward(kd_node *n)
{
    kd_tensor *x = n->in[0], *gamma = n->in[1], *beta = n->in[2], *y = n->out;
    int64_t cols = x->shape[x->ndim - 1];
    kd_layernorm_bwd_args a = {
        .rows = kd_numel(x) / (cols ? cols : 1), .cols = cols,
        .x = kd_data(x), .mean = kd_data(((const layernorm_state *)n->state)->mean),
        .rstd = kd_data(((const layernorm_state *)n->state)->rstd),
        .gamma = gamma ? kd_data(gamma) : NULL, .dy = kd_data(y->grad),
        .dx = kd_wants_grad(n, 0) ? kd_grad_buf(x) : NULL,
        .dgamma = gamma && kd_wants_grad(n, 1) ? kd_grad_buf(gamma) : NULL,
        .dbeta = beta && kd_wants_grad(n, 2) ? kd_grad_buf(beta) : NULL,
    };
    kd_k_layernorm_bwd(x->device, x->dtype, &a);
}

kd_tensor *kd_layernorm(kd_tensor *x, kd_tensor *gamma, kd_tensor *beta, double eps)
{
    if (!x || !kd_need_float("layernorm", "x", x) || !kd_need_device("layernorm", "x", x, x->device) ||
        !kd_need_device("layernorm", "gamma", gamma, x->device) || !kd_need_device("layernorm", "beta", beta, x->device))
        return NULL;
    char sx[64], sg[64];
    if (x->ndim < 1) {
        kd_fail(KD_ERR_SHAPE, "layernorm: needs at least one dim, got a scalar");
        return NULL;
    }
    int64_t cols = x->shape[x->ndim - 1];
    kd_tensor *p[2] = { gamma, beta };
    const char *pn[2] = { "gamma", "beta" };
    for (int i = 0; i < 2; i++) {
        if (p[i] && (p[i]->ndim != 1 || p[i]->shape[0] != cols || p[i]->dtype != kd_stat_dtype(x->dtype))) {
            kd_fail(KD_ERR_SHAPE, "layernorm: %s is %s %s, expected %s [%lld] for input %s", pn[i],
                    kd_dtype_name(p[i]->dtype), kd_shape_str(p[i], sg, sizeof sg), kd_dtype_name(kd_stat_dtype(x->dtype)),
                    (long long)cols, kd_shape_str(x, sx, sizeof sx));
            return NULL;
        }
        if (p[i] && !kd_is_contiguous(p[i])) p[i] = kd_contiguous(p[i]);
    }
    gamma = p[0];
    beta = p[1];
    if (!(eps >= 0)) {
        kd_fail(KD_ERR_ARG, "layernorm: eps is %g, expected >= 0", eps);
        return NULL;
    }
    x = kd_contiguous(x);
    if (!x) return NULL;
    int64_t rows = cols ? kd_numel(x) / cols : 0;
    kd_tensor *y = kd_empty_like(x), *mean = kd_empty_on(x->device, kd_stat_dtype(x->dtype), 1, &rows),
              *rstd = kd_empty_on(x->device, kd_stat_dtype(x->dtype), 1, &rows);
    if (!y || !mean || !rstd) return NULL;
    kd_layernorm_args a = { .rows = rows, .cols = cols, .eps = eps, .x = kd_data(x),
                            .gamma = gamma ? kd_data(gamma) : NULL, .beta = beta ? kd_data(beta) : NULL,
                            .y = kd_data(y), .mean = kd_data(mean), .rstd = kd_data(rstd) };
    kd_k_layernorm(x->device, x->dtype, &a);
    kd_tensor *in[3] = { x, gamma, beta };
    layernorm_state *s = kd_node_state(kd_record(y, "layernorm", layernorm_backward, 3, in), sizeof *s);
    if (s) *s = (layernorm_state){ .mean = mean, .rstd = rstd };
    return y;
}
