/* test/kernels/test_rows.c — the fast row and element-wise kernels against the reference, table by
 * table: maps (GELU, tanh, exp, arithmetic; unary and binary, overwrite and accumulate, a strided case
 * that must fall back), softmax and log-softmax forward/backward, LayerNorm forward/backward (with and
 * without gamma/beta, each gradient optional), cross-entropy and KL divergence forward/backward, AdamW.
 * Widths 1, 7, 8, 63, 125, 128 (the register path of the AVX-512 softmax), 129, 771; 1 and 3 threads;
 * outputs guarded by canaries and poisoned with NaN when overwritten; a NaN in an input must reach the
 * outputs it feeds. */
#include "test/kernels/kcheck.h"

static const int64_t k_cols[] = { 1, 7, 8, 63, 125, 128, 129, 771 };
#define N_COLS ((int)(sizeof k_cols / sizeof k_cols[0]))
static const kd_kernels *ref;

static float *fmalloc(int64_t n)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p) abort();
    return p;
}
static double *dmalloc(int64_t n)
{
    double *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p) abort();
    return p;
}

/* Start an output: canaries around, NaN inside (overwritten outputs) or a copy of init (accumulated). */
static kc_buf out_start(int64_t n, const float *init)
{
    kc_buf b = kc_alloc(n);
    for (int64_t i = 0; i < n; i++) b.p[i] = init ? init[i] : NAN;
    return b;
}
static void out_finish(kc_buf *b, const char *what, const kd_kernels *t)
{
    CHECK(kc_guard_damage(b) == 0, "%s %s: wrote outside its output", t->name, what);
    kc_free(b);
}

/* ---------------------------------------------------------------- maps */

static double normal_cdf(double x) { return 0.5 * erfc(-x * 0.70710678118654752440); }

/* ulps: the op's own error budget (the tolerance's "reduction length"). */
static void test_map(const kd_kernels *t, int binary, int op, double lo, double hi, double ulps, const char *name)
{
    for (int ci = 0; ci < N_COLS; ci++) {
        const int64_t n = k_cols[ci] * 3 + 1;
        float *a = fmalloc(n), *b = fmalloc(n), *o0 = fmalloc(n), *want = fmalloc(n), *v = fmalloc(n);
        double *mag = dmalloc(n), *ratol = dmalloc(n);
        kc_fill(a, n, lo, hi);
        kc_fill(b, n, -2, 2);
        kc_fill(o0, n, -1, 1);
        if (op == KD_BIN_DIV && binary)
            for (int64_t i = 0; i < n; i++) b[i] = b[i] < 0 ? b[i] - 0.5f : b[i] + 0.5f;
        if (n > 4) a[n / 2] = NAN;
        for (int acc = 0; acc <= 1; acc++) {
            kd_map_args m = { .op = op, .accumulate = 0, .ndim = 1, .shape = { n }, .out = v, .out_stride = { 1 },
                              .a = a, .a_stride = { 1 }, .b = b, .b_stride = { 1 }, .alpha = 0.75 };
            if (binary) ref->binary(&m, 0, 1);
            else ref->unary(&m, 0, 1);
            for (int64_t i = 0; i < n; i++) {
                double vm = fabs((double)v[i]);
                if (binary && op == KD_BIN_GELU_BWD) /* |b| (|Phi(a)| + |a phi(a)|): Phi + a phi cancels near a = -0.75 */
                    vm = fabs((double)b[i]) * (normal_cdf(a[i]) + fabs(a[i]) * 0.3989422804 * exp(-0.5 * a[i] * a[i]));
                if (binary && op == KD_BIN_TANH_BWD) vm = fabs((double)b[i]) * (1.0 + (double)a[i] * a[i]);
                mag[i] = vm + (acc ? fabs((double)o0[i]) : 0.0);
                /* The reference forms 1 + erf(x / sqrt 2) in double: near x << 0 that sum carries an absolute
                 * error of ~2^-53, so its GELU is off by ~|x| 2^-53 and its GELU' by ~|b| 2^-53 there. */
                ratol[i] = 0.0;
                if (!binary && op == KD_UN_GELU) ratol[i] = fabs((double)a[i]) * 0x1p-52;
                if (binary && op == KD_BIN_GELU_BWD) ratol[i] = fabs((double)b[i]) * 0x1p-52;
                want[i] = acc ? o0[i] : 0.0f;
            }
            m.accumulate = acc;
            m.out = want;
            if (acc) {
                if (binary) ref->binary(&m, 0, 1);
                else ref->unary(&m, 0, 1);
            } else {
                memcpy(want, v, (size_t)n * sizeof *want);
            }
            for (int nth = 1; nth <= 3; nth += 2) {
                kc_buf out = out_start(n, acc ? o0 : NULL);
                m.out = out.p;
                if (binary) KC_RUN(t->binary, &m, nth);
                else KC_RUN(t->unary, &m, nth);
                char what[96];
                snprintf(what, sizeof what, "%s %s n=%lld acc=%d", t->name, name, (long long)n, acc);
                kc_compare_atol(what, out.p, want, mag, ratol, n, ulps, nth);
                if (n > 4) CHECK(isnan(out.p[n / 2]), "%s: NaN input did not propagate", what);
                out_finish(&out, name, t);
            }
        }
        free(a); free(b); free(o0); free(want); free(v); free(mag); free(ratol);
    }
}

/* A transposed (non-contiguous) map must still be right: the fast table hands it to the reference. */
static void test_map_strided(const kd_kernels *t)
{
    const int64_t r = 13, c = 9;
    float *a = fmalloc(r * c), *want = fmalloc(r * c);
    kc_fill(a, r * c, -3, 3);
    kd_map_args m = { .op = KD_UN_GELU, .ndim = 2, .shape = { r, c }, .out = want, .out_stride = { c, 1 },
                      .a = a, .a_stride = { 1, r } };
    ref->unary(&m, 0, 1);
    kc_buf out = out_start(r * c, NULL);
    m.out = out.p;
    KC_RUN(t->unary, &m, 3);
    kc_compare("gelu transposed input", out.p, want, NULL, r * c, 0.0, 3);
    out_finish(&out, "gelu strided", t);
    free(a); free(want);
}

/* ---------------------------------------------------------------- softmax */

static void test_softmax(const kd_kernels *t, int lg)
{
    const int64_t rows = 5;
    for (int ci = 0; ci < N_COLS; ci++) {
        const int64_t n = k_cols[ci], e = rows * n;
        float *x = fmalloc(e), *want = fmalloc(e), *dy = fmalloc(e), *dx0 = fmalloc(e), *dwant = fmalloc(e);
        double *mag = dmalloc(e);
        kc_fill(x, e, -8, 8);
        kc_fill(dy, e, -1, 1);
        kc_fill(dx0, e, -1, 1);
        x[2 * n + n / 2] = NAN; /* row 2 must come out all NaN */
        if (n > 1) x[3 * n] = -INFINITY; /* a masked position: probability 0 */
        kd_softmax_args s = { .log = lg, .rows = rows, .cols = n, .x = x, .y = want };
        ref->softmax(&s, 0, 1);
        for (int64_t r = 0; r < rows; r++) {
            double lse = 0, mx = 0;
            for (int64_t j = 0; j < n; j++) mx = fmax(mx, fabs((double)x[r * n + j]));
            lse = mx + log((double)n);
            for (int64_t j = 0; j < n; j++)
                mag[r * n + j] = lg ? fabs((double)x[r * n + j]) + lse : fabs((double)want[r * n + j]);
        }
        for (int nth = 1; nth <= 3; nth += 2) {
            kc_buf y = out_start(e, NULL);
            s.y = y.p;
            KC_RUN(t->softmax, &s, nth);
            char what[64];
            snprintf(what, sizeof what, "%s %s cols=%lld", t->name, lg ? "log_softmax" : "softmax", (long long)n);
            kc_compare(what, y.p, want, mag, e, (double)n, nth);
            out_finish(&y, what, t);
        }
        /* Backward from the reference forward output (row 2 is NaN and stays so). */
        memcpy(dwant, dx0, (size_t)e * sizeof *dwant);
        kd_softmax_bwd_args sb = { .log = lg, .rows = rows, .cols = n, .y = want, .dy = dy, .dx = dwant };
        ref->softmax_bwd(&sb, 0, 1);
        for (int64_t r = 0; r < rows; r++) {
            double sum = 0;
            for (int64_t j = 0; j < n; j++) {
                double yy = lg ? exp((double)want[r * n + j]) : (double)want[r * n + j];
                sum += lg ? fabs((double)dy[r * n + j]) : fabs((double)dy[r * n + j] * yy);
            }
            for (int64_t j = 0; j < n; j++) {
                double yv = lg ? exp((double)want[r * n + j]) : fabs((double)want[r * n + j]);
                mag[r * n + j] = fabs((double)dx0[r * n + j]) + (lg ? fabs((double)dy[r * n + j]) + yv * sum
                                                                     : yv * (fabs((double)dy[r * n + j]) + sum));
            }
        }
        for (int nth = 1; nth <= 3; nth += 2) {
            kc_buf dx = out_start(e, dx0);
            sb.dx = dx.p;
            KC_RUN(t->softmax_bwd, &sb, nth);
            char what[64];
            snprintf(what, sizeof what, "%s %s_bwd cols=%lld", t->name, lg ? "log_softmax" : "softmax", (long long)n);
            kc_compare(what, dx.p, dwant, mag, e, (double)n, nth);
            out_finish(&dx, what, t);
        }
        free(x); free(want); free(dy); free(dx0); free(dwant); free(mag);
    }
}

/* ---------------------------------------------------------------- LayerNorm */

static void test_layernorm(const kd_kernels *t, int affine)
{
    const int64_t rows = 6;
    for (int ci = 0; ci < N_COLS; ci++) {
        const int64_t n = k_cols[ci], e = rows * n;
        float *x = fmalloc(e), *gamma = fmalloc(n), *beta = fmalloc(n), *want = fmalloc(e);
        float *mw = fmalloc(rows), *rw = fmalloc(rows), *dy = fmalloc(e), *dx0 = fmalloc(e), *dxw = fmalloc(e);
        float *dg0 = fmalloc(n), *db0 = fmalloc(n), *dgw = fmalloc(n), *dbw = fmalloc(n);
        double *mag = dmalloc(e), *gmag = dmalloc(n), *bmag = dmalloc(n);
        kc_fill(x, e, -2, 2);
        for (int64_t j = 0; j < n; j++) x[n + j] += 30.0f; /* row 1: mean far from 0 */
        kc_fill(gamma, n, 0.5, 1.5);
        kc_fill(beta, n, -1, 1);
        kc_fill(dy, e, -1, 1);
        kc_fill(dx0, e, -1, 1);
        kc_fill(dg0, n, -1, 1);
        kc_fill(db0, n, -1, 1);
        x[4 * n + n / 2] = NAN; /* row 4 must come out NaN */
        kd_layernorm_args l = { .rows = rows, .cols = n, .eps = 1e-5, .x = x, .gamma = affine ? gamma : NULL,
                                .beta = affine ? beta : NULL, .y = want, .mean = mw, .rstd = rw };
        ref->layernorm(&l, 0, 1);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < n; j++)
                mag[r * n + j] = (fabs((double)x[r * n + j]) + fabs((double)mw[r])) * rw[r] * (affine ? gamma[j] : 1.0) +
                                 (affine ? fabs((double)beta[j]) : 0.0);
        for (int nth = 1; nth <= 3; nth += 2) {
            kc_buf y = out_start(e, NULL), mo = out_start(rows, NULL), ro = out_start(rows, NULL);
            l.y = y.p; l.mean = mo.p; l.rstd = ro.p;
            KC_RUN(t->layernorm, &l, nth);
            char what[64];
            snprintf(what, sizeof what, "%s layernorm%s cols=%lld", t->name, affine ? "" : " (no affine)", (long long)n);
            kc_compare(what, y.p, want, mag, e, (double)n, nth);
            kc_compare("layernorm mean", mo.p, mw, NULL, rows, (double)n + 32.0 * n, nth);
            kc_compare("layernorm rstd", ro.p, rw, NULL, rows, (double)n + 32.0 * n, nth);
            out_finish(&y, what, t); out_finish(&mo, what, t); out_finish(&ro, what, t);
        }
        /* Backward with the reference statistics; each of dx, dgamma, dbeta optional. */
        for (int which = 0; which < 3; which++) {
            int want_dx = which != 1, want_dg = which != 2, want_db = which != 0;
            memcpy(dxw, dx0, (size_t)e * sizeof *dxw);
            memcpy(dgw, dg0, (size_t)n * sizeof *dgw);
            memcpy(dbw, db0, (size_t)n * sizeof *dbw);
            kd_layernorm_bwd_args lb = { .rows = rows, .cols = n, .x = x, .mean = mw, .rstd = rw,
                                         .gamma = affine ? gamma : NULL, .dy = dy, .dx = want_dx ? dxw : NULL,
                                         .dgamma = want_dg ? dgw : NULL, .dbeta = want_db ? dbw : NULL };
            ref->layernorm_bwd(&lb, 0, 1);
            for (int64_t j = 0; j < n; j++) {
                gmag[j] = fabs((double)dg0[j]);
                bmag[j] = fabs((double)db0[j]);
            }
            for (int64_t r = 0; r < rows; r++) {
                double sg = 0, sgx = 0;
                for (int64_t j = 0; j < n; j++) {
                    double g = fabs((double)dy[r * n + j]) * (affine ? gamma[j] : 1.0);
                    double xh = (fabs((double)x[r * n + j]) + fabs((double)mw[r])) * rw[r];
                    sg += g;
                    sgx += g * xh;
                    gmag[j] += fabs((double)dy[r * n + j]) * xh;
                    bmag[j] += fabs((double)dy[r * n + j]);
                }
                for (int64_t j = 0; j < n; j++) {
                    double g = fabs((double)dy[r * n + j]) * (affine ? gamma[j] : 1.0);
                    double xh = (fabs((double)x[r * n + j]) + fabs((double)mw[r])) * rw[r];
                    mag[r * n + j] = fabs((double)dx0[r * n + j]) + rw[r] * (g + sg / n + xh * sgx / n);
                }
            }
            for (int nth = 1; nth <= 3; nth += 2) {
                kc_buf dx = out_start(e, dx0), dg = out_start(n, dg0), db = out_start(n, db0);
                lb.dx = want_dx ? dx.p : NULL;
                lb.dgamma = want_dg ? dg.p : NULL;
                lb.dbeta = want_db ? db.p : NULL;
                KC_RUN(t->layernorm_bwd, &lb, nth);
                char what[80];
                snprintf(what, sizeof what, "%s layernorm_bwd%s cols=%lld wanted=%d%d%d", t->name,
                         affine ? "" : " (no gamma)", (long long)n, want_dx, want_dg, want_db);
                /* an output not asked for must be left as it was */
                kc_compare(what, dx.p, want_dx ? dxw : dx0, want_dx ? mag : NULL, e, want_dx ? (double)n : -KC_SLACK, nth);
                kc_compare(what, dg.p, want_dg ? dgw : dg0, want_dg ? gmag : NULL, n, want_dg ? (double)rows : -KC_SLACK, nth);
                kc_compare(what, db.p, want_db ? dbw : db0, want_db ? bmag : NULL, n, want_db ? (double)rows : -KC_SLACK, nth);
                out_finish(&dx, what, t); out_finish(&dg, what, t); out_finish(&db, what, t);
            }
        }
        free(x); free(gamma); free(beta); free(want); free(mw); free(rw); free(dy); free(dx0); free(dxw);
        free(dg0); free(db0); free(dgw); free(dbw); free(mag); free(gmag); free(bmag);
    }
}

/* ---------------------------------------------------------------- cross-entropy */

static void test_cross_entropy(const kd_kernels *t)
{
    const int64_t rows = 7;
    for (int ci = 0; ci < N_COLS; ci++) {
        const int64_t n = k_cols[ci], e = rows * n;
        float *z = fmalloc(e), *loss = fmalloc(rows), *lse = fmalloc(rows), *dz0 = fmalloc(e), *dzw = fmalloc(e);
        int32_t *tg = malloc((size_t)rows * sizeof *tg);
        double *mag = dmalloc(e), *lmag = dmalloc(rows);
        if (!tg) abort();
        kc_fill(z, e, -6, 6);
        kc_fill(dz0, e, -1, 1);
        for (int64_t r = 0; r < rows; r++) tg[r] = (int32_t)((r * 7 + 3) % n);
        z[5 * n + n / 2] = NAN;
        kd_cross_entropy_args xa = { .rows = rows, .cols = n, .logits = z, .targets = tg, .loss = loss, .lse = lse,
                            .scale = 1.0 / rows, .dlogits = dzw };
        ref->cross_entropy(&xa, 0, 1);
        for (int64_t r = 0; r < rows; r++) lmag[r] = 6.0 + log((double)n) + 6.0 + fabs((double)lse[r]);
        for (int nth = 1; nth <= 3; nth += 2) {
            kc_buf lo = out_start(rows, NULL), ls = out_start(rows, NULL);
            kd_cross_entropy_args xf = xa;
            xf.loss = lo.p; xf.lse = ls.p;
            KC_RUN(t->cross_entropy, &xf, nth);
            char what[64];
            snprintf(what, sizeof what, "%s cross_entropy cols=%lld", t->name, (long long)n);
            kc_compare(what, lo.p, loss, lmag, rows, (double)n, nth);
            kc_compare(what, ls.p, lse, lmag, rows, (double)n, nth);
            out_finish(&lo, what, t); out_finish(&ls, what, t);
        }
        memcpy(dzw, dz0, (size_t)e * sizeof *dzw);
        ref->cross_entropy_bwd(&xa, 0, 1);
        for (int64_t i = 0; i < e; i++) mag[i] = fabs((double)dz0[i]) + 2.0 / rows;
        for (int nth = 1; nth <= 3; nth += 2) {
            kc_buf dz = out_start(e, dz0);
            kd_cross_entropy_args xb = xa;
            xb.dlogits = dz.p;
            const float half = 0.5f;   /* 3 threads: the same scale, half of it read from `upstream` */
            if (nth == 3) { xb.scale = xa.scale * 2.0; xb.upstream = &half; }
            KC_RUN(t->cross_entropy_bwd, &xb, nth);
            char what[64];
            snprintf(what, sizeof what, "%s cross_entropy_bwd cols=%lld", t->name, (long long)n);
            kc_compare(what, dz.p, dzw, mag, e, 8.0, nth);
            out_finish(&dz, what, t);
        }
        free(z); free(loss); free(lse); free(dz0); free(dzw); free(tg); free(mag); free(lmag);
    }
}

/* ---------------------------------------------------------------- KL divergence */

static void test_kl_div(const kd_kernels *t)
{
    const int64_t rows = 6;
    for (int ci = 0; ci < N_COLS; ci++) {
        const int64_t n = k_cols[ci], e = rows * n;
        float *lq = fmalloc(e), *p = fmalloc(e), *outw = fmalloc(rows), *dq0 = fmalloc(e), *dp0 = fmalloc(e);
        float *dqw = fmalloc(e), *dpw = fmalloc(e);
        double *omag = dmalloc(rows), *qmag = dmalloc(e), *pmag = dmalloc(e);
        kc_fill(lq, e, -6, 0);
        kc_fill(p, e, 0, 1);
        kc_fill(dq0, e, -1, 1);
        kc_fill(dp0, e, -1, 1);
        for (int64_t i = 0; i < e; i += 5) p[i] = 0.0f; /* zero-probability terms count as 0 */
        p[4 * n + n / 2] = NAN;                         /* row 4 must come out NaN */
        for (int64_t r = 0; r < rows; r++) {
            double s = 0;
            for (int64_t j = 0; j < n; j++) {
                double pv = p[r * n + j];
                if (pv > 0) s += pv * (fabs(log(pv)) + fabs((double)lq[r * n + j]));
            }
            omag[r] = s;
        }
        kd_kl_div_args k = { .rows = rows, .cols = n, .logq = lq, .p = p, .out = outw, .scale = 0.37, .dlogq = dqw, .dp = dpw };
        ref->kl_div(&k, 0, 1);
        for (int nth = 1; nth <= 3; nth += 2) {
            kc_buf o = out_start(rows, NULL);
            kd_kl_div_args kf = k;
            kf.out = o.p;
            KC_RUN(t->kl_div, &kf, nth);
            char what[64];
            snprintf(what, sizeof what, "%s kl_div cols=%lld", t->name, (long long)n);
            kc_compare(what, o.p, outw, omag, rows, (double)n + 4.0, nth);
            out_finish(&o, what, t);
        }
        for (int which = 0; which < 3; which++) { /* both gradients, only dlogq, only dp */
            int wq = which != 2, wp = which != 1;
            memcpy(dqw, dq0, (size_t)e * 4);
            memcpy(dpw, dp0, (size_t)e * 4);
            kd_kl_div_args kb = k;
            kb.dlogq = wq ? dqw : NULL;
            kb.dp = wp ? dpw : NULL;
            ref->kl_div_bwd(&kb, 0, 1);
            for (int64_t i = 0; i < e; i++) {
                qmag[i] = fabs((double)dq0[i]) + 0.37 * fabs((double)p[i]);
                pmag[i] = fabs((double)dp0[i]) + (p[i] > 0 ? 0.37 * (fabs(log((double)p[i])) + 1 + fabs((double)lq[i])) : 0);
            }
            for (int nth = 1; nth <= 3; nth += 2) {
                kc_buf dq = out_start(e, dq0), dp = out_start(e, dp0);
                kd_kl_div_args kf = kb;
                kf.dlogq = wq ? dq.p : NULL;
                kf.dp = wp ? dp.p : NULL;
                const float half = 0.5f;   /* 3 threads: the same scale, half of it read from `upstream` */
                if (nth == 3) { kf.scale = kb.scale * 2.0; kf.upstream = &half; }
                KC_RUN(t->kl_div_bwd, &kf, nth);
                char what[64];
                snprintf(what, sizeof what, "%s kl_div_bwd cols=%lld wanted=%d%d", t->name, (long long)n, wq, wp);
                kc_compare(what, dq.p, dqw, wq ? qmag : NULL, e, wq ? 4.0 : -KC_SLACK, nth);
                kc_compare(what, dp.p, dpw, wp ? pmag : NULL, e, wp ? 4.0 : -KC_SLACK, nth);
                out_finish(&dq, what, t); out_finish(&dp, what, t);
            }
        }
        free(lq); free(p); free(outw); free(dq0); free(dp0); free(dqw); free(dpw); free(omag); free(qmag); free(pmag);
    }
}

/* ---------------------------------------------------------------- AdamW */

static void test_adamw(const kd_kernels *t)
{
    for (int ci = 0; ci < N_COLS; ci++) {
        const int64_t n = k_cols[ci] * 5 + 2;
        float *w0 = fmalloc(n), *g = fmalloc(n), *m0 = fmalloc(n), *v0 = fmalloc(n);
        float *ww = fmalloc(n), *mw = fmalloc(n), *vw = fmalloc(n);
        double *wmag = dmalloc(n), *mmag = dmalloc(n), *vmag = dmalloc(n);
        kc_fill(w0, n, -1, 1);
        kc_fill(g, n, -0.1, 0.1);
        kc_fill(m0, n, -0.01, 0.01);
        kc_fill(v0, n, 0, 1e-4);
        g[n / 2] = NAN;
        const double lr = 1e-3, b1 = 0.9, b2 = 0.999, step = 3;
        kd_adamw_args o = { .n = n, .param = ww, .grad = g, .m = mw, .v = vw, .lr = lr, .beta1 = b1, .beta2 = b2,
                            .eps = 1e-8, .weight_decay = 0.01, .bias1 = 1 - pow(b1, step), .bias2 = 1 - pow(b2, step) };
        memcpy(ww, w0, (size_t)n * 4); memcpy(mw, m0, (size_t)n * 4); memcpy(vw, v0, (size_t)n * 4);
        ref->adamw(&o, 0, 1);
        for (int64_t i = 0; i < n; i++) {
            mmag[i] = b1 * fabs((double)m0[i]) + (1 - b1) * fabs((double)g[i]);
            vmag[i] = b2 * v0[i] + (1 - b2) * (double)g[i] * g[i];
            /* the step lr m^ / (sqrt(v^) + eps) is sensitive to m and v at a few ulp each */
            wmag[i] = fabs((double)w0[i]) + lr * (mmag[i] / o.bias1) / (sqrt(vw[i] / o.bias2) + o.eps);
        }
        for (int nth = 1; nth <= 3; nth += 2) {
            kc_buf w = out_start(n, w0), m = out_start(n, m0), v = out_start(n, v0);
            kd_adamw_args of = o;
            of.param = w.p; of.m = m.p; of.v = v.p;
            KC_RUN(t->adamw, &of, nth);
            char what[64];
            snprintf(what, sizeof what, "%s adamw n=%lld", t->name, (long long)n);
            kc_compare(what, w.p, ww, wmag, n, 8.0, nth);
            kc_compare(what, m.p, mw, mmag, n, 4.0, nth);
            kc_compare(what, v.p, vw, vmag, n, 4.0, nth);
            out_finish(&w, what, t); out_finish(&m, what, t); out_finish(&v, what, t);
        }
        free(w0); free(g); free(m0); free(v0); free(ww); free(mw); free(vw); free(wmag); free(mmag); free(vmag);
    }
}

int main(void)
{
    const kd_kernels *tabs[2];
    int ntab = kc_tables(tabs);
    if (ntab == 0) {
        printf("no fast table runs on this CPU\n");
        return KD_TEST_SKIP;
    }
    ref = kd_kernels_ref_f32();
    kc_seed(2);
    for (int ti = 0; ti < ntab; ti++) {
        const kd_kernels *t = tabs[ti];
        /* Error budgets in ulps of the result's magnitude: a few for the transcendental maps, 1-2 for
         * arithmetic (plus the slack in kc_tol). */
        test_map(t, 0, KD_UN_GELU, -12, 12, 8, "gelu");
        test_map(t, 0, KD_UN_GELU, -1, 1, 8, "gelu small");
        test_map(t, 0, KD_UN_TANH, -12, 12, 4, "tanh");
        test_map(t, 0, KD_UN_TANH, -0.7, 0.7, 4, "tanh small");
        test_map(t, 0, KD_UN_EXP, -80, 80, 4, "exp");
        test_map(t, 0, KD_UN_COPY, -5, 5, 0, "copy");
        test_map(t, 0, KD_UN_SCALE, -5, 5, 1, "scale");
        test_map(t, 0, KD_UN_NEG, -5, 5, 0, "neg");
        test_map(t, 0, KD_UN_SQUARE, -5, 5, 1, "square");
        test_map(t, 0, KD_UN_ADD_SCALAR, -5, 5, 1, "add_scalar");
        test_map(t, 0, KD_UN_LOG, 0.01, 5, 4, "log");
        test_map(t, 0, KD_UN_LOG, 1e-38, 1e-30, 4, "log tiny");
        test_map(t, 1, KD_BIN_ADD, -5, 5, 1, "add");
        test_map(t, 1, KD_BIN_SUB, -5, 5, 1, "sub");
        test_map(t, 1, KD_BIN_MUL, -5, 5, 1, "mul");
        test_map(t, 1, KD_BIN_DIV, -5, 5, 1, "div");
        test_map(t, 1, KD_BIN_GELU_BWD, -12, 12, 8, "gelu_bwd");
        test_map(t, 1, KD_BIN_GELU_BWD, -1.5, 1.5, 8, "gelu_bwd small");
        test_map(t, 1, KD_BIN_TANH_BWD, -1, 1, 2, "tanh_bwd");
        test_map_strided(t);
        test_softmax(t, 0);
        test_softmax(t, 1);
        test_layernorm(t, 1);
        test_layernorm(t, 0);
        test_cross_entropy(t);
        test_kl_div(t);
        test_adamw(t);
    }
    return kd_test_finish("test_rows");
}
