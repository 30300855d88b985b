/* test/kernels/test_dropout.c — the fast dropout kernels against the reference, table by table: the
 * results must be bit-identical (the same Philox keep decisions, the same double arithmetic rounded
 * once), over lengths around the 32/64-element chunks, counter offsets that do not start on a Philox
 * block or that carry into the counter's high word, p = 0, 0.1, 0.5, 0.9, 1, overwrite (output poisoned
 * with NaN) and accumulate, 1 and 3 threads; guards around the output. NaN and Inf inputs must come
 * through where kept. The keep-scale fillers attention uses (kd_keep_scale_*) against kd_rng_keep. */
#include "test/kernels/op_case.h"
#include "kernels/rng.h"

static const int64_t k_n[] = { 1, 3, 4, 7, 31, 32, 33, 63, 64, 65, 100, 129, 1000, 4099 };
static const uint64_t k_off[] = { 0, 1, 2, 3, 5, 29, 1000003, (1ull << 34) - 37, 0xFFFFFFFFFFFFF000ull };
static const double k_p[] = { 0.1, 0.5, 0.0, 0.9, 1.0 };
#define LEN(a) ((int)(sizeof a / sizeof a[0]))

static int same_bits(float a, float b) { return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0; }

static void test_case(const kd_kernels *t, int64_t n, uint64_t off, double p, uint64_t seed, int acc, int nth)
{
    float *x = malloc((size_t)n * sizeof *x), *want = malloc((size_t)n * sizeof *x), *o0 = malloc((size_t)n * sizeof *x);
    if (!x || !want || !o0) abort();
    oc_fill_f32(x, n, -3, 3);
    oc_fill_f32(o0, n, -1, 1);
    if (n > 10) {
        x[3] = NAN;
        x[5] = INFINITY;
        x[n - 2] = -0.0f;
        o0[n - 2] = -0.0f;
    }
    kd_dropout_args d = { .n = n, .p = p, .seed = seed, .offset = off, .accumulate = acc, .x = x, .out = want };
    for (int64_t i = 0; i < n; i++) want[i] = acc ? o0[i] : NAN;
    kd_kernels_ref_f32()->dropout(&d, 0, 1);
    oc_fbuf got = oc_falloc(n);
    for (int64_t i = 0; i < n; i++) got.p[i] = acc ? o0[i] : NAN;
    d.out = got.p;
    OC_RUN(t->dropout, &d, nth);
    int64_t bad = 0, first = -1, kept = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!same_bits(got.p[i], want[i]) && bad++ == 0) first = i;
        kept += kd_rng_keep(seed, off + (uint64_t)i, (float)p);
    }
    CHECK(bad == 0, "%s dropout n=%lld off=%llu p=%g acc=%d nth=%d: %lld differ, first [%lld] got %.9g want %.9g",
          t->name, (long long)n, (unsigned long long)off, p, acc, nth, (long long)bad, (long long)first,
          first >= 0 ? (double)got.p[first] : 0.0, first >= 0 ? (double)want[first] : 0.0);
    const int64_t wild = oc_fguard_damage(&got);
    CHECK(wild == 0, "%s dropout n=%lld: wrote outside its output", t->name, (long long)n);
    char what[96];
    snprintf(what, sizeof what, "%-12s dropout n=%lld off=%llu p=%g acc=%d nth=%d", t->name, (long long)n,
             (unsigned long long)off, p, acc, nth);
    oc_report_exact(what, n, bad + wild);
    /* The reference itself: p = 0 keeps all, p = 1 none; a long run keeps about 1 - p. */
    if (p == 0.0) CHECK(kept == n, "p = 0 kept %lld of %lld", (long long)kept, (long long)n);
    if (p == 1.0) CHECK(kept == 0, "p = 1 kept %lld of %lld", (long long)kept, (long long)n);
    if (n >= 1000 && p > 0 && p < 1) {
        double f = (double)kept / (double)n, sd = sqrt(p * (1 - p) / (double)n);
        CHECK(fabs(f - (1 - p)) < 5 * sd, "kept fraction %.4f, expected %.4f", f, 1 - p);
    }
    oc_ffree(&got);
    free(x);
    free(want);
    free(o0);
}

/* keep[i] must be (float)(1/(1-p)) exactly where kd_rng_keep keeps counter c0 + i, else 0. */
static void test_keep(const char *name, void (*fill)(uint64_t, uint64_t, int64_t, float, float *), int runs)
{
    if (!runs) {
        printf("skip: %s (this CPU cannot run it)\n", name);
        return;
    }
    for (int ni = 0; ni < LEN(k_n); ni++)
        for (int oi = 0; oi < LEN(k_off) - 1; oi++)   /* not the offset that wraps past 2^64 */
            for (int pi = 0; pi < LEN(k_p); pi++) {
                const int64_t n = k_n[ni];
                const float p = (float)k_p[pi], ks = p < 1.0f ? (float)(1.0 / (1.0 - (double)p)) : 0.0f;
                oc_fbuf got = oc_falloc(n);
                fill(99, k_off[oi], n, p, got.p);
                int64_t bad = 0, first = -1;
                for (int64_t i = 0; i < n; i++) {
                    const float want = kd_rng_keep(99, k_off[oi] + (uint64_t)i, p) ? ks : 0.0f;
                    if (memcmp(&got.p[i], &want, sizeof want) != 0 && bad++ == 0) first = i;
                }
                CHECK(bad == 0, "%s n=%lld off=%llu p=%g: %lld differ, first [%lld]", name, (long long)n,
                      (unsigned long long)k_off[oi], (double)p, (long long)bad, (long long)first);
                const int64_t wild = oc_fguard_damage(&got);
                CHECK(wild == 0, "%s n=%lld: wrote outside keep", name, (long long)n);
                char what[96];
                snprintf(what, sizeof what, "%-12s dropout keep n=%lld off=%llu p=%g", name, (long long)n,
                         (unsigned long long)k_off[oi], (double)p);
                oc_report_exact(what, n, bad + wild);
                oc_ffree(&got);
            }
}

int main(void)
{
    OC_FAST_TABLES_OR_SKIP(tabs, ntab, 7);
    for (int ti = 0; ti < ntab; ti++)
        for (int ni = 0; ni < LEN(k_n); ni++)
            for (int oi = 0; oi < LEN(k_off); oi++)
                for (int pi = 0; pi < LEN(k_p); pi++)
                    for (int acc = 0; acc <= 1; acc++)
                        for (int nth = 1; nth <= 3; nth += 2)
                            test_case(tabs[ti], k_n[ni], k_off[oi], k_p[pi], 0x1234567890ABCDEFull + (uint64_t)oi, acc, nth);
    kd_cpu_features f = kd_cpu_detect();
#ifdef KD_HAVE_AVX2
    test_keep("kd_keep_scale_avx2", kd_keep_scale_avx2, f.avx2 && f.fma);
#endif
#ifdef KD_HAVE_AVX512
    test_keep("kd_keep_scale_avx512", kd_keep_scale_avx512,
              f.avx2 && f.fma && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq);
#endif
    (void)f;
    return kd_test_finish("test_dropout");
}
