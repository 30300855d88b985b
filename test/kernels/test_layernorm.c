/* test/kernels/test_layernorm.c — LayerNorm forward and backward on every kernel table against the f64
 * reference: with and without gamma/beta, each of dx, dgamma, dbeta optional (one not asked for must be
 * left exactly as it was); widths 1, 7, 8, 63, 125, 128, 129, 771 and BERT's 128x768; 1 and 3 threads on
 * the CPU. A row whose mean is far from 0 (cancellation in the variance), a NaN that must reach its row.
 * Outputs guarded and poisoned (op_case.h); mean, rstd, gamma, beta, dgamma, dbeta stay f32 in bf16
 * tables. Tolerance: op_case.h's rule over the row length (the column length for dgamma, dbeta). */
#include "test/kernels/op_case.h"

typedef struct ln_case { int64_t rows, cols; } ln_case;
static const ln_case k_cases[] = {
    { 6, 1 }, { 6, 7 }, { 6, 8 }, { 6, 63 }, { 6, 125 }, { 6, 128 }, { 6, 129 }, { 6, 771 }, { 128, 768 },
};
#define N_CASES ((int)(sizeof k_cases / sizeof k_cases[0]))

static void layernorm_case(const oc_table *t, int affine, ln_case c)
{
    const kd_kernels *ref = kd_kernels_ref_f64();
    const int64_t rows = c.rows, n = c.cols, e = rows * n;
    char what[112];
    oc_buf x = oc_new_fill(t, OC_ACT, e, -2, 2);
    for (int64_t j = 0; j < n; j++) x.h[n + j] += 30.0; /* row 1: mean far from 0 */
    x.h[4 * n + n / 2] = NAN;                           /* row 4 must come out NaN */
    oc_round(&x);
    oc_buf gamma = oc_new_fill(t, OC_F32, n, 0.5, 1.5), beta = oc_new_fill(t, OC_F32, n, -1, 1);
    oc_buf dy = oc_new_fill(t, OC_ACT, e, -1, 1), dx = oc_new_fill(t, OC_ACT, e, -1, 1);
    oc_buf dg = oc_new_fill(t, OC_F32, n, -1, 1), db = oc_new_fill(t, OC_F32, n, -1, 1);
    oc_buf y = oc_new(t, OC_ACT, e), mo = oc_new(t, OC_F32, rows), ro = oc_new(t, OC_F32, rows);
    double *want = oc_dalloc(e), *mw = oc_dalloc(rows), *rw = oc_dalloc(rows), *mag = oc_dalloc(e);
    double *gmag = oc_dalloc(n), *bmag = oc_dalloc(n);
    kd_layernorm_args l = { .rows = rows, .cols = n, .eps = 1e-5, .x = x.h, .gamma = affine ? gamma.h : NULL,
                            .beta = affine ? beta.h : NULL, .y = want, .mean = mw, .rstd = rw };
    ref->layernorm(&l, 0, 1);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < n; j++)
            mag[r * n + j] = (fabs(x.h[r * n + j]) + fabs(mw[r])) * rw[r] * (affine ? gamma.h[j] : 1.0) +
                             (affine ? fabs(beta.h[j]) : 0.0);
    const char *form = affine ? "" : " (no affine)";
    snprintf(what, sizeof what, "%s layernorm%s %lldx%lld", t->label, form, (long long)rows, (long long)n);
    oc_begin(t, "layernorm%s %lldx%lld", form, (long long)rows, (long long)n);
    for (int nth = 1; nth <= t->nth_max; nth += 2) {
        l.x = oc_load(&x, 0);
        l.gamma = affine ? oc_load(&gamma, 0) : NULL;
        l.beta = affine ? oc_load(&beta, 0) : NULL;
        l.y = oc_load(&y, 1);
        l.mean = oc_load(&mo, 1);
        l.rstd = oc_load(&ro, 1);
        OC_RUN(t->k->layernorm, &l, nth);
        oc_read(&y, what);
        oc_read(&mo, what);
        oc_read(&ro, what);
        oc_compare(what, nth, &y, want, mag, NULL, (double)n);
        oc_compare("layernorm mean", nth, &mo, mw, NULL, NULL, (double)n + 32.0 * n);
        oc_compare("layernorm rstd", nth, &ro, rw, NULL, NULL, (double)n + 32.0 * n);
    }
    oc_end();

    /* Backward with the reference statistics (as the f32 values the kernel is given); each of dx, dgamma,
     * dbeta optional. */
    oc_buf mb = oc_new(t, OC_F32, rows), rb = oc_new(t, OC_F32, rows);
    memcpy(mb.h, mw, (size_t)rows * sizeof *mw);
    memcpy(rb.h, rw, (size_t)rows * sizeof *rw);
    oc_round(&mb);
    oc_round(&rb);
    for (int which = 0; which < 3; which++) {
        const int want_dx = which != 1, want_dg = which != 2, want_db = which != 0;
        double *dxw = oc_ddup(dx.h, e), *dgw = oc_ddup(dg.h, n), *dbw = oc_ddup(db.h, n);
        kd_layernorm_bwd_args lb = { .rows = rows, .cols = n, .x = x.h, .mean = mb.h, .rstd = rb.h,
                                     .gamma = affine ? gamma.h : NULL, .dy = dy.h, .dx = want_dx ? dxw : NULL,
                                     .dgamma = want_dg ? dgw : NULL, .dbeta = want_db ? dbw : NULL };
        ref->layernorm_bwd(&lb, 0, 1);
        for (int64_t j = 0; j < n; j++) {
            gmag[j] = fabs(dg.h[j]);
            bmag[j] = fabs(db.h[j]);
        }
        for (int64_t r = 0; r < rows; r++) {
            double sg = 0, sgx = 0;
            for (int64_t j = 0; j < n; j++) {
                const double g = fabs(dy.h[r * n + j]) * (affine ? gamma.h[j] : 1.0);
                const double xh = (fabs(x.h[r * n + j]) + fabs(mb.h[r])) * rb.h[r];
                sg += g;
                sgx += g * xh;
                gmag[j] += fabs(dy.h[r * n + j]) * xh;
                bmag[j] += fabs(dy.h[r * n + j]);
            }
            for (int64_t j = 0; j < n; j++) {
                const double g = fabs(dy.h[r * n + j]) * (affine ? gamma.h[j] : 1.0);
                const double xh = (fabs(x.h[r * n + j]) + fabs(mb.h[r])) * rb.h[r];
                mag[r * n + j] = fabs(dx.h[r * n + j]) + rb.h[r] * (g + sg / n + xh * sgx / n);
            }
        }
        const char *bform = affine ? "" : " (no gamma)";
        snprintf(what, sizeof what, "%s layernorm_bwd%s %lldx%lld wanted=%d%d%d", t->label, bform, (long long)rows,
                 (long long)n, want_dx, want_dg, want_db);
        oc_begin(t, "layernorm_bwd%s %lldx%lld wanted=%d%d%d", bform, (long long)rows, (long long)n, want_dx,
                 want_dg, want_db);
        for (int nth = 1; nth <= t->nth_max; nth += 2) {
            lb.x = oc_load(&x, 0);
            lb.mean = oc_load(&mb, 0);
            lb.rstd = oc_load(&rb, 0);
            lb.gamma = affine ? oc_load(&gamma, 0) : NULL;
            lb.dy = oc_load(&dy, 0);
            void *pdx = oc_load(&dx, 0), *pdg = oc_load(&dg, 0), *pdb = oc_load(&db, 0);
            lb.dx = want_dx ? pdx : NULL;
            lb.dgamma = want_dg ? pdg : NULL;
            lb.dbeta = want_db ? pdb : NULL;
            OC_RUN(t->k->layernorm_bwd, &lb, nth);
            oc_read(&dx, what);
            oc_read(&dg, what);
            oc_read(&db, what);
            /* an output not asked for must be left as it was */
            oc_compare(what, nth, &dx, want_dx ? dxw : dx.h, mag, NULL, want_dx ? (double)n : -1.0);
            oc_compare(what, nth, &dg, want_dg ? dgw : dg.h, gmag, NULL, want_dg ? (double)rows : -1.0);
            oc_compare(what, nth, &db, want_db ? dbw : db.h, bmag, NULL, want_db ? (double)rows : -1.0);
        }
        oc_end();
        free(dxw); free(dgw); free(dbw);
    }
    free(want); free(mw); free(rw); free(mag); free(gmag); free(bmag);
    oc_free(&x); oc_free(&gamma); oc_free(&beta); oc_free(&dy); oc_free(&dx); oc_free(&dg); oc_free(&db);
    oc_free(&y); oc_free(&mo); oc_free(&ro); oc_free(&mb); oc_free(&rb);
}

static void run(const oc_table *t)
{
    if (!oc_has(t, t->k->layernorm && t->k->layernorm_bwd, "layernorm")) return;
    for (int affine = 1; affine >= 0; affine--)
        for (int i = 0; i < N_CASES; i++) layernorm_case(t, affine, k_cases[i]);
}

int main(void) { return oc_main("test_layernorm", 2, run); }
