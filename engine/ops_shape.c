/* engine/ops_shape.c — views (reshape, permute, transpose, narrow) and contiguous(), forward and backward.
 * A view shares its input's storage; its backward adds the output gradient into the input gradient seen
 * through the same index map (permuted strides, an offset), so no copy is made in either direction. */
#include <string.h>

#include "engine/internal.h"

/* --- reshape: out[i] = x[i] in row-major order; a view when x is contiguous. */
static void reshape_backward(kd_node *n)
{
    kd_tensor *x = n->in[0], *out = n->out;
    if (kd_grad_alias(x, out)) return;
    void *gx = kd_grad_buf(x);
    if (!gx) return;
    int64_t st[KD_MAX_DIMS];
    kd_contiguous_strides(out->ndim, out->shape, st);
    kd_accumulate_strided(x->device, x->dtype, out->ndim, out->shape, gx, st, kd_data(out->grad), st);
}

kd_tensor *kd_reshape(kd_tensor *x, int ndim, const int64_t *shape)
{
    if (!x) return NULL;
    char b[64];
    if (ndim < 0 || ndim > KD_MAX_DIMS) {
        kd_fail(KD_ERR_SHAPE, "reshape: %d dims requested, expected 0..%d", ndim, KD_MAX_DIMS);
        return NULL;
    }
    int64_t sh[KD_MAX_DIMS], known = 1;
    int infer = -1;
    for (int d = 0; d < ndim; d++) {
        sh[d] = shape[d];
        if (shape[d] == -1 && infer < 0) infer = d;
        else if (shape[d] < 0) {
            kd_fail(KD_ERR_SHAPE, "reshape: dim %d is %lld; expected >= 0 or one -1", d, (long long)shape[d]);
            return NULL;
        } else known *= shape[d];
    }
    int64_t n = kd_numel(x);
    if (infer >= 0) {
        if (known == 0 || n % known != 0) {
            kd_fail(KD_ERR_SHAPE, "reshape: cannot infer dim %d of %lld elements from %s", infer, (long long)n,
                    kd_shape_str(x, b, sizeof b));
            return NULL;
        }
        sh[infer] = n / known;
        known *= sh[infer];
    }
    if (known != n) {
        kd_fail(KD_ERR_SHAPE, "reshape: %s has %lld elements, the new shape %lld", kd_shape_str(x, b, sizeof b),
                (long long)n, (long long)known);
        return NULL;
    }
    kd_tensor *src = kd_is_contiguous(x) ? x : kd_contiguous(x);
    if (!src) return NULL;
    int64_t st[KD_MAX_DIMS];
    kd_contiguous_strides(ndim, sh, st);
    kd_tensor *out = kd_view_of(src, ndim, sh, st, src->offset);
    if (!out) return NULL;
    kd_record(out, "reshape", reshape_backward, 1, &src);
    return out;
}

/* --- permute: out dim d is x dim perm[d]. */
/* permute: the order of x's dims in the output (output dim d is x's dim perm[d]); narrow: the dim and
 * the first index kept. */
typedef struct permute_state { int perm[KD_MAX_DIMS]; } permute_state;
typedef struct narrow_state { int dim; int64_t start; } narrow_state;

static void permute_backward(kd_node *n)
{
    kd_tensor *x = n->in[0], *out = n->out;
    void *gx = kd_grad_buf(x);
    if (!gx) return;
    int64_t xst[KD_MAX_DIMS], dst[KD_MAX_DIMS], ost[KD_MAX_DIMS];
    kd_contiguous_strides(x->ndim, x->shape, xst);
    kd_contiguous_strides(out->ndim, out->shape, ost);
    const permute_state *s = n->state;
    for (int d = 0; d < out->ndim; d++) dst[d] = xst[s->perm[d]];
    kd_accumulate_strided(x->device, x->dtype, out->ndim, out->shape, gx, dst, kd_data(out->grad), ost);
}

kd_tensor *kd_permute(kd_tensor *x, const int *perm)
{
    if (!x) return NULL;
    int seen[KD_MAX_DIMS] = {0};
    int64_t sh[KD_MAX_DIMS], st[KD_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) {
        int p = perm[d];
        if (p < 0 || p >= x->ndim || seen[p]) {
            char b[64];
            kd_fail(KD_ERR_ARG, "permute: entry %d (%d) is not a permutation of the %d dims of %s", d, p, x->ndim,
                    kd_shape_str(x, b, sizeof b));
            return NULL;
        }
        seen[p] = 1;
        sh[d] = x->shape[p];
        st[d] = x->stride[p];
    }
    kd_tensor *out = kd_view_of(x, x->ndim, sh, st, x->offset);
    if (!out) return NULL;
    permute_state *s = kd_node_state(kd_record(out, "permute", permute_backward, 1, &x), sizeof *s);
    if (s) memcpy(s->perm, perm, (size_t)x->ndim * sizeof *perm);
    return out;
}

kd_tensor *kd_transpose(kd_tensor *x, int d0, int d1)
{
    if (!x) return NULL;
    int a = kd_norm_dim("transpose", x, d0), b = kd_norm_dim("transpose", x, d1);
    if (a < 0 || b < 0) return NULL;
    int perm[KD_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) perm[d] = d;
    perm[a] = b;
    perm[b] = a;
    return kd_permute(x, perm);
}

/* --- narrow: out = x[..., start:start+len, ...] along dim. */
static void narrow_backward(kd_node *n)
{
    kd_tensor *x = n->in[0], *out = n->out;
    char *gx = kd_grad_buf(x);
    if (!gx) return;
    int64_t xst[KD_MAX_DIMS], ost[KD_MAX_DIMS];
    kd_contiguous_strides(x->ndim, x->shape, xst);
    kd_contiguous_strides(out->ndim, out->shape, ost);
    const narrow_state *s = n->state;
    gx += (size_t)(s->start * xst[s->dim]) * kd_dtype_size(x->dtype);
    kd_accumulate_strided(x->device, x->dtype, out->ndim, out->shape, gx, xst, kd_data(out->grad), ost);
}

kd_tensor *kd_narrow(kd_tensor *x, int dim, int64_t start, int64_t len)
{
    if (!x) return NULL;
    int d = kd_norm_dim("narrow", x, dim);
    if (d < 0) return NULL;
    if (start < 0 || len < 0 || start + len > x->shape[d]) {
        char b[64];
        kd_fail(KD_ERR_INDEX, "narrow: [%lld, %lld) is outside dim %d of %s", (long long)start,
                (long long)(start + len), dim, kd_shape_str(x, b, sizeof b));
        return NULL;
    }
    int64_t sh[KD_MAX_DIMS];
    memcpy(sh, x->shape, sizeof sh);
    sh[d] = len;
    kd_tensor *out = kd_view_of(x, x->ndim, sh, x->stride, x->offset + start * x->stride[d]);
    if (!out) return NULL;
    narrow_state *s = kd_node_state(kd_record(out, "narrow", narrow_backward, 1, &x), sizeof *s);
    if (s) *s = (narrow_state){ .dim = d, .start = start };
    return out;
}

/* --- contiguous: a row-major copy (x itself if it already is one). */
static void contiguous_backward(kd_node *n)
{
    kd_tensor *x = n->in[0], *out = n->out;
    if (kd_is_contiguous(x) && kd_grad_alias(x, out)) return;
    void *gx = kd_grad_buf(x);
    if (!gx) return;
    int64_t st[KD_MAX_DIMS];
    kd_contiguous_strides(x->ndim, x->shape, st);
    kd_accumulate_strided(x->device, x->dtype, x->ndim, x->shape, gx, st, kd_data(out->grad), st);
}

kd_tensor *kd_contiguous(kd_tensor *x)
{
    if (!x) return NULL;
    if (kd_is_contiguous(x)) return x;
    if (!kd_need_device("contiguous", "x", x, x->device)) return NULL;
    kd_tensor *out = kd_empty_like(x);
    if (!out) return NULL;
    kd_copy_into(out, x);
    kd_record(out, "contiguous", contiguous_backward, 1, &x);
    return out;
}
