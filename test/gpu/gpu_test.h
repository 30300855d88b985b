/* test/gpu/gpu_test.h — the CUDA kernel tests' thin layer on test/kernels/op_case.h: float buffers with a
 * host mirror and a device copy between op_case.h's guard regions (its canaries), compared back against
 * the reference after the kernel (a changed canary is an out-of-bounds write), one report line per
 * comparison, and the skip (77) without a GPU. The per-op case tables (test/kernels/test_<op>.c) run on
 * the CUDA tables through op_case.h itself: test/gpu/meson.build builds them with OC_CUDA. */
#ifndef KD_GPU_TEST_H
#define KD_GPU_TEST_H

#ifndef OC_CUDA
#define OC_CUDA
#endif

#include <float.h>
#include <stdint.h>

#include "kernels/cuda/gemm_cuda.h"
#include "test/kernels/op_case.h"

#define GT_GUARD OC_GUARD   /* floats each side, holding op_case.h's canary */

typedef struct gt_buf {
    int64_t n;         /* interior elements */
    float *h;          /* host mirror, n + 2 GT_GUARD */
    float *d;          /* device, same layout */
} gt_buf;

/* Standard normal-ish draws from op_case.h's generator (a sum of uniforms is enough for test inputs). */
static inline float gt_randn(void)
{
    double s = 0.0;
    for (int i = 0; i < 4; i++) s += oc_uniform(0.0, 1.0);
    return (float)((s - 2.0) * 1.7320508075688772);
}
static inline uint32_t gt_randu(uint32_t mod) { return (uint32_t)(oc_uniform(0.0, 1.0) * mod) % mod; }

static inline void gt_die(const char *what) { oc_die(what); }

static inline void gt_skip_without_gpu(const char *name)
{
    if (!kd_cuda_available()) {
        printf("%s: no CUDA device present, skipping\n", name);
        exit(KD_TEST_SKIP);
    }
    if (kd_cuda_init(0) != KD_OK) gt_die("kd_cuda_init");
}

/* A buffer of n floats; interior set to `fill` (NAN poisons outputs) or random when randomize. */
static inline gt_buf gt_new(int64_t n, int randomize, float fill)
{
    gt_buf b;
    b.n = n;
    size_t total = (size_t)(n + 2 * GT_GUARD);
    b.h = malloc(total * sizeof(float));
    if (!b.h) gt_die("malloc");
    for (size_t i = 0; i < total; i++) b.h[i] = oc_canary();
    for (int64_t i = 0; i < n; i++) b.h[GT_GUARD + i] = randomize ? gt_randn() : fill;
    void *d = NULL;
    if (kd_cuda_malloc(&d, total * sizeof(float)) != KD_OK) gt_die("kd_cuda_malloc");
    b.d = d;
    if (kd_cuda_h2d(b.d, b.h, total * sizeof(float)) != KD_OK) gt_die("kd_cuda_h2d");
    return b;
}

static inline float *gt_h(gt_buf *b) { return b->h + GT_GUARD; }
static inline float *gt_d(gt_buf *b) { return b->d + GT_GUARD; }
/* Re-upload after changing the host interior. */
static inline void gt_push(gt_buf *b)
{
    if (kd_cuda_h2d(b->d, b->h, (size_t)(b->n + 2 * GT_GUARD) * sizeof(float)) != KD_OK) gt_die("kd_cuda_h2d");
}

/* Download into `got` (n + 2 guards), check the guards; returns the whole image (interior at GT_GUARD). */
static inline float *gt_pull(gt_buf *b, const char *what)
{
    if (kd_cuda_sync() != KD_OK) gt_die(what);
    size_t total = (size_t)(b->n + 2 * GT_GUARD);
    float *got = malloc(total * sizeof(float));
    if (!got) gt_die("malloc");
    if (kd_cuda_d2h(got, b->d, total * sizeof(float)) != KD_OK) gt_die("kd_cuda_d2h");
    int bad = 0;
    for (int i = 0; i < GT_GUARD; i++) {
        bad += !oc_is_canary(got[i]);
        bad += !oc_is_canary(got[GT_GUARD + b->n + i]);
    }
    CHECK(bad == 0, "%s: %d guard values overwritten (out-of-bounds write)", what, bad);
    return got;
}

/* Compare the device interior against want[0..n) with atol + rtol |want| (NaN and Inf fail); reports the
 * first few misses and one line with the worst error as a fraction of the tolerance. */
static inline void gt_compare(gt_buf *b, const float *want, double atol, double rtol, const char *what)
{
    float *got = gt_pull(b, what);
    int64_t bad = 0;
    double worst = 0.0;
    for (int64_t i = 0; i < b->n; i++) {
        double g = got[GT_GUARD + i], w = want[i];
        if (!kd_close(g, w, atol, rtol)) {
            if (bad < 5) fprintf(stderr, "  %s[%lld]: got %.9g, want %.9g\n", what, (long long)i, g, w);
            bad++;
            worst = INFINITY;
        } else if (fabs(g - w) / (atol + rtol * fabs(w)) > worst) {
            worst = fabs(g - w) / (atol + rtol * fabs(w));
        }
    }
    CHECK(bad == 0, "%s: %lld of %lld values off (atol %g, rtol %g)", what, (long long)bad, (long long)b->n, atol, rtol);
    printf("%-64s %9lld values  worst %.3g of tol  %s\n", what, (long long)b->n, worst, bad ? "FAIL" : "ok");
    free(got);
}

static inline void gt_free(gt_buf *b)
{
    free(b->h);
    kd_cuda_free(b->d);
    b->h = NULL;
    b->d = NULL;
}

/* 1 when the Hopper wgmma GEMM must run here: an sm_90 device, a build with its sm_90a code, and not
 * switched off (KD_CUDA_WGMMA=0). Decided from the device, not from kd_cuda_has_wgmma(), whose 0 is one of
 * the ways the kernel could silently never run. */
static inline int gt_wgmma_expected(void)
{
    kd_cuda_device_info info;
    if (kd_cuda_device_query(&info) != KD_OK) gt_die("kd_cuda_device_query");
    const char *e = getenv("KD_CUDA_WGMMA");
    return info.major == 9 && info.minor == 0 && kd_cuda_wgmma_built() && !(e && strcmp(e, "0") == 0);
}

/* After kd_cuda_gemm_counts_reset() and n bf16 GEMMs meant for the wgmma kernel (K-major, 16-byte rows, or
 * packed so by a table): where it is expected, every one ran it and none fell back; elsewhere none ran
 * it. One line starting "wgmma:" says what ran. */
static inline void gt_check_wgmma_ran(uint64_t n, const char *what)
{
    kd_cuda_gemm_counts c;
    kd_cuda_gemm_counts_get(&c);
    const int expected = gt_wgmma_expected();
    printf("wgmma: %s: %llu of %llu GEMMs on the wgmma kernel (%s), %llu fallbacks%s%s%s\n", what,
           (unsigned long long)c.wgmma, (unsigned long long)n, expected ? "required on this sm_90 device" : "not expected here",
           (unsigned long long)c.wgmma_fallbacks, c.fallback_reason[0] ? " (last: " : "", c.fallback_reason,
           c.fallback_reason[0] ? ")" : "");
    if (expected) {
        CHECK(kd_cuda_has_wgmma(), "%s: sm_90 device, but kd_cuda_has_wgmma() is 0: %s", what, kd_cuda_wgmma_unavailable());
        CHECK(c.wgmma == n && c.wgmma_fallbacks == 0, "%s: %llu of %llu GEMMs ran the wgmma kernel, %llu fell back (last "
              "reason: %s)", what, (unsigned long long)c.wgmma, (unsigned long long)n, (unsigned long long)c.wgmma_fallbacks,
              c.fallback_reason[0] ? c.fallback_reason : "none recorded");
    } else {
        CHECK(c.wgmma == 0, "%s: %llu GEMMs ran the wgmma kernel where it cannot run (%s)", what,
              (unsigned long long)c.wgmma, kd_cuda_wgmma_unavailable());
    }
}

/* f32 tolerance for a value that is a reduction of length n (rounding grows like sqrt(n)). */
static inline double gt_tol(int64_t n) { return FLT_EPSILON * (16.0 + 4.0 * sqrt((double)n)); }

#endif
