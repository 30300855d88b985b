/* kernels/cuda/cuda_runtime.h — the raw device layer the engine calls: device query, memory, a per-step
 * arena, copies, the one stream, and the CUDA kernel table. C-callable; no CUDA types appear here.
 *
 * Every CUDA call and launch behind these functions is checked; a failure is recorded with kd_cuda_fail()
 * (cuda_status.h) as "file:line: what failed: CUDA's message" and returned as KD_CUDA_ERR_DEVICE
 * (KD_CUDA_ERR_NOMEM for allocation).
 * Kernels of the table return nothing, so a failed launch also sets a sticky status that
 * kd_cuda_status() reports until kd_cuda_clear_status(). */
#ifndef KD_CUDA_RUNTIME_H
#define KD_CUDA_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/cuda/cuda_status.h"
#include "kernels/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when a usable CUDA device is present, 0 otherwise (no driver, no device, driver too old). Never aborts
 * and leaves no error behind. */
int kd_cuda_available(void);

typedef struct kd_cuda_device_info {
    char name[256];
    int major, minor;          /* compute capability */
    int sm_count;
    size_t global_mem;         /* bytes */
    size_t smem_per_block_optin;
    double mem_clock_khz;
    int bus_width_bits;
} kd_cuda_device_info;

/* Select `device`, create the stream the kernels run on. Idempotent for the same device. */
kd_cuda_result kd_cuda_init(int device);
kd_cuda_result kd_cuda_device_query(kd_cuda_device_info *info);
/* Destroy the stream (end of program). */
void kd_cuda_shutdown(void);
/* The stream every kd kernel launches on, as an opaque cudaStream_t. */
void *kd_cuda_stream(void);

/* Plain cudaMalloc / cudaFree (no managed memory). *p is NULL on failure. */
kd_cuda_result kd_cuda_malloc(void **p, size_t bytes);
void kd_cuda_free(void *p);

/* Copies on the kd stream; h2d and d2h return when the copy is complete (host memory may be reused). */
kd_cuda_result kd_cuda_h2d(void *dst_device, const void *src_host, size_t bytes);
kd_cuda_result kd_cuda_d2h(void *dst_host, const void *src_device, size_t bytes);
kd_cuda_result kd_cuda_d2d(void *dst_device, const void *src_device, size_t bytes);
/* Host to device without waiting: src is copied into pinned staging memory first (so it may be reused at
 * once) and the upload is queued on the kd stream. Copies above 8 MiB go through kd_cuda_h2d. */
kd_cuda_result kd_cuda_h2d_async(void *dst_device, const void *src_host, size_t bytes);
kd_cuda_result kd_cuda_memset(void *p_device, int byte, size_t bytes);
/* Fill n floats with `value` on the device (poisoning outputs with NaN, zeroing accumulators). */
kd_cuda_result kd_cuda_fill_f32(float *p_device, float value, int64_t n);
/* Wait for the stream; reports any error raised by a kernel since the last check. Input a kernel rejected
 * on the device (an id outside its table, a cross-entropy target outside [0, cols)) is reported here as
 * KD_CUDA_ERR_ARG naming the first bad entry, e.g. "embedding: id 31000 at position 17 is outside the table's
 * 30522 rows"; the record is cleared once reported. */
kd_cuda_result kd_cuda_sync(void);

/* Check on the device that ids[0..n) lie in [0, limit); the first one that does not is reported by the
 * next kd_cuda_sync() under the name `what` ("embedding"). Queued on the kd stream, nothing is copied to
 * the host. The table's embedding kernels are not told the table's row count (kd_embedding_args has none),
 * so the engine calls this before them for ids it did not check on the host. */
kd_cuda_result kd_cuda_check_ids(const int32_t *ids_device, int64_t n, int64_t limit, const char *what);

/* The per-step device arena: one cudaMalloc'd block, bump allocation (256-byte aligned), reset after the
 * optimizer step. Running out fails with KD_CUDA_ERR_NOMEM naming the request and the capacity. */
typedef struct kd_cuda_arena {
    char *base;            /* device pointer */
    size_t cap, used, peak;
} kd_cuda_arena;

kd_cuda_result kd_cuda_arena_init(kd_cuda_arena *a, size_t bytes);
/* *p = 256-byte aligned block of `bytes` from the arena, or NULL with an error. */
kd_cuda_result kd_cuda_arena_alloc(kd_cuda_arena *a, size_t bytes, void **p);
void kd_cuda_arena_reset(kd_cuda_arena *a);
void kd_cuda_arena_free(kd_cuda_arena *a);

/* The first error raised by a table kernel since the last clear (KD_CUDA_OK if none). */
kd_cuda_result kd_cuda_status(void);
void kd_cuda_clear_status(void);

/* How the table's GEMM entry (kd_kernels_cuda_f32()->gemm) multiplies; C, bias and accumulation stay f32:
 *   F32   exact f32 products on the CUDA cores (the default)
 *   TF32  inputs rounded to tf32 (10-bit mantissa) inside the tensor-core kernel
 *   BF16  op(A) and op(B) converted to bf16 into a runtime-owned workspace, then the bf16 tensor-core GEMM
 * Applies to calls queued after it; the engine chooses. */
typedef enum { KD_CUDA_PREC_F32, KD_CUDA_PREC_TF32, KD_CUDA_PREC_BF16 } kd_cuda_precision;
kd_cuda_result kd_cuda_set_precision(kd_cuda_precision p);   /* KD_CUDA_ERR_ARG for a value outside the enum */
kd_cuda_precision kd_cuda_get_precision(void);
const char *kd_cuda_precision_name(kd_cuda_precision p); /* "f32", "tf32", "bf16", or "?" */

/* The f32 CUDA kernel table: same argument structs as kernels/kernels.h, DEVICE pointers, launched
 * asynchronously on the kd stream (ith/nth ignored: call with 0, 1). NULL when no device is present. */
const kd_kernels *kd_kernels_cuda_f32(void);
/* The bf16-storage CUDA table (kernels/kernels.h's bf16 conventions, matching kd_kernels_ref_bf16()): same
 * calling rules as the f32 table. No embedding, cross-entropy, KL, AdamW or convert entries (NULL); the
 * GEMM is the bf16 tensor-core GEMM whatever kd_cuda_set_precision says. NULL when no device is present. */
const kd_kernels *kd_kernels_cuda_bf16(void);

#ifdef __cplusplus
}
#endif

#endif
