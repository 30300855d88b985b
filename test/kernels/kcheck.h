/* test/kernels/kcheck.h — helpers shared by the kernel tests: the tables under test, seeded random
 * fills, guarded output buffers (canary words around and between rows), the no-barrier thread runner,
 * and the tolerance rule, written once.
 *
 * Tolerance: a float result computed from a reduction of length n differs from the double-precision
 * reference (rounded once to float) by at most about (n + KC_SLACK) * 2^-24 * mag, where mag is the sum
 * of the magnitudes of the terms (|alpha| sum |a||b| + |beta c| + |bias| for GEMM); element-wise
 * kernels use n = a few ulp of their own math. */
#ifndef KD_KCHECK_H
#define KD_KCHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/kernels.h"
#include "test/testutil.h"

#define KC_U 5.9604644775390625e-08 /* 2^-24, the unit roundoff of f32 */
#define KC_SLACK 4.0
#define KC_GUARD 64                  /* canary floats before and after each output */
static const uint32_t kc_canary_bits = 0x7fc0deadu; /* a NaN with a payload no kernel produces */

/* Tolerance for a result whose terms have magnitude `mag`, reduced over n terms. */
static inline double kc_tol(double n, double mag) { return (n + KC_SLACK) * KC_U * mag + 1e-37; }

/* xorshift64*: reproducible inputs, uniform in [lo, hi). */
static uint64_t kc_state = 0x9E3779B97F4A7C15ull;
static inline void kc_seed(uint64_t s) { kc_state = s * 0x9E3779B97F4A7C15ull + 1; }
static inline double kc_uniform(double lo, double hi)
{
    kc_state ^= kc_state >> 12;
    kc_state ^= kc_state << 25;
    kc_state ^= kc_state >> 27;
    uint64_t r = kc_state * 0x2545F4914F6CDD1Dull;
    return lo + (hi - lo) * (double)(r >> 11) * (1.0 / 9007199254740992.0);
}
static inline void kc_fill(float *x, int64_t n, double lo, double hi)
{
    for (int64_t i = 0; i < n; i++) x[i] = (float)kc_uniform(lo, hi);
}
static inline float kc_canary(void)
{
    float f;
    memcpy(&f, &kc_canary_bits, sizeof f);
    return f;
}
static inline int kc_is_canary(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u == kc_canary_bits;
}

/* A buffer of n floats with KC_GUARD canary floats on each side; .p points at the first usable one. */
typedef struct kc_buf { float *base, *p; int64_t n; } kc_buf;
static inline kc_buf kc_alloc(int64_t n)
{
    kc_buf b;
    b.n = n;
    b.base = malloc((size_t)(n + 2 * KC_GUARD) * sizeof(float));
    if (!b.base) abort();
    b.p = b.base + KC_GUARD;
    for (int64_t i = 0; i < n + 2 * KC_GUARD; i++) b.base[i] = kc_canary();
    return b;
}
/* Number of canary floats on either side that were overwritten. */
static inline int64_t kc_guard_damage(const kc_buf *b)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < KC_GUARD; i++) bad += !kc_is_canary(b->base[i]);
    for (int64_t i = 0; i < KC_GUARD; i++) bad += !kc_is_canary(b->p[b->n + i]);
    return bad;
}
static inline void kc_free(kc_buf *b) { free(b->base); b->base = b->p = NULL; }

/* The fast tables this CPU runs; prints a line for each it skips. */
static inline int kc_tables(const kd_kernels **out)
{
    static const char *names[] = { "avx2", "avx512" };
    int n = 0;
    for (int i = 0; i < 2; i++) {
        const kd_kernels *t = kd_kernels_cpu_f32(names[i]);
        if (t) out[n++] = t;
        else printf("skip: table %s (not built or this CPU cannot run it)\n", names[i]);
    }
    return n;
}

/* Run a kernel as nth threads would: ith = 0..nth-1 one after another (valid under the no-barrier rule). */
#define KC_RUN(fn, args, nth)                                                                        \
    do {                                                                                             \
        for (int ith_ = 0; ith_ < (nth); ith_++) (fn)((args), ith_, (nth));                          \
    } while (0)

/* Compare got[0..n) with want[0..n) under kc_tol(red, mag[i]) (mag NULL: |want|); NaN in want must be
 * NaN in got; atol (may be NULL) adds a known absolute error of the reference itself. One CHECK per call, naming the first mismatch; returns the number of mismatches. */
static inline int64_t kc_compare_atol(const char *what, const float *got, const float *want, const double *mag,
                                      const double *atol, int64_t n, double red, int nth)
{
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++) {
        double w = want[i], g = got[i];
        int ok = isnan(w) ? isnan(g) : isinf(w) ? g == w : kd_close(g, w, kc_tol(red, mag ? mag[i] : fabs(w)) + (atol ? atol[i] : 0.0), 0.0);
        if (!ok && bad++ == 0) first = i;
    }
    CHECK(bad == 0, "%s (nth=%d): %lld of %lld wrong, first [%lld] got %.9g want %.9g", what, nth, (long long)bad,
          (long long)n, (long long)first, first >= 0 ? (double)got[first] : 0.0, first >= 0 ? (double)want[first] : 0.0);
    return bad;
}

static inline int64_t kc_compare(const char *what, const float *got, const float *want, const double *mag, int64_t n,
                                 double red, int nth)
{
    return kc_compare_atol(what, got, want, mag, NULL, n, red, nth);
}

#endif
