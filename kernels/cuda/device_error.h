/* kernels/cuda/device_error.h — the device error word (internal to .cu files): a kernel that finds bad
 * input it was given (an index outside its table) skips that input and records it here instead of
 * reading out of bounds; kd_cuda_sync() reads the word after the stream has drained, turns it into
 * KD_CUDA_ERR_ARG with a message, and clears it. No host round trip is needed inside a step.
 *
 * The first reporter wins the flag with atomicCAS and fills in the details; every reporter counts. The
 * word is read only after the kernels that wrote it have finished, so the plain stores are visible. */
#ifndef KD_CUDA_DEVICE_ERROR_H
#define KD_CUDA_DEVICE_ERROR_H

#include "kernels/cuda/cuda_check.h"

/* What was checked: a cross-entropy target, or ids given to kd_cuda_check_ids (KD_CU_ERR_IDS + the slot
 * of the caller's name, see device_error.cu). */
enum { KD_CU_ERR_NONE = 0, KD_CU_ERR_TARGET = 1, KD_CU_ERR_IDS = 16 };

typedef struct kd_cu_dev_error {
    unsigned int flag;              /* 0: clear; 1: details below are set */
    int kind;
    long long pos, value, limit;    /* position of the bad entry, its value, the exclusive upper bound */
    unsigned long long count;       /* bad entries seen, the first included */
} kd_cu_dev_error;

/* The word in device memory (allocated by kd_cuda_init; NULL before, and kernels then only skip). */
kd_cu_dev_error *kd_cu_error_word(void);
kd_cuda_result kd_cu_error_init(void);
void kd_cu_error_free(void);
/* kd_cuda_sync(): fetch queues the copy of the word behind the stream's work; after the stream has been
 * synchronized, take returns KD_CUDA_OK when the word was clear, else KD_CUDA_ERR_ARG with the message, and clears
 * the word. */
kd_cuda_result kd_cu_error_fetch(void);
kd_cuda_result kd_cu_error_take(void);

#ifdef __CUDACC__
/* value is outside [0, limit) at position pos. */
__device__ __forceinline__ void kd_cu_report_index(kd_cu_dev_error *e, int kind, long long pos, long long value,
                                                   long long limit)
{
    if (!e) return;
    atomicAdd(&e->count, 1ull);
    if (atomicCAS(&e->flag, 0u, 1u) == 0u) {
        e->kind = kind;
        e->pos = pos;
        e->value = value;
        e->limit = limit;
    }
}
#endif

#endif
