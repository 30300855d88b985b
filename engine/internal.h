/* engine/internal.h — helpers shared by the engine's own files (not part of the public API). */
#ifndef KD_ENGINE_INTERNAL_H
#define KD_ENGINE_INTERNAL_H

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/ops.h"
#include "engine/tensor.h"

_Static_assert(KD_MAX_DIMS == KD_KMAX_DIMS, "tensor and kernel dim limits must agree");

void kd_arena_release(void);
void kd_pool_shutdown(void);

/* A new contiguous arena tensor of dt with x's shape (or the given shape). */
kd_tensor *kd_empty_like(const kd_tensor *x);

/* Check that t is a float tensor (f32/f64); fail naming op and argument otherwise. */
int kd_need_float(const char *op, const char *arg, const kd_tensor *t);
/* Check a and b have the same dtype. */
int kd_need_same_dtype(const char *op, const kd_tensor *a, const kd_tensor *b);
/* Normalise a possibly negative dim; fail (return -1) when out of range. */
int kd_norm_dim(const char *op, const kd_tensor *t, int dim);

/* Fill a kd_map_args for a walk over t's shape; strides of unused operands stay 0. */
void kd_map_setup(kd_map_args *m, int op, const kd_tensor *shape_of);

/* Add src (shape `like`, any strides) into dst's gradient view: a strided accumulate used by views. */
void kd_accumulate_strided(kd_dtype dt, int ndim, const int64_t *shape, void *dst, const int64_t *dst_stride,
                           const void *src, const int64_t *src_stride);

#endif
