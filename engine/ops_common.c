/* engine/ops_common.c — what every op file uses: argument checks that name the op and the argument, and
 * the setup of the element-wise kernels' arguments. */
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

void kd_map_setup(kd_map_args *m, int op, const kd_tensor *shape_of)
{
    memset(m, 0, sizeof *m);
    m->op = op;
    m->ndim = shape_of->ndim;
    for (int d = 0; d < shape_of->ndim; d++) m->shape[d] = shape_of->shape[d];
}

void kd_accumulate_strided(kd_device dev, kd_dtype dt, int ndim, const int64_t *shape, void *dst, const int64_t *dst_stride,
                           const void *src, const int64_t *src_stride)
{
    kd_map_args m;
    memset(&m, 0, sizeof m);
    m.op = KD_UN_COPY;
    m.accumulate = 1;
    m.ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        m.shape[d] = shape[d];
        m.out_stride[d] = dst_stride[d];
        m.a_stride[d] = src_stride[d];
    }
    m.out = dst;
    m.a = src;
    kd_k_unary(dev, dt, &m);
}
