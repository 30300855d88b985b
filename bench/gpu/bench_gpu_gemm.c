/* bench/gpu/bench_gpu_gemm.c — kd's CUDA GEMMs (f32 SIMT, tf32 and bf16 tensor cores) in TFLOP/s at BERT
 * shapes (tokens M = 2048..8192, K/N = 768..4096, the nn.Linear layout C = X W^T) and 8192^3, next to
 * cuBLAS (dlopen'ed when installed) on the same operands in the same run. Each result is validated on
 * sampled entries against an exact host dot product before it is timed; times are medians of cudaEvent
 * measurements with L2 flushed before each repeat.
 *
 * The rows "table-*" time the CUDA table's GEMM entry (what the engine calls) in each precision of
 * kd_cuda_set_precision on the f32 operands: table-bf16 includes converting X and W to bf16 on every call,
 * so its figure beside the raw bf16 row (operands already bf16) is the price of that conversion. Their
 * cuBLAS column is cuBLAS in the same precision (bf16 from bf16 operands).
 *
 * The row "bf16-storage" times the bf16 table's GEMM entry (kd_kernels_cuda_bf16()): operands, C and
 * output all bf16 in memory, f32 accumulation, C rounded once; its last column is its speed relative to
 * the table-bf16 row just above it (the f32 table's bf16 mode at the same shape). Its cuBLAS column is
 * the raw bf16 row's (cuBLAS writes f32 C there).
 * At the end, which kernels ran (kd_cuda_gemm_counts), and why a bf16 GEMM missed the wgmma kernel if one
 * did on a device that has it.
 *   bench_gpu_gemm [--reps N (10)] [--quick: the first two shapes, 3 repeats unless --reps]  */
#include "bench/gpu/gpu_bench.h"
#include "kernels/cuda/gemm_cuda.h"
#include "kernels/cuda/gemm_plan.h"

typedef struct run_ctx {
    gb_cublas *cb;
    int use_cublas;
    kd_gemm_args g;
    kd_cuda_gemm_type type;
} run_ctx;

static void run_kd(void *p)
{
    run_ctx *c = p;
    if (kd_cuda_gemm(&c->g, c->type, KD_CUDA_EPI_NONE) != KD_OK) gb_die("kd_cuda_gemm");
}

/* The table entry: precision set by the caller, errors in the sticky status (checked after the timing). */
static void run_table(void *p)
{
    run_ctx *c = p;
    kd_kernels_cuda_f32()->gemm(&c->g, 0, 1);
}

static void run_table_bf16(void *p)
{
    run_ctx *c = p;
    kd_kernels_cuda_bf16()->gemm(&c->g, 0, 1);
}

/* Row-major C = X W^T (X m x k, W n x k) is column-major C^T = W^T' X: gemm(T, N, n, m, k). */
static void run_cublas(void *p)
{
    run_ctx *c = p;
    float one = 1.0f, zero = 0.0f;
    int bf = c->type == KD_CUDA_GEMM_BF16 || c->type == KD_CUDA_GEMM_BF16_WGMMA;
    int dt = bf ? GB_CUDA_R_16BF : GB_CUDA_R_32F;
    int ct = c->type == KD_CUDA_GEMM_TF32 ? GB_CUBLAS_COMPUTE_32F_FAST_TF32 : GB_CUBLAS_COMPUTE_32F;
    int st = c->cb->gemm_ex(c->cb->handle, GB_CUBLAS_OP_T, GB_CUBLAS_OP_N, (int)c->g.n, (int)c->g.m, (int)c->g.k, &one,
                            c->g.b, dt, (int)c->g.ldb, c->g.a, dt, (int)c->g.lda, &zero, c->g.c, GB_CUDA_R_32F,
                            (int)c->g.ldc, ct, GB_CUBLAS_GEMM_DEFAULT);
    if (st != 0) {
        fprintf(stderr, "bench: cublasGemmEx failed with status %d\n", st);
        exit(1);
    }
}

/* Check 256 sampled entries of C (device; f32, or bf16 when c_bf16) against exact dot products of the host
 * operands xr, wr (already rounded as the device rounds them). Tolerance as test/gpu/test_cuda_gemm.c, plus
 * one bf16 rounding step of the result for a bf16 C. */
static int validate(const float *xr, const float *wr, const void *dC, int c_bf16, int64_t m, int64_t n, int64_t k,
                    double c_acc, const char *what)
{
    int bad = 0;
    for (int s = 0; s < 256; s++) {
        int64_t i = (int64_t)((gb_rng = gb_rng * 6364136223846793005ull + 1) >> 33) % m;
        int64_t j = (int64_t)((gb_rng = gb_rng * 6364136223846793005ull + 1) >> 33) % n;
        float got;
        if (c_bf16) {
            uint16_t h;
            if (kd_cuda_d2h(&h, (const uint16_t *)dC + i * n + j, sizeof h) != KD_OK) gb_die("d2h");
            got = kd_cu_bf16_to_f32(h);
        } else if (kd_cuda_d2h(&got, (const float *)dC + i * n + j, sizeof got) != KD_OK) {
            gb_die("d2h");
        }
        double dot = 0, absdot = 0;
        for (int64_t p = 0; p < k; p++) {
            double t = (double)xr[i * k + p] * wr[j * k + p];
            dot += t;
            absdot += fabs(t);
        }
        double tol = absdot * 0.5 * 1.1920929e-7 * c_acc * sqrt((double)k) + (c_bf16 ? fabs(dot) / 128.0 : 0.0);
        if (!(fabs(got - dot) <= tol)) {
            if (bad < 3) fprintf(stderr, "  %s: C[%lld,%lld] = %.7g, want %.7g (tol %.3g)\n", what, (long long)i,
                                 (long long)j, got, dot, tol);
            bad++;
        }
    }
    return bad == 0;
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
    if (reps < 0) reps = quick ? 3 : 10;
    if (reps < 1) reps = 1;
    if (!kd_cuda_available()) {
        printf("bench_gpu_gemm: no CUDA device present, nothing to measure\n");
        return 77;
    }
    if (kd_cuda_init(0) != KD_OK) gb_die("init");
    kd_cuda_device_info info;
    if (kd_cuda_device_query(&info) != KD_OK) gb_die("query");
    gb_cublas cb;
    int have_cublas = gb_cublas_open(&cb);
    printf("device: %s (sm_%d%d, %d SMs)\ncuBLAS: %s\nwgmma kernel: %s\n", info.name, info.major, info.minor,
           info.sm_count, have_cublas ? "dlopen'ed" : "not found (kd only)", kd_cuda_has_wgmma() ? "yes" : "no");

    /* (M, N, K): bert-base QKV, attention out, FFN up/down; bert-large FFN up/down; the square 8192^3. */
    const int64_t shapes[][3] = {
        { 2048, 2304, 768 }, { 2048, 768, 768 }, { 2048, 3072, 768 }, { 2048, 768, 3072 },
        { 8192, 3072, 768 }, { 8192, 768, 3072 }, { 4096, 4096, 1024 }, { 4096, 1024, 4096 },
        { 8192, 8192, 8192 },
    };
    int nshapes = quick ? 2 : (int)(sizeof shapes / sizeof *shapes);
    const kd_cuda_gemm_type types[] = { KD_CUDA_GEMM_F32, KD_CUDA_GEMM_TF32, KD_CUDA_GEMM_BF16, KD_CUDA_GEMM_BF16_WGMMA };
    const char *tname[] = { "f32", "tf32", "bf16", "bf16-wgmma" };
    const kd_cuda_precision precs[] = { KD_CUDA_PREC_F32, KD_CUDA_PREC_TF32, KD_CUDA_PREC_BF16 };
    int failures = 0;
    printf("%-20s %-10s %12s %12s %8s\n", "M x N x K", "type", "kd TFLOP/s", "cuBLAS", "kd/cuBLAS");
    for (int s = 0; s < nshapes; s++) {
        int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        float *x = malloc((size_t)(m * k) * sizeof *x), *w = malloc((size_t)(n * k) * sizeof *w);
        float *xr = malloc((size_t)(m * k) * sizeof *xr), *wr = malloc((size_t)(n * k) * sizeof *wr);
        uint16_t *x16 = malloc((size_t)(m * k) * 2), *w16 = malloc((size_t)(n * k) * 2);
        if (!x || !w || !xr || !wr || !x16 || !w16) gb_die("malloc");
        for (int64_t i = 0; i < m * k; i++) { x[i] = gb_randn(); x16[i] = kd_cu_bf16_from_f32(x[i]); }
        for (int64_t i = 0; i < n * k; i++) { w[i] = gb_randn(); w16[i] = kd_cu_bf16_from_f32(w[i]); }
        void *dx, *dw, *dx16, *dw16, *dc, *dc16;
        if (kd_cuda_malloc(&dx, (size_t)(m * k) * 4) || kd_cuda_malloc(&dw, (size_t)(n * k) * 4) ||
            kd_cuda_malloc(&dx16, (size_t)(m * k) * 2) || kd_cuda_malloc(&dw16, (size_t)(n * k) * 2) ||
            kd_cuda_malloc(&dc, (size_t)(m * n) * 4) || kd_cuda_malloc(&dc16, (size_t)(m * n) * 2))
            gb_die("device buffers");
        if (kd_cuda_h2d(dx, x, (size_t)(m * k) * 4) || kd_cuda_h2d(dw, w, (size_t)(n * k) * 4) ||
            kd_cuda_h2d(dx16, x16, (size_t)(m * k) * 2) || kd_cuda_h2d(dw16, w16, (size_t)(n * k) * 2))
            gb_die("upload");
        double tf_cb_of[4] = { 0, 0, 0, 0 };   /* cuBLAS per raw type, for the table rows */
        double tf_table_bf16 = 0;               /* the f32 table's bf16 mode, for the bf16-storage row */
        for (int t = 0; t < 4 + 3 + 1; t++) {
            /* t < 4: the raw GEMMs; t = 4, 5, 6: the f32 table's entry in f32, tf32, bf16; t = 7: the bf16
             * table's entry */
            int table = t >= 4 && t < 7, store16 = t == 7;
            kd_cuda_precision prec = table ? precs[t - 4] : KD_CUDA_PREC_F32;
            kd_cuda_gemm_type ty = store16 ? KD_CUDA_GEMM_BF16
                                   : table ? (prec == KD_CUDA_PREC_F32 ? KD_CUDA_GEMM_F32 :
                                              prec == KD_CUDA_PREC_TF32 ? KD_CUDA_GEMM_TF32 : KD_CUDA_GEMM_BF16)
                                           : types[t];
            if (!table && ty == KD_CUDA_GEMM_BF16_WGMMA && !kd_cuda_has_wgmma()) continue;
            int bf = ty == KD_CUDA_GEMM_BF16 || ty == KD_CUDA_GEMM_BF16_WGMMA;
            for (int64_t i = 0; i < m * k; i++) xr[i] = bf ? kd_cu_bf16_to_f32(x16[i]) : ty == KD_CUDA_GEMM_TF32 ? kd_cu_tf32_round(x[i]) : x[i];
            for (int64_t i = 0; i < n * k; i++) wr[i] = bf ? kd_cu_bf16_to_f32(w16[i]) : ty == KD_CUDA_GEMM_TF32 ? kd_cu_tf32_round(w[i]) : w[i];
            run_ctx c;
            memset(&c, 0, sizeof c);
            c.cb = &cb;
            c.type = ty;
            /* the table takes f32 operands in every precision */
            int dev16 = bf && !table;
            kd_gemm_args g = { 0, 1, m, n, k, 1, dev16 ? dx16 : dx, k, 0, dev16 ? dw16 : dw, k, 0, store16 ? dc16 : dc, n, 0,
                               NULL, 1.0, 0.0, NULL };
            c.g = g;
            gb_fn fn = run_kd;
            char label[32];
            if (table) {
                if (kd_cuda_set_precision(prec) != KD_OK) gb_die("kd_cuda_set_precision");
                fn = run_table;
                snprintf(label, sizeof label, "table-%s", kd_cuda_precision_name(prec));
            } else if (store16) {
                fn = run_table_bf16;
                snprintf(label, sizeof label, "bf16-storage");
            } else {
                snprintf(label, sizeof label, "%s", tname[t]);
            }
            char what[96];
            snprintf(what, sizeof what, "%lldx%lldx%lld %s", (long long)m, (long long)n, (long long)k, label);
            double c_acc = ty == KD_CUDA_GEMM_F32 ? 4.0 : 16.0;
            if (store16 ? kd_cuda_memset(dc16, 0xff, (size_t)(m * n) * 2) != KD_OK /* 0xffff: a bf16 NaN */
                        : kd_cuda_fill_f32(dc, NAN, m * n) != KD_OK)
                gb_die("poison");
            fn(&c);
            if (kd_cuda_sync() != KD_OK || kd_cuda_status() != KD_OK) gb_die(what);
            int ok = validate(xr, wr, store16 ? dc16 : dc, store16, m, n, k, c_acc, what);
            double flop = 2.0 * (double)m * (double)n * (double)k;
            double t_kd = gb_time_ms(fn, &c, reps, 1);
            if (kd_cuda_status() != KD_OK) gb_die(what);
            double tf_kd = flop / (t_kd * 1e-3) / 1e12, tf_cb = 0;
            int ok_cb = 1;
            if (table && prec == KD_CUDA_PREC_BF16) tf_table_bf16 = tf_kd;
            if (have_cublas && !table && !store16) {
                if (kd_cuda_fill_f32(dc, NAN, m * n) != KD_OK) gb_die("poison");
                run_cublas(&c);
                if (kd_cuda_sync() != KD_OK) gb_die("cublas");
                ok_cb = validate(xr, wr, dc, 0, m, n, k, c_acc, "cuBLAS");
                tf_cb = flop / (gb_time_ms(run_cublas, &c, reps, 1) * 1e-3) / 1e12;
                tf_cb_of[t] = tf_cb;
            } else if (have_cublas) {
                tf_cb = tf_cb_of[ty];
            }
            char cbs[32] = "-", ratio[32] = "-";
            if (have_cublas && tf_cb > 0) {
                snprintf(cbs, sizeof cbs, "%.1f", tf_cb);
                snprintf(ratio, sizeof ratio, "%.0f%%", 100.0 * tf_kd / tf_cb);
            }
            char vs[48] = "";
            if (store16 && tf_table_bf16 > 0) snprintf(vs, sizeof vs, "  %.0f%% of table-bf16", 100.0 * tf_kd / tf_table_bf16);
            printf("%-20s %-10s %12.1f %12s %8s%s%s%s\n", what, label, tf_kd, cbs, ratio, vs, ok ? "" : "  INVALID",
                   ok_cb ? "" : "  (cuBLAS invalid)");
            fflush(stdout);
            if (!ok) failures++;
        }
        kd_cuda_set_precision(KD_CUDA_PREC_F32);
        kd_cuda_free(dx); kd_cuda_free(dw); kd_cuda_free(dx16); kd_cuda_free(dw16); kd_cuda_free(dc); kd_cuda_free(dc16);
        free(x); free(w); free(xr); free(wr); free(x16); free(w16);
    }
    kd_cuda_gemm_counts cn;
    kd_cuda_gemm_counts_get(&cn);
    printf("kernels run: wgmma %llu, mma.sync bf16 %llu, mma.sync tf32 %llu, SIMT f32 %llu; %llu bf16 GEMMs missed "
           "the wgmma kernel%s%s%s\n", (unsigned long long)cn.wgmma, (unsigned long long)cn.mma_bf16,
           (unsigned long long)cn.mma_tf32, (unsigned long long)cn.simt, (unsigned long long)cn.wgmma_fallbacks,
           cn.fallback_reason[0] ? " (last: " : "", cn.fallback_reason, cn.fallback_reason[0] ? ")" : "");
    if (!kd_cuda_has_wgmma()) printf("wgmma kernel not used: %s\n", kd_cuda_wgmma_unavailable());
    gb_cublas_close(&cb);
    kd_cuda_free(gb_flush_buf);
    kd_cuda_shutdown();
    if (failures) printf("%d results failed validation\n", failures);
    return failures ? 1 : 0;
}
