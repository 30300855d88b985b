/* bench/gpu/bench_gpu_attention.c — kd's CUDA flash attention, forward and backward, f32 and bf16 inputs,
 * in ms and TFLOP/s at BERT shapes (B x H x T x D, keys = queries, no mask, no dropout). FLOPs follow the
 * FlashAttention papers: forward 4 B H T^2 D (Q K^T and P V), backward 2.5 x forward. Each variant is
 * validated first against kd_kernels_ref_f32() on the (batch 0, head 0) slice (O, lse, dq, dk, dv), then
 * timed: median of cudaEvent measurements with L2 flushed before each repeat.
 * Lines starting with "RESULT" are what bench/gpu/bench_sdpa_pytorch.py --kd reads to print the ratio to
 * PyTorch's scaled_dot_product_attention at the same shapes.
 *   bench_gpu_attention [--reps N] [--quick]  */
#include <float.h>

#include "bench/gpu/gpu_bench.h"
#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/gemm_plan.h"

typedef struct run_ctx {
    kd_attention_args a;
    int bf16;
} run_ctx;

static void run_fwd(void *p)
{
    run_ctx *c = p;
    kd_status st = c->bf16 ? kd_cuda_flash_attention_bf16(&c->a) : kd_cuda_flash_attention_f32(&c->a);
    if (st != KD_OK) gb_die("flash attention forward");
}

static void run_bwd(void *p)
{
    run_ctx *c = p;
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

int main(int argc, char **argv)
{
    int reps = 20, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else {
            fprintf(stderr, "usage: %s [--reps N] [--quick]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    if (!kd_cuda_available()) {
        printf("bench_gpu_attention: no CUDA device present, nothing to measure\n");
        return 77;
    }
    if (kd_cuda_init(0) != KD_OK) gb_die("init");
    kd_cuda_device_info info;
    if (kd_cuda_device_query(&info) != KD_OK) gb_die("query");
    printf("device: %s (sm_%d%d, %d SMs)\n", info.name, info.major, info.minor, info.sm_count);

    /* bert-base at 128 and 512 tokens, bert-large at 512, minilm-ish D 32, a D 128 long sequence */
    const int64_t shapes[][4] = {
        { 32, 12, 128, 64 }, { 8, 12, 512, 64 }, { 8, 16, 512, 64 }, { 16, 12, 256, 32 }, { 4, 8, 1024, 128 },
    };
    int nshapes = quick ? 2 : (int)(sizeof shapes / sizeof *shapes);
    int failures = 0;
    const kd_kernels *ref = kd_kernels_ref_f32();
    printf("%-22s %-5s %10s %10s %10s %10s\n", "B x H x T x D", "in", "fwd ms", "fwd TF/s", "bwd ms", "bwd TF/s");
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
            printf("%-22s %-5s %10.3f %10.2f %10.3f %10.2f%s\n", what, bf ? "bf16" : "f32", ms_f, flop / (ms_f * 1e9),
                   ms_b, 2.5 * flop / (ms_b * 1e9), bad ? "  INVALID" : "");
            printf("RESULT kd %s %lld %lld %lld %lld %.4f %.4f\n", bf ? "bf16" : "f32", (long long)B, (long long)H,
                   (long long)T, (long long)D, ms_f, ms_b);
            fflush(stdout);
            if (bad) failures++;
        }
        kd_cuda_free(dq); kd_cuda_free(dk); kd_cuda_free(dv); kd_cuda_free(ddo); kd_cuda_free(dq16); kd_cuda_free(dk16);
        kd_cuda_free(dv16); kd_cuda_free(o); kd_cuda_free(lse); kd_cuda_free(gq); kd_cuda_free(gk); kd_cuda_free(gv);
        free(hq); free(hk); free(hv); free(hdo); free(b16);
    }
    kd_cuda_free(gb_flush_buf);
    kd_cuda_shutdown();
    if (failures) printf("%d results failed validation\n", failures);
    return failures ? 1 : 0;
}
