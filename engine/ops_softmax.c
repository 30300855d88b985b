/* engine/ops_softmax.c — softmax and log-softmax over the last dim, forward and backward.
 *   y = softmax(x):      dx = y * (dy - sum(dy * y))
 *   y = log_softmax(x):  dx = dy - softmax(x) * sum(dy)   */
#include "engine/internal.h"

typedef struct softmax_state { int log; } softmax_state;   /* log-softmax or softmax */

static void softmax_backward(kd_node *n)
{
    kd_tensor *x = n->in[0], *y = n->out;
    void *gx = kd_grad_buf(x);
    if (!gx) return;
    int64_t cols = x->ndim ? x->shape[x->ndim - 1] : 1;
    kd_softmax_bwd_args a = { .log = ((const softmax_state *)n->state)->log, .rows = kd_numel(x) / (cols ? cols : 1), .cols = cols,
                              .y = kd_data(y), .dy = kd_data(y->grad), .dx = gx };
    kd_k_softmax_bwd(x->device, x->dtype, &a);
}

static kd_tensor *softmax_op(const char *name, kd_tensor *x, int log)
{
    if (!x || !kd_need_float(name, "x", x) || !kd_need_device(name, "x", x, x->device)) return NULL;
    if (x->ndim < 1) {
        kd_fail(KD_ERR_SHAPE, "%s: needs at least one dim, got a scalar", name);
        return NULL;
    }
    x = kd_contiguous(x);
    if (!x) return NULL;
    kd_tensor *y = kd_empty_like(x);
    if (!y) return NULL;
    int64_t cols = x->shape[x->ndim - 1];
    kd_softmax_args a = { .log = log, .rows = cols ? kd_numel(x) / cols : 0, .cols = cols, .x = kd_data(x),
                          .y = kd_data(y) };
    kd_k_softmax(x->device, x->dtype, &a);
    softmax_state *s = kd_node_state(kd_record(y, name, softmax_backward, 1, &x), sizeof *s);
    if (s) s->log = log;
    return y;
}

kd_tensor *kd_softmax(kd_tensor *x) { return softmax_op("softmax", x, 0); }
kd_tensor *kd_log_softmax(kd_tensor *x) { return softmax_op("log_softmax", x, 1); }
