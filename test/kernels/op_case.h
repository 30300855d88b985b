/* test/kernels/op_case.h — the one harness of the kernel tests, CPU and CUDA alike (in the manner of
 * ggml's test-backend-ops): the kernel tables this machine has, buffers that live where a table computes
 * (host or device) in the table's dtype with guard regions and NaN poison, exact (f64) reference values,
 * the tolerance rule, written once, and one report line per op case.
 *
 * A per-op test is a table of cases and a function that runs one kernel table over them; oc_main() runs
 * it on every table: ref, avx2, avx512 (when this CPU runs them) and the bf16 tables of each. Compiled
 * with -DOC_CUDA (test/gpu/meson.build) the same program runs the CUDA f32 and bf16 tables instead and
 * exits 77 without a device: adding a backend adds no test code.
 *
 * Every value on the host is a double: inputs are drawn, then rounded to the dtype the table stores
 * them in, so the f64 reference (kd_kernels_ref_f64) sees exactly what the kernel sees.
 *
 * Tolerance for a result reduced over n terms whose magnitudes sum to mag (|alpha| sum |a||b| + |beta c|
 * + ...), measured against the exact value:
 *   f32 storage:  (n + OC_SLACK) 2^-24 mag
 *   bf16 storage: the f32 error above plus one bf16 step, 2^-7 |want| (the f32 value is rounded once)
 * Fields that stay f32 in bf16 tables (LayerNorm's gamma, beta, mean, rstd, dgamma, dbeta; attention's
 * mask and lse) use the f32 rule. Element-wise kernels use n = a few ulp of their own math. */
#ifndef KD_OP_CASE_H
#define KD_OP_CASE_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/bf16.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/kernels.h"
#include "test/testutil.h"
#ifdef OC_CUDA
#include "engine/status.h"
#include "kernels/cuda/cuda_runtime.h"
#endif

#define OC_U 5.9604644775390625e-08 /* 2^-24, the unit roundoff of f32 */
#define OC_SLACK 4.0
#define OC_BF16_STEP (1.0 / 128.0)  /* a bf16 step is at most 2^-7 |value| */
#define OC_GUARD 64                 /* canary elements before and after each buffer */
static const uint32_t oc_canary_bits = 0x7fc0deadu; /* a NaN with a payload no kernel produces */
static const kd_bf16 oc_canary_bf16 = 0x7fa5;       /* a signalling-NaN pattern no kernel writes */
static const int32_t oc_canary_i32 = 0x7fc0dead;

/* Tolerance (f32 rule) for a result whose terms have magnitude `mag`, reduced over n terms. */
static inline double oc_tol(double n, double mag) { return (n + OC_SLACK) * OC_U * mag + 1e-37; }

/* ---------------------------------------------------------------- inputs */

/* xorshift64*: reproducible inputs, uniform in [lo, hi). */
static uint64_t oc_state = 0x9E3779B97F4A7C15ull;
static inline void oc_seed(uint64_t s) { oc_state = s * 0x9E3779B97F4A7C15ull + 1; }
static inline double oc_uniform(double lo, double hi)
{
    oc_state ^= oc_state >> 12;
    oc_state ^= oc_state << 25;
    oc_state ^= oc_state >> 27;
    uint64_t r = oc_state * 0x2545F4914F6CDD1Dull;
    return lo + (hi - lo) * (double)(r >> 11) * (1.0 / 9007199254740992.0);
}
static inline void oc_fill_f32(float *x, int64_t n, double lo, double hi)
{
    for (int64_t i = 0; i < n; i++) x[i] = (float)oc_uniform(lo, hi);
}
static inline float oc_canary(void)
{
    float f;
    memcpy(&f, &oc_canary_bits, sizeof f);
    return f;
}
static inline int oc_is_canary(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u == oc_canary_bits;
}
static inline double *oc_dalloc(int64_t n)
{
    double *p = calloc((size_t)(n > 0 ? n : 1), sizeof *p);
    if (!p) abort();
    return p;
}
static inline double *oc_ddup(const double *x, int64_t n)
{
    double *p = oc_dalloc(n);
    memcpy(p, x, (size_t)n * sizeof *p);
    return p;
}

/* Run a kernel as nth threads would: ith = 0..nth-1 one after another (valid under the no-barrier rule).
 * A CUDA table runs with nth = 1 (it ignores ith/nth). */
#define OC_RUN(fn, args, nth)                                                                        \
    do {                                                                                             \
        for (int ith_ = 0; ith_ < (nth); ith_++) (fn)((args), ith_, (nth));                          \
    } while (0)

static inline void oc_die(const char *what)
{
#ifdef OC_CUDA
    fprintf(stderr, "FAIL: %s: %s\n", what, kd_last_error());
#else
    fprintf(stderr, "FAIL: %s\n", what);
#endif
    exit(1);
}

/* ---------------------------------------------------------------- tables */

typedef struct oc_table {
    const kd_kernels *k;
    char label[24];   /* "avx2", "avx2-bf16", "cuda", ... */
    int bf16;         /* activations stored in bf16 (kernels/kernels.h's bf16 conventions) */
    int device;       /* buffers in device memory */
    int nth_max;      /* thread counts tried: 1, 3, ... up to this */
} oc_table;

#define OC_MAX_TABLES 8

static inline void oc_add_table(oc_table *out, int *n, const kd_kernels *k, const char *name, int bf16,
                                int device)
{
    if (!k) {
        printf("skip: table %s (not built or this machine cannot run it)\n", name);
        return;
    }
    for (int i = 0; i < *n; i++)
        if (out[i].k == k) return;
    oc_table *t = &out[(*n)++];
    t->k = k;
    snprintf(t->label, sizeof t->label, "%s", name);
    t->bf16 = bf16;
    t->device = device;
    t->nth_max = device ? 1 : 3;
}

/* Every table this program tests: the CPU's f32 and bf16 tables, or (OC_CUDA) the CUDA tables, after
 * initialising the device; exits 77 when there is none. */
static inline int oc_tables(oc_table *out)
{
    int n = 0;
#ifdef OC_CUDA
    if (!kd_cuda_available()) {
        printf("no CUDA device present, skipping\n");
        exit(KD_TEST_SKIP);
    }
    if (kd_cuda_init(0) != KD_OK) oc_die("kd_cuda_init");
    oc_add_table(out, &n, kd_kernels_cuda_f32(), "cuda", 0, 1);
    oc_add_table(out, &n, kd_kernels_cuda_bf16(), "cuda-bf16", 1, 1);
#else
    oc_add_table(out, &n, kd_kernels_ref_f32(), "ref", 0, 0);
    oc_add_table(out, &n, kd_kernels_cpu_f32("avx2"), "avx2", 0, 0);
    oc_add_table(out, &n, kd_kernels_cpu_f32("avx512"), "avx512", 0, 0);
    oc_add_table(out, &n, kd_kernels_ref_bf16(), "ref-bf16", 1, 0);
    oc_add_table(out, &n, kd_kernels_cpu_bf16("avx2"), "avx2-bf16", 1, 0);
    oc_add_table(out, &n, kd_kernels_cpu_bf16("avx512"), "avx512-bf16", 1, 0);
#endif
    return n;
}

/* The fast f32 CPU tables (for the tests that check them against the f32 reference); prints a line for
 * each it skips. */
static inline int oc_fast_tables(const kd_kernels **out)
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

/* The start of a fast-table test's main: `tabs`/`ntab` declared and filled, the run skipped (exit 77) when the
 * CPU runs none, the generator seeded. */
#define OC_FAST_TABLES_OR_SKIP(tabs, ntab, seed)                                                                \
    const kd_kernels *tabs[2];                                                                                  \
    int ntab = oc_fast_tables(tabs);                                                                            \
    if (ntab == 0) {                                                                                            \
        printf("no fast table runs on this CPU\n");                                                            \
        return KD_TEST_SKIP;                                                                                    \
    }                                                                                                           \
    oc_seed(seed)

/* True when the table has the entry; otherwise says so (bf16 tables have no embedding, cross-entropy,
 * KL or AdamW). */
static inline int oc_has(const oc_table *t, int present, const char *what)
{
    if (!present) printf("skip: %s on %s (no such entry in this table)\n", what, t->label);
    return present;
}

/* ---------------------------------------------------------------- the case report */

/* One line per case: what was checked, on which table, and the worst error as a fraction of its
 * tolerance (> 1 fails). */
static struct {
    int open;
    char name[192];
    double worst;
    int64_t bad, values;
} oc_cur;

static inline void oc_begin(const oc_table *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char what[160];
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(oc_cur.name, sizeof oc_cur.name, "%-12s %s", t ? t->label : "", what);
    oc_cur.open = 1;
    oc_cur.worst = 0.0;
    oc_cur.bad = oc_cur.values = 0;
}

static inline void oc_note(double ratio, int64_t bad, int64_t values)
{
    if (!(ratio <= oc_cur.worst)) oc_cur.worst = ratio;   /* NaN counts as the worst */
    oc_cur.bad += bad;
    oc_cur.values += values;
}

static inline void oc_end(void)
{
    printf("%-64s %9lld values  worst %.3g of tol  %s\n", oc_cur.name, (long long)oc_cur.values, oc_cur.worst,
           oc_cur.bad ? "FAIL" : "ok");
    oc_cur.open = 0;
}

/* ---------------------------------------------------------------- buffers */

enum { OC_ACT, OC_F32, OC_I32 };   /* stored in the table's dtype; always f32; int32 */

/* n values with OC_GUARD canaries on each side, in the table's memory. h holds the values the kernel is
 * given (rounded to the storage dtype), got what oc_read() brought back; ids the OC_I32 values. */
typedef struct oc_buf {
    int kind, bf16, device;
    int64_t n;
    size_t esize;
    double *h, *got;
    int32_t *ids;
    unsigned char *stage;   /* host image of the storage, guards included */
    void *mem;              /* the storage (== stage on the host) */
} oc_buf;

static inline double oc_round_to(const oc_buf *b, double x)
{
    if (b->kind == OC_I32) return x;
    if (b->bf16) return (double)kd_bf16_to_f32(kd_f32_to_bf16((float)x));
    return (double)(float)x;
}

static inline oc_buf oc_new(const oc_table *t, int kind, int64_t n)
{
    oc_buf b;
    memset(&b, 0, sizeof b);
    b.kind = kind;
    b.bf16 = kind == OC_ACT && t->bf16;
    b.device = t->device;
    b.n = n;
    b.esize = b.bf16 ? 2 : 4;
    b.h = oc_dalloc(n);
    b.got = oc_dalloc(n);
    b.ids = calloc((size_t)(n > 0 ? n : 1), sizeof *b.ids);
    size_t bytes = (size_t)(n + 2 * OC_GUARD) * b.esize;
    b.stage = malloc(bytes);
    if (!b.ids || !b.stage) abort();
    b.mem = b.stage;
#ifdef OC_CUDA
    if (b.device && kd_cuda_malloc(&b.mem, bytes) != KD_OK) oc_die("kd_cuda_malloc");
#endif
    return b;
}

static inline void oc_free(oc_buf *b)
{
#ifdef OC_CUDA
    if (b->device) kd_cuda_free(b->mem);
#endif
    free(b->h); free(b->got); free(b->ids); free(b->stage);
    memset(b, 0, sizeof *b);
}

/* Round h to what the storage holds (call after writing h by hand). */
static inline void oc_round(oc_buf *b)
{
    for (int64_t i = 0; i < b->n; i++) b->h[i] = oc_round_to(b, b->h[i]);
}
static inline void oc_fill(oc_buf *b, double lo, double hi)
{
    for (int64_t i = 0; i < b->n; i++) b->h[i] = oc_round_to(b, oc_uniform(lo, hi));
}
static inline oc_buf oc_new_fill(const oc_table *t, int kind, int64_t n, double lo, double hi)
{
    oc_buf b = oc_new(t, kind, n);
    oc_fill(&b, lo, hi);
    return b;
}

static inline void oc_put(oc_buf *b, int64_t i, double v)
{
    unsigned char *p = b->stage + (size_t)i * b->esize;
    if (b->kind == OC_I32) {
        int32_t x = (int32_t)v;
        memcpy(p, &x, 4);
    } else if (b->bf16) {
        kd_bf16 x = kd_f32_to_bf16((float)v);
        memcpy(p, &x, 2);
    } else {
        float x = (float)v;
        memcpy(p, &x, 4);
    }
}
static inline double oc_get(const oc_buf *b, int64_t i)
{
    const unsigned char *p = b->stage + (size_t)i * b->esize;
    if (b->kind == OC_I32) {
        int32_t x;
        memcpy(&x, p, 4);
        return (double)x;
    }
    if (b->bf16) {
        kd_bf16 x;
        memcpy(&x, p, 2);
        return (double)kd_bf16_to_f32(x);
    }
    float x;
    memcpy(&x, p, 4);
    return (double)x;
}
static inline int oc_guard_intact(const oc_buf *b, int64_t i)
{
    const unsigned char *p = b->stage + (size_t)i * b->esize;
    if (b->bf16) return memcmp(p, &oc_canary_bf16, 2) == 0;
    if (b->kind == OC_I32) return memcmp(p, &oc_canary_i32, 4) == 0;
    return memcmp(p, &oc_canary_bits, 4) == 0;
}

/* Write the storage: canaries around, h inside (or NaN everywhere inside when poison: an output the
 * kernel overwrites, so an element it forgets shows up); returns the pointer the kernel gets. OC_I32
 * buffers take their values from ids. */
static inline void *oc_load(oc_buf *b, int poison)
{
    const int64_t total = b->n + 2 * OC_GUARD;
    for (int64_t i = 0; i < total; i++) {
        unsigned char *p = b->stage + (size_t)i * b->esize;
        if (b->bf16) memcpy(p, &oc_canary_bf16, 2);
        else if (b->kind == OC_I32) memcpy(p, &oc_canary_i32, 4);
        else memcpy(p, &oc_canary_bits, 4);
    }
    for (int64_t i = 0; i < b->n; i++)
        oc_put(b, OC_GUARD + i, b->kind == OC_I32 ? (double)b->ids[i] : poison ? NAN : b->h[i]);
#ifdef OC_CUDA
    if (b->device && kd_cuda_h2d(b->mem, b->stage, (size_t)total * b->esize) != KD_OK) oc_die("kd_cuda_h2d");
#endif
    return (unsigned char *)b->mem + (size_t)OC_GUARD * b->esize;
}

/* Bring the storage back into got; a changed canary is an out-of-bounds write (a failed check). */
static inline const double *oc_read(oc_buf *b, const char *what)
{
    const int64_t total = b->n + 2 * OC_GUARD;
#ifdef OC_CUDA
    if (b->device) {
        if (kd_cuda_sync() != KD_OK) oc_die(what);
        if (kd_cuda_d2h(b->stage, b->mem, (size_t)total * b->esize) != KD_OK) oc_die("kd_cuda_d2h");
    }
#endif
    int64_t bad = 0;
    for (int64_t i = 0; i < OC_GUARD; i++) bad += !oc_guard_intact(b, i) + !oc_guard_intact(b, total - 1 - i);
    CHECK(bad == 0, "%s: %lld guard values overwritten (out-of-bounds write)", what, (long long)bad);
    if (bad && oc_cur.open) oc_note(INFINITY, bad, 0);
    for (int64_t i = 0; i < b->n; i++) b->got[i] = oc_get(b, OC_GUARD + i);
    return b->got;
}

/* ---------------------------------------------------------------- comparison */

/* Compare got (read back) with the exact want under the tolerance of b's dtype for reduction length red
 * and magnitudes mag (NULL: |want|), plus atol[i] (may be NULL: a known absolute error of the reference
 * itself). red < 0: must equal want exactly (an output left alone). NaN in want must be NaN in got, Inf
 * the same Inf; NaN in got where want is a number fails. One CHECK per call, naming the first mismatch;
 * returns the number of mismatches. */
static inline int64_t oc_compare(const char *what, int nth, const oc_buf *b, const double *want, const double *mag,
                                 const double *atol, double red)
{
    int64_t bad = 0, first = -1;
    double worst = 0.0;
    for (int64_t i = 0; i < b->n; i++) {
        const double w = want[i], g = b->got[i];
        double tol = 0.0;
        if (red >= 0) {
            const double m = mag ? mag[i] : fabs(w);
            tol = oc_tol(red, m) + (atol ? atol[i] : 0.0) + (b->bf16 ? OC_BF16_STEP * fabs(w) : 0.0);
        }
        int ok;
        double r = 0.0;
        if (isnan(w)) ok = isnan(g);
        else if (isinf(w) || red < 0) ok = g == w;
        else {
            ok = fabs(g - w) <= tol;   /* false for a NaN got */
            r = fabs(g - w) / tol;
        }
        if (!ok) r = INFINITY;
        if (r > worst) worst = r;
        if (!ok && bad++ == 0) first = i;
    }
    CHECK(bad == 0, "%s (nth=%d): %lld of %lld wrong, first [%lld] got %.9g want %.9g", what, nth, (long long)bad,
          (long long)b->n, (long long)first, first >= 0 ? b->got[first] : 0.0, first >= 0 ? want[first] : 0.0);
    if (oc_cur.open) oc_note(worst, bad, b->n);
    else printf("%-64s %9lld values  worst %.3g of tol  %s\n", what, (long long)b->n, worst, bad ? "FAIL" : "ok");
    return bad;
}

/* The report line of a bit-exact comparison (dropout, embedding): n values, bad of them different. */
static inline void oc_report_exact(const char *what, int64_t n, int64_t bad)
{
    printf("%-64s %9lld values  exact  %s\n", what, (long long)n, bad ? "FAIL" : "ok");
}

/* ---------------------------------------------------------------- float buffers (f32 tests) */

/* A host buffer of n floats with OC_GUARD canary floats on each side; .p points at the first usable one
 * (the tests that compare fast f32 tables against the f32 reference). */
typedef struct oc_fbuf { float *base, *p; int64_t n; } oc_fbuf;
static inline oc_fbuf oc_falloc(int64_t n)
{
    oc_fbuf b;
    b.n = n;
    b.base = malloc((size_t)(n + 2 * OC_GUARD) * sizeof(float));
    if (!b.base) abort();
    b.p = b.base + OC_GUARD;
    for (int64_t i = 0; i < n + 2 * OC_GUARD; i++) b.base[i] = oc_canary();
    return b;
}
/* Number of canary floats on either side that were overwritten. */
static inline int64_t oc_fguard_damage(const oc_fbuf *b)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < OC_GUARD; i++) bad += !oc_is_canary(b->base[i]);
    for (int64_t i = 0; i < OC_GUARD; i++) bad += !oc_is_canary(b->p[b->n + i]);
    return bad;
}
static inline void oc_ffree(oc_fbuf *b) { free(b->base); b->base = b->p = NULL; }

/* oc_compare for float arrays: got[0..n) against want[0..n) (f32 rule). */
static inline int64_t oc_compare_f32_atol(const char *what, const float *got, const float *want, const double *mag,
                                          const double *atol, int64_t n, double red, int nth)
{
    int64_t bad = 0, first = -1;
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double w = want[i], g = got[i];
        const double tol = oc_tol(red, mag ? mag[i] : fabs(w)) + (atol ? atol[i] : 0.0);
        int ok;
        double r = 0.0;
        if (isnan(w)) ok = isnan(g);
        else if (isinf(w)) ok = g == w;
        else {
            ok = fabs(g - w) <= tol;
            r = fabs(g - w) / tol;
        }
        if (!ok) r = INFINITY;
        if (r > worst) worst = r;
        if (!ok && bad++ == 0) first = i;
    }
    CHECK(bad == 0, "%s (nth=%d): %lld of %lld wrong, first [%lld] got %.9g want %.9g", what, nth, (long long)bad,
          (long long)n, (long long)first, first >= 0 ? (double)got[first] : 0.0, first >= 0 ? (double)want[first] : 0.0);
    if (oc_cur.open) oc_note(worst, bad, n);
    else printf("%-52s nth=%d %9lld values  worst %.3g of tol  %s\n", what, nth, (long long)n, worst,
                bad ? "FAIL" : "ok");
    return bad;
}
static inline int64_t oc_compare_f32(const char *what, const float *got, const float *want, const double *mag,
                                     int64_t n, double red, int nth)
{
    return oc_compare_f32_atol(what, got, want, mag, NULL, n, red, nth);
}

/* ---------------------------------------------------------------- main */

/* Run `run` on every table; the closing line and exit code (non-zero on any mismatch). */
static inline int oc_main(const char *prog, uint64_t seed, void (*run)(const oc_table *t))
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* report lines and failures (stderr) in order */
    oc_table tabs[OC_MAX_TABLES];
    const int n = oc_tables(tabs);
    printf("%s: tables", prog);
    for (int i = 0; i < n; i++) printf(" %s", tabs[i].label);
    printf("; reference ref f64\n");
    CHECK(n > 0, "%s: no kernel table to test", prog);
    for (int i = 0; i < n; i++) {
        oc_seed(seed);   /* every table sees the same inputs */
        run(&tabs[i]);
    }
#ifdef OC_CUDA
    kd_cuda_shutdown();
#endif
    return kd_test_finish(prog);
}

/* Prepacked B (kernels.h: gemm_pack_b, kd_gemm_args.b_packed): pack op(B) of g (batch item 0) with
 * `pack_nth` threads into a NaN-poisoned buffer with a guard after it, run t's gemm on it with nth threads
 * into `c` (initialised by the caller exactly as for the unpacked run whose output is `unpacked`), and
 * require every bit of the celem elements of c (padding and canaries included) to equal the unpacked run's:
 * the packed path must be the same arithmetic, not merely close. Returns 1 when t has a packed form. */
static inline int oc_check_packed_gemm(const kd_kernels *t, const kd_gemm_args *g, int pack_nth, int nth,
                                       void *c, const void *unpacked, size_t celem, size_t esize, const char *what)
{
    if (!t->gemm_pack_b || !t->gemm_packed_b_size) return 0;
    const size_t bytes = t->gemm_packed_b_size(g->k, g->n), guard = 256;
    unsigned char *pk = aligned_alloc(64, (bytes + guard + 63) & ~(size_t)63);
    if (!pk) abort();
    memset(pk, 0xff, bytes + guard);   /* NaN as f32 and as bf16: a panel value left unwritten would show */
    kd_gemm_pack_args pa = { .trans_b = g->trans_b, .k = g->k, .n = g->n, .b = g->b, .ldb = g->ldb, .dst = pk };
    OC_RUN(t->gemm_pack_b, &pa, pack_nth);
    size_t spoilt = 0;
    for (size_t i = 0; i < guard; i++) spoilt += pk[bytes + i] != 0xff;
    kd_gemm_args gp = *g;
    gp.c = c;
    gp.b_packed = pk;
    OC_RUN(t->gemm, &gp, nth);
    size_t differ = 0, first = 0;
    for (size_t i = 0; i < celem; i++)
        if (memcmp((const char *)c + i * esize, (const char *)unpacked + i * esize, esize) != 0 && differ++ == 0) first = i;
    CHECK(spoilt == 0, "%s %s: gemm_pack_b wrote past its %zu bytes", t->name, what, bytes);
    CHECK(differ == 0, "%s %s packed B (packed on %d threads, gemm on %d): %zu elements differ in their bits from "
          "the unpacked product, first at %zu", t->name, what, pack_nth, nth, differ, first);
    printf("%-12s %s packed B (pack nth=%d, gemm nth=%d): bit-equal to the unpacked product  %s\n", t->name, what,
           pack_nth, nth, differ || spoilt ? "FAIL" : "ok");
    free(pk);
    return 1;
}

#endif
