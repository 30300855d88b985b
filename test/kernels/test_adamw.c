/* test/kernels/test_adamw.c — one AdamW step (torch.optim.AdamW, step 3, weight decay) on every kernel
 * table that has it, against the f64 reference: lengths 5w + 2 for w = 1, 7, 8, 63, 125, 128, 129, 771
 * and BERT's 768x3072 FFN weight; a NaN gradient that must reach its parameter and moments; 1 and 3
 * threads on the CPU. param, m and v are updated in place, guarded (op_case.h). */
#include "test/kernels/op_case.h"

static const int64_t k_lengths[] = { 7, 37, 42, 317, 627, 642, 647, 3857, 768 * 3072 };
#define N_CASES ((int)(sizeof k_lengths / sizeof k_lengths[0]))

static void adamw_case(const oc_table *t, int64_t n)
{
    const kd_kernels *ref = kd_kernels_ref_f64();
    char what[64];
    oc_buf w = oc_new_fill(t, OC_ACT, n, -1, 1), g = oc_new_fill(t, OC_ACT, n, -0.1, 0.1);
    oc_buf m = oc_new_fill(t, OC_ACT, n, -0.01, 0.01), v = oc_new_fill(t, OC_ACT, n, 0, 1e-4);
    g.h[n / 2] = NAN;
    const double lr = 1e-3, b1 = 0.9, b2 = 0.999, step = 3;
    double *ww = oc_ddup(w.h, n), *mw = oc_ddup(m.h, n), *vw = oc_ddup(v.h, n);
    double *wmag = oc_dalloc(n), *mmag = oc_dalloc(n), *vmag = oc_dalloc(n);
    kd_adamw_args o = { .n = n, .param = ww, .grad = g.h, .m = mw, .v = vw, .lr = lr, .beta1 = b1, .beta2 = b2,
                        .eps = 1e-8, .weight_decay = 0.01, .bias1 = 1 - pow(b1, step), .bias2 = 1 - pow(b2, step) };
    ref->adamw(&o, 0, 1);
    for (int64_t i = 0; i < n; i++) {
        mmag[i] = b1 * fabs(m.h[i]) + (1 - b1) * fabs(g.h[i]);
        vmag[i] = b2 * v.h[i] + (1 - b2) * g.h[i] * g.h[i];
        /* the step lr m^ / (sqrt(v^) + eps) is sensitive to m and v at a few ulp each */
        wmag[i] = fabs(w.h[i]) + lr * (mmag[i] / o.bias1) / (sqrt(vw[i] / o.bias2) + o.eps);
    }
    snprintf(what, sizeof what, "%s adamw n=%lld", t->label, (long long)n);
    oc_begin(t, "adamw n=%lld", (long long)n);
    for (int nth = 1; nth <= t->nth_max; nth += 2) {
        kd_adamw_args of = o;
        of.param = oc_load(&w, 0);
        of.grad = oc_load(&g, 0);
        of.m = oc_load(&m, 0);
        of.v = oc_load(&v, 0);
        OC_RUN(t->k->adamw, &of, nth);
        oc_read(&w, what);
        oc_read(&m, what);
        oc_read(&v, what);
        oc_compare(what, nth, &w, ww, wmag, NULL, 8.0);
        oc_compare(what, nth, &m, mw, mmag, NULL, 4.0);
        oc_compare(what, nth, &v, vw, vmag, NULL, 4.0);
    }
    oc_end();
    free(ww); free(mw); free(vw); free(wmag); free(mmag); free(vmag);
    oc_free(&w); oc_free(&g); oc_free(&m); oc_free(&v);
}

static void run(const oc_table *t)
{
    if (!oc_has(t, t->k->adamw != NULL, "adamw")) return;
    for (int i = 0; i < N_CASES; i++) adamw_case(t, k_lengths[i]);
}

int main(void) { return oc_main("test_adamw", 2, run); }
