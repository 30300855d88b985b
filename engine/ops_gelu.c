/* engine/ops_gelu.c — the activations: GELU (erf form; BERT's feed-forward) and tanh (its pooler), forward
 * and backward.
 *   gelu(x) = x Phi(x),  gelu'(x) = Phi(x) + x phi(x)
 *   tanh'(x) = 1 - tanh(x)^2  (computed from the saved output) */
#include <string.h>

#include "engine/internal.h"

/* grad(x) += f(a, g) where a is x (GELU) or out (tanh), g the output gradient. */
static void unary_backward(kd_node *n, int op, const kd_tensor *a)
{
    kd_tensor *x = n->in[0], *out = n->out;
    int in_place = kd_grad_can_alias(x, out);
    void *gx = in_place ? kd_data(out->grad) : kd_grad_buf(x);
    if (!gx) return;
    kd_map_args m;
    kd_map_setup(&m, op, out);
    m.accumulate = !in_place;
    m.out = gx;
    m.a = kd_data(a);
    m.b = kd_data(out->grad);
    kd_contiguous_strides(out->ndim, out->shape, m.out_stride);
    memcpy(m.a_stride, a->stride, sizeof m.a_stride);
    kd_contiguous_strides(out->ndim, out->shape, m.b_stride);
    kd_k_binary(x->device, x->dtype, &m);
    if (in_place) kd_grad_alias(x, out);
}

static void gelu_backward(kd_node *n) { unary_backward(n, KD_BIN_GELU_BWD, n->in[0]); }
static void tanh_backward(kd_node *n) { unary_backward(n, KD_BIN_TANH_BWD, n->out); }

kd_tensor *kd_gelu(kd_tensor *x)
{
    if (!x || !kd_need_float("gelu", "x", x)) return NULL;
    kd_tensor *out = kd_map_unary(KD_UN_GELU, x, 0.0);
    if (out) kd_record(out, "gelu", gelu_backward, 1, &x);
    return out;
}

kd_tensor *kd_tanh(kd_tensor *x)
{
    if (!x || !kd_need_float("tanh", "x", x)) return NULL;
    kd_tensor *out = kd_map_unary(KD_UN_TANH, x, 0.0);
    if (out) kd_record(out, "tanh", tanh_backward, 1, &x);
    return out;
}
