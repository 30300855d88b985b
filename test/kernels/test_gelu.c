/* test/kernels/test_gelu.c — GELU and the other element-wise maps (unary: GELU, tanh, exp, log, copy,
 * scale, neg, square, add_scalar; binary: add, sub, mul, div, GELU', tanh') on every kernel table against
 * the f64 reference: overwrite and accumulate, lengths 3w + 1 for w = 1, 7, 8, 63, 125, 128, 129, 771 and
 * BERT's 128x3072 FFN activation for GELU and its backward; a NaN input that must reach its output; a
 * transposed (non-contiguous) input that a fast table hands to the reference; 1 and 3 threads on the CPU.
 * Outputs guarded and poisoned when overwritten (op_case.h). Error budgets ("reduction lengths") in ulps
 * of the result: a few for the transcendental maps, 1-2 for arithmetic (plus op_case.h's slack). */
#include "test/kernels/op_case.h"

static const int64_t k_lengths[] = { 4, 22, 25, 190, 376, 385, 388, 2314 };
#define N_LENGTHS ((int)(sizeof k_lengths / sizeof k_lengths[0]))
#define BERT_FFN (128 * 3072)

typedef struct map_case {
    int binary, op;
    double lo, hi, ulps;
    const char *name;
    int bert;   /* also at BERT_FFN */
} map_case;
static const map_case k_cases[] = {
    { 0, KD_UN_GELU, -12, 12, 8, "gelu", 1 },
    { 0, KD_UN_GELU, -1, 1, 8, "gelu small", 0 },
    { 0, KD_UN_TANH, -12, 12, 4, "tanh", 0 },
    { 0, KD_UN_TANH, -0.7, 0.7, 4, "tanh small", 0 },
    { 0, KD_UN_EXP, -80, 80, 4, "exp", 0 },
    { 0, KD_UN_COPY, -5, 5, 0, "copy", 0 },
    { 0, KD_UN_SCALE, -5, 5, 1, "scale", 0 },
    { 0, KD_UN_NEG, -5, 5, 0, "neg", 0 },
    { 0, KD_UN_SQUARE, -5, 5, 1, "square", 0 },
    { 0, KD_UN_ADD_SCALAR, -5, 5, 1, "add_scalar", 0 },
    { 0, KD_UN_LOG, 0.01, 5, 4, "log", 0 },
    { 0, KD_UN_LOG, 1e-38, 1e-30, 4, "log tiny", 0 },
    { 1, KD_BIN_ADD, -5, 5, 1, "add", 0 },
    { 1, KD_BIN_SUB, -5, 5, 1, "sub", 0 },
    { 1, KD_BIN_MUL, -5, 5, 1, "mul", 0 },
    { 1, KD_BIN_DIV, -5, 5, 1, "div", 0 },
    { 1, KD_BIN_GELU_BWD, -12, 12, 8, "gelu_bwd", 1 },
    { 1, KD_BIN_GELU_BWD, -1.5, 1.5, 8, "gelu_bwd small", 0 },
    { 1, KD_BIN_TANH_BWD, -1, 1, 2, "tanh_bwd", 0 },
};
#define N_CASES ((int)(sizeof k_cases / sizeof k_cases[0]))

static double normal_cdf(double x) { return 0.5 * erfc(-x * 0.70710678118654752440); }

static void map_run(const kd_kernels *k, int binary, const kd_map_args *m, int nth)
{
    if (binary) OC_RUN(k->binary, m, nth);
    else OC_RUN(k->unary, m, nth);
}

static void map_case_run(const oc_table *t, map_case c, int64_t n)
{
    const kd_kernels *ref = kd_kernels_ref_f64();
    const int binary = c.binary, op = c.op;
    oc_buf a = oc_new_fill(t, OC_ACT, n, c.lo, c.hi), b = oc_new_fill(t, OC_ACT, n, -2, 2);
    oc_buf o = oc_new_fill(t, OC_ACT, n, -1, 1);
    if (op == KD_BIN_DIV && binary)
        for (int64_t i = 0; i < n; i++) b.h[i] = b.h[i] < 0 ? b.h[i] - 0.5 : b.h[i] + 0.5;
    oc_round(&b);
    if (n > 4) a.h[n / 2] = NAN;
    double *v = oc_dalloc(n), *want = oc_dalloc(n), *mag = oc_dalloc(n), *ratol = oc_dalloc(n);
    kd_map_args m = { .op = op, .accumulate = 0, .ndim = 1, .shape = { n }, .out = v, .out_stride = { 1 },
                      .a = a.h, .a_stride = { 1 }, .b = b.h, .b_stride = { 1 }, .alpha = 0.75 };
    map_run(ref, binary, &m, 1);
    for (int acc = 0; acc <= 1; acc++) {
        for (int64_t i = 0; i < n; i++) {
            double vm = fabs(v[i]);
            const double x = a.h[i];
            if (binary && op == KD_BIN_GELU_BWD) /* |b| (|Phi(a)| + |a phi(a)|): Phi + a phi cancels near a = -0.75 */
                vm = fabs(b.h[i]) * (normal_cdf(x) + fabs(x) * 0.3989422804 * exp(-0.5 * x * x));
            if (binary && op == KD_BIN_TANH_BWD) vm = fabs(b.h[i]) * (1.0 + x * x);
            mag[i] = vm + (acc ? fabs(o.h[i]) : 0.0);
            /* The reference forms 1 + erf(x / sqrt 2) in double: near x << 0 that sum carries an absolute
             * error of ~2^-53, so its GELU is off by ~|x| 2^-53 and its GELU' by ~|b| 2^-53 there. */
            ratol[i] = 0.0;
            if (!binary && op == KD_UN_GELU) ratol[i] = fabs(x) * 0x1p-52;
            if (binary && op == KD_BIN_GELU_BWD) ratol[i] = fabs(b.h[i]) * 0x1p-52;
            want[i] = acc ? o.h[i] : v[i];
        }
        if (acc) {
            kd_map_args ma = m;
            ma.accumulate = 1;
            ma.out = want;
            map_run(ref, binary, &ma, 1);
        }
        char what[96];
        snprintf(what, sizeof what, "%s %s n=%lld acc=%d", t->label, c.name, (long long)n, acc);
        oc_begin(t, "%s n=%lld acc=%d", c.name, (long long)n, acc);
        for (int nth = 1; nth <= t->nth_max; nth += 2) {
            kd_map_args mf = m;
            mf.accumulate = acc;
            mf.a = oc_load(&a, 0);
            mf.b = oc_load(&b, 0);
            mf.out = oc_load(&o, !acc);
            map_run(t->k, binary, &mf, nth);
            oc_read(&o, what);
            oc_compare(what, nth, &o, want, mag, ratol, c.ulps);
            if (n > 4) CHECK(isnan(o.got[n / 2]), "%s: NaN input did not propagate", what);
        }
        oc_end();
    }
    free(v); free(want); free(mag); free(ratol);
    oc_free(&a); oc_free(&b); oc_free(&o);
}

/* A transposed (non-contiguous) map must still be right: a fast table hands it to the reference. */
static void map_strided(const oc_table *t)
{
    const kd_kernels *ref = kd_kernels_ref_f64();
    const int64_t r = 13, c = 9;
    oc_buf a = oc_new_fill(t, OC_ACT, r * c, -3, 3), o = oc_new(t, OC_ACT, r * c);
    double *want = oc_dalloc(r * c), *ratol = oc_dalloc(r * c);
    for (int64_t i = 0; i < r * c; i++) ratol[i] = fabs(a.h[i]) * 0x1p-52;   /* as in map_case_run */
    kd_map_args m = { .op = KD_UN_GELU, .ndim = 2, .shape = { r, c }, .out = want, .out_stride = { c, 1 },
                      .a = a.h, .a_stride = { 1, r } };
    ref->unary(&m, 0, 1);
    char what[64];
    snprintf(what, sizeof what, "%s gelu transposed input", t->label);
    oc_begin(t, "gelu transposed input %lldx%lld", (long long)r, (long long)c);
    for (int nth = 1; nth <= t->nth_max; nth += 2) {
        m.a = oc_load(&a, 0);
        m.out = oc_load(&o, 1);
        OC_RUN(t->k->unary, &m, nth);
        oc_read(&o, what);
        oc_compare(what, nth, &o, want, NULL, ratol, 0.0);
    }
    oc_end();
    free(want); free(ratol);
    oc_free(&a); oc_free(&o);
}

static void run(const oc_table *t)
{
    if (!oc_has(t, t->k->unary && t->k->binary, "maps")) return;
    for (int ci = 0; ci < N_CASES; ci++) {
        for (int li = 0; li < N_LENGTHS; li++) map_case_run(t, k_cases[ci], k_lengths[li]);
        if (k_cases[ci].bert) map_case_run(t, k_cases[ci], BERT_FFN);
    }
    map_strided(t);
}

int main(void) { return oc_main("test_gelu", 2, run); }
