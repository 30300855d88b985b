/* test/kernels/test_cross_entropy.c — cross-entropy with class-index targets, forward (loss, lse) and
 * backward (dlogits accumulated), on every kernel table that has it, against the f64 reference: widths
 * 1, 7, 8, 63, 125, 128, 129, 771 and BERT's 30522-piece vocabulary; a NaN logit that must reach its
 * row's loss. The backward runs once with the scale alone and once (3 threads on the CPU) with half the
 * scale read from `upstream` in the kernel's memory. Outputs guarded and poisoned (op_case.h). */
#include "test/kernels/op_case.h"

typedef struct ce_case { int64_t rows, cols; } ce_case;
static const ce_case k_cases[] = {
    { 7, 1 }, { 7, 7 }, { 7, 8 }, { 7, 63 }, { 7, 125 }, { 7, 128 }, { 7, 129 }, { 7, 771 }, { 8, 30522 },
};
#define N_CASES ((int)(sizeof k_cases / sizeof k_cases[0]))

static void cross_entropy_case(const oc_table *t, ce_case c)
{
    const kd_kernels *ref = kd_kernels_ref_f64();
    const int64_t rows = c.rows, n = c.cols, e = rows * n;
    char what[96];
    oc_buf z = oc_new_fill(t, OC_ACT, e, -6, 6), tg = oc_new(t, OC_I32, rows);
    oc_buf loss = oc_new(t, OC_ACT, rows), lse = oc_new(t, OC_ACT, rows), dz = oc_new_fill(t, OC_ACT, e, -1, 1);
    oc_buf up = oc_new(t, OC_ACT, 1);
    up.h[0] = 0.5;
    for (int64_t r = 0; r < rows; r++) tg.ids[r] = (int32_t)((r * 7 + 3) % n);
    z.h[(rows - 2) * n + n / 2] = NAN;
    double *lw = oc_dalloc(rows), *sw = oc_dalloc(rows), *dzw = oc_ddup(dz.h, e);
    double *mag = oc_dalloc(e), *lmag = oc_dalloc(rows);
    kd_cross_entropy_args xa = { .rows = rows, .cols = n, .logits = z.h, .targets = tg.ids, .loss = lw, .lse = sw,
                                 .scale = 1.0 / rows, .dlogits = dzw };
    ref->cross_entropy(&xa, 0, 1);
    for (int64_t r = 0; r < rows; r++) lmag[r] = 6.0 + log((double)n) + 6.0 + fabs(sw[r]);
    snprintf(what, sizeof what, "%s cross_entropy %lldx%lld", t->label, (long long)rows, (long long)n);
    oc_begin(t, "cross_entropy %lldx%lld", (long long)rows, (long long)n);
    for (int nth = 1; nth <= t->nth_max; nth += 2) {
        kd_cross_entropy_args xf = xa;
        xf.logits = oc_load(&z, 0);
        xf.targets = oc_load(&tg, 0);
        xf.loss = oc_load(&loss, 1);
        xf.lse = oc_load(&lse, 1);
        OC_RUN(t->k->cross_entropy, &xf, nth);
        oc_read(&loss, what);
        oc_read(&lse, what);
        oc_compare(what, nth, &loss, lw, lmag, NULL, (double)n);
        oc_compare(what, nth, &lse, sw, lmag, NULL, (double)n);
    }
    oc_end();

    /* The backward reads lse: the reference's, as the f32 values the kernel is given. */
    oc_buf lsb = oc_new(t, OC_ACT, rows);
    memcpy(lsb.h, sw, (size_t)rows * sizeof *sw);
    oc_round(&lsb);
    xa.lse = lsb.h;
    ref->cross_entropy_bwd(&xa, 0, 1);
    for (int64_t i = 0; i < e; i++) mag[i] = fabs(dz.h[i]) + 2.0 / rows;
    snprintf(what, sizeof what, "%s cross_entropy_bwd %lldx%lld", t->label, (long long)rows, (long long)n);
    oc_begin(t, "cross_entropy_bwd %lldx%lld (scale; upstream)", (long long)rows, (long long)n);
    for (int pass = 0; pass < 2; pass++) {
        const int nth = pass == 0 ? 1 : t->nth_max;
        kd_cross_entropy_args xb = xa;
        xb.logits = oc_load(&z, 0);
        xb.targets = oc_load(&tg, 0);
        xb.lse = oc_load(&lsb, 0);
        xb.loss = NULL;
        xb.dlogits = oc_load(&dz, 0);
        if (pass == 1) {             /* the same scale, half of it read from `upstream` */
            xb.scale = xa.scale * 2.0;
            xb.upstream = oc_load(&up, 0);
        }
        OC_RUN(t->k->cross_entropy_bwd, &xb, nth);
        oc_read(&dz, what);
        oc_compare(what, nth, &dz, dzw, mag, NULL, 8.0);
    }
    oc_end();
    free(lw); free(sw); free(dzw); free(mag); free(lmag);
    oc_free(&z); oc_free(&tg); oc_free(&loss); oc_free(&lse); oc_free(&dz); oc_free(&up); oc_free(&lsb);
}

static void run(const oc_table *t)
{
    if (!oc_has(t, t->k->cross_entropy && t->k->cross_entropy_bwd, "cross_entropy")) return;
    for (int i = 0; i < N_CASES; i++) cross_entropy_case(t, k_cases[i]);
}

int main(void) { return oc_main("test_cross_entropy", 2, run); }
