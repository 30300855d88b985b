/* test/kernels/test_attention.c — the tiled attention kernels against the reference: shapes below and
 * across the key tile (1, 7, 63, 65, 129 keys; dims 1..64) and BERT-base's 12 heads x 128 x 64, padding
 * masks (a fully masked batch gives O = 0, lse = -inf, no gradient), dropout (the same Philox keep
 * decisions: a wrong counter changes which values are kept and fails), padded strides, 1 and 3 threads,
 * canaries around every output (op_case.h).
 *
 * Tolerance: a score carries an absolute error of ~dim u scale sum|q||k| <= dim^2 scale u (inputs in
 * [-1, 1)), which moves every probability by that relative amount; on top the sums over keys add tk u.
 * So the reduction length used is tk + 2 dim^2 scale (+ tq for the gradients summed over queries). */
#include "test/kernels/op_case.h"
#include "kernels/rng.h"

typedef struct acase { int64_t b, h, tq, tk, d; double drop; int mask; } acase;

static float *fmalloc(int64_t n)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p) abort();
    return p;
}

static void run(const kd_kernels **tabs, int ntab, acase c)
{
    const kd_kernels *ref = kd_kernels_ref_f32();
    const int64_t pad = 3; /* extra floats per token row: strides are not the dense ones */
    const int64_t st_q = c.h * c.d + pad, sb_q = c.tq * st_q + 1, st_k = c.h * c.d + pad, sb_k = c.tk * st_k + 2;
    const int64_t nq = c.b * sb_q, nk = c.b * sb_k, nl = c.b * c.h * c.tq;
    float *q = fmalloc(nq), *k = fmalloc(nk), *v = fmalloc(nk), *vabs = fmalloc(nk), *dout = fmalloc(nq);
    float *mask = fmalloc(c.b * c.tk), *o = fmalloc(nq), *omag = fmalloc(nq), *lse = fmalloc(nl);
    float *dq0 = fmalloc(nq), *dk0 = fmalloc(nk), *dv0 = fmalloc(nk), *dqw = fmalloc(nq), *dkw = fmalloc(nk),
          *dvw = fmalloc(nk);
    double *mq = calloc((size_t)nq, sizeof(double)), *mk = calloc((size_t)nk, sizeof(double)),
           *mv = calloc((size_t)nk, sizeof(double));
    if (!mq || !mk || !mv) abort();
    oc_fill_f32(q, nq, -1, 1);
    oc_fill_f32(k, nk, -1, 1);
    oc_fill_f32(v, nk, -1, 1);
    oc_fill_f32(dout, nq, -1, 1);
    oc_fill_f32(dq0, nq, -1, 1);
    oc_fill_f32(dk0, nk, -1, 1);
    oc_fill_f32(dv0, nk, -1, 1);
    for (int64_t i = 0; i < nk; i++) vabs[i] = fabsf(v[i]);
    /* mask: batch b keeps its first tk - 3b keys (at least one) ; the last batch of several is all masked */
    for (int64_t bb = 0; bb < c.b; bb++)
        for (int64_t j = 0; j < c.tk; j++) {
            int64_t live = c.tk - 3 * bb > 0 ? c.tk - 3 * bb : 1;
            mask[bb * c.tk + j] = j < live ? 0.0f : -INFINITY;
            if (c.b > 1 && bb == c.b - 1) mask[bb * c.tk + j] = -INFINITY;
        }
    const double scale = 1.0 / sqrt((double)c.d);
    kd_attention_args a = { .batch = c.b, .heads = c.h, .tq = c.tq, .tk = c.tk, .dim = c.d,
        .q = q, .q_sb = sb_q, .q_st = st_q, .q_sh = c.d, .k = k, .k_sb = sb_k, .k_st = st_k, .k_sh = c.d,
        .v = v, .v_sb = sb_k, .v_st = st_k, .v_sh = c.d, .o = o, .o_sb = sb_q, .o_st = st_q, .o_sh = c.d,
        .mask = c.mask ? mask : NULL, .mask_sb = c.tk, .scale = scale, .dropout_p = c.drop, .seed = 77,
        .offset = 1000, .lse = lse, .d_o = dout, .dq = dqw, .dk = dkw, .dv = dvw };
    for (int64_t i = 0; i < nq; i++) o[i] = omag[i] = 0.0f; /* padding compares equal */
    ref->attention(&a, 0, 1);
    kd_attention_args am = a;
    am.v = vabs; am.o = omag;
    float *lsetmp = fmalloc(nl);
    am.lse = lsetmp;
    ref->attention(&am, 0, 1); /* sum_j p keep |v| per output */
    double *magd = malloc((size_t)nq * sizeof *magd), *lmag = malloc((size_t)nl * sizeof *lmag);
    if (!magd || !lmag) abort();
    for (int64_t i = 0; i < nq; i++) magd[i] = omag[i];
    for (int64_t i = 0; i < nl; i++) lmag[i] = fabs((double)lse[i]) + 1.0;
    const double red_f = (double)c.tk + 2.0 * (double)c.d * c.d * scale;
    for (int t = 0; t < ntab; t++)
        for (int nth = 1; nth <= 3; nth += 2) {
            oc_fbuf ob = oc_falloc(nq), lb = oc_falloc(nl);
            for (int64_t bb = 0; bb < c.b; bb++)
                for (int64_t i = 0; i < c.tq; i++)
                    for (int64_t x = 0; x < c.h * c.d; x++) ob.p[bb * sb_q + i * st_q + x] = NAN;
            for (int64_t i = 0; i < nl; i++) lb.p[i] = NAN;
            /* the padding of O keeps its canaries; the reference's padding is 0: compare the live part */
            kd_attention_args af = a;
            af.o = ob.p; af.lse = lb.p;
            OC_RUN(tabs[t]->attention, &af, nth);
            float *olive = fmalloc(nq), *rlive = fmalloc(nq);
            double *mlive = malloc((size_t)nq * sizeof *mlive);
            int64_t n = 0, pad_bad = 0;
            for (int64_t i = 0; i < nq; i++) {
                int64_t r = i % sb_q, x = r % st_q;
                int live = r < c.tq * st_q && x < c.h * c.d;
                if (live) { olive[n] = ob.p[i]; rlive[n] = o[i]; mlive[n] = magd[i]; n++; }
                else pad_bad += !oc_is_canary(ob.p[i]);
            }
            char what[128];
            snprintf(what, sizeof what, "%s attention b=%lld h=%lld tq=%lld tk=%lld d=%lld drop=%g mask=%d", tabs[t]->name,
                     (long long)c.b, (long long)c.h, (long long)c.tq, (long long)c.tk, (long long)c.d, c.drop, c.mask);
            oc_compare_f32(what, olive, rlive, mlive, n, red_f, nth);
            oc_compare_f32("attention lse", lb.p, lse, lmag, nl, red_f, nth);
            CHECK(pad_bad == 0 && oc_fguard_damage(&ob) == 0 && oc_fguard_damage(&lb) == 0, "%s: wrote outside O/lse", what);
            free(olive); free(rlive); free(mlive);
            oc_ffree(&ob); oc_ffree(&lb);
        }

    /* Backward: magnitudes in double from the definition, |dS| <= P (|dP| + |rowsum P dP|) scale. */
    memcpy(dqw, dq0, (size_t)nq * 4); memcpy(dkw, dk0, (size_t)nk * 4); memcpy(dvw, dv0, (size_t)nk * 4);
    ref->attention_bwd(&a, 0, 1);
    for (int64_t i = 0; i < nq; i++) mq[i] = fabs((double)dq0[i]);
    for (int64_t i = 0; i < nk; i++) { mk[i] = fabs((double)dk0[i]); mv[i] = fabs((double)dv0[i]); }
    double *p = malloc((size_t)c.tk * sizeof *p), *dp = malloc((size_t)c.tk * sizeof *dp), *kp = malloc((size_t)c.tk * sizeof *kp);
    if (!p || !dp || !kp) abort();
    for (int64_t bb = 0; bb < c.b; bb++)
        for (int64_t hh = 0; hh < c.h; hh++)
            for (int64_t i = 0; i < c.tq; i++) {
                const float *qi = q + bb * sb_q + i * st_q + hh * c.d, *doi = dout + bb * sb_q + i * st_q + hh * c.d;
                double mx = -INFINITY, sum = 0, rs = 0;
                for (int64_t j = 0; j < c.tk; j++) {
                    const float *kj = k + bb * sb_k + j * st_k + hh * c.d;
                    double s = 0;
                    for (int64_t d = 0; d < c.d; d++) s += (double)qi[d] * kj[d];
                    p[j] = s * scale + (c.mask ? mask[bb * c.tk + j] : 0.0);
                    if (p[j] > mx) mx = p[j];
                }
                if (mx == -INFINITY) continue;
                for (int64_t j = 0; j < c.tk; j++) sum += exp(p[j] - mx);
                for (int64_t j = 0; j < c.tk; j++) {
                    p[j] = exp(p[j] - mx) / sum;
                    uint64_t ctr = a.offset + (uint64_t)(((bb * c.h + hh) * c.tq + i) * c.tk + j);
                    kp[j] = c.drop > 0 ? (kd_rng_keep(a.seed, ctr, (float)c.drop) ? 1.0 / (1.0 - c.drop) : 0.0) : 1.0;
                    const float *vj = v + bb * sb_k + j * st_k + hh * c.d;
                    double s = 0;
                    for (int64_t d = 0; d < c.d; d++) s += fabs((double)doi[d] * vj[d]);
                    dp[j] = s * kp[j];
                    rs += p[j] * dp[j];
                }
                for (int64_t j = 0; j < c.tk; j++) {
                    double ds = p[j] * (dp[j] + rs) * scale;
                    for (int64_t d = 0; d < c.d; d++) {
                        int64_t ek = bb * sb_k + j * st_k + hh * c.d + d, eq = bb * sb_q + i * st_q + hh * c.d + d;
                        mq[eq] += ds * fabs((double)k[ek]);
                        mk[ek] += ds * fabs((double)q[eq]);
                        mv[ek] += p[j] * kp[j] * fabs((double)dout[eq]);
                    }
                }
            }
    const double red_b = red_f + (double)c.tq + (double)c.d;
    for (int t = 0; t < ntab; t++)
        for (int nth = 1; nth <= 3; nth += 2) {
            oc_fbuf dq = oc_falloc(nq), dk = oc_falloc(nk), dv = oc_falloc(nk);
            memcpy(dq.p, dq0, (size_t)nq * 4); memcpy(dk.p, dk0, (size_t)nk * 4); memcpy(dv.p, dv0, (size_t)nk * 4);
            kd_attention_args ab = a;
            ab.dq = dq.p; ab.dk = dk.p; ab.dv = dv.p;
            OC_RUN(tabs[t]->attention_bwd, &ab, nth);
            char what[128];
            snprintf(what, sizeof what, "%s attention_bwd b=%lld h=%lld tq=%lld tk=%lld d=%lld drop=%g mask=%d",
                     tabs[t]->name, (long long)c.b, (long long)c.h, (long long)c.tq, (long long)c.tk, (long long)c.d,
                     c.drop, c.mask);
            oc_compare_f32(what, dq.p, dqw, mq, nq, red_b, nth);
            oc_compare_f32(what, dk.p, dkw, mk, nk, red_b, nth);
            oc_compare_f32(what, dv.p, dvw, mv, nk, red_b, nth);
            CHECK(oc_fguard_damage(&dq) == 0 && oc_fguard_damage(&dk) == 0 && oc_fguard_damage(&dv) == 0,
                  "%s: wrote outside dQ/dK/dV", what);
            oc_ffree(&dq); oc_ffree(&dk); oc_ffree(&dv);
        }
    free(q); free(k); free(v); free(vabs); free(dout); free(mask); free(o); free(omag); free(lse); free(lsetmp);
    free(dq0); free(dk0); free(dv0); free(dqw); free(dkw); free(dvw); free(mq); free(mk); free(mv);
    free(magd); free(lmag); free(p); free(dp); free(kp);
}

int main(void)
{
    OC_FAST_TABLES_OR_SKIP(tabs, ntab, 3);
    static const acase cases[] = {
        { 1, 1, 1, 1, 1, 0.0, 0 },    { 2, 3, 7, 9, 5, 0.0, 1 },    { 2, 3, 7, 9, 5, 0.25, 1 },
        { 1, 2, 63, 65, 64, 0.1, 1 }, { 3, 2, 17, 129, 16, 0.0, 1 }, { 1, 1, 5, 130, 8, 0.5, 0 },
        { 2, 2, 33, 64, 12, 0.1, 1 }, { 1, 1, 9, 7, 63, 0.0, 0 },  { 2, 2, 20, 70, 32, 0.1, 1 },
        { 2, 12, 128, 128, 64, 0.1, 1 }, /* BERT-base: 12 heads x 128 tokens x 64 dims */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run(tabs, ntab, cases[i]);
    return kd_test_finish("test_attention");
}
