/* bench/gpu/bench_gpu_attention.c — kd's CUDA flash attention, forward and backward, in ms and TFLOP/s at
 * BERT shapes (B x H x T x D, keys = queries, no mask, no dropout), three variants: "f32" (every buffer
 * f32, CUDA cores), "bf16in" (bf16 q, k, v, the rest f32, CUDA cores) and "bf16" (bf16 storage, tensor
 * cores: kd_cu_attention_bf16, attention_bf16.cu). FLOPs follow the FlashAttention papers: forward
 * 4 B H T^2 D (Q K^T and P V), backward 2.5 x forward. Each variant is validated first on the (batch 0,
 * head 0) slice (O, dq, dk, dv) against kd_kernels_ref_f32() (f32, bf16in) or kd_kernels_ref_bf16()
 * (bf16: a gross-error check, |err| <= 2^-7 (|want| + max |want|); test_cuda_attention_bf16 holds the
 * exact rule), then timed: median of cudaEvent measurements with L2 flushed before each repeat.
 * Lines starting with "RESULT" are what bench/gpu/bench_sdpa_pytorch.py --kd reads to print the ratio to
 * PyTorch's scaled_dot_product_attention in bf16 at the same shapes (the "bf16" rows).
 *   bench_gpu_attention [--reps N (20)] [--quick: three shapes, 3 repeats unless --reps]  */
#include <float.h>

#include "bench/gpu/gpu_bench.h"
#include "kernels/bf16.h"
#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/gemm_plan.h"

typedef struct run_ctx {
    kd_attention_args a;
    int bf16;   /* 0 f32, 1 bf16 inputs, 2 bf16 storage */
} run_ctx;

static void run_fwd(void *p)
{
    run_ctx *c = p;
    if (c->bf16 == 2) {
        kd_cu_attention_bf16(&c->a, 0, 1);
        if (kd_cuda_status() != KD_OK) gb_die("bf16 attention forward");
        return;
    }
    kd_status st = c->bf16 ? kd_cuda_flash_attention_bf16(&c->a) : kd_cuda_flash_attention_f32(&c->a);
    if (st != KD_OK) gb_die("flash attention forward");
}

static void run_bwd(void *p)
{
    run_ctx *c = p;
    if (c->bf16 == 2) {
        kd_cu_attention_bwd_bf16(&c->a, 0, 1);
        if (kd_cuda_status() != KD_OK) gb_die("bf16 attention backward");
        return;
    }
    kd_status st = c->bf16 ? kd_cuda_flash_attention_bwd_bf16(&c->a) : kd_cuda_flash_attention_bwd_f32(&c->a);
    if (st != KD_OK) gb_die("flash attention backward");
}

static float *pull(const float *d, int64_t n)
{
    float *h = malloc((size_t)n * sizeof *h);
    if (!h || kd_cuda_d2h(h, d, (size_t)n * sizeof *h) != KD_OK) gb_die("d2h");
    return h;
}

/* Values of the (b 0, h 0) slice of a [B, T, H, D] device buffer against the host reference slice. */
static int64_t slice_bad(const float *dev_full, const float *want, int64_t T, int64_t H, int64_t D, double tol,
                         int64_t n_full, const char *what)
{
    float *got = pull(dev_full, n_full);
    int64_t bad = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t d = 0; d < D; d++) {
            double g = got[t * H * D + d], w = want[t * H * D + d];
            if (!(fabs(g - w) <= tol + tol * fabs(w))) {
                if (bad < 3) fprintf(stderr, "  %s[t %lld, d %lld] = %.7g, want %.7g\n", what, (long long)t, (long long)d, g, w);
                bad++;
            }
        }
    free(got);
    return bad;
}

/* The bf16-storage check on the (b 0, h 0) slice: a device bf16 buffer against the host reference slice. */
static int64_t slice_bad16(const void *dev_full, const kd_bf16 *want, int64_t T, int64_t H, int64_t D, int64_t n_full,
                           const char *what)
{
    kd_bf16 *got = malloc((size_t)n_full * 2);
    if (!got || kd_cuda_d2h(got, dev_full, (size_t)n_full * 2) != KD_OK) gb_die("d2h");
    double mx = 0.0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t d = 0; d < D; d++) mx = fmax(mx, fabs(kd_bf16_to_f32(want[t * H * D + d])));
    int64_t bad = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t d = 0; d < D; d++) {
            double g = kd_bf16_to_f32(got[t * H * D + d]), w = kd_bf16_to_f32(want[t * H * D + d]);
            if (!(fabs(g - w) <= ldexp(fabs(w) + mx, -7))) {
                if (bad < 3) fprintf(stderr, "  %s[t %lld, d %lld] = %.5g, want %.5g\n", what, (long long)t, (long long)d, g, w);
                bad++;
            }
        }
    free(got);
    return bad;
}

/* Validate and time the bf16-storage kernels at one shape; hq.. are the f32 draws (rounded here). */
static int bench_bf16(int64_t B, int64_t H, int64_t T, int64_t D, const float *hq, const float *hk, const float *hv,
                      const float *hdo, int reps)
{
    const int64_t n = B * T * H * D, nl = B * H * T;
    const float *src[4] = { hq, hk, hv, hdo };
    kd_bf16 *hb[4];
    void *db[4], *o = NULL, *lse = NULL, *g[3];
    for (int t = 0; t < 4; t++) {
        hb[t] = malloc((size_t)n * 2);
        if (!hb[t] || kd_cuda_malloc(&db[t], (size_t)n * 2) != KD_OK) gb_die("bf16 buffers");
        for (int64_t i = 0; i < n; i++) hb[t][i] = kd_f32_to_bf16(src[t][i]);
        if (kd_cuda_h2d(db[t], hb[t], (size_t)n * 2) != KD_OK) gb_die("upload bf16");
    }
    for (int t = 0; t < 3; t++)
        if (kd_cuda_malloc(&g[t], (size_t)n * 2) != KD_OK || kd_cuda_memset(g[t], 0, (size_t)n * 2) != KD_OK) gb_die("grads");
    if (kd_cuda_malloc(&o, (size_t)n * 2) != KD_OK || kd_cuda_malloc(&lse, (size_t)nl * 4) != KD_OK) gb_die("o, lse");
    run_ctx c;
    memset(&c, 0, sizeof c);
    c.bf16 = 2;
    kd_attention_args *a = &c.a;
    a->batch = B; a->heads = H; a->tq = T; a->tk = T; a->dim = D;
    a->q = db[0]; a->k = db[1]; a->v = db[2]; a->d_o = db[3]; a->o = o; a->lse = lse;
    a->dq = g[0]; a->dk = g[1]; a->dv = g[2];
    a->q_sb = a->k_sb = a->v_sb = a->o_sb = T * H * D;
    a->q_st = a->k_st = a->v_st = a->o_st = H * D;
    a->q_sh = a->k_sh = a->v_sh = a->o_sh = D;
    a->scale = 1.0 / sqrt((double)D);
    run_fwd(&c);
    run_bwd(&c);
    if (kd_cuda_sync() != KD_OK) gb_die("bf16 attention");
    kd_bf16 *ro = calloc((size_t)n, 2), *rg[3];
    float *rl = calloc((size_t)T, 4);
    for (int t = 0; t < 3; t++) rg[t] = calloc((size_t)n, 2);
    if (!ro || !rl || !rg[0] || !rg[1] || !rg[2]) gb_die("malloc");
    kd_attention_args h = *a;
    h.batch = 1; h.heads = 1;
    h.q = hb[0]; h.k = hb[1]; h.v = hb[2]; h.d_o = hb[3]; h.o = ro; h.lse = rl; h.dq = rg[0]; h.dk = rg[1]; h.dv = rg[2];
    const kd_kernels *ref = kd_kernels_ref_bf16();
    ref->attention(&h, 0, 1);
    ref->attention_bwd(&h, 0, 1);
    int64_t bad = slice_bad16(o, ro, T, H, D, n, "o") + slice_bad16(g[0], rg[0], T, H, D, n, "dq") +
                  slice_bad16(g[1], rg[1], T, H, D, n, "dk") + slice_bad16(g[2], rg[2], T, H, D, n, "dv");
    double ms_f = gb_time_ms(run_fwd, &c, reps, 1), ms_b = gb_time_ms(run_bwd, &c, reps, 1);
    double flop = 4.0 * (double)B * (double)H * (double)T * (double)T * (double)D;
    char what[64];
    snprintf(what, sizeof what, "%lldx%lldx%lldx%lld", (long long)B, (long long)H, (long long)T, (long long)D);
    printf("%-22s %-6s %10.3f %10.2f %10.3f %10.2f%s\n", what, "bf16", ms_f, flop / (ms_f * 1e9), ms_b,
           2.5 * flop / (ms_b * 1e9), bad ? "  INVALID" : "");
    printf("RESULT kd bf16 %lld %lld %lld %lld %.4f %.4f\n", (long long)B, (long long)H, (long long)T, (long long)D, ms_f,
           ms_b);
    fflush(stdout);
    for (int t = 0; t < 4; t++) { free(hb[t]); kd_cuda_free(db[t]); }
    for (int t = 0; t < 3; t++) { free(rg[t]); kd_cuda_free(g[t]); }
    free(ro); free(rl);
    kd_cuda_free(o); kd_cuda_free(lse);
    return bad != 0;
}

int main(int argc, char **argv)
{
    int reps = -1, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else {
            fprintf(stderr, "usage: %s [--reps N] [--quick]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 0) reps = quick ? 3 : 20;
    if (reps < 1) reps = 1;
    if (!kd_cuda_available()) {
        printf("bench_gpu_attention: no CUDA device present, nothing to measure\n");
        return 77;
    }
    if (kd_cuda_init(0) != KD_OK) gb_die("init");
    kd_cuda_device_info info;
    if (kd_cuda_device_query(&info) != KD_OK) gb_die("query");
    printf("device: %s (sm_%d%d, %d SMs)\n", info.name, info.major, info.minor, info.sm_count);

    /* bert-base (12 heads) and bert-large (16 heads) at 128 tokens, batch 16 and 64; bert-base at 512,
     * bert-large at 512, minilm-ish D 32, a D 128 long sequence */
    const int64_t all_shapes[][4] = {
        { 16, 12, 128, 64 }, { 64, 12, 128, 64 }, { 16, 16, 128, 64 }, { 64, 16, 128, 64 }, { 32, 12, 128, 64 },
        { 8, 12, 512, 64 },  { 8, 16, 512, 64 },  { 16, 12, 256, 32 }, { 4, 8, 1024, 128 },
    };
    /* --quick: bert-base at batch 16, and head dims 32 and 128 once each */
    const int64_t quick_shapes[][4] = { { 16, 12, 128, 64 }, { 16, 12, 256, 32 }, { 4, 8, 512, 128 } };
    const int64_t (*shapes)[4] = quick ? quick_shapes : all_shapes;
    int nshapes = quick ? (int)(sizeof quick_shapes / sizeof *quick_shapes) : (int)(sizeof all_shapes / sizeof *all_shapes);
    int failures = 0;
    const kd_kernels *ref = kd_kernels_ref_f32();
    printf("%-22s %-6s %10s %10s %10s %10s\n", "B x H x T x D", "in", "fwd ms", "fwd TF/s", "bwd ms", "bwd TF/s");
    for (int s = 0; s < nshapes; s++) {
        int64_t B = shapes[s][0], H = shapes[s][1], T = shapes[s][2], D = shapes[s][3];
        int64_t n = B * T * H * D, nl = B * H * T;
        float *hq = malloc((size_t)n * sizeof *hq), *hk = malloc((size_t)n * sizeof *hk);
        float *hv = malloc((size_t)n * sizeof *hv), *hdo = malloc((size_t)n * sizeof *hdo);
        uint16_t *b16 = malloc((size_t)n * 2);
        if (!hq || !hk || !hv || !hdo || !b16) gb_die("malloc");
        for (int64_t i = 0; i < n; i++) hq[i] = gb_randn(), hk[i] = gb_randn(), hv[i] = gb_randn(), hdo[i] = gb_randn();
        void *dq = NULL, *dk = NULL, *dv = NULL, *ddo = NULL, *dq16 = NULL, *dk16 = NULL, *dv16 = NULL, *o = NULL;
        void *lse = NULL, *gq = NULL, *gk = NULL, *gv = NULL;
        if (kd_cuda_malloc(&dq, (size_t)n * 4) || kd_cuda_malloc(&dk, (size_t)n * 4) || kd_cuda_malloc(&dv, (size_t)n * 4) ||
            kd_cuda_malloc(&ddo, (size_t)n * 4) || kd_cuda_malloc(&dq16, (size_t)n * 2) ||
            kd_cuda_malloc(&dk16, (size_t)n * 2) || kd_cuda_malloc(&dv16, (size_t)n * 2) || kd_cuda_malloc(&o, (size_t)n * 4) ||
            kd_cuda_malloc(&lse, (size_t)nl * 4) || kd_cuda_malloc(&gq, (size_t)n * 4) || kd_cuda_malloc(&gk, (size_t)n * 4) ||
            kd_cuda_malloc(&gv, (size_t)n * 4))
            gb_die("device buffers");
        if (kd_cuda_h2d(dq, hq, (size_t)n * 4) || kd_cuda_h2d(dk, hk, (size_t)n * 4) || kd_cuda_h2d(dv, hv, (size_t)n * 4) ||
            kd_cuda_h2d(ddo, hdo, (size_t)n * 4))
            gb_die("upload");
        float *hsrc[3] = { hq, hk, hv };
        void *d16[3] = { dq16, dk16, dv16 };
        for (int t = 0; t < 3; t++) {
            for (int64_t i = 0; i < n; i++) b16[i] = kd_cu_bf16_from_f32(hsrc[t][i]);
            if (kd_cuda_h2d(d16[t], b16, (size_t)n * 2) != KD_OK) gb_die("upload bf16");
        }
        for (int bf = 0; bf < 2; bf++) {
            run_ctx c;
            memset(&c, 0, sizeof c);
            c.bf16 = bf;
            kd_attention_args *a = &c.a;
            a->batch = B; a->heads = H; a->tq = T; a->tk = T; a->dim = D;
            a->q = bf ? dq16 : dq; a->k = bf ? dk16 : dk; a->v = bf ? dv16 : dv; a->o = o;
            a->q_sb = a->k_sb = a->v_sb = a->o_sb = T * H * D;
            a->q_st = a->k_st = a->v_st = a->o_st = H * D;
            a->q_sh = a->k_sh = a->v_sh = a->o_sh = D;
            a->scale = 1.0 / sqrt((double)D);
            a->lse = lse; a->d_o = ddo; a->dq = gq; a->dk = gk; a->dv = gv;

            /* validate on (b 0, h 0): the host reference with batch = heads = 1 on the same strides */
            if (kd_cuda_fill_f32(o, NAN, n) || kd_cuda_memset(gq, 0, (size_t)n * 4) || kd_cuda_memset(gk, 0, (size_t)n * 4) ||
                kd_cuda_memset(gv, 0, (size_t)n * 4))
                gb_die("poison");
            run_fwd(&c);
            run_bwd(&c);
            if (kd_cuda_sync() != KD_OK) gb_die("flash attention");
            float *rq = malloc((size_t)n * 4), *rk = malloc((size_t)n * 4), *rv = malloc((size_t)n * 4);
            float *ro = calloc((size_t)n, 4), *rl = calloc((size_t)T, 4);
            float *rgq = calloc((size_t)n, 4), *rgk = calloc((size_t)n, 4), *rgv = calloc((size_t)n, 4);
            if (!rq || !rk || !rv || !ro || !rl || !rgq || !rgk || !rgv) gb_die("malloc");
            for (int64_t i = 0; i < n; i++) {
                rq[i] = bf ? kd_cu_bf16_to_f32(kd_cu_bf16_from_f32(hq[i])) : hq[i];
                rk[i] = bf ? kd_cu_bf16_to_f32(kd_cu_bf16_from_f32(hk[i])) : hk[i];
                rv[i] = bf ? kd_cu_bf16_to_f32(kd_cu_bf16_from_f32(hv[i])) : hv[i];
            }
            kd_attention_args h = *a;
            h.batch = 1; h.heads = 1;
            h.q = rq; h.k = rk; h.v = rv; h.o = ro; h.lse = rl; h.d_o = hdo; h.dq = rgq; h.dk = rgk; h.dv = rgv;
            ref->attention(&h, 0, 1);
            ref->attention_bwd(&h, 0, 1);
            double tol = FLT_EPSILON * (16.0 + 4.0 * sqrt((double)(T * D))) * 4;
            int64_t bad = slice_bad(o, ro, T, H, D, tol, n, "o") + slice_bad(gq, rgq, T, H, D, 4 * tol, n, "dq") +
                          slice_bad(gk, rgk, T, H, D, 4 * tol, n, "dk") + slice_bad(gv, rgv, T, H, D, 4 * tol, n, "dv");
            free(rq); free(rk); free(rv); free(ro); free(rl); free(rgq); free(rgk); free(rgv);

            double ms_f = gb_time_ms(run_fwd, &c, reps, 1), ms_b = gb_time_ms(run_bwd, &c, reps, 1);
            double flop = 4.0 * (double)B * (double)H * (double)T * (double)T * (double)D;
            char what[64];
            snprintf(what, sizeof what, "%lldx%lldx%lldx%lld", (long long)B, (long long)H, (long long)T, (long long)D);
            printf("%-22s %-6s %10.3f %10.2f %10.3f %10.2f%s\n", what, bf ? "bf16in" : "f32", ms_f, flop / (ms_f * 1e9),
                   ms_b, 2.5 * flop / (ms_b * 1e9), bad ? "  INVALID" : "");
            printf("RESULT kd %s %lld %lld %lld %lld %.4f %.4f\n", bf ? "bf16in" : "f32", (long long)B, (long long)H,
                   (long long)T, (long long)D, ms_f, ms_b);
            fflush(stdout);
            if (bad) failures++;
        }
        failures += bench_bf16(B, H, T, D, hq, hk, hv, hdo, reps);
        kd_cuda_free(dq); kd_cuda_free(dk); kd_cuda_free(dv); kd_cuda_free(ddo); kd_cuda_free(dq16); kd_cuda_free(dk16);
        kd_cuda_free(dv16); kd_cuda_free(o); kd_cuda_free(lse); kd_cuda_free(gq); kd_cuda_free(gk); kd_cuda_free(gv);
        free(hq); free(hk); free(hv); free(hdo); free(b16);
    }
    kd_cuda_free(gb_flush_buf);
    kd_cuda_shutdown();
    if (failures) printf("%d results failed validation\n", failures);
    return failures ? 1 : 0;
}
