/* test/gpu/test_cuda_gemm.c — the CUDA GEMMs (f32 SIMT, tf32 and bf16 tensor cores, GELU epilogue)
 * against the reference GEMM at many shapes (odd ones, tile multiples, k not a multiple of the k-tile),
 * all four transpose combinations, batched with strides, padded leading dimensions (aligned and not),
 * alpha, beta (beta == 0 with C poisoned by NaN) and bias. Every byte of C outside the m x n result must
 * keep its sentinel.
 *
 * Tolerance per element: |got - want| <= absdot * u * c * sqrt(k), absdot = sum_p |a_ip b_pj| (+ |beta c|
 * + |bias|), u = 2^-23 (f32 accumulation; tf32/bf16 inputs are rounded on the host the way the device
 * rounds them, so the reference sees the same operands). c = 4 for f32, 16 for tensor cores (their
 * accumulation order and rounding inside an mma are not IEEE sequential). Separately, bf16/tf32 results
 * are within the input-rounding bound (2^-8 / 2^-11) * absdot of the unrounded f32 product.
 *
 * Which kernel ran is checked too (kd_cuda_gemm_counts): on an sm_90 device every aligned K-major bf16
 * GEMM, raw or through the tables, must have run the wgmma kernel, so that a silent fallback to mma.sync
 * (a tensor map the driver refused, kd_cuda_has_wgmma() saying 0) fails here. */
#include "kernels/cuda/gemm_cuda.h"
#include "kernels/cuda/gemm_plan.h"
#include "test/gpu/gpu_test.h"

static const kd_kernels *ref;

typedef struct gcase {
    int64_t m, n, k, batch;
    int pad;         /* extra elements on every leading dimension (odd pads break 16-byte alignment) */
} gcase;

static void run_case(const gcase *c, int ta, int tb, kd_cuda_gemm_type type, int beta_on, int bias_on, int gelu)
{
    int64_t m = c->m, n = c->n, k = c->k, B = c->batch;
    int64_t lda = (ta ? m : k) + c->pad, ldb = (tb ? k : n) + c->pad, ldc = n + c->pad;
    int64_t sa = (ta ? k : m) * lda, sb = (tb ? n : k) * ldb, sc = m * ldc;
    int bf16 = type == KD_CUDA_GEMM_BF16 || type == KD_CUDA_GEMM_BF16_WGMMA, tf32 = type == KD_CUDA_GEMM_TF32;

    float *a = malloc((size_t)(sa * B) * sizeof *a), *b = malloc((size_t)(sb * B) * sizeof *b);
    float *ar = malloc((size_t)(sa * B) * sizeof *ar), *br = malloc((size_t)(sb * B) * sizeof *br);
    uint16_t *a16 = malloc((size_t)(sa * B) * 2), *b16 = malloc((size_t)(sb * B) * 2);
    if (!a || !b || !ar || !br || !a16 || !b16) gt_die("malloc");
    for (int64_t i = 0; i < sa * B; i++) {
        a[i] = gt_randn();
        a16[i] = kd_cu_bf16_from_f32(a[i]);
        ar[i] = bf16 ? kd_cu_bf16_to_f32(a16[i]) : tf32 ? kd_cu_tf32_round(a[i]) : a[i];
    }
    for (int64_t i = 0; i < sb * B; i++) {
        b[i] = gt_randn();
        b16[i] = kd_cu_bf16_from_f32(b[i]);
        br[i] = bf16 ? kd_cu_bf16_to_f32(b16[i]) : tf32 ? kd_cu_tf32_round(b[i]) : b[i];
    }
    gt_buf C = gt_new(sc * B, 0, oc_canary()), bias = gt_new(n, 1, 0);
    /* the m x n part: random when beta is used, NaN when it must not be read */
    for (int64_t z = 0; z < B; z++)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) gt_h(&C)[z * sc + i * ldc + j] = beta_on ? gt_randn() : NAN;
    gt_push(&C);
    float *c0 = malloc((size_t)(sc * B) * sizeof *c0), *want = malloc((size_t)(sc * B) * sizeof *want);
    float *want_f32 = malloc((size_t)(sc * B) * sizeof *want_f32);
    memcpy(c0, gt_h(&C), (size_t)(sc * B) * sizeof *c0);
    memcpy(want, c0, (size_t)(sc * B) * sizeof *want);
    memcpy(want_f32, c0, (size_t)(sc * B) * sizeof *want);

    kd_gemm_args g = { ta, tb, m, n, k, B, ar, lda, sa, br, ldb, sb, want, ldc, sc,
                       bias_on ? gt_h(&bias) : NULL, 0.75, beta_on ? -0.5 : 0.0, NULL };
    ref->gemm(&g, 0, 1);
    kd_gemm_args gf = g;
    gf.a = a; gf.b = b; gf.c = want_f32;
    ref->gemm(&gf, 0, 1);

    void *da = NULL, *db = NULL;
    size_t esz = bf16 ? 2 : 4;
    if (kd_cuda_malloc(&da, (size_t)(sa * B) * esz) != KD_OK || kd_cuda_malloc(&db, (size_t)(sb * B) * esz) != KD_OK)
        gt_die("malloc");
    if (kd_cuda_h2d(da, bf16 ? (void *)a16 : (void *)a, (size_t)(sa * B) * esz) != KD_OK ||
        kd_cuda_h2d(db, bf16 ? (void *)b16 : (void *)b, (size_t)(sb * B) * esz) != KD_OK)
        gt_die("h2d");
    kd_gemm_args gd = g;
    gd.a = da; gd.b = db; gd.c = gt_d(&C); gd.bias = bias_on ? gt_d(&bias) : NULL;
    kd_status st = kd_cuda_gemm(&gd, type, gelu ? KD_CUDA_EPI_GELU : KD_CUDA_EPI_NONE);
    CHECK(st == KD_OK, "kd_cuda_gemm: %s", kd_last_error());

    float *got = gt_pull(&C, "gemm");
    double ufac = FLT_EPSILON / 2 * (type == KD_CUDA_GEMM_F32 ? 4.0 : 16.0) * sqrt((double)(k > 0 ? k : 1));
    double in_round = bf16 ? 1.0 / 256 : tf32 ? 1.0 / 2048 : 0.0;
    int64_t bad = 0, bad_fmt = 0, bad_outside = 0;
    for (int64_t z = 0; z < B; z++) {
        const float *A = ar + z * sa, *Bm = br + z * sb;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < ldc; j++) {
                int64_t e = z * sc + i * ldc + j;
                float gv = got[GT_GUARD + e];
                if (j >= n) {
                    bad_outside += !oc_is_canary(gv);
                    continue;
                }
                double absdot = 0.0;
                for (int64_t p = 0; p < k; p++) {
                    double av = ta ? A[p * lda + i] : A[i * lda + p];
                    double bv = tb ? Bm[j * ldb + p] : Bm[p * ldb + j];
                    absdot += fabs(av * bv);
                }
                absdot = 0.75 * absdot + (beta_on ? 0.5 * fabs(c0[e]) : 0.0) + (bias_on ? fabs(gt_h(&bias)[j]) : 0.0);
                double w = want[e], wf = want_f32[e];
                double tol = absdot * ufac + 1e-30, tolf = absdot * (in_round + ufac) + 1e-30;
                if (gelu) {
                    /* GELU is 1.13-Lipschitz; its own float evaluation adds a few ulps */
                    w = 0.5 * w * (1.0 + erf(w * 0.70710678118654752440));
                    wf = 0.5 * wf * (1.0 + erf(wf * 0.70710678118654752440));
                    tol = 1.13 * tol + 8 * FLT_EPSILON * (1.0 + fabs(w));
                    tolf = 1.13 * tolf + 8 * FLT_EPSILON * (1.0 + fabs(wf));
                }
                if (!kd_close(gv, w, tol, 0.0)) {
                    if (bad < 4)
                        fprintf(stderr, "  [%lld,%lld,%lld] got %.9g want %.9g tol %.3g\n", (long long)z, (long long)i,
                                (long long)j, gv, w, tol);
                    bad++;
                }
                if (!kd_close(gv, wf, tolf, 0.0)) bad_fmt++;
            }
        /* rows beyond m inside this batch's stride: none (sc = m * ldc) */
    }
    static const char *names[] = { "f32", "tf32", "bf16", "bf16-wgmma" };
    CHECK(bad == 0 && bad_fmt == 0 && bad_outside == 0,
          "gemm %s m %lld n %lld k %lld batch %lld pad %d ta %d tb %d beta %d bias %d gelu %d: %lld off, %lld beyond "
          "the format bound, %lld padding elements written",
          names[type], (long long)m, (long long)n, (long long)k, (long long)B, c->pad, ta, tb, beta_on, bias_on, gelu,
          (long long)bad, (long long)bad_fmt, (long long)bad_outside);
    free(got);
    free(a); free(b); free(ar); free(br); free(a16); free(b16); free(c0); free(want); free(want_f32);
    kd_cuda_free(da); kd_cuda_free(db);
    gt_free(&C); gt_free(&bias);
}

/* What the engine calls in bf16 (cuda's default): the bf16 table's GEMM on bf16 storage, K-major as given
 * and with B stored k x n (copied K-major into the workspace), and the f32 table's GEMM in bf16 precision
 * (operands packed K-major). On sm_90 all three must run the wgmma kernel. Their results are checked by
 * test_cuda_bf16 and test_cuda_precision; here, which kernel ran and that no error was raised. */
static void check_tables_wgmma(void)
{
    const int64_t m = 128, n = 256, k = 64;
    void *a = NULL, *b = NULL, *c = NULL;
    if (kd_cuda_malloc(&a, (size_t)(m * k) * 4) != KD_OK || kd_cuda_malloc(&b, (size_t)(n * k) * 4) != KD_OK ||
        kd_cuda_malloc(&c, (size_t)(m * n) * 4) != KD_OK)
        gt_die("kd_cuda_malloc");
    if (kd_cuda_memset(a, 0, (size_t)(m * k) * 4) != KD_OK || kd_cuda_memset(b, 0, (size_t)(n * k) * 4) != KD_OK)
        gt_die("kd_cuda_memset");
    kd_cuda_gemm_counts_reset();
    kd_gemm_args g = { 0, 1, m, n, k, 1, a, k, 0, b, k, 0, c, n, 0, NULL, 1.0, 0.0, NULL };
    kd_kernels_cuda_bf16()->gemm(&g, 0, 1);
    kd_gemm_args gt = { 0, 0, m, n, k, 1, a, k, 0, b, n, 0, c, n, 0, NULL, 1.0, 0.0, NULL };
    kd_kernels_cuda_bf16()->gemm(&gt, 0, 1);
    CHECK(kd_cuda_set_precision(KD_CUDA_PREC_BF16) == KD_OK, "kd_cuda_set_precision(bf16)");
    kd_kernels_cuda_f32()->gemm(&g, 0, 1);
    kd_cuda_set_precision(KD_CUDA_PREC_F32);
    CHECK(kd_cuda_sync() == KD_OK && kd_cuda_status() == KD_OK, "table GEMMs: no error: %s", kd_last_error());
    gt_check_wgmma_ran(3, "the bf16 table's GEMM (twice) and the f32 table's in bf16");
    kd_cuda_free(a); kd_cuda_free(b); kd_cuda_free(c);
}

int main(void)
{
    gt_skip_without_gpu("test_cuda_gemm");
    ref = kd_kernels_ref_f32();
    const gcase cases[] = {
        { 1, 1, 1, 1, 0 },      { 7, 13, 5, 1, 0 },     { 128, 128, 32, 1, 0 },  { 129, 65, 33, 1, 0 },
        { 64, 256, 96, 2, 8 },  { 200, 300, 170, 1, 3 }, { 257, 129, 127, 3, 0 }, { 16, 8, 512, 1, 1 },
        { 131, 257, 64, 1, 8 }, { 2, 1000, 40, 2, 0 },
    };
    int ncases = (int)(sizeof cases / sizeof *cases);
    const kd_cuda_gemm_type types[] = { KD_CUDA_GEMM_F32, KD_CUDA_GEMM_TF32, KD_CUDA_GEMM_BF16, KD_CUDA_GEMM_BF16_WGMMA };
    for (int t = 0; t < 4; t++)
        for (int c = 0; c < ncases; c++)
            for (int tr = 0; tr < 4; tr++)
                run_case(&cases[c], tr >> 1, tr & 1, types[t], c % 2, c % 3 == 0, 0);
    /* the fused epilogue, and beta/bias on every type */
    for (int t = 0; t < 4; t++) {
        run_case(&cases[5], 0, 1, types[t], 1, 1, 1);
        run_case(&cases[6], 1, 0, types[t], 0, 1, 1);
    }
    /* the wgmma layout (A m x k, B n x k, every row 16-byte aligned) at BERT shapes: QKV, attention out, FFN
     * up/down, and odd edges; on a device without wgmma these run the mma.sync kernel, which must give the
     * same answer. On sm_90 each must have run the wgmma kernel: a fallback fails the test. */
    const gcase bert[] = {
        { 256, 2304, 768, 1, 0 }, { 256, 768, 768, 1, 0 }, { 128, 3072, 768, 1, 0 }, { 128, 768, 3072, 1, 0 },
        { 200, 1000, 136, 1, 0 }, { 77, 131, 72, 3, 8 },  { 129, 129, 1000, 1, 0 }, { 1, 8, 8, 1, 0 },
        { 64, 64, 64, 12, 0 },
    };
    const size_t nbert = sizeof bert / sizeof *bert;
    kd_cuda_gemm_counts_reset();
    for (size_t c = 0; c < nbert; c++)
        run_case(&bert[c], 0, 1, KD_CUDA_GEMM_BF16_WGMMA, (int)(c % 2), c % 3 != 1, c == 4);
    gt_check_wgmma_ran(nbert, "kd_cuda_gemm bf16-wgmma, K-major aligned");
    {
        /* the counts say why a GEMM missed the kernel: a layout wgmma cannot take (B stored k x n) */
        kd_cuda_gemm_counts_reset();
        run_case(&bert[1], 0, 0, KD_CUDA_GEMM_BF16_WGMMA, 0, 0, 0);
        kd_cuda_gemm_counts n;
        kd_cuda_gemm_counts_get(&n);
        CHECK(n.wgmma == 0 && n.wgmma_fallbacks == 1 && n.mma_bf16 == 1 && n.fallback_reason[0],
              "a B stored k x n is one fallback to mma.sync with a reason: wgmma %llu, fallbacks %llu, mma %llu, \"%s\"",
              (unsigned long long)n.wgmma, (unsigned long long)n.wgmma_fallbacks, (unsigned long long)n.mma_bf16,
              n.fallback_reason);
    }
    check_tables_wgmma();
    /* k = 0 and alpha = 0 paths: C = beta C + bias */
    const gcase k0 = { 9, 11, 0, 2, 0 };
    run_case(&k0, 0, 0, KD_CUDA_GEMM_F32, 1, 1, 0);
    /* the table entry is the f32 GEMM */
    const kd_kernels *cu = kd_kernels_cuda_f32();
    CHECK(cu && cu->gemm, "table has a gemm");
    CHECK(kd_cuda_status() == KD_OK, "no kernel reported an error: %s", kd_last_error());
    /* a bad shape is an error, not a launch */
    kd_gemm_args badg = { 0, 0, -1, 4, 4, 1, NULL, 4, 0, NULL, 4, 0, NULL, 4, 0, NULL, 1.0, 0.0, NULL };
    CHECK(kd_cuda_gemm(&badg, KD_CUDA_GEMM_F32, KD_CUDA_EPI_NONE) == KD_ERR_SHAPE, "negative m is KD_ERR_SHAPE");
    printf("wgmma kernel %s\n", kd_cuda_has_wgmma() ? "available on this device" : kd_cuda_wgmma_unavailable());
    kd_cuda_shutdown();
    return kd_test_finish("test_cuda_gemm");
}
