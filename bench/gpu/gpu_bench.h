/* bench/gpu/gpu_bench.h — what the GPU benchmarks share: CUDA event timing (median of repeats, L2 flushed
 * before each), cuBLAS opened at run time when installed (never linked), and small helpers. */
#ifndef KD_GPU_BENCH_H
#define KD_GPU_BENCH_H

#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "engine/status.h"
#include "kernels/cuda/cuda_runtime.h"

static inline void gb_die(const char *what)
{
    fprintf(stderr, "bench: %s: %s\n", what, kd_last_error());
    exit(1);
}

static inline int gb_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A buffer larger than L2 (50 MiB on H100) written before each timed repeat, so operands come from DRAM. */
static void *gb_flush_buf;
static const size_t gb_flush_bytes = 256u << 20;

static inline void gb_flush_l2(void)
{
    if (!gb_flush_buf && kd_cuda_malloc(&gb_flush_buf, gb_flush_bytes) != KD_OK) gb_die("flush buffer");
    if (kd_cuda_memset(gb_flush_buf, (int)(rand() & 0xff), gb_flush_bytes) != KD_OK) gb_die("flush");
}

typedef void (*gb_fn)(void *ctx);

/* Median milliseconds of fn(ctx) over `reps` timed runs (after 2 warm-ups), each after an L2 flush,
 * timed with events on the kd stream. */
static inline double gb_time_ms(gb_fn fn, void *ctx, int reps, int flush)
{
    cudaStream_t st = (cudaStream_t)kd_cuda_stream();
    cudaEvent_t e0, e1;
    if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) {
        fprintf(stderr, "bench: cudaEventCreate failed\n");
        exit(1);
    }
    for (int i = 0; i < 2; i++) fn(ctx);
    double *t = malloc((size_t)reps * sizeof *t);
    for (int r = 0; r < reps; r++) {
        if (flush) gb_flush_l2();
        cudaEventRecord(e0, st);
        fn(ctx);
        cudaEventRecord(e1, st);
        if (cudaEventSynchronize(e1) != cudaSuccess) {
            fprintf(stderr, "bench: kernel failed: %s\n", cudaGetErrorString(cudaGetLastError()));
            exit(1);
        }
        float ms = 0;
        cudaEventElapsedTime(&ms, e0, e1);
        t[r] = ms;
    }
    if (kd_cuda_sync() != KD_OK) gb_die("sync");
    qsort(t, (size_t)reps, sizeof *t, gb_cmp_double);
    double med = t[reps / 2];
    free(t);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return med;
}

static uint64_t gb_rng = 88172645463325252ull;
static inline float gb_randn(void)
{
    double s = 0;
    for (int i = 0; i < 4; i++) {
        gb_rng ^= gb_rng << 13; gb_rng ^= gb_rng >> 7; gb_rng ^= gb_rng << 17;
        s += (double)(gb_rng >> 11) / 9007199254740992.0;
    }
    return (float)((s - 2.0) * 1.7320508075688772);
}

/* Device buffer of n random floats (generated once on the host). */
static inline float *gb_dev_randn(int64_t n)
{
    float *h = malloc((size_t)n * sizeof *h);
    if (!h) gb_die("malloc");
    for (int64_t i = 0; i < n; i++) h[i] = gb_randn();
    void *d = NULL;
    if (kd_cuda_malloc(&d, (size_t)n * sizeof *h) != KD_OK || kd_cuda_h2d(d, h, (size_t)n * sizeof *h) != KD_OK)
        gb_die("device buffer");
    free(h);
    return d;
}

/* ---- cuBLAS, dlopen'ed: the declarations we need, from cublas_api.h's documented ABI ---- */
typedef int (*cublasCreate_t)(void **);
typedef int (*cublasDestroy_t)(void *);
typedef int (*cublasSetStream_t)(void *, cudaStream_t);
typedef int (*cublasGemmEx_t)(void *, int, int, int, int, int, const void *, const void *, int, int, const void *,
                              int, int, const void *, void *, int, int, int, int);
enum { GB_CUBLAS_OP_N = 0, GB_CUBLAS_OP_T = 1, GB_CUDA_R_32F = 0, GB_CUDA_R_16BF = 14, GB_CUBLAS_COMPUTE_32F = 68,
       GB_CUBLAS_COMPUTE_32F_FAST_TF32 = 77, GB_CUBLAS_GEMM_DEFAULT = -1 };

/* POSIX: dlsym's void * becomes a function pointer through memcpy, without a pedantic warning. */
static inline void gb_sym(void *lib, const char *name, void *fnptr, size_t size)
{
    void *p = dlsym(lib, name);
    memcpy(fnptr, &p, size);
}

typedef struct gb_cublas {
    void *lib, *handle;
    cublasGemmEx_t gemm_ex;
} gb_cublas;

static inline int gb_cublas_open(gb_cublas *cb)
{
    memset(cb, 0, sizeof *cb);
    const char *names[] = { "libcublas.so", "libcublas.so.13", "libcublas.so.12", "/usr/local/cuda/lib64/libcublas.so" };
    for (size_t i = 0; i < sizeof names / sizeof *names && !cb->lib; i++) cb->lib = dlopen(names[i], RTLD_NOW);
    if (!cb->lib) return 0;
    cublasCreate_t create;
    cublasSetStream_t set_stream;
    gb_sym(cb->lib, "cublasCreate_v2", &create, sizeof create);
    gb_sym(cb->lib, "cublasSetStream_v2", &set_stream, sizeof set_stream);
    gb_sym(cb->lib, "cublasGemmEx", &cb->gemm_ex, sizeof cb->gemm_ex);
    if (!create || !set_stream || !cb->gemm_ex || create(&cb->handle) != 0) {
        dlclose(cb->lib);
        cb->lib = NULL;
        return 0;
    }
    set_stream(cb->handle, (cudaStream_t)kd_cuda_stream());
    return 1;
}

static inline void gb_cublas_close(gb_cublas *cb)
{
    if (!cb->lib) return;
    cublasDestroy_t destroy;
    gb_sym(cb->lib, "cublasDestroy_v2", &destroy, sizeof destroy);
    if (destroy && cb->handle) destroy(cb->handle);
    dlclose(cb->lib);
    cb->lib = NULL;
}

#endif
