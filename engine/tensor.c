/* engine/tensor.c — tensor headers, storage, creation, copies and queries. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"
#include "kernels/rng.h"

static size_t heap_bytes;

size_t kd_dtype_size(kd_dtype dt)
{
    switch (dt) {
    case KD_F32: return 4;
    case KD_F64: return 8;
    case KD_I32: return 4;
    }
    return 0;
}

const char *kd_dtype_name(kd_dtype dt)
{
    switch (dt) {
    case KD_F32: return "f32";
    case KD_F64: return "f64";
    case KD_I32: return "i32";
    }
    return "?";
}

void kd_contiguous_strides(int ndim, const int64_t *shape, int64_t *stride)
{
    int64_t s = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        stride[d] = s;
        s *= shape[d];
    }
}

static int check_shape(int ndim, const int64_t *shape, size_t *numel)
{
    if (ndim < 0 || ndim > KD_MAX_DIMS) {
        kd_fail(KD_ERR_SHAPE, "tensor: %d dims requested, expected 0..%d", ndim, KD_MAX_DIMS);
        return 0;
    }
    size_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) {
            kd_fail(KD_ERR_SHAPE, "tensor: dim %d has size %lld, expected >= 0", d, (long long)shape[d]);
            return 0;
        }
        n *= (size_t)shape[d];
    }
    *numel = n;
    return 1;
}

/* A contiguous tensor with fresh storage, from the arena or the heap. */
static kd_tensor *tensor_new(kd_dtype dt, int ndim, const int64_t *shape, int persistent)
{
    size_t numel;
    if (!check_shape(ndim, shape, &numel)) return NULL;
    size_t nbytes = numel * kd_dtype_size(dt);
    kd_tensor *t;
    kd_storage *s;
    if (persistent) {
        t = calloc(1, sizeof *t);
        s = calloc(1, sizeof *s);
        void *data = malloc(nbytes ? nbytes : 1);
        if (!t || !s || !data) {
            free(t);
            free(s);
            free(data);
            kd_fail(KD_ERR_NOMEM, "tensor: cannot allocate %zu bytes", nbytes);
            return NULL;
        }
        s->data = data;
        heap_bytes += nbytes;
    } else {
        t = kd_arena_alloc(sizeof *t);
        s = kd_arena_alloc(sizeof *s);
        void *data = kd_arena_alloc(nbytes);
        if (!t || !s || !data) return NULL;
        memset(t, 0, sizeof *t);
        memset(s, 0, sizeof *s);
        s->data = data;
    }
    s->nbytes = nbytes;
    s->device = KD_CPU;
    s->persistent = persistent;
    t->dtype = dt;
    t->device = KD_CPU;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    kd_contiguous_strides(ndim, shape, t->stride);
    t->storage = s;
    t->persistent = persistent;
    return t;
}

kd_tensor *kd_empty(kd_dtype dt, int ndim, const int64_t *shape) { return tensor_new(dt, ndim, shape, 0); }

kd_tensor *kd_empty_like(const kd_tensor *x) { return tensor_new(x->dtype, x->ndim, x->shape, 0); }

void kd_fill(kd_tensor *t, double v)
{
    int64_t n = kd_numel(t);
    if (kd_is_contiguous(t)) {
        void *p = kd_data(t);
        if (v == 0.0) {
            memset(p, 0, (size_t)n * kd_dtype_size(t->dtype));
            return;
        }
        for (int64_t i = 0; i < n; i++) {
            if (t->dtype == KD_F32) ((float *)p)[i] = (float)v;
            else if (t->dtype == KD_F64) ((double *)p)[i] = v;
            else ((int32_t *)p)[i] = (int32_t)v;
        }
        return;
    }
    int64_t idx[KD_MAX_DIMS] = {0};
    for (int64_t i = 0; i < n; i++) {
        int64_t off = t->offset, rem = i;
        for (int d = t->ndim - 1; d >= 0; d--) {
            idx[d] = rem % t->shape[d];
            rem /= t->shape[d];
            off += idx[d] * t->stride[d];
        }
        char *base = t->storage->data;
        if (t->dtype == KD_F32) ((float *)base)[off] = (float)v;
        else if (t->dtype == KD_F64) ((double *)base)[off] = v;
        else ((int32_t *)base)[off] = (int32_t)v;
    }
}

kd_tensor *kd_full(kd_dtype dt, int ndim, const int64_t *shape, double value)
{
    kd_tensor *t = kd_empty(dt, ndim, shape);
    if (t) kd_fill(t, value);
    return t;
}

kd_tensor *kd_zeros(kd_dtype dt, int ndim, const int64_t *shape) { return kd_full(dt, ndim, shape, 0.0); }
kd_tensor *kd_ones(kd_dtype dt, int ndim, const int64_t *shape) { return kd_full(dt, ndim, shape, 1.0); }
kd_tensor *kd_scalar(kd_dtype dt, double value) { return kd_full(dt, 0, NULL, value); }

kd_tensor *kd_from_buffer(kd_dtype dt, int ndim, const int64_t *shape, const void *data)
{
    kd_tensor *t = kd_empty(dt, ndim, shape);
    if (t && t->storage->nbytes) memcpy(t->storage->data, data, t->storage->nbytes);
    return t;
}

static void set_elem(kd_tensor *t, int64_t i, double v)
{
    if (t->dtype == KD_F32) ((float *)t->storage->data)[i] = (float)v;
    else if (t->dtype == KD_F64) ((double *)t->storage->data)[i] = v;
    else ((int32_t *)t->storage->data)[i] = (int32_t)v;
}

kd_tensor *kd_rand_uniform(kd_dtype dt, int ndim, const int64_t *shape, double lo, double hi, uint64_t seed)
{
    kd_tensor *t = kd_empty(dt, ndim, shape);
    if (!t) return NULL;
    int64_t n = kd_numel(t);
    for (int64_t i = 0; i < n; i++) {
        /* 53-bit uniform from two draws, so f64 tensors get full resolution. */
        uint64_t a = kd_rng_u32(seed, 2 * (uint64_t)i), b = kd_rng_u32(seed, 2 * (uint64_t)i + 1);
        double u = (double)((a >> 5) * 67108864.0 + (b >> 6)) * (1.0 / 9007199254740992.0);
        set_elem(t, i, lo + (hi - lo) * u);
    }
    return t;
}

kd_tensor *kd_randn(kd_dtype dt, int ndim, const int64_t *shape, double mean, double std, uint64_t seed)
{
    kd_tensor *t = kd_empty(dt, ndim, shape);
    if (!t) return NULL;
    int64_t n = kd_numel(t);
    for (int64_t i = 0; i < n; i++) set_elem(t, i, mean + std * kd_rng_normal(seed, (uint64_t)i, 0));
    return t;
}

kd_tensor *kd_trunc_normal(kd_dtype dt, int ndim, const int64_t *shape, double std, double lo, double hi,
                           uint64_t seed)
{
    if (!(lo < hi) || !(std > 0)) {
        kd_fail(KD_ERR_ARG, "trunc_normal: need std > 0 and lo < hi, got std %g, [%g, %g]", std, lo, hi);
        return NULL;
    }
    kd_tensor *t = kd_empty(dt, ndim, shape);
    if (!t) return NULL;
    int64_t n = kd_numel(t);
    for (int64_t i = 0; i < n; i++) {
        /* Redraw (each attempt its own counter, so the result is still a function of (seed, i)). */
        double v = 0.0;
        for (uint32_t attempt = 0; attempt < 1000; attempt++) {
            v = std * kd_rng_normal(seed, (uint64_t)i, attempt);
            if (v >= lo && v <= hi) break;
            v = 0.0;
        }
        set_elem(t, i, v);
    }
    return t;
}

kd_tensor *kd_param(kd_dtype dt, int ndim, const int64_t *shape, const char *name)
{
    kd_tensor *t = tensor_new(dt, ndim, shape, 1);
    if (!t) return NULL;
    memset(t->storage->data, 0, t->storage->nbytes);
    t->requires_grad = 1;
    if (name) snprintf(t->name, sizeof t->name, "%s", name);
    return t;
}

kd_tensor *kd_persist(const kd_tensor *x)
{
    if (!x) return NULL;
    kd_tensor *t = tensor_new(x->dtype, x->ndim, x->shape, 1);
    if (!t) return NULL;
    kd_copy_into(t, x);
    snprintf(t->name, sizeof t->name, "%s", x->name);
    return t;
}

void kd_tensor_free(kd_tensor *t)
{
    if (!t) return;
    KD_CHECK(t->persistent);
    if (t->grad) kd_tensor_free(t->grad);
    heap_bytes -= t->storage->nbytes;
    free(t->storage->data);
    free(t->storage);
    free(t);
}

size_t kd_heap_bytes(void) { return heap_bytes; }

int64_t kd_numel(const kd_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

int kd_is_contiguous(const kd_tensor *t)
{
    int64_t s = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != s) return 0;
        s *= t->shape[d];
    }
    return 1;
}

void *kd_data(const kd_tensor *t) { return (char *)t->storage->data + (size_t)t->offset * kd_dtype_size(t->dtype); }

double kd_get(const kd_tensor *t, const int64_t *idx)
{
    int64_t off = t->offset;
    for (int d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
    switch (t->dtype) {
    case KD_F32: return ((const float *)t->storage->data)[off];
    case KD_F64: return ((const double *)t->storage->data)[off];
    case KD_I32: return ((const int32_t *)t->storage->data)[off];
    }
    return NAN;
}

double kd_item(const kd_tensor *t)
{
    if (!t || kd_numel(t) != 1) return NAN;
    int64_t idx[KD_MAX_DIMS] = {0};
    return kd_get(t, idx);
}

int kd_same_shape(const kd_tensor *a, const kd_tensor *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

const char *kd_shape_str(const kd_tensor *t, char *buf, size_t n)
{
    size_t len = 0;
    len += (size_t)snprintf(buf + len, n - len, "[");
    for (int d = 0; d < t->ndim && len < n; d++)
        len += (size_t)snprintf(buf + len, n - len, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    if (len < n) snprintf(buf + len, n - len, "]");
    return buf;
}

kd_tensor *kd_view_of(const kd_tensor *base, int ndim, const int64_t *shape, const int64_t *stride, int64_t offset)
{
    kd_tensor *t = kd_arena_alloc(sizeof *t);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->dtype = base->dtype;
    t->device = base->device;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        t->stride[d] = stride[d];
    }
    t->offset = offset;
    t->storage = base->storage;
    return t;
}

kd_status kd_copy_into(kd_tensor *dst, const kd_tensor *src)
{
    char a[64], b[64];
    if (!kd_same_shape(dst, src))
        return kd_fail(KD_ERR_SHAPE, "copy: destination %s and source %s differ in shape",
                       kd_shape_str(dst, a, sizeof a), kd_shape_str(src, b, sizeof b));
    int64_t n = kd_numel(src);
    if (dst->dtype == src->dtype && kd_is_contiguous(dst) && kd_is_contiguous(src)) {
        memcpy(kd_data(dst), kd_data(src), (size_t)n * kd_dtype_size(src->dtype));
        return KD_OK;
    }
    if (dst->dtype == src->dtype && dst->dtype != KD_I32) {
        kd_map_args m;
        kd_map_setup(&m, KD_UN_COPY, src);
        m.out = kd_data(dst);
        m.a = kd_data(src);
        for (int d = 0; d < src->ndim; d++) {
            m.out_stride[d] = dst->stride[d];
            m.a_stride[d] = src->stride[d];
        }
        kd_k_unary(src->dtype, &m);
        return KD_OK;
    }
    int64_t idx[KD_MAX_DIMS] = {0};
    for (int64_t i = 0; i < n; i++) {
        int64_t rem = i, off = dst->offset;
        for (int d = src->ndim - 1; d >= 0; d--) {
            idx[d] = rem % src->shape[d];
            rem /= src->shape[d];
            off += idx[d] * dst->stride[d];
        }
        double v = kd_get(src, idx);
        if (dst->dtype == KD_F32) ((float *)dst->storage->data)[off] = (float)v;
        else if (dst->dtype == KD_F64) ((double *)dst->storage->data)[off] = v;
        else ((int32_t *)dst->storage->data)[off] = (int32_t)v;
    }
    return KD_OK;
}

int kd_need_float(const char *op, const char *arg, const kd_tensor *t)
{
    if (t->dtype == KD_F32 || t->dtype == KD_F64) return 1;
    kd_fail(KD_ERR_DTYPE, "%s: %s has dtype %s, expected f32 or f64", op, arg, kd_dtype_name(t->dtype));
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

void kd_accumulate_strided(kd_dtype dt, int ndim, const int64_t *shape, void *dst, const int64_t *dst_stride,
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
    kd_k_unary(dt, &m);
}
