/* engine/internal.h — helpers shared by the engine's own files (not part of the public API). */
#ifndef KD_ENGINE_INTERNAL_H
#define KD_ENGINE_INTERNAL_H

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/ops.h"
#include "engine/tensor.h"

_Static_assert(KD_MAX_DIMS == KD_KMAX_DIMS, "tensor and kernel dim limits must agree");

void kd_arena_release(void);
/* Rewind the host arena (and the device arena of dev) to a mark; kd_arena_keep uses it. */
void kd_arena_rewind(kd_arena_mark mark, kd_device dev);
void kd_pool_shutdown(void);
void kd_device_shutdown(void);

/* Devices (engine/device.c). Memory of `dev` (heap: kd_dev_alloc/free; n is counted in the stats), copies
 * between the host and a device or within one, kernel launches, the device's kernel table, 16 zero bytes on
 * the device, and a scratch buffer reused across calls (valid until the next kd_dev_scratch). */
#include "engine/device.h"
void *kd_dev_alloc(kd_device dev, size_t n);
void kd_dev_free(kd_device dev, void *p, size_t n);
kd_status kd_dev_copy(kd_device dst_dev, void *dst, kd_device src_dev, const void *src, size_t n);
void kd_dev_launch(kd_device dev, void (*task)(void *ctx, int ith, int nth), void *ctx, double work);
const kd_kernels *kd_dev_table(kd_device dev, kd_dtype dt);
const kd_kernels *kd_kernels_cpu(kd_dtype dt);
const void *kd_dev_zero(kd_device dev);
void *kd_dev_scratch(kd_device dev, size_t n);
/* The device arena (non-CPU devices; one at a time): data of arena tensors made there. */
void *kd_dev_arena_alloc(kd_device dev, size_t nbytes);
/* Range check of n ids on `dev` (device_impl.h's check_ids). */
kd_status kd_dev_check_ids(kd_device dev, const int32_t *ids, int64_t n, int64_t limit, const char *what);

/* Fail (0) unless t is NULL or on dev: an op runs where its inputs are, and they must agree. */
int kd_need_device(const char *op, const char *arg, const kd_tensor *t, kd_device dev);

/* A new contiguous arena tensor of dt with x's shape (or the given shape). */
kd_tensor *kd_empty_like(const kd_tensor *x);

/* Check that t is a float tensor (f32/f64); fail naming op and argument otherwise. */
int kd_need_float(const char *op, const char *arg, const kd_tensor *t);
/* Check t is f32 or f64 (ops that do not take bf16: losses, embeddings, the optimizer). */
int kd_need_wide(const char *op, const char *arg, const kd_tensor *t);
/* Element i of a host buffer of dtype dt, as double; and the store (bf16 rounds to nearest even). */
double kd_load_elem(kd_dtype dt, const void *base, int64_t i);
void kd_store_elem(kd_dtype dt, void *base, int64_t i, double v);
/* The dtype of the parameters and statistics that go with activations of dtype dt: f32 for bf16
 * (kernels.h: LayerNorm's gamma/beta/mean/rstd, attention's mask and lse), else dt itself. */
static inline kd_dtype kd_stat_dtype(kd_dtype dt) { return dt == KD_BF16 ? KD_F32 : dt; }
/* Check a and b have the same dtype. */
int kd_need_same_dtype(const char *op, const kd_tensor *a, const kd_tensor *b);
/* Normalise a possibly negative dim; fail (return -1) when out of range. */
int kd_norm_dim(const char *op, const kd_tensor *t, int dim);

/* out = f(x) for a unary map op (kernels.h: kd_unop) with its alpha; contiguous, where x is; no graph. */
kd_tensor *kd_map_unary(int op, kd_tensor *x, double alpha);
/* The mean of the n values of rows_out (a scalar where they are; the reduce kernel: summed in double). */
kd_tensor *kd_row_mean(kd_tensor *rows_out, int64_t n);

/* Fill a kd_map_args for a walk over t's shape; strides of unused operands stay 0. */
void kd_map_setup(kd_map_args *m, int op, const kd_tensor *shape_of);

/* Forms kept with a heap tensor (engine/derived.c). kd_derived_cast: t converted to dt by `convert` (no
 * graph), made once and kept until t's values change; NULL when t keeps no forms (not a whole heap
 * tensor). kd_derived_packed_b: op(B) of a product with `rows` rows on weight w (dtype dt, on the CPU), packed
 * by the CPU table's gemm_pack_b (kd_prepack decides whether to make it; once made it is used at any row
 * count); NULL: pack as usual. kd_derived_free_all: free t's forms (kd_tensor_free, kd_mark_modified).
 * kd_heap_adjust: heap bytes held outside tensors (counted in kd_heap_bytes). */
kd_tensor *kd_derived_cast(kd_tensor *t, kd_dtype dt, kd_tensor *(*convert)(kd_tensor *, kd_dtype));
const void *kd_derived_packed_b(kd_tensor *w, kd_dtype dt, int64_t rows, int trans_b, int64_t ldb, int64_t k, int64_t n);
void kd_derived_free_all(kd_tensor *t);
void kd_heap_adjust(int64_t delta);

/* Add src (shape `like`, any strides) into dst's gradient view: a strided accumulate used by views. */
void kd_accumulate_strided(kd_device dev, kd_dtype dt, int ndim, const int64_t *shape, void *dst, const int64_t *dst_stride,
                           const void *src, const int64_t *src_stride);

#endif
