/* test/engine/test_ops.c — every op's forward against an independent computation: plain loops in double
 * written here from the definitions, at several shapes (1 and odd sizes included), in f32 and f64.
 * Tolerance: atol + rtol |ref| with rtol = 4 * k * eps(dtype) for a reduction of length k. */
#include <float.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "kernels/rng.h"
#include "test/testutil.h"

#define S(...) ((const int64_t[]){ __VA_ARGS__ })

static uint64_t seed = 1;

static kd_tensor *rnd(kd_dtype dt, int ndim, const int64_t *shape, double lo, double hi)
{
    return kd_rand_uniform(dt, ndim, shape, lo, hi, seed++);
}

/* Element i (row-major over the logical shape) of any tensor, as double. */
static double at(const kd_tensor *t, int64_t i)
{
    int64_t idx[KD_MAX_DIMS];
    for (int d = t->ndim - 1; d >= 0; d--) {
        idx[d] = i % t->shape[d];
        i /= t->shape[d];
    }
    return kd_get(t, idx);
}

static double eps_of(kd_dtype dt) { return dt == KD_F32 ? FLT_EPSILON : DBL_EPSILON; }

/* Compare got (any layout) with want[] (row-major), shape checked by the caller. */
static void compare(const char *what, kd_dtype dt, const kd_tensor *got, const double *want, int64_t n, double k)
{
    if (!got) {
        CHECK(0, "%s: op failed: %s", what, kd_last_error());
        return;
    }
    CHECK(kd_numel(got) == n, "%s: %lld elements, want %lld", what, (long long)kd_numel(got), (long long)n);
    double rtol = 4.0 * (k < 1 ? 1 : k) * eps_of(dt), atol = rtol;
    int bad = 0;
    for (int64_t i = 0; i < n && i < kd_numel(got); i++) {
        if (!kd_close(at(got, i), want[i], atol, rtol)) {
            if (bad < 3) fprintf(stderr, "  %s [%s] element %lld: got %.9g want %.9g\n", what, kd_dtype_name(dt),
                                 (long long)i, at(got, i), want[i]);
            bad++;
        }
    }
    CHECK(bad == 0, "%s [%s]: %d of %lld elements differ", what, kd_dtype_name(dt), bad, (long long)n);
}

static double *buf(int64_t n) { return calloc((size_t)(n ? n : 1), sizeof(double)); }

static void test_matmul(kd_dtype dt)
{
    const int64_t dims[][4] = { { 1, 1, 1, 1 }, { 1, 7, 5, 3 }, { 3, 4, 9, 6 }, { 2, 17, 33, 5 } };
    for (int c = 0; c < 4; c++) {
        int64_t B = dims[c][0], m = dims[c][1], k = dims[c][2], n = dims[c][3];
        for (int variant = 0; variant < 4; variant++) {
            int ta = variant & 1, tb = variant >> 1;
            kd_tensor *a = ta ? rnd(dt, 3, S(B, k, m), -1, 1) : rnd(dt, 3, S(B, m, k), -1, 1);
            kd_tensor *b = tb ? rnd(dt, 3, S(B, n, k), -1, 1) : rnd(dt, 3, S(B, k, n), -1, 1);
            kd_tensor *y = kd_matmul(ta ? kd_transpose(a, 1, 2) : a, tb ? kd_transpose(b, 1, 2) : b);
            double *want = buf(B * m * n);
            for (int64_t bb = 0; bb < B; bb++)
                for (int64_t i = 0; i < m; i++)
                    for (int64_t j = 0; j < n; j++) {
                        double s = 0;
                        for (int64_t p = 0; p < k; p++) {
                            double av = ta ? at(a, (bb * k + p) * m + i) : at(a, (bb * m + i) * k + p);
                            double bv = tb ? at(b, (bb * n + j) * k + p) : at(b, (bb * k + p) * n + j);
                            s += av * bv;
                        }
                        want[(bb * m + i) * n + j] = s;
                    }
            char what[96];
            snprintf(what, sizeof what, "matmul B%lld %lldx%lldx%lld ta%d tb%d", (long long)B, (long long)m,
                     (long long)k, (long long)n, ta, tb);
            compare(what, dt, y, want, B * m * n, (double)k);
            free(want);
        }
        /* linear: x [B*m, k] W^T [k, n] + bias */
        kd_tensor *x = rnd(dt, 2, S(B * m, k), -1, 1), *w = rnd(dt, 2, S(n, k), -1, 1), *bias = rnd(dt, 1, S(n), -1, 1);
        kd_tensor *y = kd_linear(x, w, bias);
        double *want = buf(B * m * n);
        for (int64_t i = 0; i < B * m; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = at(bias, j);
                for (int64_t p = 0; p < k; p++) s += at(x, i * k + p) * at(w, j * k + p);
                want[i * n + j] = s;
            }
        compare("linear", dt, y, want, B * m * n, (double)k);
        free(want);
    }
    kd_arena_reset();
}

static void test_elementwise(kd_dtype dt)
{
    kd_tensor *a = rnd(dt, 3, S(2, 3, 5), -2, 2), *b = rnd(dt, 2, S(1, 5), 0.5, 2);
    kd_tensor *outs[4] = { kd_add(a, b), kd_sub(a, b), kd_mul(a, b), kd_div(a, b) };
    const char *names[4] = { "add broadcast", "sub broadcast", "mul broadcast", "div broadcast" };
    double *want = buf(30);
    for (int op = 0; op < 4; op++) {
        for (int64_t i = 0; i < 30; i++) {
            double x = at(a, i), y = at(b, i % 5);
            want[i] = op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : x / y;
        }
        compare(names[op], dt, outs[op], want, 30, 1);
    }
    kd_tensor *sc = kd_scale(a, 3.5), *as = kd_add_scalar(a, -0.25), *g = kd_gelu(a), *th = kd_tanh(a);
    for (int64_t i = 0; i < 30; i++) want[i] = 3.5 * at(a, i);
    compare("scale", dt, sc, want, 30, 1);
    for (int64_t i = 0; i < 30; i++) want[i] = at(a, i) - 0.25;
    compare("add_scalar", dt, as, want, 30, 1);
    for (int64_t i = 0; i < 30; i++) want[i] = 0.5 * at(a, i) * erfc(-at(a, i) / sqrt(2.0));
    compare("gelu (erfc form)", dt, g, want, 30, 4);
    for (int64_t i = 0; i < 30; i++) want[i] = (exp(2 * at(a, i)) - 1) / (exp(2 * at(a, i)) + 1);
    compare("tanh (exp form)", dt, th, want, 30, 4);
    kd_tensor *sq = kd_sqrt(b);
    for (int64_t i = 0; i < 5; i++) want[i] = exp(0.5 * log(at(b, i)));
    compare("sqrt (exp-log form)", dt, sq, want, 5, 2);
    free(want);
    kd_arena_reset();
}

static void test_reduce_shape(kd_dtype dt)
{
    kd_tensor *x = rnd(dt, 3, S(3, 4, 5), -1, 1);
    double want[60];
    /* sum over dim 1 -> [3, 5] */
    for (int64_t i = 0; i < 3; i++)
        for (int64_t k = 0; k < 5; k++) {
            double s = 0;
            for (int64_t j = 0; j < 4; j++) s += at(x, (i * 4 + j) * 5 + k);
            want[i * 5 + k] = s;
        }
    kd_tensor *s1 = kd_sum(x, 1, (const int[]){ 1 }, 0);
    compare("sum dim 1", dt, s1, want, 15, 4);
    CHECK(s1 && s1->ndim == 2 && s1->shape[0] == 3 && s1->shape[1] == 5, "sum dim 1: shape");
    kd_tensor *m = kd_mean(x, 2, (const int[]){ 0, -1 }, 1);
    for (int64_t j = 0; j < 4; j++) {
        double s = 0;
        for (int64_t i = 0; i < 3; i++)
            for (int64_t k = 0; k < 5; k++) s += at(x, (i * 4 + j) * 5 + k);
        want[j] = s / 15;
    }
    compare("mean dims 0,-1 keepdim", dt, m, want, 4, 15);
    CHECK(m && m->ndim == 3 && m->shape[0] == 1 && m->shape[1] == 4 && m->shape[2] == 1, "mean keepdim: shape");
    double total = 0;
    for (int64_t i = 0; i < 60; i++) total += at(x, i);
    compare("sum all", dt, kd_sum(x, 0, NULL, 0), &total, 1, 60);

    /* permute (2, 0, 1): out[k][i][j] = x[i][j][k]; then contiguous; narrow; reshape */
    kd_tensor *p = kd_permute(x, (const int[]){ 2, 0, 1 });
    for (int64_t k = 0; k < 5; k++)
        for (int64_t i = 0; i < 3; i++)
            for (int64_t j = 0; j < 4; j++) want[(k * 3 + i) * 4 + j] = at(x, (i * 4 + j) * 5 + k);
    compare("permute", dt, p, want, 60, 1);
    kd_tensor *pc = kd_contiguous(p);
    compare("contiguous of permute", dt, pc, want, 60, 1);
    CHECK(pc && kd_is_contiguous(pc), "contiguous: result is contiguous");
    kd_tensor *r = kd_reshape(p, 2, S(15, 4));
    compare("reshape of permuted view", dt, r, want, 60, 1);
    kd_tensor *nw = kd_narrow(x, 2, 1, 3);
    for (int64_t i = 0; i < 12; i++)
        for (int64_t k = 0; k < 3; k++) want[i * 3 + k] = at(x, i * 5 + k + 1);
    compare("narrow dim 2 [1,4)", dt, nw, want, 36, 1);
    kd_tensor *t = kd_transpose(x, 0, -1);
    CHECK(t && t->shape[0] == 5 && t->shape[2] == 3, "transpose: shape");
    kd_arena_reset();
}

static void test_rows(kd_dtype dt)
{
    const int64_t shapes[][2] = { { 1, 1 }, { 3, 7 }, { 4, 129 } };
    for (int c = 0; c < 3; c++) {
        int64_t R = shapes[c][0], C = shapes[c][1];
        kd_tensor *x = rnd(dt, 2, shapes[c], -4, 4);
        double *want = buf(R * C), *wlog = buf(R * C);
        for (int64_t r = 0; r < R; r++) {
            double z = 0;
            for (int64_t j = 0; j < C; j++) z += exp(at(x, r * C + j));
            for (int64_t j = 0; j < C; j++) {
                want[r * C + j] = exp(at(x, r * C + j)) / z;
                wlog[r * C + j] = at(x, r * C + j) - log(z);
            }
        }
        compare("softmax", dt, kd_softmax(x), want, R * C, (double)C);
        compare("log_softmax", dt, kd_log_softmax(x), wlog, R * C, (double)C);
        /* LayerNorm with two-pass mean/variance in double */
        kd_tensor *gam = rnd(dt, 1, &C, 0.5, 1.5), *bet = rnd(dt, 1, &C, -1, 1);
        for (int64_t r = 0; r < R; r++) {
            double mu = 0, var = 0;
            for (int64_t j = 0; j < C; j++) mu += at(x, r * C + j) / (double)C;
            for (int64_t j = 0; j < C; j++) var += pow(at(x, r * C + j) - mu, 2) / (double)C;
            for (int64_t j = 0; j < C; j++)
                want[r * C + j] = (at(x, r * C + j) - mu) / sqrt(var + 1e-5) * at(gam, j) + at(bet, j);
        }
        compare("layernorm", dt, kd_layernorm(x, gam, bet, 1e-5), want, R * C, (double)C);
        /* cross-entropy and KL against the definitions */
        kd_tensor *tg = kd_zeros(KD_I32, 1, &R);
        for (int64_t r = 0; r < R; r++) ((int32_t *)kd_data(tg))[r] = (int32_t)((r * 5 + 1) % C);
        double ce = 0;
        for (int64_t r = 0; r < R; r++) ce -= wlog[r * C + (r * 5 + 1) % C] / (double)R;
        compare("cross_entropy", dt, kd_cross_entropy(x, tg), &ce, 1, (double)C);
        kd_tensor *p = kd_softmax(rnd(dt, 2, shapes[c], -2, 2));
        double kl = 0;
        for (int64_t i = 0; i < R * C; i++) kl += at(p, i) * (log(at(p, i)) - wlog[i]) / (double)R;
        compare("kl_div batchmean", dt, kd_kl_div(kd_log_softmax(x), p), &kl, 1, (double)C);
        free(want);
        free(wlog);
    }
    /* KL with a zero in the target: the term is 0, as PyTorch's xlogy convention. */
    double pz[2] = { 0.0, 1.0 }, lq[2] = { log(0.25), log(0.75) }, want = log(1.0 / 0.75);
    compare("kl_div with p = 0", dt, kd_kl_div(kd_from_buffer(KD_F64, 2, S(1, 2), lq), kd_from_buffer(KD_F64, 2, S(1, 2), pz)),
            &want, 1, 2);
    kd_arena_reset();
}

static void test_embedding_dropout(kd_dtype dt)
{
    kd_tensor *table = rnd(dt, 2, S(7, 5), -1, 1);
    int32_t ids[6] = { 6, 0, 3, 3, 1, 6 };
    kd_tensor *id = kd_from_buffer(KD_I32, 2, S(2, 3), ids);
    double want[30];
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 5; j++) want[i * 5 + j] = at(table, ids[i] * 5 + j);
    kd_tensor *e = kd_embedding(table, id);
    compare("embedding", dt, e, want, 30, 1);
    CHECK(e && e->ndim == 3 && e->shape[2] == 5, "embedding: shape [2, 3, 5]");

    /* Dropout: every element is 0 or x / (1 - p), decided by the Philox stream at the generator offset. */
    int64_t n = 20000;
    kd_tensor *x = kd_ones(dt, 1, &n);
    kd_manual_seed(77);
    kd_generator g = kd_generator_get();
    kd_tensor *y = kd_dropout(x, 0.25, 1);
    int64_t kept = 0, wrong = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = at(y, i);
        int keep = kd_rng_keep(g.seed, g.counter + (uint64_t)i, 0.25f);
        if (keep) kept++;
        if (!kd_close(v, keep ? 1.0 / 0.75 : 0.0, 1e-6, 1e-6)) wrong++;
    }
    CHECK(wrong == 0, "dropout [%s]: %lld elements disagree with the Philox keep decisions", kd_dtype_name(dt), (long long)wrong);
    double frac = (double)kept / (double)n;
    CHECK(frac > 0.74 && frac < 0.76, "dropout: kept fraction %.4f, want 0.75 +- 0.01", frac);
    CHECK(kd_dropout(x, 0.25, 0) == x, "dropout: identity in eval mode");
    kd_arena_reset();
}

static void test_attention(kd_dtype dt)
{
    struct { int64_t B, Tq, Tk, H, D; } cases[] = { { 1, 1, 1, 1, 1 }, { 2, 5, 7, 3, 4 }, { 1, 9, 9, 2, 8 } };
    for (int c = 0; c < 3; c++) {
        int64_t B = cases[c].B, Tq = cases[c].Tq, Tk = cases[c].Tk, H = cases[c].H, D = cases[c].D;
        kd_tensor *q = rnd(dt, 4, S(B, Tq, H, D), -1, 1), *k = rnd(dt, 4, S(B, Tk, H, D), -1, 1),
                  *v = rnd(dt, 4, S(B, Tk, H, D), -1, 1);
        kd_tensor *mask = kd_zeros(dt, 2, S(B, Tk));
        /* pad the last two keys of the last batch item (if there are at least three keys) */
        if (Tk >= 3) {
            kd_fill(kd_narrow(kd_narrow(mask, 0, B - 1, 1), 1, Tk - 2, 2), -1e9);
        }
        double scale = 1.0 / sqrt((double)D);
        kd_tensor *o = kd_attention(q, k, v, mask, scale, 0.0, 0);
        double *want = buf(B * Tq * H * D), *p = buf(Tk);
        for (int64_t b = 0; b < B; b++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t i = 0; i < Tq; i++) {
                    double mx = -INFINITY, z = 0;
                    for (int64_t j = 0; j < Tk; j++) {
                        double s = 0;
                        for (int64_t d = 0; d < D; d++) s += at(q, ((b * Tq + i) * H + h) * D + d) * at(k, ((b * Tk + j) * H + h) * D + d);
                        p[j] = s * scale + at(mask, b * Tk + j);
                        if (p[j] > mx) mx = p[j];
                    }
                    for (int64_t j = 0; j < Tk; j++) z += (p[j] = exp(p[j] - mx));
                    for (int64_t d = 0; d < D; d++) {
                        double s = 0;
                        for (int64_t j = 0; j < Tk; j++) s += p[j] / z * at(v, ((b * Tk + j) * H + h) * D + d);
                        want[((b * Tq + i) * H + h) * D + d] = s;
                    }
                }
        char what[64];
        snprintf(what, sizeof what, "attention B%lld Tq%lld Tk%lld H%lld D%lld", (long long)B, (long long)Tq,
                 (long long)Tk, (long long)H, (long long)D);
        compare(what, dt, o, want, B * Tq * H * D, (double)(Tk * D));
        free(want);
        free(p);
    }
    kd_arena_reset();
}

static void test_random(void)
{
    /* Creation from the counter-based RNG: same seed -> same values; moments near the target. */
    int64_t n = 100000;
    kd_tensor *a = kd_randn(KD_F64, 1, &n, 0.0, 2.0, 5), *b = kd_randn(KD_F64, 1, &n, 0.0, 2.0, 5);
    kd_tensor *t = kd_trunc_normal(KD_F32, 1, &n, 0.02, -0.04, 0.04, 9), *u = kd_rand_uniform(KD_F32, 1, &n, -1, 3, 11);
    double s = 0, s2 = 0, tmin = 1, tmax = -1, umin = 9, umax = -9, us = 0;
    int same = 1;
    for (int64_t i = 0; i < n; i++) {
        double x = at(a, i);
        same &= x == at(b, i);
        s += x;
        s2 += x * x;
        tmin = fmin(tmin, at(t, i));
        tmax = fmax(tmax, at(t, i));
        umin = fmin(umin, at(u, i));
        umax = fmax(umax, at(u, i));
        us += at(u, i);
    }
    CHECK(same, "randn: same seed gives the same values");
    CHECK(fabs(s / (double)n) < 0.03, "randn: mean %.4f, want 0 +- 0.03", s / (double)n);
    CHECK(fabs(sqrt(s2 / (double)n) - 2.0) < 0.03, "randn: std %.4f, want 2 +- 0.03", sqrt(s2 / (double)n));
    CHECK(tmin >= -0.04 && tmax <= 0.04 && tmax > 0.035, "trunc_normal: range [%.4f, %.4f] within [-0.04, 0.04]", tmin, tmax);
    CHECK(umin >= -1 && umax < 3 && fabs(us / (double)n - 1.0) < 0.02, "uniform: range [%.3f, %.3f), mean %.4f", umin, umax,
          us / (double)n);
    kd_tensor *f = kd_full(KD_F32, 2, S(2, 3), 2.5), *o = kd_ones(KD_F64, 1, S(4)), *z = kd_zeros(KD_F32, 1, S(3));
    CHECK(at(f, 5) == 2.5 && at(o, 3) == 1.0 && at(z, 2) == 0.0, "full/ones/zeros");
    kd_tensor *c = kd_zeros(KD_F64, 2, S(3, 2));
    CHECK(kd_copy_into(c, kd_transpose(kd_from_buffer(KD_F64, 2, S(2, 3), (const double[]){ 1, 2, 3, 4, 5, 6 }), 0, 1)) == KD_OK &&
              at(c, 1) == 4 && at(c, 2) == 2,
          "copy_into from a transposed view");
    kd_arena_reset();
}

/* Random numbers depend on (seed, element), not on how many threads draw them. */
static void test_thread_independence(void)
{
    int64_t n = 1 << 17;
    kd_tensor *x = kd_rand_uniform(KD_F32, 1, &n, -1, 1, 3);
    float *out[2];
    for (int t = 0; t < 2; t++) {
        kd_set_threads(t + 1);
        kd_manual_seed(99);
        kd_tensor *y = kd_dropout(x, 0.1, 1);
        out[t] = malloc((size_t)n * sizeof(float));
        memcpy(out[t], kd_data(y), (size_t)n * sizeof(float));
    }
    CHECK(memcmp(out[0], out[1], (size_t)n * sizeof(float)) == 0, "dropout: identical with 1 and 2 threads");
    free(out[0]);
    free(out[1]);
    kd_set_threads(2);
    kd_arena_reset();
}

int main(void)
{
    test_thread_independence();
    kd_dtype dts[2] = { KD_F32, KD_F64 };
    for (int i = 0; i < 2; i++) {
        test_matmul(dts[i]);
        test_elementwise(dts[i]);
        test_reduce_shape(dts[i]);
        test_rows(dts[i]);
        test_embedding_dropout(dts[i]);
        test_attention(dts[i]);
    }
    test_random();
    printf("kernels: %s, threads: %d\n", kd_backend_name(), kd_threads());
    kd_shutdown();
    return kd_test_finish("test_ops");
}
