/* engine/ops_matmul.c — matrix products, forward and backward.
 *   C = A B:          dA += dC B^T,   dB += A^T dC
 *   Y = X W^T + b:    dX += dY W,     dW += dY^T X,   db += 1^T dY   (W is [out, in], as Hugging Face)
 * A transposed view is passed to the GEMM as a transpose flag with its own leading dimension, so
 * kd_matmul(a, kd_transpose(b, -1, -2)) costs no copy. A no-grad linear reads a heap weight prepacked where
 * the CPU's GEMM has a packed form (kd_prepack). */
#include <string.h>

#include "engine/internal.h"

/* How a [rows, cols] matrix (the last two dims of t) sits in memory. */
typedef struct operand {
    const void *p;
    int trans;          /* stored as cols x rows */
    int64_t ld;
    int64_t bstride;    /* between batch items */
} operand;

/* Classify the last two dims of t; 0 if neither row- nor column-major (the caller copies). The batch stride
 * starts at 0 (one matrix); a batched caller sets it. */
static int matrix_layout(const kd_tensor *t, operand *o)
{
    int64_t r = t->shape[t->ndim - 2], c = t->shape[t->ndim - 1];
    int64_t sr = t->stride[t->ndim - 2], sc = t->stride[t->ndim - 1];
    o->p = kd_data(t);
    o->bstride = 0;
    if ((sc == 1 || c == 1) && (sr >= c || r == 1)) {
        o->trans = 0;
        o->ld = r == 1 ? (c > 0 ? c : 1) : sr;
        if (o->ld < 1) o->ld = 1;
        return 1;
    }
    if ((sr == 1 || r == 1) && (sc >= r || c == 1)) {
        o->trans = 1;
        o->ld = c == 1 ? (r > 0 ? r : 1) : sc;
        if (o->ld < 1) o->ld = 1;
        return 1;
    }
    return 0;
}

/* The batch dims of t (all but the last two) as one: 1 if they collapse to a single stride. */
static int batch_collapse(const kd_tensor *t, int64_t *count, int64_t *stride)
{
    int nb = t->ndim - 2;
    *count = 1;
    *stride = 0;
    for (int d = 0; d < nb; d++) *count *= t->shape[d];
    int last = -1;
    for (int d = nb - 1; d >= 0; d--) {
        if (t->shape[d] == 1) continue;
        if (last >= 0 && t->stride[d] != t->stride[last] * t->shape[last]) return 0;
        if (last < 0) *stride = t->stride[d];
        last = d;
    }
    return 1;
}

static void gemm(kd_device dev, kd_dtype dt, int64_t m, int64_t n, int64_t k, int64_t batch, operand a, operand b, void *c,
                 int64_t ldc, int64_t cstride, const void *bias, double beta)
{
    kd_gemm_args g = {
        .trans_a = a.trans, .trans_b = b.trans, .m = m, .n = n, .k = k, .batch = batch,
        .a = a.p, .lda = a.ld, .stride_a = a.bstride,
        .b = b.p, .ldb = b.ld, .stride_b = b.bstride,
        .c = c, .ldc = ldc, .stride_c = cstride, .bias = bias, .alpha = 1.0, .beta = beta,
    };
    kd_k_gemm(dev, dt, &g);
}

static operand flip(operand o)
{
    o.trans = !o.trans;
    return o;
}

/* --- matmul */
/* The batch count the forward collapsed to and whether b was shared by every batch. */
typedef struct matmul_state { int64_t batch; int b_shared; } matmul_state;

static void matmul_backward(kd_node *n)
{
    kd_tensor *a = n->in[0], *b = n->in[1], *out = n->out;
    int64_t m = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1], nn = b->shape[b->ndim - 1];
    const matmul_state *s = n->state;
    int64_t batch = s->batch;
    int b_shared = s->b_shared;
    operand oa, ob, og;
    matrix_layout(a, &oa);
    matrix_layout(b, &ob);
    batch_collapse(a, &batch, &oa.bstride);
    if (b_shared) ob.bstride = 0;
    else batch_collapse(b, &batch, &ob.bstride);
    og.p = kd_data(out->grad);
    og.trans = 0;
    og.ld = nn;
    og.bstride = m * nn;
    size_t es = kd_dtype_size(a->dtype);
    if (kd_wants_grad(n, 0)) {
        char *ga = kd_grad_buf(a);
        if (!ga) return;
        /* dA[b] (m x k) += dC[b] (m x n) B[b]^T (n x k) */
        gemm(a->device, a->dtype, m, k, nn, batch, og, flip(ob), ga, k, m * k, NULL, 1.0);
    }
    if (kd_wants_grad(n, 1)) {
        char *gb = kd_grad_buf(b);
        if (!gb) return;
        if (!b_shared) {
            /* dB[b] (k x n) += A[b]^T (k x m) dC[b] (m x n) */
            gemm(a->device, a->dtype, k, nn, m, batch, flip(oa), og, gb, nn, k * nn, NULL, 1.0);
        } else {
            /* B shared by every batch item: sum the products, one item at a time (no two threads on dB). */
            for (int64_t i = 0; i < batch; i++) {
                operand ai = oa, gi = og;
                ai.p = (const char *)oa.p + (size_t)(i * oa.bstride) * es;
                gi.p = (const char *)og.p + (size_t)(i * og.bstride) * es;
                gemm(a->device, a->dtype, k, nn, m, 1, flip(ai), gi, gb, nn, 0, NULL, 1.0);
            }
        }
    }
}

kd_tensor *kd_matmul(kd_tensor *a, kd_tensor *b)
{
    if (!a || !b) return NULL;
    if (!kd_need_float("matmul", "a", a) || !kd_need_float("matmul", "b", b) || !kd_need_same_dtype("matmul", a, b) ||
        !kd_need_device("matmul", "a", a, a->device) || !kd_need_device("matmul", "b", b, a->device))
        return NULL;
    char sa[64], sb[64];
    if (a->ndim < 2 || b->ndim < 2) {
        kd_fail(KD_ERR_SHAPE, "matmul: operands %s and %s need at least 2 dims", kd_shape_str(a, sa, sizeof sa),
                kd_shape_str(b, sb, sizeof sb));
        return NULL;
    }
    int64_t m = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1], kb = b->shape[b->ndim - 2], nn = b->shape[b->ndim - 1];
    int b_shared = b->ndim == 2 && a->ndim > 2;
    int batch_ok = b_shared || a->ndim == b->ndim;
    for (int d = 0; batch_ok && !b_shared && d < a->ndim - 2; d++) batch_ok = a->shape[d] == b->shape[d];
    if (k != kb || !batch_ok) {
        kd_fail(KD_ERR_SHAPE, "matmul: %s @ %s: expected [..., m, k] @ [..., k, n] with equal batch dims (or a 2-D right "
                "operand)", kd_shape_str(a, sa, sizeof sa), kd_shape_str(b, sb, sizeof sb));
        return NULL;
    }
    operand oa, ob;
    int64_t batch, bb;
    if (!matrix_layout(a, &oa) || !batch_collapse(a, &batch, &oa.bstride)) {
        a = kd_contiguous(a);
        if (!a) return NULL;
        matrix_layout(a, &oa);
        batch_collapse(a, &batch, &oa.bstride);
    }
    if (!matrix_layout(b, &ob) || !batch_collapse(b, &bb, &ob.bstride)) {
        b = kd_contiguous(b);
        if (!b) return NULL;
        matrix_layout(b, &ob);
        batch_collapse(b, &bb, &ob.bstride);
    }
    if (b_shared) ob.bstride = 0;
    int64_t shape[KD_MAX_DIMS];
    for (int d = 0; d < a->ndim - 2; d++) shape[d] = a->shape[d];
    shape[a->ndim - 2] = m;
    shape[a->ndim - 1] = nn;
    kd_tensor *out = kd_empty_on(a->device, a->dtype, a->ndim, shape);
    if (!out) return NULL;
    gemm(a->device, a->dtype, m, nn, k, batch, oa, ob, kd_data(out), nn, m * nn, NULL, 0.0);
    kd_tensor *in[2] = { a, b };
    matmul_state *s = kd_node_state(kd_record(out, "matmul", matmul_backward, 2, in), sizeof *s);
    if (s) *s = (matmul_state){ .batch = batch, .b_shared = b_shared };
    return out;
}

/* --- linear */
static void linear_backward(kd_node *n)
{
    kd_tensor *x = n->in[0], *w = n->in[1], *bias = n->in[2], *out = n->out;
    int64_t in_f = w->shape[1], out_f = w->shape[0], rows = kd_numel(x) / (in_f ? in_f : 1);
    operand ow, og, ox;
    matrix_layout(w, &ow);
    og = (operand){ kd_data(out->grad), 0, out_f, 0 };
    ox = (operand){ kd_data(x), 0, in_f, 0 };
    if (kd_wants_grad(n, 0)) {
        void *gx = kd_grad_buf(x);
        if (!gx) return;
        gemm(x->device, x->dtype, rows, in_f, out_f, 1, og, ow, gx, in_f, 0, NULL, 1.0);        /* dX += dY W */
    }
    if (kd_wants_grad(n, 1)) {
        void *gw = kd_grad_buf(w);
        if (!gw) return;
        gemm(x->device, x->dtype, out_f, in_f, rows, 1, flip(og), ox, gw, in_f, 0, NULL, 1.0);  /* dW += dY^T X */
    }
    if (bias && kd_wants_grad(n, 2)) {
        void *gb = kd_grad_buf(bias);
        if (!gb) return;
        /* db += 1^T dY: a column sum, read once (the reduce kernel; stride 0 on the rows of db) */
        kd_reduce_args r = { .op = KD_UN_COPY, .ndim = 2, .shape = { rows, out_f }, .out = gb,
                             .out_stride = { 0, 1 }, .a = kd_data(out->grad), .a_stride = { out_f, 1 },
                             .alpha = 1.0 };
        kd_k_reduce(x->device, x->dtype, &r);
    }
}

kd_tensor *kd_linear(kd_tensor *x, kd_tensor *w, kd_tensor *bias)
{
    if (!x || !w) return NULL;
    if (!kd_need_float("linear", "x", x) || !kd_need_float("linear", "weight", w) || !kd_need_same_dtype("linear", x, w) ||
        !kd_need_device("linear", "x", x, x->device) || !kd_need_device("linear", "weight", w, x->device) ||
        !kd_need_device("linear", "bias", bias, x->device))
        return NULL;
    char sx[64], sw[64], sb[64];
    if (x->ndim < 1 || w->ndim != 2 || x->shape[x->ndim - 1] != w->shape[1]) {
        kd_fail(KD_ERR_SHAPE, "linear: input %s and weight %s: expected [..., in] and [out, in]",
                kd_shape_str(x, sx, sizeof sx), kd_shape_str(w, sw, sizeof sw));
        return NULL;
    }
    if (bias && (bias->ndim != 1 || bias->shape[0] != w->shape[0] || bias->dtype != x->dtype)) {
        kd_fail(KD_ERR_SHAPE, "linear: bias %s %s does not match weight %s (expected %s [%lld])", kd_dtype_name(bias->dtype),
                kd_shape_str(bias, sb, sizeof sb), kd_shape_str(w, sw, sizeof sw), kd_dtype_name(x->dtype),
                (long long)w->shape[0]);
        return NULL;
    }
    x = kd_contiguous(x);
    if (!x) return NULL;
    if (bias && !kd_is_contiguous(bias)) bias = kd_contiguous(bias);
    operand ow;
    if (!matrix_layout(w, &ow)) {
        w = kd_contiguous(w);
        if (!w) return NULL;
        matrix_layout(w, &ow);
    }
    int64_t in_f = w->shape[1], out_f = w->shape[0], rows = kd_numel(x) / (in_f ? in_f : 1);
    int64_t shape[KD_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = out_f;
    kd_tensor *out = kd_empty_on(x->device, x->dtype, x->ndim, shape);
    if (!out) return NULL;
    operand ox = { kd_data(x), 0, in_f > 0 ? in_f : 1, 0 };
    /* Without a graph, a heap weight may be read prepacked (packed once, kept until it changes: the same
     * bits as packing it in this call; engine/derived.c). */
    const void *packed = kd_grad_enabled() ? NULL
                                           : kd_derived_packed_b(w, x->dtype, rows, !ow.trans, ow.ld, in_f, out_f);
    kd_gemm_args g = {
        .trans_a = 0, .trans_b = !ow.trans, .m = rows, .n = out_f, .k = in_f, .batch = 1,
        .a = ox.p, .lda = ox.ld, .b = ow.p, .ldb = ow.ld, .c = kd_data(out), .ldc = out_f,
        .bias = bias ? kd_data(bias) : NULL, .alpha = 1.0, .beta = 0.0, .b_packed = packed,
    };
    kd_k_gemm(x->device, x->dtype, &g);
    kd_tensor *in[3] = { x, w, bias };
    kd_record(out, "linear", linear_backward, bias ? 3 : 2, in);
    return out;
}
