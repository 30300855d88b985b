/* test/gpu/test_cuda_precision.c — the CUDA table's GEMM entry in each precision (kd_cuda_set_precision:
 * f32, tf32, bf16 with operands packed into the runtime's workspace) against the reference GEMM: odd sizes
 * (1, 7, 33, 127, 129, 300), all four transposes, padded leading dimensions, batches with a shared
 * (stride 0) A, B or both, C batches packed or apart, alpha, beta (beta == 0 with C poisoned by NaN) and
 * bias. C's padding and the gaps between batches keep their sentinel; guards catch writes beyond C.
 *
 * Two bounds per element, with absdot = alpha sum_p |a_ip b_pj| (+ |beta c| + |bias|):
 *  - against the reference on operands rounded on the host as the device rounds them (bf16 to nearest
 *    even, tf32 to nearest with ties away): absdot * 2^-24 * c * sqrt(k), c = 4 (SIMT) or 16 (tensor
 *    cores: their order and rounding inside an mma are not IEEE sequential). This is the check that the
 *    precision is applied and the packing takes the right elements: rounded and unrounded products differ
 *    by far more than this bound.
 *  - against the reference on the f32 operands: each rounded product is within (2u + u^2) |a b| of the
 *    exact one (u = 2^-8 for bf16, 2^-11 for tf32, 0 for f32), so the sum is within (2u + u^2) absdot,
 *    plus the accumulation bound above. */
#include "kernels/cuda/gemm_cuda.h"
#include "kernels/cuda/gemm_plan.h"
#include "test/gpu/gpu_test.h"

static const kd_kernels *ref, *cu;

enum { SHARE_NONE = 0, SHARE_A = 1, SHARE_B = 2, SHARE_AB = 3 };

typedef struct pcase {
    int64_t m, n, k, batch;
    int pad;        /* extra elements on every leading dimension (odd pads break 16-byte alignment) */
    int share;      /* SHARE_*: which operands have batch stride 0 */
    int cgap;       /* extra rows between C batches (a shared B then cannot run as one tall GEMM) */
} pcase;

static float round_as(kd_cuda_precision prec, float v)
{
    if (prec == KD_CUDA_PREC_BF16) return kd_cu_bf16_to_f32(kd_cu_bf16_from_f32(v));
    if (prec == KD_CUDA_PREC_TF32) return kd_cu_tf32_round(v);
    return v;
}

static void run_case(const pcase *c, int ta, int tb, kd_cuda_precision prec, int beta_on, int bias_on, double alpha)
{
    const int64_t m = c->m, n = c->n, k = c->k, B = c->batch;
    const int64_t lda = (ta ? m : k) + c->pad, ldb = (tb ? k : n) + c->pad, ldc = n + c->pad;
    const int64_t ea = (ta ? k : m) * lda, eb = (tb ? n : k) * ldb;        /* one batch of A, of B */
    const int64_t sa = (c->share & SHARE_A) ? 0 : ea, sb = (c->share & SHARE_B) ? 0 : eb;
    const int64_t na = (c->share & SHARE_A) ? 1 : B, nb = (c->share & SHARE_B) ? 1 : B;
    const int64_t sc = (m + c->cgap) * ldc;

    gt_buf A = gt_new(ea * na, 1, 0), Bm = gt_new(eb * nb, 1, 0), bias = gt_new(n, 1, 0);
    gt_buf C = gt_new(sc * B, 0, oc_canary());
    for (int64_t z = 0; z < B; z++)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) gt_h(&C)[z * sc + i * ldc + j] = beta_on ? gt_randn() : NAN;
    gt_push(&C);

    float *ar = malloc((size_t)(ea * na) * sizeof *ar), *br = malloc((size_t)(eb * nb) * sizeof *br);
    float *want = malloc((size_t)(sc * B) * sizeof *want), *want_f32 = malloc((size_t)(sc * B) * sizeof *want_f32);
    if (!ar || !br || !want || !want_f32) gt_die("malloc");
    for (int64_t i = 0; i < ea * na; i++) ar[i] = round_as(prec, gt_h(&A)[i]);
    for (int64_t i = 0; i < eb * nb; i++) br[i] = round_as(prec, gt_h(&Bm)[i]);
    memcpy(want, gt_h(&C), (size_t)(sc * B) * sizeof *want);
    memcpy(want_f32, gt_h(&C), (size_t)(sc * B) * sizeof *want_f32);

    const double beta = beta_on ? -0.5 : 0.0;
    kd_gemm_args g = { ta, tb, m, n, k, B, ar, lda, sa, br, ldb, sb, want, ldc, sc, bias_on ? gt_h(&bias) : NULL,
                       alpha, beta, NULL };
    ref->gemm(&g, 0, 1);
    kd_gemm_args gf = g;
    gf.a = gt_h(&A); gf.b = gt_h(&Bm); gf.c = want_f32;
    ref->gemm(&gf, 0, 1);

    if (kd_cuda_set_precision(prec) != KD_OK) gt_die("kd_cuda_set_precision");
    kd_gemm_args gd = g;
    gd.a = gt_d(&A); gd.b = gt_d(&Bm); gd.c = gt_d(&C); gd.bias = bias_on ? gt_d(&bias) : NULL;
    cu->gemm(&gd, 0, 1);
    CHECK(kd_cuda_status() == KD_OK, "table gemm (%s) reported: %s", kd_cuda_precision_name(prec), kd_last_error());

    float *got = gt_pull(&C, "table gemm");
    const double u = prec == KD_CUDA_PREC_BF16 ? 1.0 / 256 : prec == KD_CUDA_PREC_TF32 ? 1.0 / 2048 : 0.0;
    const double in_round = 2 * u + u * u;
    const double ufac = FLT_EPSILON / 2 * (prec == KD_CUDA_PREC_F32 ? 4.0 : 16.0) * sqrt((double)(k > 0 ? k : 1));
    int64_t bad = 0, bad_fmt = 0, bad_outside = 0;
    for (int64_t z = 0; z < B; z++) {
        const float *Az = gt_h(&A) + (c->share & SHARE_A ? 0 : z * ea), *Bz = gt_h(&Bm) + (c->share & SHARE_B ? 0 : z * eb);
        const float *Arz = ar + (Az - gt_h(&A)), *Brz = br + (Bz - gt_h(&Bm));
        for (int64_t i = 0; i < m + c->cgap; i++)
            for (int64_t j = 0; j < ldc; j++) {
                int64_t e = z * sc + i * ldc + j;
                float gv = got[GT_GUARD + e];
                if (i >= m || j >= n) {
                    bad_outside += !oc_is_canary(gv);
                    continue;
                }
                double absdot = 0.0, absdot_r = 0.0;
                for (int64_t p = 0; p < k; p++) {
                    int64_t ia = ta ? p * lda + i : i * lda + p, ib = tb ? j * ldb + p : p * ldb + j;
                    absdot += fabs((double)Az[ia] * Bz[ib]);
                    absdot_r += fabs((double)Arz[ia] * Brz[ib]);
                }
                double extra = (beta_on ? 0.5 * fabs(gt_h(&C)[e]) : 0.0) + (bias_on ? fabs(gt_h(&bias)[j]) : 0.0);
                double tol = (fabs(alpha) * absdot_r + extra) * ufac + 1e-30;
                double tolf = fabs(alpha) * absdot * in_round + (fabs(alpha) * absdot * (1 + in_round) + extra) * ufac + 1e-30;
                if (!kd_close(gv, want[e], tol, 0.0)) {
                    if (bad < 4)
                        fprintf(stderr, "  [%lld,%lld,%lld] got %.9g want %.9g tol %.3g\n", (long long)z, (long long)i,
                                (long long)j, gv, want[e], tol);
                    bad++;
                }
                if (!kd_close(gv, want_f32[e], tolf, 0.0)) bad_fmt++;
            }
    }
    CHECK(bad == 0 && bad_fmt == 0 && bad_outside == 0,
          "table gemm %s m %lld n %lld k %lld batch %lld pad %d share %d cgap %d ta %d tb %d alpha %g beta %d bias %d: "
          "%lld off, %lld beyond the input-rounding bound, %lld elements outside C written",
          kd_cuda_precision_name(prec), (long long)m, (long long)n, (long long)k, (long long)B, c->pad, c->share, c->cgap,
          ta, tb, alpha, beta_on, bias_on, (long long)bad, (long long)bad_fmt, (long long)bad_outside);
    free(got); free(ar); free(br); free(want); free(want_f32);
    gt_free(&A); gt_free(&Bm); gt_free(&bias); gt_free(&C);
}

static void test_precision_api(void)
{
    CHECK(kd_cuda_get_precision() == KD_CUDA_PREC_F32, "default precision is f32, got %s",
          kd_cuda_precision_name(kd_cuda_get_precision()));
    const kd_cuda_precision all[] = { KD_CUDA_PREC_F32, KD_CUDA_PREC_TF32, KD_CUDA_PREC_BF16 };
    const char *names[] = { "f32", "tf32", "bf16" };
    for (int i = 0; i < 3; i++) {
        CHECK(kd_cuda_set_precision(all[i]) == KD_OK, "set %s", names[i]);
        CHECK(kd_cuda_get_precision() == all[i], "get after set %s", names[i]);
        CHECK(strcmp(kd_cuda_precision_name(all[i]), names[i]) == 0, "name of %s is %s", names[i],
              kd_cuda_precision_name(all[i]));
    }
    CHECK(kd_cuda_set_precision((kd_cuda_precision)7) == KD_ERR_ARG, "precision 7 is KD_ERR_ARG");
    CHECK(kd_cuda_get_precision() == KD_CUDA_PREC_BF16, "a rejected precision leaves the last one set");
    kd_clear_error();
    kd_cuda_set_precision(KD_CUDA_PREC_F32);
}

int main(void)
{
    gt_skip_without_gpu("test_cuda_precision");
    ref = kd_kernels_ref_f32();
    cu = kd_kernels_cuda_f32();
    if (!cu) gt_die("kd_kernels_cuda_f32");
    test_precision_api();

    const pcase cases[] = {
        { 1, 1, 1, 1, 0, SHARE_NONE, 0 },    { 7, 33, 127, 1, 0, SHARE_NONE, 0 }, { 129, 300, 33, 1, 3, SHARE_NONE, 0 },
        { 300, 129, 7, 2, 0, SHARE_NONE, 0 }, { 33, 7, 300, 3, 1, SHARE_NONE, 1 }, { 127, 129, 129, 2, 8, SHARE_NONE, 0 },
        { 1, 300, 129, 4, 0, SHARE_NONE, 0 }, { 300, 1, 33, 1, 0, SHARE_NONE, 0 }, { 128, 128, 64, 1, 0, SHARE_NONE, 0 },
        /* batch-shared operands: the linear layer (shared B) packed and apart, attention-like shared A, both */
        { 33, 129, 127, 3, 0, SHARE_B, 0 },   { 33, 129, 127, 3, 0, SHARE_B, 2 },  { 7, 300, 33, 4, 1, SHARE_A, 0 },
        { 129, 7, 33, 2, 3, SHARE_AB, 0 },    { 127, 33, 300, 2, 8, SHARE_B, 0 },
    };
    const int ncases = (int)(sizeof cases / sizeof *cases);
    const kd_cuda_precision precs[] = { KD_CUDA_PREC_F32, KD_CUDA_PREC_TF32, KD_CUDA_PREC_BF16 };
    for (int p = 0; p < 3; p++)
        for (int c = 0; c < ncases; c++)
            for (int tr = 0; tr < 4; tr++)
                run_case(&cases[c], tr >> 1, tr & 1, precs[p], (c + tr) % 2, (c + tr) % 3 == 0, 0.75);
    /* the nn.Linear layouts at BERT-like sizes: X W^T (the wgmma layout once packed), batched [4, 128, 768]
     * with the weight shared, and the two backward products dX = dY W, dW = dY^T X */
    const pcase lin[] = { { 256, 768, 768, 1, 0, SHARE_NONE, 0 }, { 128, 768, 768, 4, 0, SHARE_B, 0 } };
    for (int p = 0; p < 3; p++) {
        kd_cuda_gemm_counts_reset();
        run_case(&lin[0], 0, 1, precs[p], 0, 1, 1.0);
        run_case(&lin[1], 0, 1, precs[p], 0, 1, 1.0);
        run_case(&lin[0], 0, 0, precs[p], 0, 0, 1.0);
        run_case(&lin[0], 1, 0, precs[p], 1, 0, 1.0);
        /* bf16: each packed K-major, so on sm_90 each runs the wgmma kernel */
        if (precs[p] == KD_CUDA_PREC_BF16) gt_check_wgmma_ran(4, "the f32 table in bf16, nn.Linear layouts");
    }
    /* no product to round: k = 0 and alpha = 0 leave C = beta C + bias in every precision */
    const pcase k0 = { 9, 11, 0, 2, 1, SHARE_NONE, 0 }, a0 = { 9, 11, 5, 2, 0, SHARE_B, 0 };
    for (int p = 0; p < 3; p++) {
        run_case(&k0, 0, 0, precs[p], 1, 1, 0.75);
        run_case(&a0, 1, 1, precs[p], 1, 1, 0.0);
    }
    /* a bad shape through the table is an error in the sticky status, not a launch */
    kd_cuda_set_precision(KD_CUDA_PREC_BF16);
    kd_gemm_args badg = { 0, 0, -1, 4, 4, 1, NULL, 4, 0, NULL, 4, 0, NULL, 4, 0, NULL, 1.0, 0.0, NULL };
    cu->gemm(&badg, 0, 1);
    CHECK(kd_cuda_status() == KD_ERR_SHAPE, "negative m through the bf16 table entry is KD_ERR_SHAPE, got %s",
          kd_status_name(kd_cuda_status()));
    kd_cuda_clear_status();
    kd_clear_error();
    kd_cuda_set_precision(KD_CUDA_PREC_F32);
    printf("wgmma kernel %s\n", kd_cuda_has_wgmma() ? "available on this device" : kd_cuda_wgmma_unavailable());
    kd_cuda_shutdown();
    return kd_test_finish("test_cuda_precision");
}
