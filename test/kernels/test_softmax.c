/* test/kernels/test_softmax.c — softmax and log-softmax forward and backward on every kernel table
 * against the f64 reference: widths 1, 7, 8, 63, 125, 128 (the register path of the AVX-512 softmax),
 * 129, 771 and BERT's shapes (a head's 128x128 scores, 128x768, logits over a 30522-piece vocabulary);
 * 1 and 3 threads on the CPU. A NaN in a row makes the whole row NaN; a -inf (masked) input has
 * probability 0. Outputs are guarded and poisoned (op_case.h); the backward accumulates into random dx.
 * Tolerance: op_case.h's rule over the row length. */
#include "test/kernels/op_case.h"

typedef struct sm_case { int64_t rows, cols; } sm_case;
static const sm_case k_cases[] = {
    { 5, 1 }, { 5, 7 }, { 5, 8 }, { 5, 63 }, { 5, 125 }, { 5, 128 }, { 5, 129 }, { 5, 771 },
    { 128, 128 }, { 128, 768 }, { 8, 30522 },
};
#define N_CASES ((int)(sizeof k_cases / sizeof k_cases[0]))

static void softmax_case(const oc_table *t, int lg, sm_case c)
{
    const kd_kernels *ref = kd_kernels_ref_f64();
    const int64_t rows = c.rows, n = c.cols, e = rows * n;
    const char *op = lg ? "log_softmax" : "softmax";
    char what[96];
    oc_buf x = oc_new_fill(t, OC_ACT, e, -8, 8), y = oc_new(t, OC_ACT, e);
    x.h[2 * n + n / 2] = NAN;                 /* row 2 must come out all NaN */
    if (n > 1) x.h[3 * n] = -INFINITY;        /* a masked position: probability 0 */
    double *want = oc_dalloc(e), *mag = oc_dalloc(e);
    kd_softmax_args s = { .log = lg, .rows = rows, .cols = n, .x = x.h, .y = want };
    ref->softmax(&s, 0, 1);
    for (int64_t r = 0; r < rows; r++) {
        double mx = 0;
        for (int64_t j = 0; j < n; j++) mx = fmax(mx, fabs(x.h[r * n + j]));
        const double lse = mx + log((double)n);
        for (int64_t j = 0; j < n; j++) mag[r * n + j] = lg ? fabs(x.h[r * n + j]) + lse : fabs(want[r * n + j]);
    }
    snprintf(what, sizeof what, "%s %s %lldx%lld", t->label, op, (long long)rows, (long long)n);
    oc_begin(t, "%s %lldx%lld", op, (long long)rows, (long long)n);
    for (int nth = 1; nth <= t->nth_max; nth += 2) {
        s.x = oc_load(&x, 0);
        s.y = oc_load(&y, 1);
        OC_RUN(t->k->softmax, &s, nth);
        oc_read(&y, what);
        oc_compare(what, nth, &y, want, mag, NULL, (double)n);
    }
    oc_end();

    /* Backward from the reference forward output (row 2 is NaN and stays so). */
    oc_buf yb = oc_new(t, OC_ACT, e), dy = oc_new_fill(t, OC_ACT, e, -1, 1), dx = oc_new_fill(t, OC_ACT, e, -1, 1);
    memcpy(yb.h, want, (size_t)e * sizeof *want);
    oc_round(&yb);
    double *dwant = oc_ddup(dx.h, e);
    kd_softmax_bwd_args sb = { .log = lg, .rows = rows, .cols = n, .y = yb.h, .dy = dy.h, .dx = dwant };
    ref->softmax_bwd(&sb, 0, 1);
    for (int64_t r = 0; r < rows; r++) {
        double sum = 0;
        for (int64_t j = 0; j < n; j++) {
            const double yy = lg ? exp(yb.h[r * n + j]) : yb.h[r * n + j];
            sum += lg ? fabs(dy.h[r * n + j]) : fabs(dy.h[r * n + j] * yy);
        }
        for (int64_t j = 0; j < n; j++) {
            const double yv = lg ? exp(yb.h[r * n + j]) : fabs(yb.h[r * n + j]);
            mag[r * n + j] = fabs(dx.h[r * n + j]) +
                             (lg ? fabs(dy.h[r * n + j]) + yv * sum : yv * (fabs(dy.h[r * n + j]) + sum));
        }
    }
    snprintf(what, sizeof what, "%s %s_bwd %lldx%lld", t->label, op, (long long)rows, (long long)n);
    oc_begin(t, "%s_bwd %lldx%lld", op, (long long)rows, (long long)n);
    for (int nth = 1; nth <= t->nth_max; nth += 2) {
        sb.y = oc_load(&yb, 0);
        sb.dy = oc_load(&dy, 0);
        sb.dx = oc_load(&dx, 0);
        OC_RUN(t->k->softmax_bwd, &sb, nth);
        oc_read(&dx, what);
        oc_compare(what, nth, &dx, dwant, mag, NULL, (double)n);
    }
    oc_end();
    free(want); free(mag); free(dwant);
    oc_free(&x); oc_free(&y); oc_free(&yb); oc_free(&dy); oc_free(&dx);
}

static void run(const oc_table *t)
{
    if (!oc_has(t, t->k->softmax && t->k->softmax_bwd, "softmax")) return;
    for (int lg = 0; lg <= 1; lg++)
        for (int i = 0; i < N_CASES; i++) softmax_case(t, lg, k_cases[i]);
}

int main(void) { return oc_main("test_softmax", 2, run); }
