/* bench/bench_kernels.c — kernel benchmark: measures the machine (FMA peak, triad bandwidth), then
 * validates and times every f32 kernel variant (ref, avx2, avx512) at BERT-base shapes, next to
 * OpenBLAS's sgemm when libopenblas.so.0 is installed (loaded with dlopen, never linked); then the bf16
 * GEMM tables at the same shapes next to the f32 ones and OpenBLAS's cblas_sbgemm (bf16 A, B; f32 C)
 * when the library has it.
 *
 *   bench_kernels [--quick] [--no-openblas] [--reps N] [--gemm-only | --rows-only | --int8]
 *   bench_kernels --openblas-core Haswell|SkylakeX    (child mode: OpenBLAS rows only; the parent re-runs
 *                                                      itself this way because OPENBLAS_CORETYPE is read
 *                                                      once, when the library loads)
 * --int8: only the int8 part (bench/bench_kernels_int8.inc: int8 peaks, the int8 linear at BERT shapes), which
 * a full run prints last.
 * Every figure is the median of the repeats after one warm-up run. */
#include <dlfcn.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "kernels/bf16.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/kernels.h"

static int g_reps = 7;
static int g_quick = 0;

/* ---------------------------------------------------------------- machine limits */

#define FMA_ITERS_AVX2 40000000LL
#define FMA_ITERS_AVX512 20000000LL

/* 12 independent accumulators per thread: more than latency (4) x FMA pipes (2), so no chain stalls. */
__attribute__((target("avx2,fma"))) static float fma_loop_avx2(int64_t iters)
{
    /* Distinct starting values: identical chains would be merged by the compiler. */
    __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-6f);
#define KD_INIT(i) __m256 a##i = _mm256_set1_ps(1.0f + 0.01f * (i));
    KD_INIT(0) KD_INIT(1) KD_INIT(2) KD_INIT(3) KD_INIT(4) KD_INIT(5)
    KD_INIT(6) KD_INIT(7) KD_INIT(8) KD_INIT(9) KD_INIT(10) KD_INIT(11)
#undef KD_INIT
    for (int64_t i = 0; i < iters; i++) {
        a0 = _mm256_fmadd_ps(a0, x, y); a1 = _mm256_fmadd_ps(a1, x, y); a2 = _mm256_fmadd_ps(a2, x, y);
        a3 = _mm256_fmadd_ps(a3, x, y); a4 = _mm256_fmadd_ps(a4, x, y); a5 = _mm256_fmadd_ps(a5, x, y);
        a6 = _mm256_fmadd_ps(a6, x, y); a7 = _mm256_fmadd_ps(a7, x, y); a8 = _mm256_fmadd_ps(a8, x, y);
        a9 = _mm256_fmadd_ps(a9, x, y); a10 = _mm256_fmadd_ps(a10, x, y); a11 = _mm256_fmadd_ps(a11, x, y);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}

__attribute__((target("avx512f,fma"))) static float fma_loop_avx512(int64_t iters)
{
    __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-6f);
#define KD_INIT(i) __m512 a##i = _mm512_set1_ps(1.0f + 0.01f * (i));
    KD_INIT(0) KD_INIT(1) KD_INIT(2) KD_INIT(3) KD_INIT(4) KD_INIT(5) KD_INIT(6) KD_INIT(7)
    KD_INIT(8) KD_INIT(9) KD_INIT(10) KD_INIT(11) KD_INIT(12) KD_INIT(13) KD_INIT(14) KD_INIT(15)
#undef KD_INIT
    for (int64_t i = 0; i < iters; i++) {
        a0 = _mm512_fmadd_ps(a0, x, y); a1 = _mm512_fmadd_ps(a1, x, y); a2 = _mm512_fmadd_ps(a2, x, y);
        a3 = _mm512_fmadd_ps(a3, x, y); a4 = _mm512_fmadd_ps(a4, x, y); a5 = _mm512_fmadd_ps(a5, x, y);
        a6 = _mm512_fmadd_ps(a6, x, y); a7 = _mm512_fmadd_ps(a7, x, y); a8 = _mm512_fmadd_ps(a8, x, y);
        a9 = _mm512_fmadd_ps(a9, x, y); a10 = _mm512_fmadd_ps(a10, x, y); a11 = _mm512_fmadd_ps(a11, x, y);
        a12 = _mm512_fmadd_ps(a12, x, y); a13 = _mm512_fmadd_ps(a13, x, y); a14 = _mm512_fmadd_ps(a14, x, y);
        a15 = _mm512_fmadd_ps(a15, x, y);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15)));
    return _mm512_reduce_add_ps(s);
}

/* VDPBF16PS: each of 16 lanes adds the products of 2 bf16 pairs (4 flops per lane per instruction). */
__attribute__((target("avx512f,avx512bf16"))) static float dpbf16_loop(int64_t iters)
{
    __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3380);   /* 1, 6e-8 */
#define KD_INIT(i) __m512 a##i = _mm512_set1_ps(1.0f + 0.01f * (i));
    KD_INIT(0) KD_INIT(1) KD_INIT(2) KD_INIT(3) KD_INIT(4) KD_INIT(5) KD_INIT(6) KD_INIT(7)
    KD_INIT(8) KD_INIT(9) KD_INIT(10) KD_INIT(11) KD_INIT(12) KD_INIT(13) KD_INIT(14) KD_INIT(15)
#undef KD_INIT
    for (int64_t i = 0; i < iters; i++) {
        a0 = _mm512_dpbf16_ps(a0, x, y); a1 = _mm512_dpbf16_ps(a1, x, y); a2 = _mm512_dpbf16_ps(a2, x, y);
        a3 = _mm512_dpbf16_ps(a3, x, y); a4 = _mm512_dpbf16_ps(a4, x, y); a5 = _mm512_dpbf16_ps(a5, x, y);
        a6 = _mm512_dpbf16_ps(a6, x, y); a7 = _mm512_dpbf16_ps(a7, x, y); a8 = _mm512_dpbf16_ps(a8, x, y);
        a9 = _mm512_dpbf16_ps(a9, x, y); a10 = _mm512_dpbf16_ps(a10, x, y); a11 = _mm512_dpbf16_ps(a11, x, y);
        a12 = _mm512_dpbf16_ps(a12, x, y); a13 = _mm512_dpbf16_ps(a13, x, y); a14 = _mm512_dpbf16_ps(a14, x, y);
        a15 = _mm512_dpbf16_ps(a15, x, y);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15)));
    return _mm512_reduce_add_ps(s);
}

typedef struct fma_ctx { int wide; volatile float sink[64]; } fma_ctx;   /* wide: 0 AVX2, 1 AVX-512, 2 VDPBF16PS */

static void fma_task(void *p, int ith, int nth)
{
    fma_ctx *c = p;
    (void)nth;
    c->sink[ith] = c->wide == 2 ? dpbf16_loop(FMA_ITERS_AVX512) : c->wide ? fma_loop_avx512(FMA_ITERS_AVX512)
                                                                             : fma_loop_avx2(FMA_ITERS_AVX2);
}

/* GFLOP/s of the FMA (or VDPBF16PS) loop on nth threads. */
static double measure_fma_peak(int wide, int nth)
{
    fma_ctx c = { .wide = wide };
    double flops = wide == 2 ? (double)FMA_ITERS_AVX512 * 16 * 16 * 4
                   : wide    ? (double)FMA_ITERS_AVX512 * 16 * 16 * 2 : (double)FMA_ITERS_AVX2 * 12 * 8 * 2;
    double t[5];
    bench_run(fma_task, &c, nth); /* warm-up: clocks settle */
    for (int r = 0; r < 5; r++) {
        double t0 = bench_now();
        bench_run(fma_task, &c, nth);
        t[r] = bench_now() - t0;
    }
    return flops * nth / bench_median(t, 5) * 1e-9;
}

/* Triad a = b + s c over each thread's slice; bytes moved = 12 per element (two loads, one store). */
typedef struct triad_ctx { float *a, *b, *c; int64_t n; int passes; } triad_ctx;

__attribute__((target("avx2,fma"))) static void triad_task(void *p, int ith, int nth)
{
    triad_ctx *t = p;
    int64_t lo, hi;
    kd_split_range(t->n / 8, ith, nth, &lo, &hi);
    const __m256 s = _mm256_set1_ps(0.5f);
    for (int pass = 0; pass < t->passes; pass++)
        for (int64_t i = lo * 8; i < hi * 8; i += 8)
            _mm256_storeu_ps(t->a + i, _mm256_fmadd_ps(s, _mm256_loadu_ps(t->c + i), _mm256_loadu_ps(t->b + i)));
}

static double measure_triad(int64_t n, int passes, int nth)
{
    triad_ctx t = { malloc((size_t)n * 4), malloc((size_t)n * 4), malloc((size_t)n * 4), n, passes };
    if (!t.a || !t.b || !t.c) { fprintf(stderr, "bench: out of memory for triad\n"); exit(1); }
    for (int64_t i = 0; i < n; i++) { t.a[i] = 0.0f; t.b[i] = 1.0f; t.c[i] = 2.0f; }
    double tt[7];
    bench_run(triad_task, &t, nth);
    for (int r = 0; r < 7; r++) {
        double t0 = bench_now();
        bench_run(triad_task, &t, nth);
        tt[r] = bench_now() - t0;
    }
    double gbs = 12.0 * (double)n * passes / bench_median(tt, 7) * 1e-9;
    free(t.a); free(t.b); free(t.c);
    return gbs;
}

/* ---------------------------------------------------------------- GEMM */

typedef struct gshape { const char *name; int64_t m, n, k, batch; int ta, tb; } gshape;

/* BERT-base, batch 16 x 128 tokens. nn.Linear keeps W as n x k, so the forward is X W^T (tb = 1),
 * dX = dY W (no transposes), dW = dY^T X (ta = 1). */
static const gshape g_shapes[] = {
    { "qkv  fwd  X W^T", 2048, 2304, 768, 1, 0, 1 },
    { "out  fwd  X W^T", 2048, 768, 768, 1, 0, 1 },
    { "ffn1 fwd  X W^T", 2048, 3072, 768, 1, 0, 1 },
    { "ffn2 fwd  X W^T", 2048, 768, 3072, 1, 0, 1 },
    { "qkv  dX   dY W ", 2048, 768, 2304, 1, 0, 0 },
    { "out  dX   dY W ", 2048, 768, 768, 1, 0, 0 },
    { "ffn1 dX   dY W ", 2048, 768, 3072, 1, 0, 0 },
    { "ffn2 dX   dY W ", 2048, 3072, 768, 1, 0, 0 },
    { "qkv  dW   dY^T X", 2304, 768, 2048, 1, 1, 0 },
    { "out  dW   dY^T X", 768, 768, 2048, 1, 1, 0 },
    { "ffn1 dW   dY^T X", 3072, 768, 2048, 1, 1, 0 },
    { "ffn2 dW   dY^T X", 768, 3072, 2048, 1, 1, 0 },
    { "qkv  1x128 X W^T", 128, 2304, 768, 1, 0, 1 },
    { "out  1x128 X W^T", 128, 768, 768, 1, 0, 1 },
    { "ffn1 1x128 X W^T", 128, 3072, 768, 1, 0, 1 },
    { "ffn2 1x128 X W^T", 128, 768, 3072, 1, 0, 1 },
    { "attn Q K^T x192", 128, 128, 64, 192, 0, 1 },
    { "attn P V   x192", 128, 64, 128, 192, 0, 0 },
};
#define N_SHAPES ((int)(sizeof g_shapes / sizeof g_shapes[0]))

typedef struct gbufs { float *a, *b, *c; int64_t lda, ldb, ldc, sa, sb, sc; } gbufs;

static gbufs gemm_bufs(const gshape *s)
{
    gbufs g;
    int64_t ra = s->ta ? s->k : s->m, ca = s->ta ? s->m : s->k;
    int64_t rb = s->tb ? s->n : s->k, cb = s->tb ? s->k : s->n;
    g.lda = ca; g.ldb = cb; g.ldc = s->n;
    g.sa = ra * ca; g.sb = rb * cb; g.sc = s->m * s->n;
    g.a = malloc((size_t)(g.sa * s->batch) * 4);
    g.b = malloc((size_t)(g.sb * s->batch) * 4);
    g.c = malloc((size_t)(g.sc * s->batch) * 4);
    if (!g.a || !g.b || !g.c) { fprintf(stderr, "bench: out of memory\n"); exit(1); }
    uint64_t x = 88172645463325252ull;
    for (int64_t i = 0; i < g.sa * s->batch; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; g.a[i] = (float)((double)(x >> 40) / 16777216.0 - 0.5); }
    for (int64_t i = 0; i < g.sb * s->batch; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; g.b[i] = (float)((double)(x >> 40) / 16777216.0 - 0.5); }
    return g;
}
static void gemm_bufs_free(gbufs *g) { free(g->a); free(g->b); free(g->c); }

typedef struct gemm_ctx { const kd_kernels *t; kd_gemm_args g; } gemm_ctx;
static void gemm_task(void *p, int ith, int nth) { gemm_ctx *c = p; c->t->gemm(&c->g, ith, nth); }

/* Check 512 sampled elements of C against a double-precision dot product. */
static int gemm_validate(const gshape *s, const gbufs *g)
{
    uint64_t x = 12345;
    for (int r = 0; r < 512; r++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int64_t b = (int64_t)((x >> 20) % (uint64_t)s->batch), i = (int64_t)((x >> 30) % (uint64_t)s->m);
        int64_t j = (int64_t)((x >> 44) % (uint64_t)s->n);
        double sum = 0, mag = 0;
        for (int64_t p = 0; p < s->k; p++) {
            double av = s->ta ? g->a[b * g->sa + p * g->lda + i] : g->a[b * g->sa + i * g->lda + p];
            double bv = s->tb ? g->b[b * g->sb + j * g->ldb + p] : g->b[b * g->sb + p * g->ldb + j];
            sum += av * bv;
            mag += fabs(av * bv);
        }
        double got = g->c[b * g->sc + i * g->ldc + j];
        if (!(fabs(got - sum) <= ((double)s->k + 4) * 5.96e-8 * mag + 1e-30)) {
            fprintf(stderr, "  MISMATCH at [%lld][%lld][%lld]: %.9g vs %.9g\n", (long long)b, (long long)i,
                    (long long)j, got, sum);
            return 0;
        }
    }
    return 1;
}

/* Median seconds of one call, or -1 when the result is wrong. */
static double time_gemm(const kd_kernels *t, const gshape *s, gbufs *g, int nth)
{
    gemm_ctx c = { t, { .trans_a = s->ta, .trans_b = s->tb, .m = s->m, .n = s->n, .k = s->k, .batch = s->batch,
                        .a = g->a, .lda = g->lda, .stride_a = g->sa, .b = g->b, .ldb = g->ldb, .stride_b = g->sb,
                        .c = g->c, .ldc = g->ldc, .stride_c = g->sc, .alpha = 1.0, .beta = 0.0 } };
    for (int64_t i = 0; i < g->sc * s->batch; i++) g->c[i] = NAN;
    bench_run(gemm_task, &c, nth);
    if (!gemm_validate(s, g)) return -1;
    double tt[64];
    int reps = g_reps < 64 ? g_reps : 64;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        bench_run(gemm_task, &c, nth);
        tt[r] = bench_now() - t0;
    }
    return bench_median(tt, reps);
}

static double gemm_flops(const gshape *s) { return 2.0 * (double)s->m * s->n * s->k * s->batch; }

/* bf16 copies of a shape's A and B (C: m x n bf16 per batch). */
typedef struct gbufs16 { kd_bf16 *a, *b, *c; float *cf; } gbufs16;
static gbufs16 gemm_bufs16(const gshape *s, const gbufs *g)
{
    gbufs16 h;
    h.a = malloc((size_t)(g->sa * s->batch) * 2);
    h.b = malloc((size_t)(g->sb * s->batch) * 2);
    h.c = malloc((size_t)(g->sc * s->batch) * 2);
    h.cf = malloc((size_t)(g->sc * s->batch) * 4);
    if (!h.a || !h.b || !h.c || !h.cf) { fprintf(stderr, "bench: out of memory\n"); exit(1); }
    for (int64_t i = 0; i < g->sa * s->batch; i++) h.a[i] = kd_f32_to_bf16(g->a[i]);
    for (int64_t i = 0; i < g->sb * s->batch; i++) h.b[i] = kd_f32_to_bf16(g->b[i]);
    return h;
}
static void gemm_bufs16_free(gbufs16 *h) { free(h->a); free(h->b); free(h->c); free(h->cf); }

/* 512 sampled elements of a bf16 product (C bf16, or f32 when cf) against a double dot product of the bf16
 * inputs: one bf16 rounding step plus f32 accumulation error (bf16 C), or the f32 error alone. */
static int gemm_validate16(const gshape *s, const gbufs *g, const gbufs16 *h, int cf)
{
    uint64_t x = 12345;
    for (int r = 0; r < 512; r++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int64_t b = (int64_t)((x >> 20) % (uint64_t)s->batch), i = (int64_t)((x >> 30) % (uint64_t)s->m);
        int64_t j = (int64_t)((x >> 44) % (uint64_t)s->n);
        double sum = 0, mag = 0;
        for (int64_t p = 0; p < s->k; p++) {
            double av = kd_bf16_to_f32(s->ta ? h->a[b * g->sa + p * g->lda + i] : h->a[b * g->sa + i * g->lda + p]);
            double bv = kd_bf16_to_f32(s->tb ? h->b[b * g->sb + j * g->ldb + p] : h->b[b * g->sb + p * g->ldb + j]);
            sum += av * bv;
            mag += fabs(av * bv);
        }
        const int64_t at = b * g->sc + i * g->ldc + j;
        double got = cf ? h->cf[at] : kd_bf16_to_f32(h->c[at]);
        if (!(fabs(got - sum) <= (cf ? 0.0 : fabs(sum) / 128.0) + ((double)s->k + 4) * 5.96e-8 * mag + 1e-30)) {
            fprintf(stderr, "  MISMATCH (bf16) at [%lld][%lld][%lld]: %.9g vs %.9g\n", (long long)b, (long long)i,
                    (long long)j, got, sum);
            return 0;
        }
    }
    return 1;
}

static double time_gemm16(const kd_kernels *t, const gshape *s, const gbufs *g, gbufs16 *h, int nth)
{
    gemm_ctx c = { t, { .trans_a = s->ta, .trans_b = s->tb, .m = s->m, .n = s->n, .k = s->k, .batch = s->batch,
                        .a = h->a, .lda = g->lda, .stride_a = g->sa, .b = h->b, .ldb = g->ldb, .stride_b = g->sb,
                        .c = h->c, .ldc = g->ldc, .stride_c = g->sc, .alpha = 1.0, .beta = 0.0 } };
    for (int64_t i = 0; i < g->sc * s->batch; i++) h->c[i] = 0x7fc0;
    bench_run(gemm_task, &c, nth);
    if (!gemm_validate16(s, g, h, 0)) return -1;
    double tt[64];
    int reps = g_reps < 64 ? g_reps : 64;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        bench_run(gemm_task, &c, nth);
        tt[r] = bench_now() - t0;
    }
    return bench_median(tt, reps);
}

#include "bench/bench_kernels_int8.inc"

/* ---------------------------------------------------------------- OpenBLAS (dlopen) */

typedef void (*cblas_sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int,
                               float, float *, int);
typedef void (*cblas_sbgemm_fn)(int, int, int, int, int, int, float, const kd_bf16 *, int, const kd_bf16 *, int,
                                float, float *, int);
typedef void (*openblas_set_threads_fn)(int);
typedef char *(*openblas_corename_fn)(void);

/* Child mode: print "OB <shape> <threads> <seconds>" lines for the parent to read. */
static int openblas_child(const char *core)
{
    void *h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h) { printf("OBNONE %s\n", dlerror()); return 0; }
    cblas_sgemm_fn sgemm;
    openblas_set_threads_fn set_threads;
    openblas_corename_fn corename;
    /* POSIX: dlsym's void * converts to a function pointer through memcpy without a pedantic warning. */
    void *p = dlsym(h, "cblas_sgemm");
    memcpy(&sgemm, &p, sizeof p);
    p = dlsym(h, "openblas_set_num_threads");
    memcpy(&set_threads, &p, sizeof p);
    p = dlsym(h, "openblas_get_corename");
    memcpy(&corename, &p, sizeof p);
    if (!sgemm || !set_threads) { printf("OBNONE missing cblas_sgemm\n"); dlclose(h); return 0; }
    cblas_sbgemm_fn sbgemm;
    p = dlsym(h, "cblas_sbgemm");
    memcpy(&sbgemm, &p, sizeof p);
    printf("OBCORE %s %s\n", core, corename ? corename() : "(unknown)");
    if (!sbgemm) printf("OBNOSB\n");
    for (int nth = 1; nth <= 2; nth++) {
        set_threads(nth);
        for (int si = 0; si < N_SHAPES; si++) {
            const gshape *s = &g_shapes[si];
            if (g_quick && s->m * s->n * s->k * s->batch > 2048LL * 3072 * 768) continue;
            gbufs g = gemm_bufs(s);
            double tt[64];
            int reps = g_reps < 64 ? g_reps : 64;
            for (int r = -1; r < reps; r++) {
                double t0 = bench_now();
                for (int64_t b = 0; b < s->batch; b++)
                    sgemm(101 /* row major */, s->ta ? 112 : 111, s->tb ? 112 : 111, (int)s->m, (int)s->n,
                          (int)s->k, 1.0f, g.a + b * g.sa, (int)g.lda, g.b + b * g.sb, (int)g.ldb, 0.0f,
                          g.c + b * g.sc, (int)g.ldc);
                if (r >= 0) tt[r] = bench_now() - t0;
                else if (!gemm_validate(s, &g)) { printf("OBBAD %d\n", si); break; }
            }
            printf("OB %d %d %.9g\n", si, nth, bench_median(tt, reps));
            fflush(stdout);
            if (sbgemm) { /* bf16 A and B, f32 C */
                gbufs16 hb = gemm_bufs16(s, &g);
                for (int r = -1; r < reps; r++) {
                    double t0 = bench_now();
                    for (int64_t b = 0; b < s->batch; b++)
                        sbgemm(101, s->ta ? 112 : 111, s->tb ? 112 : 111, (int)s->m, (int)s->n, (int)s->k, 1.0f,
                               hb.a + b * g.sa, (int)g.lda, hb.b + b * g.sb, (int)g.ldb, 0.0f, hb.cf + b * g.sc, (int)g.ldc);
                    if (r >= 0) tt[r] = bench_now() - t0;
                    else if (!gemm_validate16(s, &g, &hb, 1)) { printf("OBSBAD %d\n", si); break; }
                }
                printf("OBS %d %d %.9g\n", si, nth, bench_median(tt, reps));
                fflush(stdout);
                gemm_bufs16_free(&hb);
            }
            gemm_bufs_free(&g);
        }
    }
    dlclose(h);
    return 0;
}

/* Results from one OpenBLAS core type: seconds[shape][threads-1], 0 when absent. */
typedef struct ob_result { char core[64]; double sec[N_SHAPES][2], sbsec[N_SHAPES][2]; int ok, sbok; } ob_result;

static void openblas_run(const char *self, const char *core, ob_result *r)
{
    memset(r, 0, sizeof *r);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "OPENBLAS_CORETYPE=%s '%s' --openblas-core %s --reps %d%s", core, self, core, g_reps,
             g_quick ? " --quick" : "");
    FILE *f = popen(cmd, "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        int si, nth;
        double sec;
        char a[64], b[64];
        if (sscanf(line, "OB %d %d %lf", &si, &nth, &sec) == 3 && si >= 0 && si < N_SHAPES && nth >= 1 && nth <= 2) {
            r->sec[si][nth - 1] = sec;
            r->ok = 1;
        } else if (sscanf(line, "OBS %d %d %lf", &si, &nth, &sec) == 3 && si >= 0 && si < N_SHAPES && nth >= 1 && nth <= 2) {
            r->sbsec[si][nth - 1] = sec;
            r->sbok = 1;
        } else if (sscanf(line, "OBCORE %63s %63s", a, b) == 2) {
            snprintf(r->core, sizeof r->core, "%s", b);
        } else if (strncmp(line, "OBNONE", 6) == 0) {
            printf("OpenBLAS not available: %s", line + 7);
        }
    }
    pclose(f);
}

/* ---------------------------------------------------------------- row kernels */

typedef struct row_ctx {
    const kd_kernels *t;
    int which;
    kd_softmax_args sm;
    kd_layernorm_args ln;
    kd_map_args map;
} row_ctx;

static void row_task(void *p, int ith, int nth)
{
    row_ctx *c = p;
    if (c->which == 0) c->t->softmax(&c->sm, ith, nth);
    else if (c->which == 1) c->t->layernorm(&c->ln, ith, nth);
    else c->t->unary(&c->map, ith, nth);
}

static double time_task(bench_task fn, void *ctx, int nth)
{
    double tt[64];
    int reps = g_reps < 64 ? g_reps : 64;
    bench_run(fn, ctx, nth);
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        bench_run(fn, ctx, nth);
        tt[r] = bench_now() - t0;
    }
    return bench_median(tt, reps);
}

/* Softmax over 16*12*128 rows of 128 (attention scores), LayerNorm and GELU over 2048 x 768: each reads
 * its input once and writes its output once (8 bytes per element), data L3-resident between repeats. */
static void bench_rows(const kd_kernels **tabs, int ntab, const double *l3_gbs)
{
    const int64_t sm_rows = 16 * 12 * 128, sm_cols = 128, ln_rows = 2048, ln_cols = 768;
    const int64_t n = sm_rows * sm_cols > ln_rows * ln_cols ? sm_rows * sm_cols : ln_rows * ln_cols;
    float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4), *yref = malloc((size_t)n * 4);
    float *gamma = malloc((size_t)ln_cols * 4), *beta = malloc((size_t)ln_cols * 4);
    float *mean = malloc((size_t)ln_rows * 4), *rstd = malloc((size_t)ln_rows * 4);
    if (!x || !y || !yref || !gamma || !beta || !mean || !rstd) { fprintf(stderr, "bench: out of memory\n"); exit(1); }
    uint64_t s = 7;
    for (int64_t i = 0; i < n; i++) { s = s * 6364136223846793005ull + 1; x[i] = (float)((double)(s >> 40) / 4194304.0 - 2.0); }
    for (int64_t j = 0; j < ln_cols; j++) { gamma[j] = 1.0f + 0.001f * (float)j; beta[j] = 0.01f * (float)(j % 7); }
    static const char *names[] = { "softmax 24576x128", "layernorm 2048x768", "gelu 2048x768" };
    printf("\n%-20s %-8s %3s %10s %9s %8s\n", "row kernel", "variant", "thr", "time(us)", "GB/s", "%L3bw");
    for (int which = 0; which < 3; which++) {
        int64_t elems = which == 0 ? sm_rows * sm_cols : ln_rows * ln_cols;
        row_ctx c;
        memset(&c, 0, sizeof c);
        c.which = which;
        c.sm = (kd_softmax_args){ .log = 0, .rows = sm_rows, .cols = sm_cols, .x = x, .y = y };
        c.ln = (kd_layernorm_args){ .rows = ln_rows, .cols = ln_cols, .eps = 1e-12, .x = x, .gamma = gamma,
                                    .beta = beta, .y = y, .mean = mean, .rstd = rstd };
        c.map = (kd_map_args){ .op = KD_UN_GELU, .ndim = 1, .shape = { elems }, .out = y, .out_stride = { 1 },
                               .a = x, .a_stride = { 1 } };
        /* Reference output once, for validation. */
        c.t = kd_kernels_ref_f32();
        c.sm.y = yref; c.ln.y = yref; c.map.out = yref;
        row_task(&c, 0, 1);
        c.sm.y = y; c.ln.y = y; c.map.out = y;
        for (int t = -1; t < ntab; t++) {
            c.t = t < 0 ? kd_kernels_ref_f32() : tabs[t];
            const kd_kernels *ref = kd_kernels_ref_f32();
            int same_as_ref = t >= 0 && ((which == 0 && c.t->softmax == ref->softmax) ||
                                         (which == 1 && c.t->layernorm == ref->layernorm) ||
                                         (which == 2 && c.t->unary == ref->unary));
            for (int64_t i = 0; i < elems; i++) y[i] = NAN;
            row_task(&c, 0, 1);
            double maxerr = 0;
            int64_t bad = 0;
            for (int64_t i = 0; i < elems; i++) {
                double e = fabs((double)y[i] - yref[i]);
                if (!(e <= 1e-5 * (1.0 + fabs(yref[i])))) bad++;
                if (e > maxerr) maxerr = e;
            }
            if (bad) {
                printf("%-20s %-8s MISMATCH: %lld elements, max err %g\n", names[which], c.t->name, (long long)bad, maxerr);
                continue;
            }
            for (int nth = 1; nth <= (t < 0 ? 1 : 2); nth++) {
                double sec = time_task(row_task, &c, nth);
                double gbs = 8.0 * (double)elems / sec * 1e-9;
                printf("%-20s %-8s %3d %10.1f %9.1f %7.0f%%%s\n", names[which], c.t->name, nth, sec * 1e6, gbs,
                       100.0 * gbs / l3_gbs[nth - 1], same_as_ref ? "  (reference entry)" : "");
            }
        }
    }
    free(x); free(y); free(yref); free(gamma); free(beta); free(mean); free(rstd);
}

/* ---------------------------------------------------------------- attention */

typedef struct attn_ctx { const kd_kernels *t; kd_attention_args a; int bwd; } attn_ctx;
static void attn_task(void *p, int ith, int nth)
{
    attn_ctx *c = p;
    if (c->bwd) c->t->attention_bwd(&c->a, ith, nth);
    else c->t->attention(&c->a, ith, nth);
}

static void bench_attention(const kd_kernels **tabs, int ntab)
{
    const int64_t B = g_quick ? 2 : 16, H = 12, T = 128, D = 64;
    const int64_t n = B * T * H * D;
    float *q = malloc((size_t)n * 4), *k = malloc((size_t)n * 4), *v = malloc((size_t)n * 4);
    float *o = malloc((size_t)n * 4), *oref = malloc((size_t)n * 4), *lse = malloc((size_t)(B * H * T) * 4);
    float *mask = malloc((size_t)(B * T) * 4);
    float *dq = calloc((size_t)n, 4), *dk = calloc((size_t)n, 4), *dv = calloc((size_t)n, 4);
    if (!q || !k || !v || !o || !oref || !lse || !mask || !dq || !dk || !dv) { fprintf(stderr, "bench: out of memory\n"); exit(1); }
    uint64_t s = 99;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1; q[i] = (float)((double)(s >> 40) / 16777216.0 - 0.5);
        s = s * 6364136223846793005ull + 1; k[i] = (float)((double)(s >> 40) / 16777216.0 - 0.5);
        s = s * 6364136223846793005ull + 1; v[i] = (float)((double)(s >> 40) / 16777216.0 - 0.5);
    }
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) mask[b * T + t] = t < T - 8 * b % T ? 0.0f : -INFINITY;
    attn_ctx c = { kd_kernels_ref_f32(), { .batch = B, .heads = H, .tq = T, .tk = T, .dim = D,
        .q = q, .q_sb = T * H * D, .q_st = H * D, .q_sh = D, .k = k, .k_sb = T * H * D, .k_st = H * D, .k_sh = D,
        .v = v, .v_sb = T * H * D, .v_st = H * D, .v_sh = D, .o = oref, .o_sb = T * H * D, .o_st = H * D, .o_sh = D,
        .mask = mask, .mask_sb = T, .scale = 0.125, .dropout_p = 0.1, .seed = 5, .offset = 0, .lse = lse,
        .d_o = v, .dq = dq, .dk = dk, .dv = dv }, 0 };
    c.a.batch = 1; /* validation covers the first sequence: the reference is slow */
    bench_run(attn_task, &c, 2);
    c.a.o = o;
    double flops = 4.0 * (double)B * H * T * T * D;
    printf("\n%-28s %-8s %3s %10s %9s\n", "attention (B=16 H=12 T=128 D=64, mask, dropout 0.1)", "variant", "thr",
           "time(ms)", "GFLOP/s");
    if (g_quick) printf("(quick: B=2)\n");
    for (int t = -1; t < ntab; t++) {
        c.t = t < 0 ? kd_kernels_ref_f32() : tabs[t];
        const kd_kernels *ref = kd_kernels_ref_f32();
        /* the reference draws a Philox number per (key, dim): it is timed on one sequence of the batch */
        c.a.batch = t < 0 ? 1 : B;
        const double fl = flops * (double)c.a.batch / (double)B;
        for (int64_t i = 0; i < n; i++) o[i] = NAN;
        c.bwd = 0;
        bench_run(attn_task, &c, 2);
        int64_t bad = 0;
        for (int64_t i = 0; i < n / B; i++) bad += !(fabs((double)o[i] - oref[i]) <= 1e-5 * (1.0 + fabs(oref[i])));
        if (bad) { printf("%-28s %-8s MISMATCH: %lld elements\n", "forward", c.t->name, (long long)bad); continue; }
        for (int bwd = 0; bwd <= 1; bwd++) {
            c.bwd = bwd;
            for (int nth = 1; nth <= 2; nth++) {
                double sec = time_task(attn_task, &c, nth);
                int same = t >= 0 && (bwd ? c.t->attention_bwd == ref->attention_bwd : c.t->attention == ref->attention);
                printf("%-28s %-8s %3d %10.2f %9.1f%s%s\n", bwd ? "backward" : "forward", c.t->name, nth, sec * 1e3,
                       (bwd ? 2.0 : 1.0) * fl / sec * 1e-9, same ? "  (reference entry)" : "",
                       t < 0 ? "  (B=1)" : "");
            }
        }
    }
    free(q); free(k); free(v); free(o); free(oref); free(lse); free(mask); free(dq); free(dk); free(dv);
}

/* ---------------------------------------------------------------- main */

/* The machine may be shared: print the load average so a reader can judge the figures. */
static void print_load(const char *when)
{
    FILE *f = fopen("/proc/loadavg", "r");
    char buf[128];
    if (f && fgets(buf, sizeof buf, f)) printf("%s: loadavg %s", when, buf);
    if (f) fclose(f);
}

int main(int argc, char **argv)
{
    const char *ob_core = NULL;
    int use_openblas = 1, only_gemm = 0, only_rows = 0, only_int8 = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--openblas-core") == 0 && i + 1 < argc) ob_core = argv[++i];
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) g_reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--quick") == 0) g_quick = 1;
        else if (strcmp(argv[i], "--no-openblas") == 0) use_openblas = 0;
        else if (strcmp(argv[i], "--gemm-only") == 0) only_gemm = 1;
        else if (strcmp(argv[i], "--rows-only") == 0) only_rows = 1;
        else if (strcmp(argv[i], "--int8") == 0) only_int8 = 1;
        else {
            fprintf(stderr, "usage: %s [--quick] [--reps N] [--no-openblas] [--gemm-only | --rows-only | --int8] [--openblas-core NAME]\n", argv[0]);
            return 2;
        }
    }
    if (g_reps < 1) g_reps = 1;
    if (ob_core) return openblas_child(ob_core);

    kd_cpu_features f = kd_cpu_detect();
    const kd_kernels *tabs[2];
    int ntab = 0;
    if (kd_kernels_cpu_f32("avx2")) tabs[ntab++] = kd_kernels_cpu_f32("avx2");
    if (kd_kernels_cpu_f32("avx512")) tabs[ntab++] = kd_kernels_cpu_f32("avx512");
    printf("kd kernel benchmark: tables:");
    for (int t = 0; t < ntab; t++) printf(" %s", tabs[t]->name);
    printf(" (ref always); median of %d repeats after a warm-up\n", g_reps);
    print_load("load at start");
    printf("\n");
    if (only_int8) {
        bench_int8(&f);
        print_load("\nload at end");
        return 0;
    }

    /* Machine limits. */
    double peak2[2] = { 0, 0 }, peak5[2] = { 0, 0 }, peakdp[2] = { 0, 0 }, l3[2], dram[2];
    for (int nth = 1; nth <= 2; nth++) {
        if (f.avx2 && f.fma) peak2[nth - 1] = measure_fma_peak(0, nth);
        if (f.avx512f && f.fma) peak5[nth - 1] = measure_fma_peak(1, nth);
        if (f.avx512f && f.avx512bf16) {
            peakdp[nth - 1] = measure_fma_peak(2, nth);
            printf("threads %d: VDPBF16PS peak %.1f GFLOP/s\n", nth, peakdp[nth - 1]);
        }
        l3[nth - 1] = measure_triad(1 << 20, 50, nth);        /* 3 x 4 MiB: past L2, inside L3 */
        dram[nth - 1] = measure_triad(32 << 20, 2, nth);       /* 3 x 128 MiB */
        printf("threads %d: FMA peak AVX2 %.1f GFLOP/s, AVX-512 %.1f GFLOP/s; triad L3 %.1f GB/s, DRAM %.1f GB/s\n",
               nth, peak2[nth - 1], peak5[nth - 1], l3[nth - 1], dram[nth - 1]);
    }

    if (only_rows) {
        bench_rows(tabs, ntab, l3);
        bench_attention(tabs, ntab);
        print_load("\nload at end");
        return 0;
    }

    /* Our GEMMs. */
    double sec[N_SHAPES][2][2]; /* shape, table, threads */
    memset(sec, 0, sizeof sec);
    for (int si = 0; si < N_SHAPES; si++) {
        const gshape *s = &g_shapes[si];
        if (g_quick && s->m * s->n * s->k * s->batch > 2048LL * 3072 * 768) continue;
        gbufs g = gemm_bufs(s);
        for (int t = 0; t < ntab; t++)
            for (int nth = 1; nth <= 2; nth++) sec[si][t][nth - 1] = time_gemm(tabs[t], s, &g, nth);
        gemm_bufs_free(&g);
    }
    /* The reference at one small shape, to show the distance. */
    {
        gshape small = { "attn Q K^T x8", 128, 128, 64, 8, 0, 1 };
        gbufs g = gemm_bufs(&small);
        double ts = time_gemm(kd_kernels_ref_f32(), &small, &g, 1);
        printf("\nref gemm 8 x (128x64 @ 64x128), 1 thread: %.1f GFLOP/s\n", ts > 0 ? gemm_flops(&small) / ts * 1e-9 : 0.0);
        gemm_bufs_free(&g);
    }

    ob_result ob[2];
    memset(ob, 0, sizeof ob);
    if (use_openblas) {
        openblas_run(argv[0], "Haswell", &ob[0]);
        openblas_run(argv[0], "SkylakeX", &ob[1]);
    }
    for (int nth = 1; nth <= 2; nth++) {
        printf("\nGEMM, %d thread%s: GFLOP/s (%% of measured FMA peak of the same ISA)\n", nth, nth > 1 ? "s" : "");
        printf("%-17s %-6s %-6s %-6s | %-15s %-15s %6s | %-15s %-15s %6s\n", "shape", "m", "n", "k", "kd avx2",
               ob[0].ok ? "OpenBLAS Hsw" : "-", "ratio", "kd avx512", ob[1].ok ? "OpenBLAS SKX" : "-", "ratio");
        for (int si = 0; si < N_SHAPES; si++) {
            const gshape *s = &g_shapes[si];
            double fl = gemm_flops(s);
            char col[4][32];
            double gf[4] = { 0, 0, 0, 0 };
            const double pk[4] = { peak2[nth - 1], peak2[nth - 1], peak5[nth - 1], peak5[nth - 1] };
            double secs[4] = { ntab > 0 ? sec[si][0][nth - 1] : 0, ob[0].sec[si][nth - 1],
                               ntab > 1 ? sec[si][1][nth - 1] : 0, ob[1].sec[si][nth - 1] };
            for (int c = 0; c < 4; c++) {
                if (secs[c] > 0) {
                    gf[c] = fl / secs[c] * 1e-9;
                    snprintf(col[c], sizeof col[c], "%6.1f (%3.0f%%)", gf[c], pk[c] > 0 ? 100 * gf[c] / pk[c] : 0.0);
                } else {
                    snprintf(col[c], sizeof col[c], "%s", secs[c] < 0 ? "WRONG" : "-");
                }
            }
            char r0[16] = "-", r1[16] = "-";
            if (gf[0] > 0 && gf[1] > 0) snprintf(r0, sizeof r0, "%.2fx", gf[0] / gf[1]);
            if (gf[2] > 0 && gf[3] > 0) snprintf(r1, sizeof r1, "%.2fx", gf[2] / gf[3]);
            printf("%-17s %-6lld %-6lld %-6lld | %-15s %-15s %6s | %-15s %-15s %6s\n", s->name, (long long)s->m,
                   (long long)s->n, (long long)s->k, col[0], col[1], r0, col[2], col[3], r1);
        }
    }
    for (int c = 0; c < 2; c++)
        if (ob[c].ok) printf("OpenBLAS run with OPENBLAS_CORETYPE=%s reported core %s\n", c ? "SkylakeX" : "Haswell",
                             ob[c].core[0] ? ob[c].core : "(unknown)");

    /* bf16 GEMM: the fastest bf16 table against the f32 table of the same ISA and OpenBLAS's sbgemm. When
     * the table's GEMM is the VDPBF16PS one, the AVX-512 GEMM widening bf16 to f32 runs beside it (the
     * path of CPUs without AVX-512 BF16), each row naming both. */
    const kd_kernels *t16 = kd_kernels_cpu_bf16(NULL);
    const char *g16name = t16->name;
    static const char *gnames[] = { "avx2", "avx512", "avx512bf16" };
    for (int i = 0; i < 3; i++)
        if (kd_gemm_cpu_bf16(gnames[i]) && t16->gemm == kd_gemm_cpu_bf16(gnames[i])) g16name = gnames[i];
    const kd_kernels *alt16 = NULL;
    static kd_kernels alt16_tab;
    if (strcmp(g16name, "avx512bf16") == 0 && kd_gemm_cpu_bf16("avx512")) {
        alt16_tab = *t16;
        alt16_tab.gemm = kd_gemm_cpu_bf16("avx512");
        alt16 = &alt16_tab;
    }
    double sec16[N_SHAPES][2][2]; /* shape, (table, widened), threads */
    memset(sec16, 0, sizeof sec16);
    for (int si = 0; si < N_SHAPES; si++) {
        const gshape *s = &g_shapes[si];
        if (g_quick && s->m * s->n * s->k * s->batch > 2048LL * 3072 * 768) continue;
        gbufs g = gemm_bufs(s);
        gbufs16 h = gemm_bufs16(s, &g);
        for (int nth = 1; nth <= 2; nth++) {
            sec16[si][0][nth - 1] = time_gemm16(t16, s, &g, &h, nth);
            if (alt16) sec16[si][1][nth - 1] = time_gemm16(alt16, s, &g, &h, nth);
        }
        gemm_bufs16_free(&h);
        gemm_bufs_free(&g);
    }
    const int t32 = ntab > 1 && strcmp(t16->name, "avx512") == 0 ? 1 : 0;
    const int obc = ob[1].sbok ? 1 : 0;
    char h16[2][32];
    snprintf(h16[0], sizeof h16[0], "kd bf16 %s", g16name);
    snprintf(h16[1], sizeof h16[1], "%s", alt16 ? "kd bf16 avx512" : "-");
    for (int nth = 1; nth <= 2; nth++) {
        const double pk = strcmp(t16->name, "avx512") == 0 ? peak5[nth - 1] : peak2[nth - 1];
        const int dp = strcmp(g16name, "avx512bf16") == 0 && peakdp[nth - 1] > 0;
        printf("\nbf16 GEMM (table %s, gemm %s%s), %d thread%s: GFLOP/s (%% of the measured %s peak; the other "
               "columns: of the f32 FMA peak of the same ISA)\n",
               t16->name, g16name, alt16 ? "; avx512: bf16 widened to f32, the f32 FMA kernel" : "", nth, nth > 1 ? "s" : "",
               dp ? "VDPBF16PS" : "f32 FMA");
        printf("%-17s %-6s %-6s %-6s | %-18s %-18s %-15s %6s %6s | %-15s %6s\n", "shape", "m", "n", "k", h16[0], h16[1],
               "kd f32", "ratio", "ratio", ob[obc].sbok ? "OpenBLAS sbgemm" : "-", "ratio");
        for (int si = 0; si < N_SHAPES; si++) {
            const gshape *s = &g_shapes[si];
            const double fl = gemm_flops(s);
            const double secs[4] = { sec16[si][0][nth - 1], sec16[si][1][nth - 1], ntab > 0 ? sec[si][t32][nth - 1] : 0,
                                     ob[obc].sbsec[si][nth - 1] };
            char col[4][32];
            double gf[4] = { 0, 0, 0, 0 };
            for (int c = 0; c < 4; c++) {
                if (secs[c] > 0) {
                    gf[c] = fl / secs[c] * 1e-9;
                    const double pc = c == 0 && dp ? peakdp[nth - 1] : pk;
                    snprintf(col[c], sizeof col[c], "%6.1f (%3.0f%%)", gf[c], pc > 0 ? 100 * gf[c] / pc : 0.0);
                } else {
                    snprintf(col[c], sizeof col[c], "%s", secs[c] < 0 ? "WRONG" : "-");
                }
            }
            char r0[16] = "-", r1[16] = "-", r2[16] = "-";
            if (gf[0] > 0 && gf[2] > 0) snprintf(r0, sizeof r0, "%.2fx", gf[0] / gf[2]);
            if (gf[1] > 0 && gf[2] > 0) snprintf(r1, sizeof r1, "%.2fx", gf[1] / gf[2]);
            if (gf[0] > 0 && gf[3] > 0) snprintf(r2, sizeof r2, "%.2fx", gf[0] / gf[3]);
            printf("%-17s %-6lld %-6lld %-6lld | %-18s %-18s %-15s %6s %6s | %-15s %6s\n", s->name, (long long)s->m,
                   (long long)s->n, (long long)s->k, col[0], col[1], col[2], r0, r1, col[3], r2);
        }
    }
    if (use_openblas && !ob[0].sbok && !ob[1].sbok) printf("OpenBLAS sbgemm: not in the installed library (column skipped)\n");
    else if (ob[obc].sbok) printf("OpenBLAS sbgemm run with OPENBLAS_CORETYPE=%s (core %s); its C is f32\n",
                                  obc ? "SkylakeX" : "Haswell", ob[obc].core[0] ? ob[obc].core : "(unknown)");

    if (!only_gemm) {
        bench_rows(tabs, ntab, l3);
        bench_attention(tabs, ntab);
        printf("\n");
        bench_int8(&f);
    }
    print_load("\nload at end");
    return 0;
}
