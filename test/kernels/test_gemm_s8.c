/* test/kernels/test_gemm_s8.c — the int8 linear (kd_gemm_s8_args): every fast kernel this CPU runs (AVX2
 * VPMADDWD, AVX-512 VNNI VPDPBUSD) against the reference, bit for bit (both operands are in [-127, 127],
 * so the int32 sums are exact and the dequantization is the same fma), at awkward shapes (1, 7, 17, 33,
 * 65, 129: non-multiples of every tile, odd k), dynamic and static activation scales (with clipping),
 * with and without bias, padded leading dimensions, a row of zeros, 1 and 3 threads, canaries around and
 * between the rows of C. The reference itself is checked against the f32 product: the error stays within
 * the bound that rounding both operands to their int8 grids allows. The f32 tables' gemm_s8 entries are
 * run too (the one the engine calls). */
#include "test/kernels/op_case.h"

typedef void (*s8_fn)(const kd_gemm_s8_args *, int, int);

typedef struct impl { const char *name; s8_fn fn; kd_gemm_s8_pack_fn pack; } impl;

static int64_t mismatches(const float *got, const float *want, int64_t m, int64_t n, int64_t ldc, int64_t *fi, int64_t *fj)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            float g = got[i * ldc + j], w = want[i * ldc + j];
            if (!(g == w) && bad++ == 0) { *fi = i; *fj = j; }   /* NaN never equals */
        }
    return bad;
}

static void run_case(const impl *impls, int nimpl, int64_t m, int64_t n, int64_t k, int stat, int bias_on)
{
    const int64_t lda = k + 3, ldc = n + 5;
    float *A = malloc((size_t)(m * lda + 1) * sizeof *A), *W = malloc((size_t)(n * k + 1) * sizeof *W);
    float *bias = malloc((size_t)(n + 1) * sizeof *bias), *sw = malloc((size_t)(n + 1) * sizeof *sw);
    int8_t *qw = malloc((size_t)(n * k + 1));
    float *Cref = malloc((size_t)(m * ldc + 1) * sizeof *Cref);
    if (!A || !W || !bias || !sw || !qw || !Cref) abort();
    for (int64_t i = 0; i < m * lda; i++) A[i] = NAN;   /* the padding: reading it would show */
    float amax = 0.0f;
    for (int64_t i = 0; i < m; i++) {
        /* rows of different magnitudes, so per-row scales differ; one row of zeros */
        double r = 0.05 + 3.0 * oc_uniform(0, 1);
        for (int64_t p = 0; p < k; p++) A[i * lda + p] = i == m / 2 && m > 2 ? 0.0f : (float)oc_uniform(-r, r);
        for (int64_t p = 0; p < k; p++) amax = fmaxf(amax, fabsf(A[i * lda + p]));
    }
    oc_fill_f32(W, n * k, -0.2, 0.2);
    oc_fill_f32(bias, n, -1, 1);
    kd_quantize_s8_rows(n, k, W, k, qw, sw);
    /* static: a scale below the largest value, so the largest ones clip */
    float act_scale = stat ? (amax > 0 ? 0.6f * amax / 127.0f : 0.01f) : 0.0f;

    kd_gemm_s8_args g = { .m = m, .n = n, .k = k, .a = A, .lda = lda, .act_scale = act_scale, .w = qw,
                          .w_scale = sw, .bias = bias_on ? bias : NULL, .c = Cref, .ldc = ldc };
    for (int64_t i = 0; i < m * ldc; i++) Cref[i] = oc_canary();
    kd_gemm_s8_ref(&g, 0, 1);

    char what[160];
    /* The reference against the f32 product: with dynamic scales, |C - (A W^T + b)| <= sum_p (|a_p| dw_j +
     * |w_p| da_i + da_i dw_j) with da = sa / 2, dw = sw / 2 the half-steps of the two grids (+ f32 slack). */
    if (!stat) {
        int64_t bad = 0;
        double worst = 0;
        for (int64_t i = 0; i < m; i++) {
            float sa = 1.0f;
            float mx = 0.0f;
            for (int64_t p = 0; p < k; p++) mx = fmaxf(mx, fabsf(A[i * lda + p]));
            if (mx > 0) sa = mx / 127.0f;
            for (int64_t j = 0; j < n; j++) {
                double exact = bias_on ? bias[j] : 0.0, bound = 0, mag = fabs(exact);
                for (int64_t p = 0; p < k; p++) {
                    double a = A[i * lda + p], w = W[j * k + p];
                    exact += a * w;
                    mag += fabs(a * w);
                    bound += fabs(a) * sw[j] / 2 + fabs(w) * sa / 2 + (double)sa * sw[j] / 4;
                }
                bound += oc_tol((double)k, mag) + 1e-6 * mag;
                double got = Cref[i * ldc + j];
                if (!(fabs(got - exact) <= bound)) bad++;
                else if (bound > 0 && fabs(got - exact) / bound > worst) worst = fabs(got - exact) / bound;
            }
        }
        snprintf(what, sizeof what, "ref    m=%lld n=%lld k=%lld dynamic bias=%d vs f32", (long long)m, (long long)n,
                 (long long)k, bias_on);
        CHECK(bad == 0, "%s: %lld outside the quantization bound", what, (long long)bad);
        printf("%-64s worst %.3f of the int8 bound  %s\n", what, worst, bad ? "FAIL" : "ok");
    }

    for (int t = 0; t < nimpl; t++) {
        size_t bytes = impls[t].pack(n, k, qw, NULL);
        void *packed = malloc(bytes ? bytes : 1);
        if (!packed) abort();
        impls[t].pack(n, k, qw, packed);
        for (int nth = 1; nth <= 3; nth += 2) {
            oc_fbuf C = oc_falloc(m * ldc);
            kd_gemm_s8_args gf = g;
            gf.w = packed;
            gf.c = C.p;
            OC_RUN(impls[t].fn, &gf, nth);
            int64_t fi = -1, fj = -1, bad = mismatches(C.p, Cref, m, n, ldc, &fi, &fj), bad_pad = 0;
            for (int64_t e = 0; e < m * ldc; e++)
                if (e % ldc >= n && !oc_is_canary(C.p[e])) bad_pad++;
            snprintf(what, sizeof what, "%-10s m=%lld n=%lld k=%lld %s bias=%d nth=%d", impls[t].name, (long long)m,
                     (long long)n, (long long)k, stat ? "static" : "dynamic", bias_on, nth);
            CHECK(bad == 0, "%s: %lld differ from the reference, first [%lld][%lld] got %.9g want %.9g", what,
                  (long long)bad, (long long)fi, (long long)fj, bad ? C.p[fi * ldc + fj] : 0.0,
                  bad ? Cref[fi * ldc + fj] : 0.0);
            CHECK(bad_pad == 0 && oc_fguard_damage(&C) == 0, "%s: wrote outside C", what);
            printf("%-64s exact  %s\n", what, bad || bad_pad ? "FAIL" : "ok");
            oc_ffree(&C);
        }
        free(packed);
    }
    free(A); free(W); free(bias); free(sw); free(qw); free(Cref);
}

int main(int argc, char **argv)
{
    oc_seed(7);
    impl impls[8];
    int nimpl = 0;
    static const char *names[] = { "avx2", "avx512vnni" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        impl x = { names[i], NULL, NULL };
        if (kd_gemm_s8_cpu(names[i], &x.fn, &x.pack)) impls[nimpl++] = x;
        else printf("%-64s not run: not built or this CPU lacks it\n", names[i]);
    }
    /* the f32 tables' entries, as the engine calls them */
    static const char *tables[] = { "avx2", "avx512" };
    static char tnames[2][32];
    for (size_t i = 0; i < 2; i++) {
        const kd_kernels *t = kd_kernels_cpu_f32(tables[i]);
        if (!t || !t->gemm_s8) continue;
        snprintf(tnames[i], sizeof tnames[i], "table:%s", t->name);
        impls[nimpl++] = (impl){ tnames[i], t->gemm_s8, t->gemm_s8_pack };
    }
    impls[nimpl++] = (impl){ "table:ref", kd_kernels_ref_f32()->gemm_s8, kd_kernels_ref_f32()->gemm_s8_pack };
    if (argc > 1 && strcmp(argv[1], "--bert") == 0) {
        /* bert-base linears at 128 tokens (batch 1) and minilm's */
        static const int64_t big[][3] = { { 128, 768, 768 }, { 128, 3072, 768 }, { 128, 768, 3072 }, { 256, 1536, 384 } };
        for (size_t s = 0; s < sizeof big / sizeof big[0]; s++) run_case(impls, nimpl, big[s][0], big[s][1], big[s][2], 0, 1);
        return kd_test_finish("test_gemm_s8 --bert");
    }
    static const int64_t shapes[][3] = {
        { 1, 1, 1 },   { 1, 16, 2 },  { 4, 16, 8 },  { 7, 7, 7 },    { 1, 63, 129 }, { 129, 1, 7 }, { 17, 33, 65 },
        { 8, 32, 4 },  { 13, 17, 300 }, { 33, 31, 3 }, { 65, 129, 33 }, { 5, 9, 0 },  { 3, 100, 1 }, { 70, 48, 97 },
        { 40, 7, 768 }, { 2, 200, 31 },
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int stat = 0; stat < 2; stat++)
            for (int b = 0; b < 2; b++) run_case(impls, nimpl, shapes[s][0], shapes[s][1], shapes[s][2], stat, b);
    return kd_test_finish("test_gemm_s8");
}
