/* engine/ops_elementwise.c — add, sub, mul, div with broadcasting, scale and add_scalar; forward and
 * backward. Broadcasting aligns shapes at the right; a size-1 (or missing) dim of an input is read with
 * stride 0, and its gradient is the sum of the output gradient over that dim. */
#include <string.h>

#include "engine/internal.h"

/* Strides of t seen from an output of shape (ndim, shape): 0 on broadcast dims. `st` gives t's strides
 * (its own or its gradient's). */
static void aligned_strides(const kd_tensor *t, const int64_t *st, int ndim, int64_t *out)
{
    int lead = ndim - t->ndim;
    for (int d = 0; d < ndim; d++) {
        int td = d - lead;
        out[d] = (td < 0 || t->shape[td] == 1) ? 0 : st[td];
    }
}

static int broadcast_shape(const char *op, const kd_tensor *a, const kd_tensor *b, int *ndim, int64_t *shape)
{
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int d = 0; d < n; d++) {
        int ad = d - (n - a->ndim), bd = d - (n - b->ndim);
        int64_t as = ad < 0 ? 1 : a->shape[ad], bs = bd < 0 ? 1 : b->shape[bd];
        if (as != bs && as != 1 && bs != 1) {
            char x[64], y[64];
            kd_fail(KD_ERR_SHAPE, "%s: shapes %s and %s do not broadcast (dim %d: %lld vs %lld)", op,
                    kd_shape_str(a, x, sizeof x), kd_shape_str(b, y, sizeof y), d, (long long)as, (long long)bs);
            return 0;
        }
        shape[d] = as == 1 ? bs : as;
    }
    *ndim = n;
    return 1;
}

/* grad(x) += alpha * g (g contiguous with shape of out), summing over x's broadcast dims. */
static void add_grad_reduced(kd_tensor *x, const kd_tensor *out, const void *g, double alpha)
{
    void *gx = kd_grad_buf(x);
    if (!gx) return;
    int64_t gst[KD_MAX_DIMS], xst[KD_MAX_DIMS], ost[KD_MAX_DIMS];
    kd_contiguous_strides(x->ndim, x->shape, gst);
    kd_contiguous_strides(out->ndim, out->shape, ost);
    aligned_strides(x, gst, out->ndim, xst);
    kd_map_args m;
    kd_map_setup(&m, KD_UN_SCALE, out);
    m.out = gx;
    m.a = g;
    m.alpha = alpha;
    memcpy(m.out_stride, xst, sizeof(int64_t) * (size_t)out->ndim);
    memcpy(m.a_stride, ost, sizeof(int64_t) * (size_t)out->ndim);
    if (kd_numel(x) == kd_numel(out)) {
        m.accumulate = 1;
        kd_k_unary(x->device, x->dtype, &m);
    } else {
        kd_k_reduce(x->device, x->dtype, &m);
    }
}

/* out = a (op) b over the broadcast shape of out, reading a and b through their own strides. */
static void run_binary(int op, kd_tensor *out, const kd_tensor *a, const void *adata, const int64_t *ast,
                       const kd_tensor *b, const void *bdata, const int64_t *bst)
{
    kd_map_args m;
    kd_map_setup(&m, op, out);
    m.out = kd_data(out);
    memcpy(m.out_stride, out->stride, sizeof(int64_t) * (size_t)out->ndim);
    m.a = adata;
    m.b = bdata;
    aligned_strides(a, ast, out->ndim, m.a_stride);
    aligned_strides(b, bst, out->ndim, m.b_stride);
    kd_k_binary(out->device, out->dtype, &m);
}

/* add/sub: the sign of b's share (+1 add, -1 sub); mul/div: which of the two; scale: the factor. */
typedef struct binary_state { double sign_b; int is_div; } binary_state;
typedef struct scale_state { double factor; } scale_state;

static void add_backward(kd_node *n)
{
    const binary_state *s = n->state;
    const void *g = kd_data(n->out->grad);
    /* Read the other input's share first: once an input aliases the output gradient, its later
     * accumulations would change what the other input reads. */
    int alias0 = kd_wants_grad(n, 0) && n->in[0] != n->in[1] && kd_same_shape(n->in[0], n->out) &&
                 kd_grad_can_alias(n->in[0], n->out);
    if (kd_wants_grad(n, 1)) add_grad_reduced(n->in[1], n->out, g, s->sign_b);
    if (kd_wants_grad(n, 0) && !(alias0 && kd_grad_alias(n->in[0], n->out))) add_grad_reduced(n->in[0], n->out, g, 1.0);
}

/* d(a*b)/da = b, d(a/b)/da = 1/b; d(a*b)/db = a, d(a/b)/db = -a/b^2 = -out/b. */
static void muldiv_backward(kd_node *n)
{
    kd_tensor *a = n->in[0], *b = n->in[1], *out = n->out, *g = out->grad;
    int is_div = ((const binary_state *)n->state)->is_div;
    if (kd_wants_grad(n, 0)) {
        kd_tensor *t = kd_empty_like(out);
        if (!t) return;
        run_binary(is_div ? KD_BIN_DIV : KD_BIN_MUL, t, g, kd_data(g), g->stride, b, kd_data(b), b->stride);
        add_grad_reduced(a, out, kd_data(t), 1.0);
    }
    if (kd_wants_grad(n, 1)) {
        kd_tensor *t = kd_empty_like(out);
        if (!t) return;
        if (is_div) {
            run_binary(KD_BIN_MUL, t, g, kd_data(g), g->stride, out, kd_data(out), out->stride);
            run_binary(KD_BIN_DIV, t, t, kd_data(t), t->stride, b, kd_data(b), b->stride);
            add_grad_reduced(b, out, kd_data(t), -1.0);
        } else {
            run_binary(KD_BIN_MUL, t, g, kd_data(g), g->stride, a, kd_data(a), a->stride);
            add_grad_reduced(b, out, kd_data(t), 1.0);
        }
    }
}

static kd_tensor *binary_op(const char *name, int op, kd_tensor *a, kd_tensor *b)
{
    if (!a || !b) return NULL;
    if (!kd_need_float(name, "a", a) || !kd_need_float(name, "b", b) || !kd_need_same_dtype(name, a, b) ||
        !kd_need_device(name, "a", a, a->device) || !kd_need_device(name, "b", b, a->device))
        return NULL;
    int ndim;
    int64_t shape[KD_MAX_DIMS];
    if (!broadcast_shape(name, a, b, &ndim, shape)) return NULL;
    kd_tensor *out = kd_empty_on(a->device, a->dtype, ndim, shape);
    if (!out) return NULL;
    run_binary(op, out, a, kd_data(a), a->stride, b, kd_data(b), b->stride);
    kd_tensor *in[2] = { a, b };
    int additive = op == KD_BIN_ADD || op == KD_BIN_SUB;
    binary_state *s = kd_node_state(kd_record(out, name, additive ? add_backward : muldiv_backward, 2, in), sizeof *s);
    if (s) *s = (binary_state){ .sign_b = op == KD_BIN_SUB ? -1.0 : 1.0, .is_div = op == KD_BIN_DIV };
    return out;
}

kd_tensor *kd_add(kd_tensor *a, kd_tensor *b) { return binary_op("add", KD_BIN_ADD, a, b); }
kd_tensor *kd_sub(kd_tensor *a, kd_tensor *b) { return binary_op("sub", KD_BIN_SUB, a, b); }
kd_tensor *kd_mul(kd_tensor *a, kd_tensor *b) { return binary_op("mul", KD_BIN_MUL, a, b); }
kd_tensor *kd_div(kd_tensor *a, kd_tensor *b) { return binary_op("div", KD_BIN_DIV, a, b); }

/* --- scale: out = s x (d/dx = s); add_scalar: out = x + s (d/dx = 1). */
static void scale_backward(kd_node *n)
{
    add_grad_reduced(n->in[0], n->out, kd_data(n->out->grad), ((const scale_state *)n->state)->factor);
}

static kd_tensor *scalar_op(const char *name, int op, kd_tensor *x, double s)
{
    if (!x) return NULL;
    if (!kd_need_float(name, "x", x)) return NULL;
    kd_tensor *out = kd_map_unary(op, x, s);
    if (!out) return NULL;
    scale_state *st = kd_node_state(kd_record(out, name, scale_backward, 1, &x), sizeof *st);
    if (st) st->factor = op == KD_UN_SCALE ? s : 1.0;
    return out;
}

kd_tensor *kd_scale(kd_tensor *x, double s) { return scalar_op("scale", KD_UN_SCALE, x, s); }
kd_tensor *kd_add_scalar(kd_tensor *x, double s) { return scalar_op("add_scalar", KD_UN_ADD_SCALAR, x, s); }

/* --- sqrt: out = sqrt(x), d/dx = 1 / (2 out) (infinite at 0, as in PyTorch). */
static void sqrt_backward(kd_node *n)
{
    kd_tensor *out = n->out, *g = out->grad, *t = kd_empty_like(out);
    if (!t) return;
    run_binary(KD_BIN_DIV, t, g, kd_data(g), g->stride, out, kd_data(out), out->stride);
    add_grad_reduced(n->in[0], out, kd_data(t), 0.5);
}

kd_tensor *kd_sqrt(kd_tensor *x)
{
    if (!x || !kd_need_float("sqrt", "x", x)) return NULL;
    kd_tensor *out = kd_map_unary(KD_UN_SQRT, x, 0.0);
    if (out) kd_record(out, "sqrt", sqrt_backward, 1, &x);
    return out;
}
