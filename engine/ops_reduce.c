/* engine/ops_reduce.c — sum and mean over a set of dims; the backward broadcasts the output gradient back
 * over the reduced dims (times 1/count for mean). */
#include <math.h>
#include <string.h>

#include "engine/internal.h"

/* Which dims of x are reduced: a bit mask. ndims == 0 means all. Returns -1 on a bad dim. */
static int reduced_mask(const char *op, const kd_tensor *x, int ndims, const int *dims)
{
    if (ndims == 0) return (1 << x->ndim) - 1;
    int mask = 0;
    for (int i = 0; i < ndims; i++) {
        int d = kd_norm_dim(op, x, dims[i]);
        if (d < 0) return -1;
        mask |= 1 << d;
    }
    return mask;
}

/* Which dims were reduced (bit d: dim d) and the scale of the sum (1 or 1/count for a mean). */
typedef struct reduce_state { int mask; double alpha; } reduce_state;

static void reduce_backward(kd_node *n)
{
    kd_tensor *x = n->in[0], *out = n->out;
    void *gx = kd_grad_buf(x);
    if (!gx) return;
    const reduce_state *s = n->state;
    int mask = s->mask;
    /* Read the (contiguous) output gradient with stride 0 along reduced dims of x. */
    int64_t xst[KD_MAX_DIMS], ost[KD_MAX_DIMS], gst[KD_MAX_DIMS];
    kd_contiguous_strides(x->ndim, x->shape, xst);
    int64_t kept_shape[KD_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) kept_shape[d] = (mask >> d & 1) ? 1 : x->shape[d];
    kd_contiguous_strides(x->ndim, kept_shape, gst);
    for (int d = 0; d < x->ndim; d++) ost[d] = (mask >> d & 1) ? 0 : gst[d];
    kd_map_args m;
    kd_map_setup(&m, KD_UN_SCALE, x);
    m.accumulate = 1;
    m.alpha = s->alpha;
    m.out = gx;
    m.a = kd_data(out->grad);
    memcpy(m.out_stride, xst, sizeof m.out_stride);
    memcpy(m.a_stride, ost, sizeof m.a_stride);
    kd_k_unary(x->device, x->dtype, &m);
}

static kd_tensor *reduce_op(const char *name, kd_tensor *x, int ndims, const int *dims, int keepdim, int mean)
{
    if (!x || !kd_need_float(name, "x", x) || !kd_need_device(name, "x", x, x->device)) return NULL;
    int mask = reduced_mask(name, x, ndims, dims);
    if (mask < 0) return NULL;
    int64_t oshape[KD_MAX_DIMS], kshape[KD_MAX_DIMS];
    int on = 0;
    int64_t count = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (mask >> d & 1) {
            count *= x->shape[d];
            kshape[d] = 1;
            if (keepdim) oshape[on++] = 1;
        } else {
            kshape[d] = x->shape[d];
            oshape[on++] = x->shape[d];
        }
    }
    kd_tensor *out = kd_zeros_on(x->device, x->dtype, on, oshape);
    if (!out) return NULL;
    double alpha = mean ? (count ? 1.0 / (double)count : 0.0) : 1.0;
    int64_t kst[KD_MAX_DIMS];
    kd_contiguous_strides(x->ndim, kshape, kst);
    kd_map_args m;
    kd_map_setup(&m, KD_UN_COPY, x);
    m.alpha = alpha;
    m.out = kd_data(out);
    m.a = kd_data(x);
    for (int d = 0; d < x->ndim; d++) m.out_stride[d] = (mask >> d & 1) ? 0 : kst[d];
    memcpy(m.a_stride, x->stride, sizeof m.a_stride);
    kd_k_reduce(x->device, x->dtype, &m);
    if (mean && count == 0) kd_fill(out, NAN);
    reduce_state *s = kd_node_state(kd_record(out, name, reduce_backward, 1, &x), sizeof *s);
    if (s) *s = (reduce_state){ .mask = mask, .alpha = alpha };
    return out;
}

kd_tensor *kd_sum(kd_tensor *x, int ndims, const int *dims, int keepdim) { return reduce_op("sum", x, ndims, dims, keepdim, 0); }
kd_tensor *kd_mean(kd_tensor *x, int ndims, const int *dims, int keepdim) { return reduce_op("mean", x, ndims, dims, keepdim, 1); }
