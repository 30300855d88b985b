/* test/kernels/test_kl_div.c — KL divergence (PyTorch's kl_div(log q, p)) forward and backward on every
 * kernel table that has it, against the f64 reference: widths 1, 7, 8, 63, 125, 128, 129, 771 and BERT's
 * 30522-piece vocabulary; zero-probability terms (which count as 0) and a NaN that must reach its row.
 * The backward runs with both gradients, only dlogq and only dp (one not asked for must be left exactly as
 * it was), once with the scale alone and once (3 threads on the CPU) with half the scale read from
 * `upstream` in the kernel's memory. Outputs guarded and poisoned (op_case.h). */
#include "test/kernels/op_case.h"

typedef struct kl_case { int64_t rows, cols; } kl_case;
static const kl_case k_cases[] = {
    { 6, 1 }, { 6, 7 }, { 6, 8 }, { 6, 63 }, { 6, 125 }, { 6, 128 }, { 6, 129 }, { 6, 771 }, { 8, 30522 },
};
#define N_CASES ((int)(sizeof k_cases / sizeof k_cases[0]))

static void kl_div_case(const oc_table *t, kl_case c)
{
    const kd_kernels *ref = kd_kernels_ref_f64();
    const int64_t rows = c.rows, n = c.cols, e = rows * n;
    const double scale = 0.37;
    char what[96];
    oc_buf lq = oc_new_fill(t, OC_ACT, e, -6, 0), p = oc_new_fill(t, OC_ACT, e, 0, 1);
    oc_buf dq = oc_new_fill(t, OC_ACT, e, -1, 1), dp = oc_new_fill(t, OC_ACT, e, -1, 1);
    oc_buf out = oc_new(t, OC_ACT, rows), up = oc_new(t, OC_ACT, 1);
    up.h[0] = 0.5;
    for (int64_t i = 0; i < e; i += 5) p.h[i] = 0.0; /* zero-probability terms count as 0 */
    p.h[4 * n + n / 2] = NAN;                        /* row 4 must come out NaN */
    double *outw = oc_dalloc(rows), *omag = oc_dalloc(rows), *qmag = oc_dalloc(e), *pmag = oc_dalloc(e);
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        for (int64_t j = 0; j < n; j++) {
            const double pv = p.h[r * n + j];
            if (pv > 0) s += pv * (fabs(log(pv)) + fabs(lq.h[r * n + j]));
        }
        omag[r] = s;
    }
    kd_kl_div_args k = { .rows = rows, .cols = n, .logq = lq.h, .p = p.h, .out = outw, .scale = scale };
    ref->kl_div(&k, 0, 1);
    snprintf(what, sizeof what, "%s kl_div %lldx%lld", t->label, (long long)rows, (long long)n);
    oc_begin(t, "kl_div %lldx%lld", (long long)rows, (long long)n);
    for (int nth = 1; nth <= t->nth_max; nth += 2) {
        kd_kl_div_args kf = k;
        kf.logq = oc_load(&lq, 0);
        kf.p = oc_load(&p, 0);
        kf.out = oc_load(&out, 1);
        OC_RUN(t->k->kl_div, &kf, nth);
        oc_read(&out, what);
        oc_compare(what, nth, &out, outw, omag, NULL, (double)n + 4.0);
    }
    oc_end();

    for (int64_t i = 0; i < e; i++) {
        qmag[i] = fabs(dq.h[i]) + scale * fabs(p.h[i]);
        pmag[i] = fabs(dp.h[i]) + (p.h[i] > 0 ? scale * (fabs(log(p.h[i])) + 1 + fabs(lq.h[i])) : 0);
    }
    for (int which = 0; which < 3; which++) { /* both gradients, only dlogq, only dp */
        const int wq = which != 2, wp = which != 1;
        double *dqw = oc_ddup(dq.h, e), *dpw = oc_ddup(dp.h, e);
        kd_kl_div_args kb = k;
        kb.dlogq = wq ? dqw : NULL;
        kb.dp = wp ? dpw : NULL;
        ref->kl_div_bwd(&kb, 0, 1);
        snprintf(what, sizeof what, "%s kl_div_bwd %lldx%lld wanted=%d%d", t->label, (long long)rows, (long long)n,
                 wq, wp);
        oc_begin(t, "kl_div_bwd %lldx%lld wanted=%d%d (scale; upstream)", (long long)rows, (long long)n, wq, wp);
        for (int pass = 0; pass < 2; pass++) {
            const int nth = pass == 0 ? 1 : t->nth_max;
            kd_kl_div_args kf = kb;
            kf.logq = oc_load(&lq, 0);
            kf.p = oc_load(&p, 0);
            void *pq = oc_load(&dq, 0), *pp = oc_load(&dp, 0);
            kf.dlogq = wq ? pq : NULL;
            kf.dp = wp ? pp : NULL;
            if (pass == 1) {   /* the same scale, half of it read from `upstream` */
                kf.scale = kb.scale * 2.0;
                kf.upstream = oc_load(&up, 0);
            }
            OC_RUN(t->k->kl_div_bwd, &kf, nth);
            oc_read(&dq, what);
            oc_read(&dp, what);
            oc_compare(what, nth, &dq, wq ? dqw : dq.h, qmag, NULL, wq ? 4.0 : -1.0);
            oc_compare(what, nth, &dp, wp ? dpw : dp.h, pmag, NULL, wp ? 4.0 : -1.0);
        }
        oc_end();
        free(dqw); free(dpw);
    }
    free(outw); free(omag); free(qmag); free(pmag);
    oc_free(&lq); oc_free(&p); oc_free(&dq); oc_free(&dp); oc_free(&out); oc_free(&up);
}

static void run(const oc_table *t)
{
    if (!oc_has(t, t->k->kl_div && t->k->kl_div_bwd, "kl_div")) return;
    for (int i = 0; i < N_CASES; i++) kl_div_case(t, k_cases[i]);
}

int main(void) { return oc_main("test_kl_div", 2, run); }
