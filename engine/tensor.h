/* engine/tensor.h — tensors: dtype, device, shape, strides, storage; creation, views, the per-step arena.
 *
 * Ownership, in one paragraph. Every tensor lives in one of two places:
 *   - the step arena (the default): everything ops create, their graph nodes, saved buffers and
 *     intermediate gradients. kd_arena_reset() frees all of it at once; a training loop calls it after each
 *     optimizer step, so memory is the same every step. Pointers to arena tensors die at the reset.
 *   - the heap, for what lives across steps: parameters, their gradients, optimizer state. These are made
 *     by kd_param() / kd_persist() and freed by kd_tensor_free().
 * No reference counts: lifetimes follow the training loop, not the graph.
 */
#ifndef KD_TENSOR_H
#define KD_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "engine/status.h"

#define KD_MAX_DIMS 8   /* equal to KD_KMAX_DIMS in kernels/kernels.h */

/* bf16: storage for activations in mixed precision (kernels/bf16.h); computed in f32 by the kernels. */
typedef enum kd_dtype { KD_F32 = 0, KD_F64 = 1, KD_I32 = 2, KD_BF16 = 3 } kd_dtype;
typedef enum kd_device { KD_CPU = 0, KD_CUDA = 1, KD_SIM = 2 } kd_device;   /* see engine/device.h */

typedef struct kd_storage {
    void *data;
    size_t nbytes;
    kd_device device;
    int persistent;         /* heap (freed with its tensor) or arena */
    uint64_t version;       /* counts the writes to the values (kd_mark_modified): a form made from them is
                               valid while the count it was made at holds */
} kd_storage;

struct kd_node;
struct kd_derived;

typedef struct kd_tensor {
    kd_dtype dtype;
    kd_device device;
    int ndim;
    int64_t shape[KD_MAX_DIMS];
    int64_t stride[KD_MAX_DIMS];  /* in elements */
    int64_t offset;               /* in elements, into storage */
    kd_storage *storage;
    int requires_grad;
    int persistent;
    struct kd_tensor *grad;       /* contiguous, same shape; NULL until a backward reaches it */
    struct kd_node *node;         /* the op that made it; NULL for leaves */
    uint64_t visit;               /* scratch for graph walks */
    char name[96];                /* parameters carry their checkpoint name */
    struct kd_derived *derived;   /* heap tensors: forms made from the values (a bf16 copy, prepacked GEMM
                                     panels; engine/derived.c), freed with the tensor */
} kd_tensor;

size_t kd_dtype_size(kd_dtype dt);
const char *kd_dtype_name(kd_dtype dt);

/* Creation (in the arena). shape has ndim entries, each >= 0; ndim 0 is a scalar. The _on forms make the
 * tensor on a device (open); the others on the CPU. */
kd_tensor *kd_empty_on(kd_device dev, kd_dtype dt, int ndim, const int64_t *shape);
kd_tensor *kd_zeros_on(kd_device dev, kd_dtype dt, int ndim, const int64_t *shape);
kd_tensor *kd_full_on(kd_device dev, kd_dtype dt, int ndim, const int64_t *shape, double value);
kd_tensor *kd_from_buffer_on(kd_device dev, kd_dtype dt, int ndim, const int64_t *shape, const void *data);
kd_tensor *kd_empty(kd_dtype dt, int ndim, const int64_t *shape);
kd_tensor *kd_zeros(kd_dtype dt, int ndim, const int64_t *shape);
kd_tensor *kd_ones(kd_dtype dt, int ndim, const int64_t *shape);
kd_tensor *kd_full(kd_dtype dt, int ndim, const int64_t *shape, double value);
/* A copy of `data` (numel elements of dt, row-major). */
kd_tensor *kd_from_buffer(kd_dtype dt, int ndim, const int64_t *shape, const void *data);
/* Random tensors (on the CPU; kd_to moves them): element i is a pure function of (seed, i), so the result does not depend on threads.
 * uniform in [lo, hi); normal(mean, std); truncated normal: normal(0, std) redrawn outside [lo, hi]. */
kd_tensor *kd_rand_uniform(kd_dtype dt, int ndim, const int64_t *shape, double lo, double hi, uint64_t seed);
kd_tensor *kd_randn(kd_dtype dt, int ndim, const int64_t *shape, double mean, double std, uint64_t seed);
kd_tensor *kd_trunc_normal(kd_dtype dt, int ndim, const int64_t *shape, double std, double lo, double hi,
                           uint64_t seed);

/* Heap tensors (live across arena resets). kd_param: zeros, requires_grad set, named.
 * kd_persist: a contiguous heap copy of t (a leaf; no graph). kd_tensor_free: heap tensors only (and
 * their grad); NULL-safe. */
kd_tensor *kd_param(kd_dtype dt, int ndim, const int64_t *shape, const char *name);
kd_tensor *kd_param_on(kd_device dev, kd_dtype dt, int ndim, const int64_t *shape, const char *name);
kd_tensor *kd_persist(const kd_tensor *t);
void kd_tensor_free(kd_tensor *t);
/* Give back a heap tensor's element memory, keeping its header (name, dtype, shape): for a parameter whose
 * values now live elsewhere (an int8 model's weights). kd_data(t) is NULL afterwards; the owner must not hand
 * it to an op. kd_tensor_free still frees it. */
void kd_tensor_release_storage(kd_tensor *t);

/* Values changed. The engine's own writes (kd_copy_into, kd_fill, the optimizer, checkpoint loads, device
 * moves) say so themselves; code that writes a tensor's elements through kd_data() calls this afterwards
 * (on the tensor or a view of it), so that what a no-grad forward made from the old values (a heap
 * tensor's bf16 copy, its prepacked GEMM panels) is made again rather than used. */
void kd_mark_modified(kd_tensor *t);

/* Overwrite dst's elements with src's (same shape; dtypes may differ between f32/f64). No graph. */
kd_status kd_copy_into(kd_tensor *dst, const kd_tensor *src);
/* Fill every element of t with v. No graph. */
void kd_fill(kd_tensor *t, double v);

/* Queries. */
int64_t kd_numel(const kd_tensor *t);
int kd_is_contiguous(const kd_tensor *t);
void *kd_data(const kd_tensor *t);                 /* address of the first element */
double kd_get(const kd_tensor *t, const int64_t *idx);  /* one element as double */
double kd_item(const kd_tensor *t);                /* the value of a one-element tensor (NAN otherwise) */
int kd_same_shape(const kd_tensor *a, const kd_tensor *b);
/* "[2, 3, 4]" into buf (for messages); returns buf. */
const char *kd_shape_str(const kd_tensor *t, char *buf, size_t n);
void kd_contiguous_strides(int ndim, const int64_t *shape, int64_t *stride);

/* The step arena. Allocation failure sets KD_ERR_NOMEM (naming the bytes asked and held) and returns NULL. */
void *kd_arena_alloc(size_t nbytes);
void kd_arena_reset(void);
size_t kd_arena_used(void);
size_t kd_arena_peak(void);       /* highest `used` since start */
size_t kd_arena_capacity(void);   /* bytes held from the system now */
/* The same for the device arena (the data of arena tensors on a device other than the CPU). */
size_t kd_device_arena_peak(void);
/* Inference frees as it goes: take a mark, compute, then kd_arena_keep(t, mark) rewinds the arena to the
 * mark and returns a copy of t there, so everything made in between is reused by what follows. Only for
 * tensors outside any graph (no-grad mode; t->node == NULL): otherwise t is returned as it is and nothing is
 * rewound. Nothing made after the mark but t may be used afterwards. */
typedef struct kd_arena_mark { void *chunk; size_t chunk_used, used; void *dchunk; size_t dchunk_used, dused; } kd_arena_mark;
kd_arena_mark kd_arena_mark_now(void);
kd_tensor *kd_arena_keep(kd_tensor *t, kd_arena_mark mark);
/* Bytes of heap tensors alive now. */
size_t kd_heap_bytes(void);

/* A tensor header viewing `base`'s storage with new shape/strides/offset (arena). Used by view ops. */
kd_tensor *kd_view_of(const kd_tensor *base, int ndim, const int64_t *shape, const int64_t *stride,
                      int64_t offset);

#endif
