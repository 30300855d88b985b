/* kernels/cuda/cuda_check.h — the checks every CUDA call and launch goes through (internal to .cu files).
 *
 * KD_CU(call) evaluates a cudaError_t-returning call; on failure it records
 * "file:line: call: CUDA's message" with kd_cuda_fail, sets the sticky status and returns
 * KD_CUDA_ERR_DEVICE from the enclosing function. KD_CU_LAUNCH() does the same for the launch just made
 * (cudaGetLastError), for use in functions returning kd_cuda_result; KD_CU_LAUNCH_VOID() for the void
 * table entries. */
#ifndef KD_CUDA_CHECK_H
#define KD_CUDA_CHECK_H

#include <cuda_runtime.h>

#include "kernels/cuda/cuda_runtime.h"

/* Record a CUDA failure: message via kd_cuda_fail, sticky status for the void kernel entries. */
kd_cuda_result kd_cuda_record(cudaError_t err, kd_cuda_result st, const char *file, int line, const char *what);

#define KD_CU(call)                                                                                \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) return kd_cuda_record(e_, KD_CUDA_ERR_DEVICE, __FILE__, __LINE__, #call);  \
    } while (0)

#define KD_CU_LAUNCH()                                                                             \
    do {                                                                                           \
        cudaError_t e_ = cudaGetLastError();                                                       \
        if (e_ != cudaSuccess) return kd_cuda_record(e_, KD_CUDA_ERR_DEVICE, __FILE__, __LINE__, "launch"); \
    } while (0)

#define KD_CU_LAUNCH_VOID()                                                                        \
    do {                                                                                           \
        cudaError_t e_ = cudaGetLastError();                                                       \
        if (e_ != cudaSuccess) {                                                                   \
            kd_cuda_record(e_, KD_CUDA_ERR_DEVICE, __FILE__, __LINE__, "launch");                      \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* Make `st` (when not KD_CUDA_OK) the sticky status too: for errors found before any CUDA call. */
kd_cuda_result kd_cuda_note(kd_cuda_result st);

/* The runtime's scratch block (the table GEMMs' bf16 operand copies, the bf16 reductions' f32 sums, the
 * bf16 attention backward's sums; one user at a time, in stream order): *p = at least `bytes`, 256-byte
 * aligned. A smaller block is replaced: the stream is synchronised, the old block freed, a new one
 * cudaMalloc'ed. KD_CUDA_ERR_NOMEM (*p = NULL, nothing recorded) when the device has no room: the caller
 * says what it does instead. Any other failure is recorded (kd_cuda_record: message and sticky status)
 * and returned as KD_CUDA_ERR_DEVICE. Freed by kd_cuda_shutdown. */
kd_cuda_result kd_cu_workspace(size_t bytes, void **p);
void kd_cu_workspace_free(void);

/* The kd stream as a cudaStream_t. */
static inline cudaStream_t kd_cu_stream(void) { return (cudaStream_t)kd_cuda_stream(); }

/* ceil(a / b) for launch geometry. */
static inline unsigned kd_cu_blocks(long long n, long long per)
{
    long long b = (n + per - 1) / per;
    return (unsigned)(b < 1 ? 1 : b);
}

/* Grid for a grid-stride loop over n items: enough blocks to fill the device, no more than needed. */
static inline unsigned kd_cu_grid(long long n, int threads)
{
    unsigned b = kd_cu_blocks(n, threads);
    return b > 4096u * 8u ? 4096u * 8u : b;
}

#endif
