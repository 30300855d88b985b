/* test/gpu/test_cuda_bf16.c — every entry of kd_kernels_cuda_bf16() against kd_kernels_ref_bf16(), and the
 * f32 table's convert against the reference f32 table's, on the host, at many shapes (odd sizes, every
 * transpose, batches with shared operands and unaligned rows, accumulate, beta, bias). Overwritten outputs
 * are poisoned with NaN, accumulated outputs start random, every buffer sits between guard zones.
 *
 * Tolerance (one rule): a bf16 output w from the reference (computed in double, rounded once) and the
 * device's g (computed in f32, rounded once) may differ by one bf16 rounding step of w plus the f32
 * arithmetic error of the computation:  |g - w| <= 1.02 (2^-7 |w| + gt_tol(n) S), n the length of the sum
 * behind the value (k for GEMM, the row length for row kernels, 1 element-wise) and S the magnitude of its
 * terms (GEMM: |alpha| sum_p |a b| + |beta c| + |bias|; maps and rows: 8 (1 + |w|)). f32 outputs
 * (LayerNorm's mean, rstd, dgamma, dbeta) use gt_tol(n) S alone. convert is bit-exact; where the
 * reference is NaN (an accumulate of NaN, whose payload is the adder's choice) the result must be NaN.
 * Exits 77 without a GPU. */
#include "kernels/bf16.h"
#include "test/gpu/gpu_test.h"

static const kd_kernels *ref, *cu;

/* ---- bf16 buffers with guards: host mirror and device copy ---- */

#define BB_SENTINEL 0x1234u

typedef struct bb {
    int64_t n;
    kd_bf16 *h, *d;   /* n + 2 GT_GUARD each */
} bb;

static kd_bf16 bf(float f) { return kd_f32_to_bf16(f); }
static float fl(kd_bf16 h) { return kd_bf16_to_f32(h); }

/* randomize: bf16 of N(0, 1) draws; else every element `fill`. */
static bb bb_new(int64_t n, int randomize, float fill)
{
    bb b;
    b.n = n;
    size_t total = (size_t)(n + 2 * GT_GUARD);
    b.h = malloc(total * sizeof(kd_bf16));
    if (!b.h) gt_die("malloc");
    for (size_t i = 0; i < total; i++) b.h[i] = BB_SENTINEL;
    for (int64_t i = 0; i < n; i++) b.h[GT_GUARD + i] = bf(randomize ? gt_randn() : fill);
    void *d = NULL;
    if (kd_cuda_malloc(&d, total * sizeof(kd_bf16)) != KD_OK) gt_die("kd_cuda_malloc");
    b.d = d;
    if (kd_cuda_h2d(b.d, b.h, total * sizeof(kd_bf16)) != KD_OK) gt_die("kd_cuda_h2d");
    return b;
}

static kd_bf16 *bh(bb *b) { return b->h + GT_GUARD; }
static kd_bf16 *bd(bb *b) { return b->d + GT_GUARD; }
static void bb_push(bb *b)
{
    if (kd_cuda_h2d(b->d, b->h, (size_t)(b->n + 2 * GT_GUARD) * sizeof(kd_bf16)) != KD_OK) gt_die("kd_cuda_h2d");
}
static kd_bf16 *hdup(const kd_bf16 *p, int64_t n)
{
    kd_bf16 *q = malloc((size_t)(n > 0 ? n : 1) * sizeof *q);
    if (!q) gt_die("malloc");
    memcpy(q, p, (size_t)n * sizeof *q);
    return q;
}
static float *fdup(const float *p, int64_t n)
{
    float *q = malloc((size_t)(n > 0 ? n : 1) * sizeof *q);
    if (!q) gt_die("malloc");
    memcpy(q, p, (size_t)n * sizeof *q);
    return q;
}
static void bb_free(bb *b)
{
    free(b->h);
    kd_cuda_free(b->d);
}

/* Device interior (guards checked); caller frees. */
static kd_bf16 *bb_pull(bb *b, const char *what)
{
    if (kd_cuda_sync() != KD_OK) gt_die(what);
    size_t total = (size_t)(b->n + 2 * GT_GUARD);
    kd_bf16 *got = malloc(total * sizeof(kd_bf16));
    if (!got) gt_die("malloc");
    if (kd_cuda_d2h(got, b->d, total * sizeof(kd_bf16)) != KD_OK) gt_die("kd_cuda_d2h");
    int bad = 0;
    for (int i = 0; i < GT_GUARD; i++) bad += (got[i] != BB_SENTINEL) + (got[GT_GUARD + b->n + i] != BB_SENTINEL);
    CHECK(bad == 0, "%s: %d guard values overwritten (out-of-bounds write)", what, bad);
    memmove(got, got + GT_GUARD, (size_t)b->n * sizeof(kd_bf16));
    return got;
}

/* The header's rule. */
static double bf_tol(double w, int64_t n, double s) { return 1.02 * (fabs(w) / 128.0 + gt_tol(n) * s); }

static double g_worst;   /* worst |g - w| / tol over the run */

static void bb_compare(bb *b, const kd_bf16 *want, int64_t n_red, const double *scale, const char *what)
{
    kd_bf16 *got = bb_pull(b, what);
    int64_t bad = 0;
    double worst = 0.0;
    for (int64_t i = 0; i < b->n; i++) {
        double g = fl(got[i]), w = fl(want[i]);
        double tol = bf_tol(w, n_red, scale ? scale[i] : 8.0 * (1.0 + fabs(w)));
        /* identical bits are a match (a masked softmax entry's -inf, C's row padding left as it was);
         * anything else must be finite and close */
        int ok = got[i] == want[i] || (isfinite(g) && isfinite(w) && fabs(g - w) <= tol);
        if (!ok) {
            if (bad < 5) fprintf(stderr, "  %s[%lld]: got %.9g, want %.9g (tol %.3g)\n", what, (long long)i, g, w, tol);
            bad++;
        } else if (isfinite(w) && tol > 0 && fabs(g - w) / tol > worst) {
            worst = fabs(g - w) / tol;
        }
    }
    if (worst > g_worst) g_worst = worst;
    CHECK(bad == 0, "%s: %lld of %lld values off (worst |g-w|/tol %.3f)", what, (long long)bad, (long long)b->n, worst);
    free(got);
}

/* ---- GEMM ---- */

static int64_t g_gemm_cases;

/* One GEMM: op(A) m x k, op(B) k x n; pad_a/pad_b add to the leading dims (odd = rows not 16-byte whole);
 * shared_a/shared_b: stride 0 over the batch. */
static void gemm_case(int64_t m, int64_t n, int64_t k, int64_t batch, int ta, int tb, int pad_a, int pad_b,
                      int shared_a, int shared_b, double alpha, double beta, int bias)
{
    int64_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    int64_t lda = ac + pad_a, ldb = bc + pad_b, ldc = n + (n % 3 == 1 ? 2 : 0);
    int64_t sa = shared_a ? 0 : ar * lda, sb = shared_b ? 0 : br * ldb, sc = m * ldc;
    int64_t na = shared_a ? 1 : batch, nb = shared_b ? 1 : batch;
    bb A = bb_new(na * ar * lda, 1, 0), B = bb_new(nb * br * ldb, 1, 0);
    bb C = bb_new(batch * sc, beta != 0.0, NAN), Bi = bb_new(n, 1, 0);
    kd_gemm_args g = { ta, tb, m, n, k, batch, bh(&A), lda, sa, bh(&B), ldb, sb, NULL, ldc, sc,
                       bias ? bh(&Bi) : NULL, alpha, beta, NULL };
    kd_bf16 *want = hdup(bh(&C), C.n);
    g.c = want;
    ref->gemm(&g, 0, 1);
    /* S per element: |alpha| sum |a b| + |beta c| + |bias|; padding elements of C stay as they were */
    double *S = malloc((size_t)C.n * sizeof *S);
    if (!S) gt_die("malloc");
    for (int64_t i = 0; i < C.n; i++) S[i] = 8.0 * (1.0 + fabs(fl(want[i])));
    for (int64_t z = 0; z < batch; z++)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0.0;
                const kd_bf16 *a = bh(&A) + z * sa, *b = bh(&B) + z * sb;
                for (int64_t p = 0; p < k; p++)
                    s += fabs(fl(ta ? a[p * lda + i] : a[i * lda + p]) * fl(tb ? b[j * ldb + p] : b[p * ldb + j]));
                double cv = beta != 0.0 ? fabs(beta * fl(bh(&C)[z * sc + i * ldc + j])) : 0.0;
                S[z * sc + i * ldc + j] = fabs(alpha) * s + cv + (bias ? fabs(fl(bh(&Bi)[j])) : 0.0);
            }
    g.a = bd(&A); g.b = bd(&B); g.c = bd(&C); g.bias = bias ? bd(&Bi) : NULL;
    cu->gemm(&g, 0, 1);
    char what[256];
    snprintf(what, sizeof what, "gemm m %lld n %lld k %lld batch %lld ta %d tb %d lda %lld ldb %lld shared %d%d alpha %g beta %g bias %d",
             (long long)m, (long long)n, (long long)k, (long long)batch, ta, tb, (long long)lda, (long long)ldb,
             shared_a, shared_b, alpha, beta, bias);
    /* the padding of C (between rows) was poisoned or random and must come back unchanged: want has it too */
    bb_compare(&C, want, k > 0 ? k : 1, S, what);
    g_gemm_cases++;
    free(S); free(want);
    bb_free(&A); bb_free(&B); bb_free(&C); bb_free(&Bi);
}

static void test_gemm(void)
{
    static const int64_t shapes[][3] = { { 1, 1, 1 }, { 7, 5, 3 }, { 16, 16, 16 }, { 33, 65, 17 }, { 129, 130, 131 },
                                         { 128, 128, 64 }, { 200, 72, 264 }, { 1, 300, 40 }, { 300, 1, 8 } };
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                gemm_case(m, n, k, 1, ta, tb, 0, 0, 0, 0, 1.0, 0.0, 0);
                gemm_case(m, n, k, 1, ta, tb, 1, 3, 0, 0, 0.5, 0.75, 1);    /* unaligned rows, beta, bias */
            }
    /* batches: separate, shared B (the linear layer over a batch), shared A, both padded */
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            gemm_case(37, 41, 72, 3, ta, tb, 0, 0, 0, 0, 1.0, 0.0, 1);
            gemm_case(37, 48, 64, 4, ta, tb, 0, 0, 0, 1, 1.25, 0.0, 0);
            gemm_case(24, 40, 33, 3, ta, tb, 8, 0, 1, 0, 1.0, -1.0, 1);
            gemm_case(19, 23, 29, 2, ta, tb, 1, 1, 0, 1, -0.5, 0.5, 0);
        }
    gemm_case(150, 264, 520, 2, 0, 1, 0, 0, 0, 0, 1.0, 0.0, 1);
    /* no product: k = 0, alpha = 0 (C = beta C + bias) */
    gemm_case(9, 11, 0, 2, 0, 0, 0, 0, 0, 0, 1.0, 0.5, 1);
    gemm_case(9, 11, 5, 1, 1, 1, 0, 0, 0, 0, 0.0, 2.0, 1);
    gemm_case(9, 11, 5, 1, 0, 1, 0, 0, 0, 0, 0.0, 0.0, 0);
    printf("gemm: %lld cases\n", (long long)g_gemm_cases);
}

/* ---- maps and reductions ---- */

static void test_maps(void)
{
    const int64_t shp[3] = { 5, 7, 9 }, n = 5 * 7 * 9;
    int cases = 0;
    for (int acc = 0; acc < 2; acc++) {
        for (int op = KD_UN_COPY; op <= KD_UN_CLIP_COEF; op++) {
            bb a = bb_new(n, 1, 0), out = bb_new(n, acc, NAN);
            if (op == KD_UN_LOG || op == KD_UN_SQRT || op == KD_UN_CLIP_COEF)
                for (int64_t i = 0; i < n; i++) bh(&a)[i] = bf(fabsf(fl(bh(&a)[i])) + 0.1f);
            bb_push(&a);
            kd_map_args m;
            memset(&m, 0, sizeof m);
            m.op = op; m.accumulate = acc; m.ndim = 3; m.alpha = op == KD_UN_CLIP_COEF ? 1.1 : 0.7;
            memcpy(m.shape, shp, sizeof shp);
            m.out_stride[0] = 63; m.out_stride[1] = 9; m.out_stride[2] = 1;
            m.a_stride[0] = 63; m.a_stride[1] = 1; m.a_stride[2] = 7;   /* a transposed on its last two dims */
            kd_bf16 *want = hdup(bh(&out), n);
            m.a = bh(&a); m.out = want;
            ref->unary(&m, 0, 1);
            m.a = bd(&a); m.out = bd(&out);
            cu->unary(&m, 0, 1);
            char what[64];
            snprintf(what, sizeof what, "unary op %d acc %d", op, acc);
            bb_compare(&out, want, 1, NULL, what);
            cases++;
            free(want); bb_free(&a); bb_free(&out);
        }
        for (int op = KD_BIN_ADD; op <= KD_BIN_TANH_BWD; op++) {
            bb a = bb_new(n, 1, 0), b = bb_new(5 * 9, 1, 0), out = bb_new(n, acc, NAN);
            if (op == KD_BIN_DIV)
                for (int64_t i = 0; i < 45; i++) bh(&b)[i] = bf(fl(bh(&b)[i]) >= 0 ? fl(bh(&b)[i]) + 0.5f : fl(bh(&b)[i]) - 0.5f);
            bb_push(&b);
            kd_map_args m;
            memset(&m, 0, sizeof m);
            m.op = op; m.accumulate = acc; m.ndim = 3;
            memcpy(m.shape, shp, sizeof shp);
            m.out_stride[0] = 63; m.out_stride[1] = 9; m.out_stride[2] = 1;
            m.a_stride[0] = 63; m.a_stride[1] = 9; m.a_stride[2] = 1;
            m.b_stride[0] = 9; m.b_stride[1] = 0; m.b_stride[2] = 1;    /* b broadcast along dim 1 */
            kd_bf16 *want = hdup(bh(&out), n);
            m.a = bh(&a); m.b = bh(&b); m.out = want;
            ref->binary(&m, 0, 1);
            m.a = bd(&a); m.b = bd(&b); m.out = bd(&out);
            cu->binary(&m, 0, 1);
            char what[64];
            snprintf(what, sizeof what, "binary op %d acc %d", op, acc);
            bb_compare(&out, want, 1, NULL, what);
            cases++;
            free(want); bb_free(&a); bb_free(&b); bb_free(&out);
        }
    }
    /* Reductions of [R, C]: over rows (a bias gradient), over columns, over everything; and [3, 5, 7]
     * over the middle dim. S = |alpha| sum |a| + |out|. */
    const int64_t rs[][2] = { { 37, 65 }, { 1, 1 }, { 3, 4097 }, { 257, 3 } };
    for (size_t c = 0; c < sizeof rs / sizeof *rs; c++)
        for (int mode = 0; mode < 3; mode++) {
            int64_t R = rs[c][0], C = rs[c][1], on = mode == 0 ? C : mode == 1 ? R : 1;
            bb a = bb_new(R * C, 1, 0), out = bb_new(on, 1, 0);
            kd_reduce_args m;
            memset(&m, 0, sizeof m);
            m.ndim = 2; m.alpha = 0.5;
            m.shape[0] = R; m.shape[1] = C;
            m.a_stride[0] = C; m.a_stride[1] = 1;
            m.out_stride[0] = mode == 1 ? 1 : 0;
            m.out_stride[1] = mode == 0 ? 1 : 0;
            kd_bf16 *want = hdup(bh(&out), on);
            double *S = calloc((size_t)on, sizeof *S);
            if (!S) gt_die("calloc");
            for (int64_t i = 0; i < R; i++)
                for (int64_t j = 0; j < C; j++)
                    S[mode == 0 ? j : mode == 1 ? i : 0] += 0.5 * fabs(fl(bh(&a)[i * C + j]));
            for (int64_t i = 0; i < on; i++) S[i] += fabs(fl(want[i]));
            m.a = bh(&a); m.out = want;
            ref->reduce(&m, 0, 1);
            m.a = bd(&a); m.out = bd(&out);
            cu->reduce(&m, 0, 1);
            char what[64];
            snprintf(what, sizeof what, "reduce %lldx%lld mode %d", (long long)R, (long long)C, mode);
            bb_compare(&out, want, mode == 0 ? R : mode == 1 ? C : R * C, S, what);
            cases++;
            free(S); free(want); bb_free(&a); bb_free(&out);
        }
    {
        bb a = bb_new(105, 1, 0), out = bb_new(21, 1, 0);
        kd_reduce_args m;
        memset(&m, 0, sizeof m);
        m.ndim = 3; m.alpha = -1.0;
        m.shape[0] = 3; m.shape[1] = 5; m.shape[2] = 7;
        m.a_stride[0] = 35; m.a_stride[1] = 7; m.a_stride[2] = 1;
        m.out_stride[0] = 7; m.out_stride[1] = 0; m.out_stride[2] = 1;
        kd_bf16 *want = hdup(bh(&out), 21);
        m.a = bh(&a); m.out = want;
        ref->reduce(&m, 0, 1);
        m.a = bd(&a); m.out = bd(&out);
        cu->reduce(&m, 0, 1);
        bb_compare(&out, want, 5, NULL, "reduce [3,5,7] over dim 1");
        cases++;
        free(want); bb_free(&a); bb_free(&out);
    }
    printf("maps and reductions: %d cases\n", cases);
}

/* ---- rows: softmax, LayerNorm ---- */

static const int64_t row_shapes[][2] = { { 1, 1 }, { 3, 7 }, { 17, 129 }, { 64, 768 }, { 5, 1000 }, { 2, 3001 }, { 33, 32 } };
#define NSHAPES (int)(sizeof row_shapes / sizeof *row_shapes)

static void test_softmax(void)
{
    int cases = 0;
    for (int s = 0; s < NSHAPES; s++) {
        int64_t R = row_shapes[s][0], C = row_shapes[s][1], n = R * C;
        for (int lg = 0; lg < 2; lg++) {
            bb x = bb_new(n, 1, 0), y = bb_new(n, 0, NAN);
            for (int64_t i = 0; i < n; i++) bh(&x)[i] = bf(3.0f * fl(bh(&x)[i]));
            if (C > 4) bh(&x)[1] = bf(-INFINITY); /* a masked entry */
            bb_push(&x);
            kd_softmax_args a = { lg, R, C, bh(&x), NULL };
            kd_bf16 *want = hdup(bh(&y), n);
            a.y = want;
            ref->softmax(&a, 0, 1);
            a.x = bd(&x); a.y = bd(&y);
            cu->softmax(&a, 0, 1);
            char what[64];
            snprintf(what, sizeof what, "%ssoftmax %lldx%lld", lg ? "log-" : "", (long long)R, (long long)C);
            bb_compare(&y, want, C, NULL, what);
            cases++;

            /* backward into random dx, y from the reference forward on unmasked x */
            for (int64_t i = 0; i < n; i++) if (isinf(fl(bh(&x)[i]))) bh(&x)[i] = 0;
            bb yy = bb_new(n, 0, 0), dy = bb_new(n, 1, 0), dx = bb_new(n, 1, 0);
            kd_softmax_args f = { lg, R, C, bh(&x), bh(&yy) };
            ref->softmax(&f, 0, 1);
            bb_push(&yy);
            kd_softmax_bwd_args b = { lg, R, C, bh(&yy), bh(&dy), NULL };
            kd_bf16 *wdx = hdup(bh(&dx), n);
            b.dx = wdx;
            ref->softmax_bwd(&b, 0, 1);
            b.y = bd(&yy); b.dy = bd(&dy); b.dx = bd(&dx);
            cu->softmax_bwd(&b, 0, 1);
            /* log-softmax's sum(dy) has terms of size 1: S grows with the row */
            double *S = malloc((size_t)n * sizeof *S);
            if (!S) gt_die("malloc");
            for (int64_t i = 0; i < n; i++)
                S[i] = 8.0 * (1.0 + fabs(fl(wdx[i]))) * (lg ? sqrt((double)C) * exp(fl(bh(&yy)[i])) + 1.0 : 1.0);
            snprintf(what, sizeof what, "%ssoftmax_bwd %lldx%lld", lg ? "log-" : "", (long long)R, (long long)C);
            bb_compare(&dx, wdx, C, S, what);
            cases++;
            free(S); free(want); free(wdx);
            bb_free(&x); bb_free(&y); bb_free(&yy); bb_free(&dy); bb_free(&dx);
        }
    }
    printf("softmax: %d cases\n", cases);
}

/* f32 buffer compare with gt_tol(n) S, S per element. */
static void f32_compare(gt_buf *b, const float *want, int64_t n_red, const double *S, const char *what)
{
    float *got = gt_pull(b, what);
    int64_t bad = 0;
    for (int64_t i = 0; i < b->n; i++) {
        double g = got[GT_GUARD + i], w = want[i], tol = gt_tol(n_red) * S[i];
        if (!(isfinite(g) && isfinite(w) && fabs(g - w) <= tol)) {
            if (bad < 5) fprintf(stderr, "  %s[%lld]: got %.9g, want %.9g (tol %.3g)\n", what, (long long)i, g, w, tol);
            bad++;
        }
    }
    CHECK(bad == 0, "%s: %lld of %lld values off", what, (long long)bad, (long long)b->n);
    free(got);
}

static void test_layernorm(void)
{
    int cases = 0;
    for (int s = 0; s < NSHAPES; s++) {
        int64_t R = row_shapes[s][0], C = row_shapes[s][1], n = R * C;
        for (int affine = 0; affine < 2; affine++) {
            bb x = bb_new(n, 1, 0), y = bb_new(n, 0, NAN);
            for (int64_t i = 0; i < n; i++) bh(&x)[i] = bf(2.0f * fl(bh(&x)[i]) + 0.5f);
            bb_push(&x);
            gt_buf gamma = gt_new(C, 1, 0), beta = gt_new(C, 1, 0), mean = gt_new(R, 0, NAN), rstd = gt_new(R, 0, NAN);
            kd_bf16 *wy = hdup(bh(&y), n);
            float *wm = fdup(gt_h(&mean), R), *wr = fdup(gt_h(&rstd), R);
            kd_layernorm_args l = { R, C, 1e-5, bh(&x), affine ? gt_h(&gamma) : NULL, affine ? gt_h(&beta) : NULL,
                                    wy, wm, wr };
            ref->layernorm(&l, 0, 1);
            l.x = bd(&x); l.gamma = affine ? gt_d(&gamma) : NULL; l.beta = affine ? gt_d(&beta) : NULL;
            l.y = bd(&y); l.mean = gt_d(&mean); l.rstd = gt_d(&rstd);
            cu->layernorm(&l, 0, 1);
            char what[80];
            snprintf(what, sizeof what, "layernorm %lldx%lld affine %d", (long long)R, (long long)C, affine);
            bb_compare(&y, wy, C, NULL, what);
            double *S = malloc((size_t)(R > C ? R : C) * sizeof *S);
            if (!S) gt_die("malloc");
            for (int64_t r = 0; r < R; r++) S[r] = 8.0 * (1.0 + fabs(wm[r]));
            f32_compare(&mean, wm, C, S, "layernorm mean");
            for (int64_t r = 0; r < R; r++) S[r] = 8.0 * fabs(wr[r]) * (1.0 + fabs(wm[r]) * fabs(wr[r]));
            f32_compare(&rstd, wr, C, S, "layernorm rstd");
            cases++;

            /* backward with the reference's statistics: dx into random bf16, dgamma/dbeta into random f32 */
            gt_buf m2 = gt_new(R, 0, 0), r2 = gt_new(R, 0, 0), dg = gt_new(C, 1, 0), db = gt_new(C, 1, 0);
            memcpy(gt_h(&m2), wm, (size_t)R * sizeof(float));
            memcpy(gt_h(&r2), wr, (size_t)R * sizeof(float));
            gt_push(&m2); gt_push(&r2);
            bb dy = bb_new(n, 1, 0), dx = bb_new(n, 1, 0);
            kd_bf16 *wdx = hdup(bh(&dx), n);
            float *wdg = fdup(gt_h(&dg), C), *wdb = fdup(gt_h(&db), C);
            kd_layernorm_bwd_args b = { R, C, bh(&x), wm, wr, affine ? gt_h(&gamma) : NULL, bh(&dy), wdx, wdg, wdb };
            ref->layernorm_bwd(&b, 0, 1);
            b.x = bd(&x); b.mean = gt_d(&m2); b.rstd = gt_d(&r2); b.gamma = affine ? gt_d(&gamma) : NULL;
            b.dy = bd(&dy); b.dx = bd(&dx); b.dgamma = gt_d(&dg); b.dbeta = gt_d(&db);
            cu->layernorm_bwd(&b, 0, 1);
            double *Sx = malloc((size_t)n * sizeof *Sx);
            if (!Sx) gt_die("malloc");
            for (int64_t r = 0; r < R; r++)
                for (int64_t j = 0; j < C; j++) Sx[r * C + j] = 8.0 * (1.0 + fabs(fl(wdx[r * C + j]))) * (1.0 + wr[r]) * 4.0;
            snprintf(what, sizeof what, "layernorm_bwd dx %lldx%lld affine %d", (long long)R, (long long)C, affine);
            bb_compare(&dx, wdx, C, Sx, what);
            for (int64_t j = 0; j < C; j++) {
                double sg = 0.0;
                for (int64_t r = 0; r < R; r++)
                    sg += fabs(fl(bh(&dy)[r * C + j])) * fabs((fl(bh(&x)[r * C + j]) - wm[r]) * wr[r]);
                S[j] = 4.0 * (sg + fabs(wdg[j]) + 1.0);
            }
            f32_compare(&dg, wdg, R, S, "layernorm_bwd dgamma");
            for (int64_t j = 0; j < C; j++) {
                double sb = 0.0;
                for (int64_t r = 0; r < R; r++) sb += fabs(fl(bh(&dy)[r * C + j]));
                S[j] = 4.0 * (sb + fabs(wdb[j]) + 1.0);
            }
            f32_compare(&db, wdb, R, S, "layernorm_bwd dbeta");
            cases++;
            free(S); free(Sx); free(wy); free(wm); free(wr); free(wdx); free(wdg); free(wdb);
            bb_free(&x); bb_free(&y); bb_free(&dy); bb_free(&dx);
            gt_free(&gamma); gt_free(&beta); gt_free(&mean); gt_free(&rstd);
            gt_free(&m2); gt_free(&r2); gt_free(&dg); gt_free(&db);
        }
    }
    printf("layernorm: %d cases\n", cases);
}

/* ---- dropout: the same keep decisions as the reference (a wrong one is off by |x|/(1-p)) ---- */

static void test_dropout(void)
{
    const int64_t ns[] = { 1, 3, 4, 5, 1023, 4099 };
    const uint64_t offs[] = { 0, 1, 2, 3, 1000001 };
    int cases = 0;
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t o = 0; o < sizeof offs / sizeof *offs; o++)
            for (int acc = 0; acc < 2; acc++) {
                int64_t n = ns[a];
                bb x = bb_new(n, 1, 0), out = bb_new(n, acc, NAN);
                double p = acc ? 0.1 : 0.37;
                kd_dropout_args d = { n, p, 0x5eedull + a, offs[o], acc, bh(&x), NULL };
                kd_bf16 *want = hdup(bh(&out), n);
                d.out = want;
                ref->dropout(&d, 0, 1);
                d.x = bd(&x); d.out = bd(&out);
                cu->dropout(&d, 0, 1);
                char what[80];
                snprintf(what, sizeof what, "dropout n %lld offset %llu acc %d", (long long)n,
                         (unsigned long long)offs[o], acc);
                bb_compare(&out, want, 1, NULL, what);
                cases++;
                free(want); bb_free(&x); bb_free(&out);
            }
    printf("dropout: %d cases\n", cases);
}

/* ---- the f32 table's convert, bit for bit ---- */

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static void test_convert(void)
{
    const kd_kernels *rf = kd_kernels_ref_f32(), *cf = kd_kernels_cuda_f32();
    CHECK(cf->convert != NULL, "the f32 CUDA table has convert");
    if (!cf->convert) return;
    /* specials: zeros, denormals (f32 and bf16), ties both ways, the largest bf16, values that round to
     * Inf, Inf, quiet and signalling NaNs of both signs; then random bit patterns and normal draws */
    static const uint32_t special[] = { 0x00000000u, 0x80000000u, 0x00000001u, 0x00008000u, 0x00018000u, 0x0000ffffu,
                                        0x807fffffu, 0x00400000u, 0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0xbf808001u,
                                        0x7f7f0000u, 0x7f7f7fffu, 0x7f7f8000u, 0x7f7fffffu, 0xff7fffffu, 0x7f800000u,
                                        0xff800000u, 0x7fc00000u, 0xffc00001u, 0x7f800001u, 0xff80ffffu, 0x7fbfffffu };
    const int64_t ns[] = { 1, 24, 1000, 65537 };
    int cases = 0;
    for (size_t c = 0; c < sizeof ns / sizeof *ns; c++)
        for (int acc = 0; acc < 2; acc++) {
            int64_t n = ns[c];
            /* to bf16 */
            gt_buf x = gt_new(n, 1, 0);
            for (int64_t i = 0; i < n; i++) {
                if (i < (int64_t)(sizeof special / sizeof *special)) gt_h(&x)[i] = u2f(special[i]);
                else if (i % 3 == 0) gt_h(&x)[i] = u2f(gt_randu(0xffffffffu) ^ (gt_randu(2) << 31));
            }
            gt_push(&x);
            bb y = bb_new(n, acc, NAN);
            kd_bf16 *want = hdup(bh(&y), n);
            kd_convert_args a = { n, 1, acc, gt_h(&x), want };
            rf->convert(&a, 0, 1);
            a.x = gt_d(&x); a.y = bd(&y);
            cf->convert(&a, 0, 1);
            char what[64];
            snprintf(what, sizeof what, "convert to bf16 n %lld acc %d", (long long)n, acc);
            kd_bf16 *got = bb_pull(&y, what);
            int64_t bad = 0;
            for (int64_t i = 0; i < n; i++) {
                int ok = isnan(fl(want[i])) && acc ? isnan(fl(got[i])) : got[i] == want[i];
                if (!ok && bad++ < 5) fprintf(stderr, "  %s[%lld]: x %#x got %#x want %#x\n", what, (long long)i,
                                              f2u(gt_h(&x)[i]), got[i], want[i]);
            }
            CHECK(bad == 0, "%s: %lld of %lld not bit-exact", what, (long long)bad, (long long)n);
            free(got); free(want);

            /* to f32: every bf16 pattern appears when n is large */
            bb xb = bb_new(n, 1, 0);
            for (int64_t i = 0; i < n; i++) bh(&xb)[i] = n >= 65536 ? (kd_bf16)i : (kd_bf16)gt_randu(65536);
            bb_push(&xb);
            gt_buf yf = gt_new(n, acc, NAN);
            float *wf = fdup(gt_h(&yf), n);
            kd_convert_args b = { n, 0, acc, bh(&xb), wf };
            rf->convert(&b, 0, 1);
            b.x = bd(&xb); b.y = gt_d(&yf);
            cf->convert(&b, 0, 1);
            snprintf(what, sizeof what, "convert to f32 n %lld acc %d", (long long)n, acc);
            float *gf = gt_pull(&yf, what);
            bad = 0;
            for (int64_t i = 0; i < n; i++) {
                float g = gf[GT_GUARD + i], w = wf[i];
                int ok = isnan(w) && acc ? isnan(g) : f2u(g) == f2u(w);
                if (!ok && bad++ < 5) fprintf(stderr, "  %s[%lld]: got %#x want %#x\n", what, (long long)i, f2u(g), f2u(w));
            }
            CHECK(bad == 0, "%s: %lld of %lld not bit-exact", what, (long long)bad, (long long)n);
            cases += 2;
            free(gf); free(wf);
            gt_free(&x); bb_free(&y); bb_free(&xb); gt_free(&yf);
        }
    printf("convert: %d cases, bit-exact\n", cases);
}

int main(void)
{
    gt_skip_without_gpu("test_cuda_bf16");
    ref = kd_kernels_ref_bf16();
    cu = kd_kernels_cuda_bf16();
    CHECK(cu != NULL, "kd_kernels_cuda_bf16() with a device present");
    if (!cu) return kd_test_finish("test_cuda_bf16");
    CHECK(cu->embedding == NULL && cu->embedding_bwd == NULL && cu->cross_entropy == NULL && cu->cross_entropy_bwd == NULL &&
              cu->kl_div == NULL && cu->kl_div_bwd == NULL && cu->adamw == NULL && cu->convert == NULL,
          "the bf16 table has no embedding, loss, AdamW or convert entries");
    test_convert();
    test_gemm();
    test_maps();
    test_softmax();
    test_layernorm();
    test_dropout();
    printf("worst |got - want| / tol over all bf16 outputs: %.3f\n", g_worst);
    CHECK(kd_cuda_status() == KD_OK, "no kernel reported an error: %s", kd_last_error());
    kd_cuda_shutdown();
    return kd_test_finish("test_cuda_bf16");
}
