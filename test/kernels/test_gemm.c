/* test/kernels/test_gemm.c — every fast f32 GEMM against the reference: awkward shapes (1, 7, 63, 129,
 * non-multiples of every register tile and cache block), all four transpose combinations, alpha, beta,
 * bias, batches, 1 and 3 threads, NaN-padded inputs, NaN-poisoned C when beta == 0, canaries around and
 * between the rows of C, NaN propagation; with one B (batch 1), the product on B prepacked by the table's
 * gemm_pack_b must equal the unpacked one bit for bit. `--bert` runs the BERT-base shapes instead. */
#include "test/kernels/op_case.h"

typedef struct gcase {
    int64_t m, n, k, batch;
    int ta, tb;
    double alpha, beta;
    int bias;
    int nan_in_a; /* put one NaN in A: the rows it feeds must come out NaN */
} gcase;

static void fill_abs(float *dst, const float *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dst[i] = fabsf(src[i]);
}

/* Build the inputs of one case, compute the reference (and the magnitudes for the tolerance) once,
 * then check every table at 1 and 3 threads. */
static void run_case(const kd_kernels **tabs, int ntab, gcase c, int cheap_mag)
{
    const int64_t ra = c.ta ? c.k : c.m, ca = c.ta ? c.m : c.k;
    const int64_t rb = c.tb ? c.n : c.k, cb = c.tb ? c.k : c.n;
    const int64_t lda = ca + 3, ldb = cb + 2, ldc = c.n + 5;
    const int64_t sa = ra * lda + 5, sb = rb * ldb + 7, sc = c.m * ldc + 3;
    const int64_t na = c.batch * sa, nb = c.batch * sb, ncn = c.batch * sc;
    float *A = malloc((size_t)(na + 1) * sizeof *A), *B = malloc((size_t)(nb + 1) * sizeof *B);
    float *bias = malloc((size_t)(c.n + 1) * sizeof *bias);
    float *Cinit = malloc((size_t)(ncn + 1) * sizeof *Cinit), *Cref = malloc((size_t)(ncn + 1) * sizeof *Cref);
    float *Cmag = malloc((size_t)(ncn + 1) * sizeof *Cmag);
    if (!A || !B || !bias || !Cinit || !Cref || !Cmag) abort();
    /* Padding of the inputs is NaN: reading it would poison the result. */
    for (int64_t i = 0; i < na; i++) A[i] = NAN;
    for (int64_t i = 0; i < nb; i++) B[i] = NAN;
    for (int64_t b = 0; b < c.batch; b++) {
        for (int64_t r = 0; r < ra; r++) oc_fill_f32(A + b * sa + r * lda, ca, -1, 1);
        for (int64_t r = 0; r < rb; r++) oc_fill_f32(B + b * sb + r * ldb, cb, -1, 1);
    }
    oc_fill_f32(bias, c.n, -1, 1);
    for (int64_t i = 0; i < ncn; i++) Cinit[i] = oc_canary();
    for (int64_t b = 0; b < c.batch; b++)
        for (int64_t i = 0; i < c.m; i++) oc_fill_f32(Cinit + b * sc + i * ldc, c.n, -1, 1);
    int64_t nan_row = -1;
    if (c.nan_in_a && c.k > 0) {
        nan_row = c.m / 2;
        int64_t p = c.k / 2;
        A[c.ta ? p * lda + nan_row : nan_row * lda + p] = NAN; /* batch 0 */
    }

    kd_gemm_args g = {
        .trans_a = c.ta, .trans_b = c.tb, .m = c.m, .n = c.n, .k = c.k, .batch = c.batch,
        .a = A, .lda = lda, .stride_a = sa, .b = B, .ldb = ldb, .stride_b = sb,
        .c = Cref, .ldc = ldc, .stride_c = sc, .bias = c.bias ? bias : NULL, .alpha = c.alpha, .beta = c.beta,
    };
    memcpy(Cref, Cinit, (size_t)ncn * sizeof *Cref);
    kd_kernels_ref_f32()->gemm(&g, 0, 1);

    /* mag = |alpha| |op(A)| |op(B)| + |beta| |C| + |bias|: the reference on absolute values, or (for the
     * big shapes) the bound k * max|a| * max|b| * |alpha| + |beta| + 1 with inputs in [-1, 1). */
    if (cheap_mag) {
        for (int64_t i = 0; i < ncn; i++) Cmag[i] = (float)(fabs(c.alpha) * (double)c.k + fabs(c.beta) + 1.0);
    } else {
        float *Aa = malloc((size_t)(na + 1) * sizeof *Aa), *Ba = malloc((size_t)(nb + 1) * sizeof *Ba);
        float *biasa = malloc((size_t)(c.n + 1) * sizeof *biasa);
        if (!Aa || !Ba || !biasa) abort();
        fill_abs(Aa, A, na);
        fill_abs(Ba, B, nb);
        fill_abs(biasa, bias, c.n);
        fill_abs(Cmag, Cinit, ncn);
        kd_gemm_args ga = g;
        ga.a = Aa; ga.b = Ba; ga.c = Cmag; ga.bias = c.bias ? biasa : NULL;
        ga.alpha = fabs(c.alpha); ga.beta = fabs(c.beta);
        kd_kernels_ref_f32()->gemm(&ga, 0, 1);
        free(Aa); free(Ba); free(biasa);
    }

    for (int t = 0; t < ntab; t++) {
        for (int nth = 1; nth <= 3; nth += 2) {
            oc_fbuf C = oc_falloc(ncn);
            for (int64_t b = 0; b < c.batch; b++)
                for (int64_t i = 0; i < c.m; i++)
                    for (int64_t j = 0; j < c.n; j++) {
                        int64_t e = b * sc + i * ldc + j;
                        C.p[e] = c.beta == 0.0 ? NAN : Cinit[e]; /* beta == 0: C must not be read */
                    }
            kd_gemm_args gf = g;
            gf.c = C.p;
            OC_RUN(tabs[t]->gemm, &gf, nth);
            int64_t bad = 0, bad_pad = 0;
            int64_t fb = -1, fi = -1, fj = -1;
            double fgot = 0, fwant = 0, worst = 0;
            for (int64_t b = 0; b < c.batch; b++)
                for (int64_t i = 0; i < c.m; i++)
                    for (int64_t j = 0; j < c.n; j++) {
                        int64_t e = b * sc + i * ldc + j;
                        double got = C.p[e], want = Cref[e];
                        const double tol = oc_tol((double)c.k, Cmag[e]);
                        int ok = isnan(want) ? isnan(got) : kd_close(got, want, tol, 0.0);
                        if (!ok) worst = INFINITY;
                        else if (!isnan(want) && fabs(got - want) / tol > worst) worst = fabs(got - want) / tol;
                        if (!ok && bad++ == 0) { fb = b; fi = i; fj = j; fgot = got; fwant = want; }
                    }
            for (int64_t e = 0; e < ncn; e++) {
                int64_t b = e / sc, r = e % sc, i = r / ldc, j = r % ldc;
                if (!(b < c.batch && i < c.m && j < c.n) && !oc_is_canary(C.p[e])) bad_pad++;
            }
            if (nan_row >= 0 && c.alpha != 0.0)
                CHECK(isnan(Cref[nan_row * ldc]) && isnan(C.p[nan_row * ldc]), "%s NaN in A did not propagate",
                      tabs[t]->name);
            CHECK(bad == 0,
                  "%s gemm m=%lld n=%lld k=%lld batch=%lld ta=%d tb=%d alpha=%g beta=%g bias=%d nth=%d: %lld "
                  "wrong, first [%lld][%lld][%lld] got %.9g want %.9g",
                  tabs[t]->name, (long long)c.m, (long long)c.n, (long long)c.k, (long long)c.batch, c.ta, c.tb,
                  c.alpha, c.beta, c.bias, nth, (long long)bad, (long long)fb, (long long)fi, (long long)fj,
                  fgot, fwant);
            CHECK(bad_pad == 0 && oc_fguard_damage(&C) == 0, "%s gemm m=%lld n=%lld k=%lld: wrote outside C",
                  tabs[t]->name, (long long)c.m, (long long)c.n, (long long)c.k);
            char what[128];
            snprintf(what, sizeof what, "%-12s gemm m=%lld n=%lld k=%lld batch=%lld ta=%d tb=%d a=%g b=%g bias=%d nth=%d",
                     tabs[t]->name, (long long)c.m, (long long)c.n, (long long)c.k, (long long)c.batch, c.ta, c.tb,
                     c.alpha, c.beta, c.bias, nth);
            printf("%-80s worst %.3g of tol  %s\n", what, worst, bad || bad_pad ? "FAIL" : "ok");
            /* Prepacked B: the same bits as the product above (one B: batch 1), C started the same way. */
            if (c.batch == 1) {
                oc_fbuf C2 = oc_falloc(ncn);
                for (int64_t i = 0; i < c.m; i++)
                    for (int64_t j = 0; j < c.n; j++)
                        C2.p[i * ldc + j] = c.beta == 0.0 ? NAN : Cinit[i * ldc + j];
                oc_check_packed_gemm(tabs[t], &g, nth == 1 ? 2 : 1, nth, C2.p, C.p, (size_t)ncn, sizeof(float), what);
                CHECK(oc_fguard_damage(&C2) == 0, "%s: packed gemm wrote outside C", what);
                oc_ffree(&C2);
            }
            oc_ffree(&C);
        }
    }
    free(A); free(B); free(bias); free(Cinit); free(Cref); free(Cmag);
}

static const struct { double alpha, beta; int bias; } params[] = {
    { 1.0, 0.0, 0 }, { 0.5, 1.5, 1 }, { -1.25, 0.0, 1 }, { 1.0, 1.0, 0 },
};

int main(int argc, char **argv)
{
    OC_FAST_TABLES_OR_SKIP(tabs, ntab, 1);
    if (argc > 1 && strcmp(argv[1], "--bert") == 0) {
        /* BERT-base at 16 x 128 tokens: the forward shapes, the two backward shapes, attention. */
        static const gcase big[] = {
            { 2048, 768, 768, 1, 0, 0, 1.0, 0.0, 1, 0 },
            { 2048, 3072, 768, 1, 0, 1, 1.0, 0.0, 0, 0 },   /* dX = dY W (nn.Linear weight is n x k) */
            { 768, 768, 2048, 1, 1, 0, 1.0, 1.0, 0, 0 },    /* dW += dY^T X */
            { 128, 128, 64, 192, 0, 1, 0.125, 0.0, 0, 0 }, /* Q K^T per head */
            { 128, 64, 128, 192, 0, 0, 1.0, 0.0, 0, 0 },   /* P V */
        };
        for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) run_case(tabs, ntab, big[i], 1);
        return kd_test_finish("test_gemm --bert");
    }
    static const int64_t shapes[][4] = {
        { 1, 1, 1, 1 },     { 7, 7, 7, 1 },      { 1, 63, 129, 1 },  { 129, 1, 7, 1 },   { 63, 129, 65, 1 },
        { 13, 17, 300, 1 }, { 25, 33, 1, 1 },    { 97, 200, 513, 1 }, { 5, 9, 0, 1 },    { 520, 70, 40, 1 },
        { 30, 3100, 20, 1 }, { 33, 21, 19, 5 },  { 1, 7, 7, 4 },     { 7, 200, 31, 2 },  { 64, 64, 64, 3 },
        { 12, 32, 16, 2 },  { 6, 16, 8, 1 },     { 130, 800, 20, 1 },
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int tr = 0; tr < 4; tr++)
            for (size_t pi = 0; pi < sizeof params / sizeof params[0]; pi++) {
                gcase c = { shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], tr & 1, tr >> 1,
                            params[pi].alpha, params[pi].beta, params[pi].bias, pi == 0 };
                run_case(tabs, ntab, c, 0);
            }
    return kd_test_finish("test_gemm");
}
