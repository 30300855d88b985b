/* engine/ops_common.c — what the op files share: argument checks, each failing with a message that names
 * the op and the argument, and the batch mean of the losses' per-row values. */
#include <string.h>

#include "engine/internal.h"

int kd_need_device(const char *op, const char *arg, const kd_tensor *t, kd_device dev)
{
    if (!t || t->device == dev) return 1;
    kd_fail(KD_ERR_ARG, "%s: %s is on %s, the op's other inputs on %s; move it with kd_to() or kd_to_device()", op,
            arg, kd_device_name(t->device), kd_device_name(dev));
    return 0;
}

int kd_need_float(const char *op, const char *arg, const kd_tensor *t)
{
    if (t->dtype == KD_F32 || t->dtype == KD_F64 || t->dtype == KD_BF16) return 1;
    kd_fail(KD_ERR_DTYPE, "%s: %s has dtype %s, expected f32, f64 or bf16", op, arg, kd_dtype_name(t->dtype));
    return 0;
}

int kd_need_wide(const char *op, const char *arg, const kd_tensor *t)
{
    if (t->dtype == KD_F32 || t->dtype == KD_F64) return 1;
    kd_fail(KD_ERR_DTYPE, "%s: %s has dtype %s, expected f32 or f64%s", op, arg, kd_dtype_name(t->dtype),
            t->dtype == KD_BF16 ? " (it runs in f32 in mixed precision: kd_cast it first)" : "");
    return 0;
}

int kd_need_same_dtype(const char *op, const kd_tensor *a, const kd_tensor *b)
{
    if (a->dtype == b->dtype) return 1;
    kd_fail(KD_ERR_DTYPE, "%s: operands have dtypes %s and %s, expected the same", op, kd_dtype_name(a->dtype),
            kd_dtype_name(b->dtype));
    return 0;
}

int kd_norm_dim(const char *op, const kd_tensor *t, int dim)
{
    int d = dim < 0 ? dim + t->ndim : dim;
    if (d < 0 || d >= t->ndim) {
        char b[64];
        kd_fail(KD_ERR_INDEX, "%s: dim %d out of range for a tensor of shape %s", op, dim, kd_shape_str(t, b, sizeof b));
        return -1;
    }
    return d;
}

/* The mean of n per-row values, by the reduce kernel where the values are (summed in double, rounded once:
 * kernels.h). */
kd_tensor *kd_map_unary(int op, kd_tensor *x, double alpha)
{
    kd_tensor *out = kd_empty_like(x);
    if (!out) return NULL;
    kd_map_args m;
    kd_map_setup(&m, op, x);
    m.out = kd_data(out);
    m.a = kd_data(x);
    m.alpha = alpha;
    memcpy(m.out_stride, out->stride, sizeof m.out_stride);
    memcpy(m.a_stride, x->stride, sizeof m.a_stride);
    kd_k_unary(x->device, x->dtype, &m);
    return out;
}

kd_tensor *kd_row_mean(kd_tensor *rows_out, int64_t n)
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
