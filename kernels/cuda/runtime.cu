/* kernels/cuda/runtime.cu — device query, memory, the per-step arena, copies, the kd stream, the GEMM
 * workspace and the sticky error status behind kernels/cuda/cuda_runtime.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_error.h"

static cudaStream_t g_stream;
static void stage_free(void);
static int g_stage_unavailable; /* the pinned staging ring could not be made (see stage_init) */
static int g_device = -1;
static kd_cuda_result g_sticky = KD_CUDA_OK;
static kd_cuda_error_sink g_sink;
static thread_local char g_msg[1024];

kd_cuda_result kd_cuda_fail(kd_cuda_result r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    if (g_sink) g_sink(r, g_msg);
    return r;
}

const char *kd_cuda_last_error(void) { return g_msg; }

void kd_cuda_clear_error(void)
{
    g_msg[0] = '\0';
    if (g_sink) g_sink(KD_CUDA_OK, g_msg);
}

void kd_cuda_set_error_sink(kd_cuda_error_sink sink) { g_sink = sink; }

kd_cuda_result kd_cuda_record(cudaError_t err, kd_cuda_result st, const char *file, int line, const char *what)
{
    /* A launch failure is "sticky" in CUDA too; clear the non-sticky ones so the next call is not blamed. */
    (void)cudaGetLastError();
    kd_cuda_fail(st, "%s:%d: %s failed: %s (%s)", file, line, what, cudaGetErrorString(err), cudaGetErrorName(err));
    if (g_sticky == KD_CUDA_OK) g_sticky = st;
    return st;
}

kd_cuda_result kd_cuda_note(kd_cuda_result st)
{
    if (st != KD_CUDA_OK && g_sticky == KD_CUDA_OK) g_sticky = st;
    return st;
}

kd_cuda_result kd_cuda_status(void) { return g_sticky; }
void kd_cuda_clear_status(void) { g_sticky = KD_CUDA_OK; }

int kd_cuda_available(void)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* no driver or no device: not an error for the caller */
        return 0;
    }
    return n > 0;
}

kd_cuda_result kd_cuda_init(int device)
{
    if (g_device == device && g_stream) return kd_cu_error_init();
    if (!kd_cuda_available())
        return kd_cuda_fail(KD_CUDA_ERR_DEVICE, "%s:%d: no CUDA device present (wanted device %d)", __FILE__, __LINE__,
                       device);
    if (g_stream) {
        KD_CU(cudaStreamSynchronize(g_stream));
        KD_CU(cudaStreamDestroy(g_stream));
        g_stream = NULL;
        kd_cu_error_free();
        kd_cu_workspace_free();
        stage_free(); /* its events belong to the old device: recording them on the new stream would fail */
    }
    KD_CU(cudaSetDevice(device));
    KD_CU(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
    g_device = device;
    return kd_cu_error_init();
}

kd_cuda_result kd_cuda_device_query(kd_cuda_device_info *info)
{
    memset(info, 0, sizeof *info);
    int dev = 0;
    KD_CU(cudaGetDevice(&dev));
    cudaDeviceProp p;
    KD_CU(cudaGetDeviceProperties(&p, dev));
    snprintf(info->name, sizeof info->name, "%s", p.name);
    info->major = p.major;
    info->minor = p.minor;
    info->sm_count = p.multiProcessorCount;
    info->global_mem = p.totalGlobalMem;
    info->smem_per_block_optin = p.sharedMemPerBlockOptin;
    int clk = 0, bus = 0;
    KD_CU(cudaDeviceGetAttribute(&clk, cudaDevAttrMemoryClockRate, dev));
    KD_CU(cudaDeviceGetAttribute(&bus, cudaDevAttrGlobalMemoryBusWidth, dev));
    info->mem_clock_khz = clk;
    info->bus_width_bits = bus;
    return KD_CUDA_OK;
}

void kd_cuda_shutdown(void)
{
    if (g_stream) {
        (void)cudaStreamSynchronize(g_stream);
        (void)cudaStreamDestroy(g_stream);
    }
    kd_cu_error_free();
    kd_cu_workspace_free();
    stage_free();
    g_stage_unavailable = 0;
    g_stream = NULL;
    g_device = -1;
}

void *kd_cuda_stream(void) { return (void *)g_stream; }

kd_cuda_result kd_cuda_malloc(void **p, size_t bytes)
{
    *p = NULL;
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        *p = NULL;
        return kd_cuda_record(e, KD_CUDA_ERR_NOMEM, __FILE__, __LINE__, "cudaMalloc");
    }
    return KD_CUDA_OK;
}

void kd_cuda_free(void *p)
{
    if (p) (void)cudaFree(p);
}

kd_cuda_result kd_cuda_h2d(void *dst, const void *src, size_t bytes)
{
    if (!bytes) return KD_CUDA_OK;
    KD_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g_stream));
    KD_CU(cudaStreamSynchronize(g_stream));
    return KD_CUDA_OK;
}

/* Staged uploads: a ring of pinned host memory in NSEG segments. A copy is memcpy'd into the ring and queued
 * with cudaMemcpyAsync, so the host goes on at once (a batch's ids and mask are uploaded in the middle of a
 * step without waiting for the kernels before them). Leaving a segment records an event; coming back to it
 * a lap later waits for that event, by then long passed. */
#define KD_STAGE_NSEG 8
#define KD_STAGE_SEG ((size_t)8 << 20)
static char *g_stage;
static cudaEvent_t g_stage_ev[KD_STAGE_NSEG];
static int g_stage_used[KD_STAGE_NSEG];
static int g_stage_seg;
static size_t g_stage_off;

/* The ring is an optimisation: when it cannot be made, uploads go through kd_cuda_h2d. So a failure here is
 * not recorded (it would stay in the sticky status and fail every later kd_cuda_sync), leaves no half-made
 * ring behind, and is not retried on every upload (until kd_cuda_shutdown). */
static kd_cuda_result stage_init(void)
{
    if (g_stage) return KD_CUDA_OK;
    if (g_stage_unavailable) return KD_CUDA_ERR_NOMEM;
    void *h = NULL;
    if (cudaMallocHost(&h, KD_STAGE_NSEG * KD_STAGE_SEG) != cudaSuccess) {
        (void)cudaGetLastError();
        g_stage_unavailable = 1;
        return KD_CUDA_ERR_NOMEM;
    }
    for (int i = 0; i < KD_STAGE_NSEG; i++) {
        if (cudaEventCreateWithFlags(&g_stage_ev[i], cudaEventDisableTiming) != cudaSuccess) {
            (void)cudaGetLastError();
            while (--i >= 0) (void)cudaEventDestroy(g_stage_ev[i]);
            (void)cudaFreeHost(h);
            g_stage_unavailable = 1;
            return KD_CUDA_ERR_DEVICE;
        }
        g_stage_used[i] = 0;
    }
    g_stage = (char *)h;
    g_stage_seg = 0;
    g_stage_off = 0;
    return KD_CUDA_OK;
}

static void stage_free(void)
{
    if (!g_stage) return;
    for (int i = 0; i < KD_STAGE_NSEG; i++) (void)cudaEventDestroy(g_stage_ev[i]);
    (void)cudaFreeHost(g_stage);
    g_stage = NULL;
}

kd_cuda_result kd_cuda_h2d_async(void *dst, const void *src, size_t bytes)
{
    if (!bytes) return KD_CUDA_OK;
    if (bytes > KD_STAGE_SEG || stage_init() != KD_CUDA_OK) return kd_cuda_h2d(dst, src, bytes);
    if (g_stage_off + bytes > KD_STAGE_SEG) {
        KD_CU(cudaEventRecord(g_stage_ev[g_stage_seg], g_stream));
        g_stage_used[g_stage_seg] = 1;
        g_stage_seg = (g_stage_seg + 1) % KD_STAGE_NSEG;
        g_stage_off = 0;
        if (g_stage_used[g_stage_seg]) KD_CU(cudaEventSynchronize(g_stage_ev[g_stage_seg]));
    }
    char *p = g_stage + (size_t)g_stage_seg * KD_STAGE_SEG + g_stage_off;
    memcpy(p, src, bytes);
    KD_CU(cudaMemcpyAsync(dst, p, bytes, cudaMemcpyHostToDevice, g_stream));
    g_stage_off += (bytes + 255) & ~(size_t)255;
    return KD_CUDA_OK;
}

kd_cuda_result kd_cuda_d2h(void *dst, const void *src, size_t bytes)
{
    if (!bytes) return KD_CUDA_OK;
    KD_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g_stream));
    KD_CU(cudaStreamSynchronize(g_stream));
    return KD_CUDA_OK;
}

kd_cuda_result kd_cuda_d2d(void *dst, const void *src, size_t bytes)
{
    if (!bytes) return KD_CUDA_OK;
    KD_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g_stream));
    return KD_CUDA_OK;
}

kd_cuda_result kd_cuda_memset(void *p, int byte, size_t bytes)
{
    if (!bytes) return KD_CUDA_OK;
    KD_CU(cudaMemsetAsync(p, byte, bytes, g_stream));
    return KD_CUDA_OK;
}

static __global__ void fill_f32(float *p, float v, long long n)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        p[i] = v;
}

kd_cuda_result kd_cuda_fill_f32(float *p, float value, int64_t n)
{
    if (n <= 0) return KD_CUDA_OK;
    unsigned blocks = kd_cu_blocks(n, 256);
    if (blocks > 65535u * 8u) blocks = 65535u * 8u;
    fill_f32<<<blocks, 256, 0, g_stream>>>(p, value, (long long)n);
    KD_CU_LAUNCH();
    return KD_CUDA_OK;
}

/* The device error word is copied behind the stream's work, so one synchronization covers both. */
kd_cuda_result kd_cuda_sync(void)
{
    kd_cuda_result st = kd_cu_error_fetch();
    if (st != KD_CUDA_OK) return st;
    KD_CU(cudaStreamSynchronize(g_stream));
    KD_CU(cudaGetLastError());
    st = kd_cu_error_take();
    if (st != KD_CUDA_OK) return st;
    if (g_sticky != KD_CUDA_OK) return g_sticky;
    return KD_CUDA_OK;
}

/* ---- the GEMM workspace (bf16 copies of operands) ---- */

static void *g_ws;
static size_t g_ws_bytes;

kd_cuda_result kd_cu_workspace(size_t bytes, void **p)
{
    *p = NULL;
    if (bytes <= g_ws_bytes) {
        *p = g_ws;
        return KD_CUDA_OK;
    }
    /* Grow in whole MiB. Kernels queued on the kd stream may still read the old block, and the stream is
     * non-blocking (cudaFree's implicit synchronisation is not promised to cover it): wait for it first. */
    if (g_ws) {
        KD_CU(cudaStreamSynchronize(g_stream));
        cudaError_t e = cudaFree(g_ws);
        g_ws = NULL;
        g_ws_bytes = 0;
        if (e != cudaSuccess) return kd_cuda_record(e, KD_CUDA_ERR_DEVICE, __FILE__, __LINE__, "cudaFree (workspace)");
    }
    size_t want = (bytes + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
    void *q = NULL;
    cudaError_t e = cudaMalloc(&q, want);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError(); /* not sticky: the caller says what it does without the block */
        return KD_CUDA_ERR_NOMEM;
    }
    if (e != cudaSuccess) return kd_cuda_record(e, KD_CUDA_ERR_DEVICE, __FILE__, __LINE__, "cudaMalloc (workspace)");
    g_ws = q;
    g_ws_bytes = want;
    *p = g_ws;
    return KD_CUDA_OK;
}

void kd_cu_workspace_free(void)
{
    if (g_ws) (void)cudaFree(g_ws);
    g_ws = NULL;
    g_ws_bytes = 0;
}

/* ---- the per-step arena ---- */

enum { KD_CUDA_ARENA_ALIGN = 256 };

kd_cuda_result kd_cuda_arena_init(kd_cuda_arena *a, size_t bytes)
{
    memset(a, 0, sizeof *a);
    void *p = NULL;
    kd_cuda_result st = kd_cuda_malloc(&p, bytes);
    if (st != KD_CUDA_OK) return st;
    a->base = (char *)p;
    a->cap = bytes;
    return KD_CUDA_OK;
}

kd_cuda_result kd_cuda_arena_alloc(kd_cuda_arena *a, size_t bytes, void **p)
{
    *p = NULL;
    size_t off = (a->used + KD_CUDA_ARENA_ALIGN - 1) / KD_CUDA_ARENA_ALIGN * KD_CUDA_ARENA_ALIGN;
    if (off > a->cap || bytes > a->cap - off)
        return kd_cuda_fail(KD_CUDA_ERR_NOMEM,
                       "%s:%d: device arena exhausted: %zu bytes wanted, %zu of %zu in use (raise the arena size)",
                       __FILE__, __LINE__, bytes, a->used, a->cap);
    *p = a->base + off;
    a->used = off + bytes;
    if (a->used > a->peak) a->peak = a->used;
    return KD_CUDA_OK;
}

void kd_cuda_arena_reset(kd_cuda_arena *a) { a->used = 0; }

void kd_cuda_arena_free(kd_cuda_arena *a)
{
    kd_cuda_free(a->base);
    memset(a, 0, sizeof *a);
}
