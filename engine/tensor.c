/* engine/tensor.c — tensor headers, storage, creation (on a named device; random fills on the host),
 * copies, queries, and element loads/stores by dtype. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"
#include "kernels/bf16.h"
#include "kernels/rng.h"

static size_t heap_bytes;

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

/* A contiguous tensor with fresh storage on `dev`, from the arena or the heap. Headers are always host
 * memory; the data is host memory, the device arena, or device heap memory. */
static kd_tensor *tensor_new_on(kd_dtype dt, int ndim, const int64_t *shape, int persistent, kd_device dev)
{
    size_t numel;
    if (!check_shape(ndim, shape, &numel)) return NULL;
    if (dev == KD_CUDA && dt == KD_F64) {
        kd_fail(KD_ERR_DTYPE, "tensor: f64 tensors are CPU-only (the CUDA tables are f32)");
        return NULL;
    }
    size_t nbytes = numel * kd_dtype_size(dt);
    kd_tensor *t;
    kd_storage *s;
    if (persistent) {
        t = calloc(1, sizeof *t);
        s = calloc(1, sizeof *s);
        void *data = kd_dev_alloc(dev, nbytes ? nbytes : 1);
        if (!t || !s || !data) {
            free(t);
            free(s);
            kd_dev_free(dev, data, nbytes ? nbytes : 1);
            kd_fail(KD_ERR_NOMEM, "tensor: cannot allocate %zu bytes on %s", nbytes, kd_device_name(dev));
            return NULL;
        }
        s->data = data;
        heap_bytes += nbytes;
    } else {
        t = kd_arena_alloc(sizeof *t);
        s = kd_arena_alloc(sizeof *s);
        void *data = dev == KD_CPU ? kd_arena_alloc(nbytes) : kd_dev_arena_alloc(dev, nbytes);
        if (!t || !s || !data) return NULL;
        memset(t, 0, sizeof *t);
        memset(s, 0, sizeof *s);
        s->data = data;
    }
    s->nbytes = nbytes;
    s->device = dev;
    s->persistent = persistent;
    t->dtype = dt;
    t->device = dev;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    kd_contiguous_strides(ndim, shape, t->stride);
    t->storage = s;
    t->persistent = persistent;
    return t;
}


/* Fill on a device: out = 0 + v over t's strides, the 0 read from the device's zero bytes with stride 0.
 * i32 tensors (ids, made on the host) can only be zeroed, by a copy of host zeros. */
static void fill_on_device(kd_tensor *t, double v)
{
    int64_t n = kd_numel(t);
    if (n == 0) return;
    if (t->dtype == KD_I32) {
        KD_CHECK(v == 0.0 && kd_is_contiguous(t));
        void *z = calloc((size_t)n, 4);
        KD_CHECK(z != NULL);
        kd_dev_copy(t->device, kd_data(t), KD_CPU, z, (size_t)n * 4);
        free(z);
        return;
    }
    kd_map_args m;
    kd_map_setup(&m, KD_UN_ADD_SCALAR, t);
    m.out = kd_data(t);
    m.a = kd_dev_zero(t->device);
    for (int d = 0; d < t->ndim; d++) m.out_stride[d] = t->stride[d];
    m.alpha = v;
    kd_k_unary(t->device, t->dtype, &m);
}

kd_tensor *kd_empty_on(kd_device dev, kd_dtype dt, int ndim, const int64_t *shape)
{
    return tensor_new_on(dt, ndim, shape, 0, dev);
}
kd_tensor *kd_empty(kd_dtype dt, int ndim, const int64_t *shape) { return kd_empty_on(KD_CPU, dt, ndim, shape); }

kd_tensor *kd_empty_like(const kd_tensor *x) { return tensor_new_on(x->dtype, x->ndim, x->shape, 0, x->device); }

void kd_fill(kd_tensor *t, double v)
{
    kd_mark_modified(t);
    int64_t n = kd_numel(t);
    if (t->device != KD_CPU) {
        fill_on_device(t, v);
        return;
    }
    if (kd_is_contiguous(t)) {
        void *p = kd_data(t);
        if (v == 0.0) {
            memset(p, 0, (size_t)n * kd_dtype_size(t->dtype));
            return;
        }
        for (int64_t i = 0; i < n; i++) kd_store_elem(t->dtype, p, i, v);
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
        kd_store_elem(t->dtype, t->storage->data, off, v);
    }
}

kd_tensor *kd_full_on(kd_device dev, kd_dtype dt, int ndim, const int64_t *shape, double value)
{
    kd_tensor *t = kd_empty_on(dev, dt, ndim, shape);
    if (t) kd_fill(t, value);
    return t;
}
kd_tensor *kd_full(kd_dtype dt, int ndim, const int64_t *shape, double value)
{
    return kd_full_on(KD_CPU, dt, ndim, shape, value);
}

kd_tensor *kd_zeros_on(kd_device dev, kd_dtype dt, int ndim, const int64_t *shape)
{
    return kd_full_on(dev, dt, ndim, shape, 0.0);
}
kd_tensor *kd_zeros(kd_dtype dt, int ndim, const int64_t *shape) { return kd_full(dt, ndim, shape, 0.0); }
kd_tensor *kd_ones(kd_dtype dt, int ndim, const int64_t *shape) { return kd_full(dt, ndim, shape, 1.0); }

kd_tensor *kd_from_buffer_on(kd_device dev, kd_dtype dt, int ndim, const int64_t *shape, const void *data)
{
    kd_tensor *t = kd_empty_on(dev, dt, ndim, shape);
    if (t && t->storage->nbytes && kd_dev_copy(t->device, t->storage->data, KD_CPU, data, t->storage->nbytes) != KD_OK)
        return NULL;
    return t;
}
kd_tensor *kd_from_buffer(kd_dtype dt, int ndim, const int64_t *shape, const void *data)
{
    return kd_from_buffer_on(KD_CPU, dt, ndim, shape, data);
}

static void set_elem(kd_tensor *t, int64_t i, double v) { kd_store_elem(t->dtype, t->storage->data, i, v); }

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
    return kd_param_on(KD_CPU, dt, ndim, shape, name);
}

kd_tensor *kd_param_on(kd_device dev, kd_dtype dt, int ndim, const int64_t *shape, const char *name)
{
    kd_tensor *t = tensor_new_on(dt, ndim, shape, 1, dev);
    if (!t) return NULL;
    kd_fill(t, 0.0);
    t->requires_grad = 1;
    if (name) snprintf(t->name, sizeof t->name, "%s", name);
    return t;
}

kd_tensor *kd_persist(const kd_tensor *x)
{
    if (!x) return NULL;
    kd_tensor *t = tensor_new_on(x->dtype, x->ndim, x->shape, 1, x->device);
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
    kd_derived_free_all(t);
    heap_bytes -= t->storage->nbytes;
    kd_dev_free(t->storage->device, t->storage->data, t->storage->nbytes ? t->storage->nbytes : 1);
    free(t->storage);
    free(t);
}

void kd_tensor_release_storage(kd_tensor *t)
{
    KD_CHECK(t && t->persistent && !t->grad);
    heap_bytes -= t->storage->nbytes;
    kd_dev_free(t->storage->device, t->storage->data, t->storage->nbytes ? t->storage->nbytes : 1);
    t->storage->data = NULL;
    t->storage->nbytes = 0;
}

size_t kd_heap_bytes(void) { return heap_bytes; }
void kd_heap_adjust(int64_t delta) { heap_bytes = (size_t)((int64_t)heap_bytes + delta); }

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
    if (t->device != KD_CPU) {
        /* One element back from the device (waits for it). */
        double v[1];
        size_t es = kd_dtype_size(t->dtype);
        if (kd_dev_copy(KD_CPU, v, t->device, (const char *)t->storage->data + (size_t)off * es, es) != KD_OK)
            return NAN;
        return kd_load_elem(t->dtype, v, 0);
    }
    return kd_load_elem(t->dtype, t->storage->data, off);
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

static kd_status copy_into(kd_tensor *dst, const kd_tensor *src);

kd_status kd_copy_into(kd_tensor *dst, const kd_tensor *src)
{
    kd_status st = copy_into(dst, src);
    if (st == KD_OK) kd_mark_modified(dst);
    return st;
}

static kd_status copy_into(kd_tensor *dst, const kd_tensor *src)
{
    char a[64], b[64];
    if (!kd_same_shape(dst, src))
        return kd_fail(KD_ERR_SHAPE, "copy: destination %s and source %s differ in shape",
                       kd_shape_str(dst, a, sizeof a), kd_shape_str(src, b, sizeof b));
    int64_t n = kd_numel(src);
    if (dst->dtype == src->dtype && kd_is_contiguous(dst) && kd_is_contiguous(src))
        return kd_dev_copy(dst->device, kd_data(dst), src->device, kd_data(src), (size_t)n * kd_dtype_size(src->dtype));
    if (dst->device == src->device && dst->dtype == src->dtype && dst->dtype != KD_I32) {
        /* Strided, one device: the copy map runs where both tensors are. */
        kd_map_args m;
        kd_map_setup(&m, KD_UN_COPY, src);
        m.out = kd_data(dst);
        m.a = kd_data(src);
        for (int d = 0; d < src->ndim; d++) {
            m.out_stride[d] = dst->stride[d];
            m.a_stride[d] = src->stride[d];
        }
        kd_k_unary(dst->device, src->dtype, &m);
        return KD_OK;
    }
    if (dst->device != KD_CPU || src->device != KD_CPU)
        return kd_fail(KD_ERR_ARG, "copy: %s %s on %s into %s %s on %s: across devices or dtypes only contiguous "
                       "tensors of one dtype copy", kd_dtype_name(src->dtype), kd_shape_str(src, b, sizeof b),
                       kd_device_name(src->device), kd_dtype_name(dst->dtype), kd_shape_str(dst, a, sizeof a),
                       kd_device_name(dst->device));
    int64_t idx[KD_MAX_DIMS] = {0};
    for (int64_t i = 0; i < n; i++) {
        int64_t rem = i, off = dst->offset;
        for (int d = src->ndim - 1; d >= 0; d--) {
            idx[d] = rem % src->shape[d];
            rem /= src->shape[d];
            off += idx[d] * dst->stride[d];
        }
        kd_store_elem(dst->dtype, dst->storage->data, off, kd_get(src, idx));
    }
    return KD_OK;
}

double kd_load_elem(kd_dtype dt, const void *base, int64_t i)
{
    switch (dt) {
    case KD_F32: return ((const float *)base)[i];
    case KD_F64: return ((const double *)base)[i];
    case KD_I32: return ((const int32_t *)base)[i];
    case KD_BF16: return kd_bf16_to_f32(((const kd_bf16 *)base)[i]);
    }
    return NAN;
}

void kd_store_elem(kd_dtype dt, void *base, int64_t i, double v)
{
    switch (dt) {
    case KD_F32: ((float *)base)[i] = (float)v; break;
    case KD_F64: ((double *)base)[i] = v; break;
    case KD_I32: ((int32_t *)base)[i] = (int32_t)v; break;
    case KD_BF16: ((kd_bf16 *)base)[i] = kd_f32_to_bf16((float)v); break;
    }
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

kd_tensor *kd_arena_keep(kd_tensor *t, kd_arena_mark mark)
{
    if (!t || t->node || t->persistent || t->requires_grad) return t;
    const kd_tensor *c = t;
    if (!kd_is_contiguous(t)) {   /* gathered first (the gathered copy is parked like the rest) */
        kd_tensor *g = kd_empty_like(t);
        if (!g || kd_copy_into(g, t) != KD_OK) return NULL;
        c = g;
    }
    /* Park the values outside the arena (the device's scratch buffer), rewind, and put them back at the
     * mark. */
    size_t nbytes = (size_t)kd_numel(c) * kd_dtype_size(c->dtype);
    kd_device dev = c->device;
    void *tmp = kd_dev_scratch(dev, nbytes ? nbytes : 1);
    if (!tmp) {
        kd_fail(KD_ERR_NOMEM, "arena: cannot keep a tensor of %zu bytes", nbytes);
        return NULL;
    }
    if (kd_dev_copy(dev, tmp, dev, kd_data(c), nbytes) != KD_OK) return NULL;
    kd_tensor hdr = *c;
    kd_arena_rewind(mark, dev);
    kd_tensor *out = kd_empty_on(dev, hdr.dtype, hdr.ndim, hdr.shape);
    if (out) {
        if (kd_dev_copy(dev, kd_data(out), dev, tmp, nbytes) != KD_OK) out = NULL;
        else memcpy(out->name, hdr.name, sizeof out->name);
    }
    return out;
}
