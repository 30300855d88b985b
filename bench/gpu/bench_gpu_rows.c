/* bench/gpu/bench_gpu_rows.c — the CUDA row and element kernels in GB/s (the bytes each must move at
 * least once: inputs read, outputs written, accumulators read and written) next to a device-to-device
 * copy's GB/s measured in the same run, at BERT sizes (16384 tokens x 768/1024, FFN 3072, 110M
 * parameters for AdamW). Each kernel's output is validated against kernels/ref before timing; times
 * are cudaEvent medians with L2 flushed before each repeat.
 *   bench_gpu_rows [--reps N (20)] [--quick: 2048 tokens, width 768, 10M parameters, 3 repeats unless --reps]  */
#include "bench/gpu/gpu_bench.h"
#include "kernels/kernels.h"

typedef struct rctx {
    const kd_kernels *cu;
    int which;
    void *args;
    void *dst, *src;
    size_t bytes;
} rctx;

enum { K_COPY, K_SOFTMAX, K_LAYERNORM, K_LN_BWD, K_GELU, K_GELU_BWD, K_DROPOUT, K_ADAMW, K_CROSS_ENTROPY };

static void run(void *p)
{
    rctx *c = p;
    switch (c->which) {
    case K_COPY: if (kd_cuda_d2d(c->dst, c->src, c->bytes) != KD_OK) gb_die("d2d"); break;
    case K_SOFTMAX: c->cu->softmax(c->args, 0, 1); break;
    case K_LAYERNORM: c->cu->layernorm(c->args, 0, 1); break;
    case K_LN_BWD: c->cu->layernorm_bwd(c->args, 0, 1); break;
    case K_GELU: c->cu->unary(c->args, 0, 1); break;
    case K_GELU_BWD: c->cu->binary(c->args, 0, 1); break;
    case K_DROPOUT: c->cu->dropout(c->args, 0, 1); break;
    case K_ADAMW: c->cu->adamw(c->args, 0, 1); break;
    case K_CROSS_ENTROPY: c->cu->cross_entropy(c->args, 0, 1); break;
    }
}

static float *down(const float *d, int64_t n)
{
    float *h = malloc((size_t)n * sizeof *h);
    if (!h || kd_cuda_d2h(h, d, (size_t)n * sizeof *h) != KD_OK) gb_die("d2h");
    return h;
}

/* Compare n device values with host reference values: |got - want| <= tol (1 + |want|). */
static int check(const float *dgot, const float *want, int64_t n, double tol, const char *what)
{
    if (kd_cuda_sync() != KD_OK) gb_die(what);
    float *got = down(dgot, n);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++)
        if (!(fabs((double)got[i] - want[i]) <= tol * (1.0 + fabs(want[i])))) bad++;
    free(got);
    if (bad) printf("%s: %lld of %lld values differ from the reference\n", what, (long long)bad, (long long)n);
    return bad == 0;
}

static int failures;
static double copy_gbs;

static void report(const char *what, rctx *c, double bytes, int reps, int valid)
{
    double ms = gb_time_ms(run, c, reps, 1);
    double gbs = bytes / (ms * 1e-3) / 1e9;
    printf("%-34s %9.3f ms %9.1f GB/s %6.0f%% of copy%s\n", what, ms, gbs, 100.0 * gbs / copy_gbs,
           valid ? "" : "  INVALID");
    fflush(stdout);
    if (!valid) failures++;
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
        printf("bench_gpu_rows: no CUDA device present, nothing to measure\n");
        return 77;
    }
    if (kd_cuda_init(0) != KD_OK) gb_die("init");
    kd_cuda_device_info info;
    if (kd_cuda_device_query(&info) != KD_OK) gb_die("query");
    printf("device: %s (sm_%d%d)\n", info.name, info.major, info.minor);
    const kd_kernels *ref = kd_kernels_ref_f32(), *cu = kd_kernels_cuda_f32();
    rctx c;
    memset(&c, 0, sizeof c);
    c.cu = cu;

    const int64_t R = quick ? 2048 : 16384, C = 768, NF = R * 3072;
    int64_t n = R * C;
    char what[64];
    float *x = gb_dev_randn(NF), *y = gb_dev_randn(NF), *z = gb_dev_randn(NF);
    float *hx = down(x, NF), *hy = down(y, NF);

    /* the yardstick: copy of R x 3072 floats (read + write) */
    c.which = K_COPY; c.dst = z; c.src = x; c.bytes = (size_t)NF * 4;
    double ms = gb_time_ms(run, &c, reps, 1);
    copy_gbs = 2.0 * (double)c.bytes / (ms * 1e-3) / 1e9;
    snprintf(what, sizeof what, "device-to-device copy %lld MiB", (long long)(c.bytes >> 20));
    printf("%-34s %9.3f ms %9.1f GB/s\n", what, ms, copy_gbs);

    const int64_t widths[] = { 768, 1024 };
    for (int wi = 0; wi < (quick ? 1 : 2); wi++) {
        int64_t cols = widths[wi], rows = n / cols;
        /* softmax */
        float *want = malloc((size_t)n * sizeof *want);
        kd_softmax_args s = { 0, rows, cols, hx, want };
        ref->softmax(&s, 0, 1);
        s.x = x; s.y = y;
        c.which = K_SOFTMAX; c.args = &s;
        run(&c);
        int ok = check(y, want, n, 1e-5, "softmax");
        snprintf(what, sizeof what, "softmax %lldx%lld", (long long)rows, (long long)cols);
        report(what, &c, 2.0 * n * 4, reps, ok);
        /* layernorm */
        float *g = gb_dev_randn(cols), *b = gb_dev_randn(cols), *mu = gb_dev_randn(rows), *rs = gb_dev_randn(rows);
        float *hg = down(g, cols), *hb = down(b, cols), *hmu = malloc((size_t)rows * 4), *hrs = malloc((size_t)rows * 4);
        kd_layernorm_args l = { rows, cols, 1e-12, hx, hg, hb, want, hmu, hrs };
        ref->layernorm(&l, 0, 1);
        l.x = x; l.gamma = g; l.beta = b; l.y = y; l.mean = mu; l.rstd = rs;
        c.which = K_LAYERNORM; c.args = &l;
        run(&c);
        ok = check(y, want, n, 1e-4, "layernorm");
        snprintf(what, sizeof what, "layernorm %lldx%lld", (long long)rows, (long long)cols);
        report(what, &c, 2.0 * n * 4, reps, ok);
        /* layernorm backward, dx only (the row part): reads x, dy, dx; writes dx */
        kd_layernorm_bwd_args lb = { rows, cols, x, mu, rs, g, z, y, NULL, NULL };
        c.which = K_LN_BWD; c.args = &lb;
        snprintf(what, sizeof what, "layernorm_bwd dx %lldx%lld", (long long)rows, (long long)cols);
        report(what, &c, 4.0 * n * 4, reps, 1);
        kd_cuda_free(g); kd_cuda_free(b); kd_cuda_free(mu); kd_cuda_free(rs);
        free(hg); free(hb); free(hmu); free(hrs); free(want);
    }
    /* GELU forward and backward over the FFN activation R x 3072 */
    {
        float *want = malloc((size_t)NF * sizeof *want);
        kd_map_args m;
        memset(&m, 0, sizeof m);
        m.op = KD_UN_GELU; m.ndim = 1; m.shape[0] = NF; m.out_stride[0] = m.a_stride[0] = m.b_stride[0] = 1;
        m.a = hx; m.out = want;
        ref->unary(&m, 0, 1);
        m.a = x; m.out = z;
        c.which = K_GELU; c.args = &m;
        run(&c);
        snprintf(what, sizeof what, "gelu %lldx3072", (long long)R);
        report(what, &c, 2.0 * NF * 4, reps, check(z, want, NF, 1e-5, "gelu"));
        m.op = KD_BIN_GELU_BWD; m.a = hx; m.b = hy; m.out = want;
        ref->binary(&m, 0, 1);
        m.a = x; m.b = y; m.out = z;
        c.which = K_GELU_BWD; c.args = &m;
        run(&c);
        snprintf(what, sizeof what, "gelu_bwd %lldx3072", (long long)R);
        report(what, &c, 3.0 * NF * 4, reps, check(z, want, NF, 1e-5, "gelu_bwd"));
        kd_dropout_args d = { NF, 0.1, 1234, 77, 0, hx, want };
        ref->dropout(&d, 0, 1);
        d.x = x; d.out = z;
        c.which = K_DROPOUT; c.args = &d;
        run(&c);
        snprintf(what, sizeof what, "dropout p=0.1 %lldx3072", (long long)R);
        report(what, &c, 2.0 * NF * 4, reps, check(z, want, NF, 1e-6, "dropout"));
        free(want);
    }
    /* AdamW over bert-base's 110M parameters (10M quick): w, m, v read and written, g read */
    {
        const int64_t P = (quick ? 10 : 110) * 1000 * 1000;
        float *w = gb_dev_randn(P), *gr = gb_dev_randn(P), *mm = gb_dev_randn(P), *vv = gb_dev_randn(P);
        kd_adamw_args a = { P, w, gr, mm, vv, 1e-4, 0.9, 0.999, 1e-8, 0.01, 0.1, 0.001 };
        /* v must be >= 0: square it once on the device through the unary table entry */
        kd_map_args sq;
        memset(&sq, 0, sizeof sq);
        sq.op = KD_UN_SQUARE; sq.ndim = 1; sq.shape[0] = P; sq.out_stride[0] = sq.a_stride[0] = 1;
        sq.a = vv; sq.out = vv;
        cu->unary(&sq, 0, 1);
        /* validate one step on the first 1M parameters */
        const int64_t V = 1000 * 1000;
        float *hw = down(w, V), *hg = down(gr, V), *hm = down(mm, V), *hv = down(vv, V);
        kd_adamw_args ah = a;
        ah.n = V; ah.param = hw; ah.grad = hg; ah.m = hm; ah.v = hv;
        ref->adamw(&ah, 0, 1);
        c.which = K_ADAMW; c.args = &a;
        run(&c);
        int ok = check(w, hw, V, 1e-5, "adamw");
        snprintf(what, sizeof what, "adamw %lldM params", (long long)(P / 1000000));
        report(what, &c, 7.0 * P * 4, reps, ok);
        free(hw); free(hg); free(hm); free(hv);
        kd_cuda_free(w); kd_cuda_free(gr); kd_cuda_free(mm); kd_cuda_free(vv);
    }
    free(hx); free(hy);
    kd_cuda_free(x); kd_cuda_free(y); kd_cuda_free(z);
    kd_cuda_free(gb_flush_buf);
    kd_cuda_shutdown();
    if (failures) printf("%d kernels failed validation\n", failures);
    return failures ? 1 : 0;
}
