/* kernels/cuda/device_error.cu — the device error word of kernels/cuda/device_error.h (allocation, the
 * read-back kd_cuda_sync() does, the message) and kd_cuda_check_ids, the device-side range check of ids. */
#include <stdio.h>
#include <string.h>

#include "kernels/cuda/device_error.h"

static kd_cu_dev_error *g_word;      /* device */
static kd_cu_dev_error *g_mirror;    /* pinned host copy, filled on the stream by kd_cu_error_fetch */
static kd_cu_dev_error g_mirror_pageable;
static int g_mirror_pinned;

/* Names given to kd_cuda_check_ids, so the kernel records a small slot number, not a string. The last
 * slot is a generic name once the others are taken. */
enum { NAME_SLOTS = 16, NAME_LEN = 64 };
static char g_names[NAME_SLOTS][NAME_LEN];
static int g_nnames;

static int name_slot(const char *what)
{
    if (!what || !*what) what = "ids";
    for (int i = 0; i < g_nnames; i++)
        if (strncmp(g_names[i], what, NAME_LEN - 1) == 0) return i;
    if (g_nnames < NAME_SLOTS - 1) {
        snprintf(g_names[g_nnames], NAME_LEN, "%s", what);
        return g_nnames++;
    }
    snprintf(g_names[NAME_SLOTS - 1], NAME_LEN, "%s", "ids");
    return NAME_SLOTS - 1;
}

kd_cu_dev_error *kd_cu_error_word(void) { return g_word; }

kd_cuda_result kd_cu_error_init(void)
{
    if (g_word) return KD_CUDA_OK;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, sizeof(kd_cu_dev_error));
    if (e != cudaSuccess) return kd_cuda_record(e, KD_CUDA_ERR_NOMEM, __FILE__, __LINE__, "cudaMalloc (device error word)");
    g_word = (kd_cu_dev_error *)p;
    /* On the kd stream: a plain cudaMemset goes to the legacy default stream, which the non-blocking kd
     * stream does not wait for, so a kernel queued next could see cudaMalloc's garbage as a report. */
    KD_CU(cudaMemsetAsync(g_word, 0, sizeof(kd_cu_dev_error), kd_cu_stream()));
    void *h = NULL;
    if (cudaMallocHost(&h, sizeof(kd_cu_dev_error)) == cudaSuccess) {
        g_mirror = (kd_cu_dev_error *)h;
        g_mirror_pinned = 1;
    } else {
        (void)cudaGetLastError(); /* pageable memory works too, the copy is just not asynchronous */
        g_mirror = &g_mirror_pageable;
        g_mirror_pinned = 0;
    }
    memset(g_mirror, 0, sizeof *g_mirror);
    return KD_CUDA_OK;
}

void kd_cu_error_free(void)
{
    if (g_word) (void)cudaFree(g_word);
    if (g_mirror && g_mirror_pinned) (void)cudaFreeHost(g_mirror);
    g_word = NULL;
    g_mirror = NULL;
    g_mirror_pinned = 0;
}

/* Queue the copy of the word behind everything already on the stream; the caller synchronizes. */
kd_cuda_result kd_cu_error_fetch(void)
{
    if (!g_word) return KD_CUDA_OK;
    KD_CU(cudaMemcpyAsync(g_mirror, g_word, sizeof *g_word, cudaMemcpyDeviceToHost, kd_cu_stream()));
    return KD_CUDA_OK;
}

kd_cuda_result kd_cu_error_take(void)
{
    if (!g_word || !g_mirror->flag) return KD_CUDA_OK;
    kd_cu_dev_error h = *g_mirror;
    memset(g_mirror, 0, sizeof *g_mirror);
    /* Cleared on the stream, so kernels queued from now on start from a clean word. */
    KD_CU(cudaMemsetAsync(g_word, 0, sizeof *g_word, kd_cu_stream()));
    char more[64] = "";
    if (h.count > 1) snprintf(more, sizeof more, " (%llu bad entries in all)", h.count);
    if (h.kind == KD_CU_ERR_TARGET)
        return kd_cuda_fail(KD_CUDA_ERR_ARG, "cross-entropy: target %lld at row %lld is outside the %lld classes of the logits%s",
                       h.value, h.pos, h.limit, more);
    if (h.kind >= KD_CU_ERR_IDS && h.kind < KD_CU_ERR_IDS + NAME_SLOTS)
        return kd_cuda_fail(KD_CUDA_ERR_ARG, "%s: id %lld at position %lld is outside the table's %lld rows%s",
                       g_names[h.kind - KD_CU_ERR_IDS], h.value, h.pos, h.limit, more);
    return kd_cuda_fail(KD_CUDA_ERR_ARG, "a device kernel rejected its input (check %d): value %lld at position %lld is outside "
                   "[0, %lld)%s", h.kind, h.value, h.pos, h.limit, more);
}

static __global__ void check_ids_kernel(const int32_t *__restrict__ ids, int64_t n, int64_t limit, int kind,
                                        kd_cu_dev_error *e)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t v = ids[i];
        if (v < 0 || v >= limit) kd_cu_report_index(e, kind, (long long)i, (long long)v, (long long)limit);
    }
}

extern "C" kd_cuda_result kd_cuda_check_ids(const int32_t *ids_device, int64_t n, int64_t limit, const char *what)
{
    if (n <= 0) return KD_CUDA_OK;
    if (!ids_device || limit < 0)
        return kd_cuda_fail(KD_CUDA_ERR_ARG, "%s:%d: kd_cuda_check_ids(%s): ids %p, limit %lld: expected device ids and a "
                       "limit >= 0", __FILE__, __LINE__, what ? what : "ids", (const void *)ids_device, (long long)limit);
    if (!g_word)
        return kd_cuda_fail(KD_CUDA_ERR_STATE, "%s:%d: kd_cuda_check_ids(%s): call kd_cuda_init first", __FILE__, __LINE__,
                       what ? what : "ids");
    int kind = KD_CU_ERR_IDS + name_slot(what);
    unsigned blocks = kd_cu_blocks(n, 256);
    if (blocks > 4096u) blocks = 4096u;
    check_ids_kernel<<<blocks, 256, 0, kd_cu_stream()>>>(ids_device, n, limit, kind, g_word);
    KD_CU_LAUNCH();
    return KD_CUDA_OK;
}
