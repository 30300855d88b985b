/* test/engine/test_bf16.c — mixed precision in the engine: every op that takes bf16 activations against
 * the same op in f32 (itself checked against loops and finite differences in test_ops / test_grad), the
 * cast op exactly, and the ops that refuse bf16.
 *
 * Each case builds one graph twice from the same values (all representable in bf16): once on f32 leaves,
 * once on bf16 leaves (LayerNorm's gamma/beta and attention's mask are f32 in both), runs it forward and
 * backward with the same random upstream gradient (bf16-representable), and compares the output and every
 * leaf's gradient element by element. A case whose result passes through k bf16 roundings (k = 1: one op
 * whose kernel rounds its output once) must meet
 *     |bf16 - f32| <= k 2^-8 |f32| + 1e-5 max|f32|
 * 2^-8 bounds one bf16 rounding relative to the value (8 significant bits); the second term covers the f32
 * table's own accumulation error, relative to the largest value. Cases where rounded intermediates meet
 * cancellation (an op's backward through a bf16 temporary, a saved bf16 output such as tanh's, gradients
 * of a shared operand summed across uses, chains of ops) are judged normwise instead:
 *     ||bf16 - f32||_2 <= k 2^-8 ||f32||_2   and every element within k 2^-8 (|f32| + max|f32|)
 * which still fails any wrong index, sign or missing term. A NaN or Inf anywhere fails. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/device.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "kernels/bf16.h"
#include "test/testutil.h"

#define MAX_IN 5

typedef kd_tensor *(*case_fn)(kd_tensor **in, void *ctx);

typedef struct leaf_spec {
    int ndim;
    int64_t shape[4];
    double lo, hi;     /* uniform values in [lo, hi) */
    int stat;          /* 1: stays f32 in the bf16 run (LayerNorm gamma/beta, attention mask) */
    int grad;          /* 1: requires a gradient */
    const float *fixed; /* values to use instead of random ones (NULL: random) */
} leaf_spec;

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static double uniform(double lo, double hi)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return lo + (hi - lo) * (double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) * 0x1p-53;
}

static int64_t numel_of(const leaf_spec *s)
{
    int64_t n = 1;
    for (int d = 0; d < s->ndim; d++) n *= s->shape[d];
    return n;
}

static float round_bf16(double v) { return kd_bf16_to_f32(kd_f32_to_bf16((float)v)); }

/* A heap leaf of dtype dt holding vals (n floats, bf16-representable unless stat). */
static kd_tensor *make_leaf(kd_dtype dt, const leaf_spec *s, const float *vals)
{
    kd_tensor *t = kd_param(dt, s->ndim, s->shape, "leaf");
    if (!t) return NULL;
    int64_t n = numel_of(s);
    if (dt == KD_BF16) {
        kd_bf16 *h = malloc((size_t)n * sizeof *h);
        for (int64_t i = 0; i < n; i++) h[i] = kd_f32_to_bf16(vals[i]);
        kd_from_host(t, h);
        free(h);
    } else {
        kd_from_host(t, vals);
    }
    if (s->grad) kd_set_requires_grad(t, 1);
    return t;
}

/* t's elements as doubles (any float dtype, contiguous or not). */
static double *read_all(const kd_tensor *t)
{
    kd_tensor *c = kd_contiguous((kd_tensor *)t);
    int64_t n = kd_numel(c);
    double *out = malloc((size_t)(n ? n : 1) * sizeof *out);
    int64_t idx[KD_MAX_DIMS] = {0};
    for (int64_t i = 0; i < n; i++) {
        int64_t rem = i;
        for (int d = c->ndim - 1; d >= 0; d--) {
            idx[d] = rem % c->shape[d];
            rem /= c->shape[d];
        }
        out[i] = kd_get(c, idx);
    }
    return out;
}

/* Compare n values; returns the worst |b - f| / tolerance seen (> 1 is a failure). */
static double K = 1.0;   /* bf16 roundings the case's results pass through */
static int NORMWISE = 0;

static double compare(const char *name, const char *what, const double *f, const double *b, int64_t n)
{
    double mx = 0.0, d2 = 0.0, f2 = 0.0;
    for (int64_t i = 0; i < n; i++) {
        mx = fmax(mx, fabs(f[i]));
        d2 += (b[i] - f[i]) * (b[i] - f[i]);
        f2 += f[i] * f[i];
    }
    double worst = 0.0;
    int64_t bad = 0;
    if (NORMWISE) {
        double rel = sqrt(d2) / (sqrt(f2) + 1e-30);
        CHECK(rel <= K * 0x1p-8, "%s: %s: relative L2 error %.3g, expected <= %.3g", name, what, rel, K * 0x1p-8);
        worst = rel / (K * 0x1p-8);
    }
    for (int64_t i = 0; i < n; i++) {
        double tol = K * 0x1p-8 * fabs(f[i]) + (NORMWISE ? K * 0x1p-8 : 1e-5) * mx + 1e-30;
        double r = fabs(b[i] - f[i]) / tol;
        if (!(r <= 1.0) || !isfinite(b[i]) || !isfinite(f[i])) {
            if (bad < 3)
                fprintf(stderr, "  %s %s[%lld]: bf16 %.9g, f32 %.9g (tol %.3g)\n", name, what, (long long)i, b[i],
                        f[i], tol);
            bad++;
        }
        if (!NORMWISE && (r > worst || r != r)) worst = r;
    }
    CHECK(bad == 0, "%s: %s: %lld of %lld elements outside the bf16 tolerance", name, what, (long long)bad, (long long)n);
    return worst;
}

static void run_case(const char *name, case_fn f, void *ctx, int n_in, const leaf_spec *spec)
{
    float *vals[MAX_IN] = {0};
    for (int i = 0; i < n_in; i++) {
        int64_t n = numel_of(&spec[i]);
        vals[i] = malloc((size_t)(n ? n : 1) * sizeof(float));
        for (int64_t e = 0; e < n; e++) {
            double v = spec[i].fixed ? spec[i].fixed[e] : uniform(spec[i].lo, spec[i].hi);
            vals[i][e] = spec[i].stat ? (float)v : round_bf16(v);
        }
    }
    double *out[2] = {0}, *grads[2][MAX_IN] = {{0}};
    int64_t out_n = 0;
    float *up = NULL;
    kd_generator gen = kd_generator_get();
    for (int run = 0; run < 2; run++) {
        kd_dtype dt = run ? KD_BF16 : KD_F32;
        kd_tensor *in[MAX_IN] = {0};
        for (int i = 0; i < n_in; i++) in[i] = make_leaf(spec[i].stat ? KD_F32 : dt, &spec[i], vals[i]);
        kd_generator_set(gen);   /* the same dropout decisions in both runs */
        kd_tensor *y = f(in, ctx);
        if (!y) {
            CHECK(0, "%s (%s): forward failed: %s", name, kd_dtype_name(dt), kd_last_error());
            goto done;
        }
        if (run == 0) {
            out_n = kd_numel(y);
            up = malloc((size_t)(out_n ? out_n : 1) * sizeof *up);
            for (int64_t e = 0; e < out_n; e++) up[e] = round_bf16(uniform(-1.0, 1.0));
        }
        CHECK(kd_numel(y) == out_n, "%s: output sizes differ", name);
        kd_tensor *u = kd_empty(y->dtype, y->ndim, y->shape);
        if (y->dtype == KD_BF16) {
            kd_bf16 *h = malloc((size_t)(out_n ? out_n : 1) * sizeof *h);
            for (int64_t e = 0; e < out_n; e++) h[e] = kd_f32_to_bf16(up[e]);
            kd_from_host(u, h);
            free(h);
        } else {
            kd_from_host(u, up);
        }
        out[run] = read_all(y);
        kd_status st = kd_backward(y, u);
        CHECK(st == KD_OK, "%s (%s): backward failed: %s", name, kd_dtype_name(dt), kd_last_error());
        for (int i = 0; i < n_in; i++) {
            if (!spec[i].grad) continue;
            CHECK(in[i]->grad != NULL, "%s (%s): input %d got no gradient", name, kd_dtype_name(dt), i);
            if (!in[i]->grad) continue;
            CHECK(in[i]->grad->dtype == in[i]->dtype, "%s: input %d's gradient has dtype %s, its input %s", name, i,
                  kd_dtype_name(in[i]->grad->dtype), kd_dtype_name(in[i]->dtype));
            grads[run][i] = read_all(in[i]->grad);
        }
        kd_arena_reset();
        for (int i = 0; i < n_in; i++) kd_tensor_free(in[i]);
    }
    {
        double worst = compare(name, "output", out[0], out[1], out_n);
        for (int i = 0; i < n_in; i++) {
            if (!spec[i].grad || !grads[0][i] || !grads[1][i]) continue;
            char w[32];
            snprintf(w, sizeof w, "grad %d", i);
            worst = fmax(worst, compare(name, w, grads[0][i], grads[1][i], numel_of(&spec[i])));
        }
        printf("  %-28s k=%g %s worst error / tolerance %.3f\n", name, K, NORMWISE ? "normwise   " : "elementwise", worst);
    }
done:
    kd_arena_reset();
    free(up);
    for (int r = 0; r < 2; r++) {
        free(out[r]);
        for (int i = 0; i < n_in; i++) free(grads[r][i]);
    }
    for (int i = 0; i < n_in; i++) free(vals[i]);
}

/* ------------------------------------------------------------------ the cases */

static kd_tensor *f_add(kd_tensor **in, void *c) { (void)c; return kd_add(in[0], in[1]); }
static kd_tensor *f_sub(kd_tensor **in, void *c) { (void)c; return kd_sub(in[0], in[1]); }
static kd_tensor *f_mul(kd_tensor **in, void *c) { (void)c; return kd_mul(in[0], in[1]); }
static kd_tensor *f_div(kd_tensor **in, void *c) { (void)c; return kd_div(in[0], in[1]); }
static kd_tensor *f_scale(kd_tensor **in, void *c) { (void)c; return kd_scale(in[0], -1.75); }
static kd_tensor *f_add_scalar(kd_tensor **in, void *c) { (void)c; return kd_add_scalar(in[0], 0.5); }
static kd_tensor *f_gelu(kd_tensor **in, void *c) { (void)c; return kd_gelu(in[0]); }
static kd_tensor *f_tanh(kd_tensor **in, void *c) { (void)c; return kd_tanh(in[0]); }
static kd_tensor *f_sum1(kd_tensor **in, void *c)
{
    (void)c;
    int d = 1;
    return kd_sum(in[0], 1, &d, 0);
}
static kd_tensor *f_mean_all(kd_tensor **in, void *c) { (void)c; return kd_mean(in[0], 0, NULL, 0); }
static kd_tensor *f_matmul(kd_tensor **in, void *c) { (void)c; return kd_matmul(in[0], in[1]); }
static kd_tensor *f_matmul_t(kd_tensor **in, void *c) { (void)c; return kd_matmul(in[0], kd_transpose(in[1], 0, 1)); }
static kd_tensor *f_linear(kd_tensor **in, void *c) { (void)c; return kd_linear(in[0], in[1], in[2]); }
static kd_tensor *f_softmax(kd_tensor **in, void *c) { (void)c; return kd_softmax(in[0]); }
static kd_tensor *f_log_softmax(kd_tensor **in, void *c) { (void)c; return kd_log_softmax(in[0]); }
static kd_tensor *f_layernorm(kd_tensor **in, void *c) { (void)c; return kd_layernorm(in[0], in[1], in[2], 1e-5); }
static kd_tensor *f_dropout(kd_tensor **in, void *c) { (void)c; return kd_dropout(in[0], 0.3, 1); }
static kd_tensor *f_attention(kd_tensor **in, void *c)
{
    double p = *(double *)c;
    return kd_attention(in[0], in[1], in[2], in[3], 0.25, p, 1);
}
static kd_tensor *f_views(kd_tensor **in, void *c)
{
    (void)c;
    int perm[3] = { 2, 0, 1 };
    kd_tensor *x = kd_permute(in[0], perm);               /* [7, 3, 5] */
    x = kd_narrow(x, 0, 2, 4);                            /* [4, 3, 5] */
    int64_t shp[2] = { 4, 15 };
    return kd_mul(kd_reshape(kd_contiguous(x), 2, shp), kd_reshape(kd_contiguous(x), 2, shp));   /* used twice */
}
static kd_tensor *f_chain(kd_tensor **in, void *c)
{
    /* A small block as the encoder uses it: linear, GELU, linear, residual, LayerNorm. */
    (void)c;
    kd_tensor *h = kd_gelu(kd_linear(in[0], in[1], NULL));
    return kd_layernorm(kd_add(kd_linear(h, in[2], NULL), in[0]), in[3], in[4], 1e-12);
}

static void test_ops(void)
{
    printf("bf16 ops against f32 (output and every gradient):\n");
    leaf_spec a357 = { 3, { 3, 5, 7 }, -2, 2, 0, 1, NULL }, b7 = { 1, { 7 }, -2, 2, 0, 1, NULL };
    leaf_spec pos7 = { 1, { 7 }, 0.5, 2, 0, 1, NULL };
    run_case("add (broadcast)", f_add, NULL, 2, (leaf_spec[]){ a357, b7 });
    run_case("sub (broadcast)", f_sub, NULL, 2, (leaf_spec[]){ a357, b7 });
    run_case("mul (broadcast)", f_mul, NULL, 2, (leaf_spec[]){ a357, b7 });
    K = 4, NORMWISE = 1;   /* b's gradient: -g a / b^2 through a bf16 temporary, summed over rows */
    run_case("div (broadcast)", f_div, NULL, 2, (leaf_spec[]){ a357, pos7 });
    K = 1, NORMWISE = 0;
    run_case("scale", f_scale, NULL, 1, (leaf_spec[]){ a357 });
    run_case("add_scalar", f_add_scalar, NULL, 1, (leaf_spec[]){ a357 });
    run_case("gelu", f_gelu, NULL, 1, (leaf_spec[]){ { 2, { 9, 31 }, -5, 5, 0, 1, NULL } });
    K = 4, NORMWISE = 1;   /* 1 - y^2 from the saved bf16 y */
    run_case("tanh", f_tanh, NULL, 1, (leaf_spec[]){ { 2, { 9, 31 }, -3, 3, 0, 1, NULL } });
    K = 1, NORMWISE = 0;
    run_case("sum over dim 1", f_sum1, NULL, 1, (leaf_spec[]){ { 3, { 4, 333, 5 }, -1, 1, 0, 1, NULL } });
    run_case("mean of all", f_mean_all, NULL, 1, (leaf_spec[]){ { 2, { 65, 33 }, -1, 1, 0, 1, NULL } });
    K = 4, NORMWISE = 1;   /* the shared b's gradient: one rounding per batch item */
    run_case("matmul batched x shared", f_matmul, NULL, 2,
             (leaf_spec[]){ { 3, { 2, 9, 130 }, -1, 1, 0, 1, NULL }, { 2, { 130, 11 }, -1, 1, 0, 1, NULL } });
    K = 1, NORMWISE = 0;
    run_case("matmul, transposed view", f_matmul_t, NULL, 2,
             (leaf_spec[]){ { 2, { 17, 64 }, -1, 1, 0, 1, NULL }, { 2, { 23, 64 }, -1, 1, 0, 1, NULL } });
    run_case("linear with bias", f_linear, NULL, 3,
             (leaf_spec[]){ { 3, { 4, 6, 33 }, -1, 1, 0, 1, NULL }, { 2, { 17, 33 }, -0.5, 0.5, 0, 1, NULL },
                            { 1, { 17 }, -1, 1, 0, 1, NULL } });
    K = 4, NORMWISE = 1;   /* the backward reads the saved bf16 output */
    run_case("softmax", f_softmax, NULL, 1, (leaf_spec[]){ { 2, { 5, 37 }, -4, 4, 0, 1, NULL } });
    run_case("log_softmax", f_log_softmax, NULL, 1, (leaf_spec[]){ { 2, { 5, 37 }, -4, 4, 0, 1, NULL } });
    K = 1, NORMWISE = 0;
    run_case("layernorm (f32 gamma, beta)", f_layernorm, NULL, 3,
             (leaf_spec[]){ { 2, { 6, 40 }, -2, 3, 0, 1, NULL }, { 1, { 40 }, 0.5, 1.5, 1, 1, NULL },
                            { 1, { 40 }, -0.5, 0.5, 1, 1, NULL } });
    run_case("dropout p=0.3", f_dropout, NULL, 1, (leaf_spec[]){ { 2, { 7, 129 }, -2, 2, 0, 1, NULL } });
    static float mask[2 * 9];
    for (int i = 0; i < 18; i++) mask[i] = (i % 9) >= (i < 9 ? 6 : 9) ? -FLT_MAX : 0.0f;   /* padded keys in row 0 */
    leaf_spec q = { 4, { 2, 9, 3, 16 }, -1, 1, 0, 1, NULL }, kv = { 4, { 2, 9, 3, 16 }, -1, 1, 0, 1, NULL };
    leaf_spec m = { 2, { 2, 9 }, 0, 0, 1, 0, mask };
    double p0 = 0.0, p1 = 0.2;
    run_case("attention, mask", f_attention, &p0, 4, (leaf_spec[]){ q, kv, kv, m });
    run_case("attention, mask, dropout", f_attention, &p1, 4, (leaf_spec[]){ q, kv, kv, m });
    run_case("permute, narrow, reshape", f_views, NULL, 1, (leaf_spec[]){ { 3, { 3, 5, 7 }, -2, 2, 0, 1, NULL } });
    K = 6, NORMWISE = 1;   /* five ops, LayerNorm's normalisation amplifies */
    run_case("linear, gelu, residual, LN", f_chain, NULL, 5,
             (leaf_spec[]){ { 2, { 8, 24 }, -1, 1, 0, 1, NULL }, { 2, { 40, 24 }, -0.3, 0.3, 0, 1, NULL },
                            { 2, { 24, 40 }, -0.3, 0.3, 0, 1, NULL }, { 1, { 24 }, 0.8, 1.2, 1, 1, NULL },
                            { 1, { 24 }, -0.1, 0.1, 1, 1, NULL } });
    K = 1, NORMWISE = 0;
}

/* The cast op: forward rounds each element exactly as kernels/bf16.h; the gradient crosses back. */
static void test_cast(void)
{
    enum { N = 1000 };
    float x[N], u[N];
    for (int i = 0; i < N; i++) {
        x[i] = (float)uniform(-3, 3) * (i % 7 == 0 ? 1e-30f : 1.0f);
        u[i] = (float)uniform(-1, 1);
    }
    x[0] = INFINITY;
    x[1] = -0.0f;
    x[2] = 3.3961e38f;   /* rounds past bf16's largest: Inf */
    int64_t n = N;
    kd_tensor *t = kd_param(KD_F32, 1, &n, "x");
    kd_from_host(t, x);
    kd_set_requires_grad(t, 1);
    kd_tensor *y = kd_cast(t, KD_BF16);
    CHECK(y && y->dtype == KD_BF16, "cast: f32 -> bf16 gives a bf16 tensor");
    kd_bf16 hy[N], hu[N];
    kd_to_host(y, hy);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += hy[i] != kd_f32_to_bf16(x[i]);
    CHECK(bad == 0, "cast: %d of %d bf16 values differ from round-to-nearest-even", bad, N);
    for (int i = 0; i < N; i++) hu[i] = kd_f32_to_bf16(u[i]);
    kd_tensor *ub = kd_empty(KD_BF16, 1, &n);
    kd_from_host(ub, hu);
    CHECK(kd_backward(y, ub) == KD_OK, "cast: backward");
    float g[N];
    kd_to_host(t->grad, g);
    bad = 0;
    for (int i = 0; i < N; i++) bad += g[i] != kd_bf16_to_f32(hu[i]);
    CHECK(bad == 0, "cast: %d of %d f32 gradients differ from the bf16 upstream", bad, N);
    kd_arena_reset();
    kd_tensor_free(t);

    /* bf16 -> f32: exact forward; gradient rounded to bf16 (and accumulated: the input is used twice). */
    kd_tensor *b = kd_param(KD_BF16, 1, &n, "b");
    kd_from_host(b, hy);
    kd_set_requires_grad(b, 1);
    kd_tensor *f = kd_add(kd_cast(b, KD_F32), kd_cast(b, KD_F32));
    kd_tensor *uf = kd_empty(KD_F32, 1, &n);
    kd_from_host(uf, u);
    CHECK(kd_backward(f, uf) == KD_OK, "cast: backward bf16 <- f32");
    kd_bf16 gb[N];
    kd_to_host(b->grad, gb);
    bad = 0;
    for (int i = 0; i < N; i++) {
        kd_bf16 once = kd_f32_to_bf16(u[i]);
        kd_bf16 twice = kd_f32_to_bf16(kd_bf16_to_f32(once) + u[i]);
        bad += gb[i] != twice;
    }
    CHECK(bad == 0, "cast: %d of %d bf16 gradients differ from round(round(u) + u)", bad, N);
    CHECK(kd_cast(b, KD_BF16) == b, "cast: to its own dtype is the tensor itself");
    kd_arena_reset();
    kd_tensor_free(b);
    printf("  cast f32 <-> bf16 exact (forward and gradients, %d values incl. Inf, -0, overflow)\n", N);
}

static int msg_has(const char *needle) { return strstr(kd_last_error(), needle) != NULL; }

static void test_refusals(void)
{
    int64_t s2[2] = { 4, 3 }, s1[1] = { 4 }, s4[4] = { 1, 2, 1, 8 }, sm[2] = { 1, 2 };
    kd_tensor *zb = kd_zeros(KD_BF16, 2, s2);
    int32_t tg[4] = { 0, 1, 2, 0 };
    kd_tensor *t = kd_from_buffer(KD_I32, 1, s1, tg);
    CHECK(kd_cross_entropy(zb, t) == NULL && msg_has("bf16") && msg_has("cross_entropy"),
          "cross_entropy refuses bf16 logits: %s", kd_last_error());
    CHECK(kd_kl_div(kd_log_softmax(zb), kd_softmax(zb)) == NULL && msg_has("bf16"), "kl_div refuses bf16: %s",
          kd_last_error());
    CHECK(kd_embedding(zb, t) == NULL && msg_has("bf16"), "embedding refuses a bf16 table: %s", kd_last_error());
    kd_tensor *gb = kd_ones(KD_BF16, 1, (int64_t[]){ 3 });
    CHECK(kd_layernorm(zb, gb, NULL, 1e-5) == NULL && msg_has("gamma") && msg_has("f32"),
          "layernorm with bf16 input wants f32 gamma: %s", kd_last_error());
    kd_tensor *q = kd_zeros(KD_BF16, 4, s4), *mb = kd_zeros(KD_BF16, 2, sm);
    CHECK(kd_attention(q, q, q, mb, 1.0, 0.0, 0) == NULL && msg_has("mask") && msg_has("f32"),
          "attention with bf16 q wants an f32 mask: %s", kd_last_error());
    kd_tensor *d = kd_zeros(KD_F64, 2, s2);
    CHECK(kd_cast(d, KD_BF16) == NULL && msg_has("f64"), "cast f64 -> bf16 refused: %s", kd_last_error());
    CHECK(kd_add(zb, kd_zeros(KD_F32, 2, s2)) == NULL && msg_has("bf16") && msg_has("f32"),
          "add of bf16 and f32 refused: %s", kd_last_error());
    kd_arena_reset();
    printf("  refusals: losses, embedding, LayerNorm/attention parameter dtypes, f64 casts, mixed operands\n");
}

int main(void)
{
    kd_set_threads(2);
    printf("kernels: f32 %s, bf16 %s\n", kd_kernels_for(KD_CPU, KD_F32)->name, kd_kernels_for(KD_CPU, KD_BF16)->name);
    test_ops();
    test_cast();
    test_refusals();
    printf("%d passed, %d failed\n", kd_test_passed, kd_test_failed);
    kd_shutdown();
    return kd_test_failed ? 1 : 0;
}
