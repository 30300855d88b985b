/* test/kernels/test_bf16.c — the fast bf16-storage kernels of every bf16 table this CPU runs against the
 * reference bf16 table, and the f32 tables' f32 <-> bf16 conversion against the reference conversion.
 *
 * Conversion: bit-exact, over all 2^16 bf16 values (to f32, and back from their f32 values) and over f32
 * values around every bf16 value (low halves 0, 1, 0x7fff, 0x8000, 0x8001, 0xffff and a random one: ties,
 * denormals, NaN payloads, Inf, overflow), overwrite and accumulate, odd lengths, 1 and 3 threads.
 *
 * Kernels: GEMM (all trans cases, beta 0 / non-zero, bias, batches with strides, padded leading dims,
 * k = 0, k past the KC block; each bf16 GEMM this CPU runs on its own, VDPBF16PS included, also at odd
 * shapes past its KC, NC and row-chunk blocks, and which one the AVX-512 table picks), unary and binary maps (overwrite, accumulate, a strided case that takes the
 * reference path, NaN inputs), reductions (rows, columns, all, a strided fallback), softmax and
 * log-softmax forward/backward, LayerNorm forward/backward (gamma/beta present or not, each gradient
 * optional), dropout (p = 0, 0.1, 0.5; accumulate), attention forward/backward (padded strides, masks
 * including a fully masked batch, dropout on/off). Widths 1, 7, 8, 63, 129, 771; 1 and 3 threads; bf16
 * outputs guarded by canaries and poisoned with NaN when overwritten.
 *
 * Tolerance for a bf16 output: the reference rounds the exact (double) value once; a fast kernel rounds
 * an f32 value that differs from it by the f32 error e of its sums, so the two may land one bf16 step
 * apart (a step is at most 2^-7 |want|):  |got - want| <= 2^-7 |want| + oc_tol(n, mag)  (op_case.h: n the
 * reduction length, mag the sum of the magnitudes of the terms). f32 outputs (LayerNorm's mean, rstd,
 * dgamma, dbeta; attention's lse) use oc_tol alone. A NaN where the reference has a number fails. */
#include "kernels/bf16.h"
#include "kernels/cpu/cpu_kernels.h"
#include "test/kernels/op_case.h"

#define BF_STEP (1.0 / 128.0)
#define BG 32                              /* canary bf16 values on each side of an output */
static int bf16_is_nan(kd_bf16 h) { return (h & 0x7fffu) > 0x7f80u; }

static const kd_bf16 bf_canary = 0x7fa5;   /* a signalling-NaN pattern no kernel writes */

static const int64_t k_cols[] = { 1, 7, 8, 63, 129, 771 };
#define N_COLS ((int)(sizeof k_cols / sizeof k_cols[0]))
static const kd_kernels *ref;

static double bf(kd_bf16 h) { return (double)kd_bf16_to_f32(h); }
static kd_bf16 *bmalloc(int64_t n)
{
    kd_bf16 *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p) abort();
    return p;
}
static double *dmalloc(int64_t n)
{
    double *p = calloc((size_t)(n > 0 ? n : 1), sizeof *p);
    if (!p) abort();
    return p;
}
static void bfill(kd_bf16 *x, int64_t n, double lo, double hi)
{
    for (int64_t i = 0; i < n; i++) x[i] = kd_f32_to_bf16((float)oc_uniform(lo, hi));
}

/* A guarded bf16 output: canaries around, NaN inside (init NULL) or a copy of init. */
typedef struct bbuf { kd_bf16 *base, *p; int64_t n; } bbuf;
static bbuf bstart(int64_t n, const kd_bf16 *init)
{
    bbuf b = { bmalloc(n + 2 * BG), NULL, n };
    b.p = b.base + BG;
    for (int64_t i = 0; i < n + 2 * BG; i++) b.base[i] = bf_canary;
    for (int64_t i = 0; i < n; i++) b.p[i] = init ? init[i] : 0x7fc0;
    return b;
}
static void bfinish(bbuf *b, const char *what, const kd_kernels *t, int nth)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < BG; i++) bad += (b->base[i] != bf_canary) + (b->p[b->n + i] != bf_canary);
    CHECK(bad == 0, "%s %s (nth=%d): wrote outside its output (%lld values)", t->name, what, nth, (long long)bad);
    free(b->base);
}

static int64_t n_checked;

/* got vs want under the bf16 rule; mag NULL: |want|; mag_s added to every mag. */
static int64_t bcompare(const char *what, const kd_kernels *t, int nth, const kd_bf16 *got, const kd_bf16 *want,
                        const double *mag, double mag_s, int64_t n, double red)
{
    int64_t bad = 0, first = -1;
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double g = bf(got[i]), w = bf(want[i]);
        const double tol = BF_STEP * fabs(w) + oc_tol(red, (mag ? mag[i] : fabs(w)) + mag_s);
        int ok;
        if (isnan(w)) ok = isnan(g);
        else if (isinf(w)) ok = g == w;
        else {
            ok = fabs(g - w) <= tol;
            if (ok && tol > 0 && fabs(g - w) / tol > worst) worst = fabs(g - w) / tol;
        }
        if (!ok && bad++ == 0) first = i;
    }
    n_checked += n;
    CHECK(bad == 0, "%s %s (nth=%d): %lld of %lld wrong, first [%lld] got %.6g want %.6g", t->name, what, nth,
          (long long)bad, (long long)n, (long long)first, first >= 0 ? bf(got[first]) : 0.0,
          first >= 0 ? bf(want[first]) : 0.0);
    return bad;
}

/* f32 outputs: oc_tol alone. */
static void fcompare(const char *what, const kd_kernels *t, int nth, const float *got, const float *want,
                     const double *mag, int64_t n, double red)
{
    char buf[160];
    snprintf(buf, sizeof buf, "%s %s", t->name, what);
    oc_compare_f32(buf, got, want, mag, n, red, nth);
    n_checked += n;
}

/* ---------------------------------------------------------------- conversion */

static void test_convert(const kd_kernels *t)
{
    const kd_kernels *r32 = kd_kernels_ref_f32();
    static const uint32_t lows[] = { 0, 1, 0x7fff, 0x8000, 0x8001, 0xffff, 0x12345 };
    const int nl = (int)(sizeof lows / sizeof lows[0]);
    const int64_t n = 65536 * (int64_t)nl;
    float *f = malloc((size_t)n * sizeof *f), *fy0 = malloc((size_t)n * sizeof *fy0);
    float *fw = malloc((size_t)n * sizeof *fw), *fg = malloc((size_t)n * sizeof *fg);
    kd_bf16 *h = bmalloc(n), *hy0 = bmalloc(n), *hw = bmalloc(n), *hg = bmalloc(n);
    if (!f || !fy0 || !fw || !fg) abort();
    for (int64_t i = 0; i < n; i++) {
        uint32_t hi = (uint32_t)(i % 65536), lo = lows[i / 65536];
        if (lo > 0xffff) lo = (uint32_t)(oc_uniform(0, 65536)) & 0xffff;
        uint32_t u = hi << 16 | lo;
        memcpy(&f[i], &u, 4);
        h[i] = (kd_bf16)hi;
        hy0[i] = (kd_bf16)((uint32_t)oc_uniform(0, 65536) & 0xffff);
        uint32_t v = (uint32_t)oc_uniform(0, 4294967296.0);
        memcpy(&fy0[i], &v, 4);
    }
    /* a few accumulator pairs that overflow, cancel, or meet Inf/NaN */
    for (int64_t i = 0; i < 4096; i++) hy0[i] = h[(i * 7919) % 65536];
    const int64_t lens[] = { n, n - 3, 13, 1 };
    for (int li = 0; li < 4; li++)
        for (int dir = 0; dir <= 1; dir++)
            for (int acc = 0; acc <= 1; acc++)
                for (int nth = 1; nth <= 3; nth += 2) {
                    const int64_t len = lens[li];
                    kd_convert_args c = { .n = len, .to_bf16 = dir, .accumulate = acc, .x = dir ? (const void *)f : (const void *)h };
                    int64_t bad = 0, first = -1;
                    if (dir) {
                        memcpy(hw, hy0, (size_t)len * 2);
                        memcpy(hg, hy0, (size_t)len * 2);
                        c.y = hw;
                        r32->convert(&c, 0, 1);
                        c.y = hg;
                        OC_RUN(t->convert, &c, nth);
                        for (int64_t i = 0; i < len; i++)
                            if (hw[i] != hg[i] && !(acc && bf16_is_nan(hw[i]) && bf16_is_nan(hg[i])) && bad++ == 0)
                                first = i;
                    } else {
                        memcpy(fw, fy0, (size_t)len * 4);
                        memcpy(fg, fy0, (size_t)len * 4);
                        c.y = fw;
                        r32->convert(&c, 0, 1);
                        c.y = fg;
                        OC_RUN(t->convert, &c, nth);
                        bad = 0;
                        for (int64_t i = 0; i < len; i++)
                            if (memcmp(&fw[i], &fg[i], 4) != 0 && !(acc && isnan(fw[i]) && isnan(fg[i])) && bad++ == 0)
                                first = i;
                    }
                    n_checked += len;
                    /* Bit-exact, except which NaN's payload a NaN + NaN sum keeps (C leaves that open). */
                    CHECK(bad == 0, "%s convert to_bf16=%d acc=%d n=%lld nth=%d: %lld values differ in their bits, first [%lld]",
                          t->name, dir, acc, (long long)len, nth, (long long)bad, (long long)first);
                }
    free(f); free(fy0); free(fw); free(fg); free(h); free(hy0); free(hw); free(hg);
}

/* ---------------------------------------------------------------- GEMM */

typedef struct gcase { int64_t m, n, k, batch; int ta, tb; double alpha, beta; int bias; } gcase;

static void test_gemm(const kd_kernels **tabs, int ntab, gcase c)
{
    const int64_t lda = (c.ta ? c.m : c.k) + 3, ldb = (c.tb ? c.k : c.n) + 1, ldc = c.n + 2;
    const int64_t sa = (c.ta ? c.k : c.m) * lda + 5, sb = (c.tb ? c.n : c.k) * ldb + 1, sc = c.m * ldc + 7;
    const int64_t na = c.batch * sa, nb = c.batch * sb, nc = c.batch * sc;
    kd_bf16 *a = bmalloc(na), *b = bmalloc(nb), *c0 = bmalloc(nc), *bias = bmalloc(c.n), *want = bmalloc(nc);
    kd_bf16 *aa = bmalloc(na), *ab = bmalloc(nb), *mg = bmalloc(nc);
    bfill(a, na, -1, 1);
    bfill(b, nb, -1, 1);
    bfill(c0, nc, -1, 1);
    bfill(bias, c.n, -1, 1);
    for (int64_t i = 0; i < na; i++) aa[i] = a[i] & 0x7fff;
    for (int64_t i = 0; i < nb; i++) ab[i] = b[i] & 0x7fff;
    kd_gemm_args g = { .trans_a = c.ta, .trans_b = c.tb, .m = c.m, .n = c.n, .k = c.k, .batch = c.batch,
                       .a = a, .lda = lda, .stride_a = sa, .b = b, .ldb = ldb, .stride_b = sb, .c = want, .ldc = ldc,
                       .stride_c = sc, .bias = c.bias ? bias : NULL, .alpha = c.alpha, .beta = c.beta };
    memcpy(want, c0, (size_t)nc * 2);
    ref->gemm(&g, 0, 1);
    /* magnitudes: |alpha| sum |a||b| (+ |beta c| + |bias|, added below), via the reference on |a|, |b| */
    kd_gemm_args gm = g;
    gm.a = aa, gm.b = ab, gm.c = mg, gm.alpha = fabs(c.alpha), gm.beta = 0.0, gm.bias = NULL;
    ref->gemm(&gm, 0, 1);
    double *mag = dmalloc(nc);
    for (int64_t bi = 0; bi < c.batch; bi++)
        for (int64_t i = 0; i < c.m; i++)
            for (int64_t j = 0; j < c.n; j++) {
                int64_t x = bi * sc + i * ldc + j;
                mag[x] = 2.0 * bf(mg[x]) + fabs(c.beta * bf(c0[x])) + (c.bias ? fabs(bf(bias[j])) : 0.0);
            }
    for (int t = 0; t < ntab; t++)
        for (int nth = 1; nth <= 3; nth += 2) {
            bbuf o = bstart(nc, c0);
            /* beta == 0: C is not read, so poison it */
            if (c.beta == 0.0)
                for (int64_t bi = 0; bi < c.batch; bi++)
                    for (int64_t i = 0; i < c.m; i++)
                        for (int64_t j = 0; j < c.n; j++) o.p[bi * sc + i * ldc + j] = 0x7fc0;
            kd_gemm_args gf = g;
            gf.c = o.p;
            OC_RUN(tabs[t]->gemm, &gf, nth);
            char what[160];
            snprintf(what, sizeof what, "gemm m=%lld n=%lld k=%lld batch=%lld ta=%d tb=%d beta=%g bias=%d", (long long)c.m,
                     (long long)c.n, (long long)c.k, (long long)c.batch, c.ta, c.tb, c.beta, c.bias);
            /* whole buffer: the gaps between rows and batches must be untouched (equal to c0) */
            bcompare(what, tabs[t], nth, o.p, want, mag, 0.0, nc, (double)c.k);
            if (c.batch == 1) {   /* prepacked B: the same bits as the product above */
                bbuf o2 = bstart(nc, c0);
                if (c.beta == 0.0)
                    for (int64_t i = 0; i < c.m; i++)
                        for (int64_t j = 0; j < c.n; j++) o2.p[i * ldc + j] = 0x7fc0;
                oc_check_packed_gemm(tabs[t], &g, nth == 1 ? 2 : 1, nth, o2.p, o.p, (size_t)nc, sizeof(kd_bf16), what);
                bfinish(&o2, what, tabs[t], nth);
            }
            bfinish(&o, what, tabs[t], nth);
        }
    free(a); free(b); free(c0); free(bias); free(want); free(aa); free(ab); free(mg); free(mag);
}

/* ---------------------------------------------------------------- maps and reductions */

static void test_map(const kd_kernels **tabs, int ntab, int binary, int op, double lo, double hi, double ulps)
{
    for (int ci = 0; ci < N_COLS; ci++) {
        const int64_t cols = k_cols[ci], rows = 3, n = rows * cols;
        kd_bf16 *a = bmalloc(n), *b = bmalloc(n), *o0 = bmalloc(n), *want = bmalloc(n);
        double *mag = dmalloc(n);
        bfill(a, n, lo, hi);
        bfill(b, n, -2, 2);
        bfill(o0, n, -1, 1);
        if (binary && op == KD_BIN_DIV)
            for (int64_t i = 0; i < n; i++) b[i] = kd_f32_to_bf16(bf(b[i]) < 0 ? (float)bf(b[i]) - 0.5f : (float)bf(b[i]) + 0.5f);
        if (n > 4) a[n / 2] = 0x7fc0; /* NaN must reach its output */
        for (int strided = 0; strided <= 1; strided++)
            for (int acc = 0; acc <= 1; acc++) {
                /* strided: the same rows x cols walked column-major (a transposed layout) */
                kd_map_args m = { .op = op, .accumulate = acc, .ndim = 2, .shape = { rows, cols }, .out = want,
                                  .out_stride = { cols, 1 }, .a = a, .a_stride = { cols, 1 }, .b = b,
                                  .b_stride = { cols, 1 }, .alpha = 0.75 };
                if (strided) {
                    m.shape[0] = cols, m.shape[1] = rows;
                    m.out_stride[0] = m.a_stride[0] = m.b_stride[0] = 1;
                    m.out_stride[1] = m.a_stride[1] = m.b_stride[1] = cols;
                }
                memcpy(want, o0, (size_t)n * 2);
                if (binary) ref->binary(&m, 0, 1);
                else ref->unary(&m, 0, 1);
                for (int64_t i = 0; i < n; i++)
                    mag[i] = fabs(bf(want[i])) + fabs(bf(a[i])) * (1.0 + (binary ? fabs(bf(b[i])) : 0.0)) +
                             (binary ? fabs(bf(b[i])) : 0.0) + (acc ? fabs(bf(o0[i])) : 0.0);
                for (int t = 0; t < ntab; t++)
                    for (int nth = 1; nth <= 3; nth += 2) {
                        bbuf o = bstart(n, acc ? o0 : NULL);
                        kd_map_args mf = m;
                        mf.out = o.p;
                        if (binary) OC_RUN(tabs[t]->binary, &mf, nth);
                        else OC_RUN(tabs[t]->unary, &mf, nth);
                        char what[128];
                        snprintf(what, sizeof what, "%s op=%d cols=%lld acc=%d strided=%d", binary ? "binary" : "unary", op,
                                 (long long)cols, acc, strided);
                        bcompare(what, tabs[t], nth, o.p, want, mag, 0.0, n, ulps);
                        bfinish(&o, what, tabs[t], nth);
                    }
            }
        free(a); free(b); free(o0); free(want); free(mag);
    }
}

/* layout 0 rows, 1 columns, 2 all, 3 strided (rows of a transposed input: the reference path) */
static void test_reduce(const kd_kernels **tabs, int ntab, int64_t R, int64_t C, int layout)
{
    const int64_t n = R * C, no = layout == 0 ? R : layout == 1 ? C : layout == 2 ? 1 : C;
    kd_bf16 *a = bmalloc(n), *o0 = bmalloc(no), *want = bmalloc(no);
    bfill(a, n, -1, 1);
    bfill(o0, no, -1, 1);
    kd_reduce_args m = { .ndim = 2, .shape = { R, C }, .a = a, .a_stride = { C, 1 }, .alpha = 0.5 };
    if (layout == 0) m.out_stride[0] = 1, m.out_stride[1] = 0;
    if (layout == 1) m.out_stride[0] = 0, m.out_stride[1] = 1;
    if (layout == 3) m.shape[0] = C, m.shape[1] = R, m.a_stride[0] = 1, m.a_stride[1] = C, m.out_stride[0] = 1;
    memcpy(want, o0, (size_t)no * 2);
    m.out = want;
    ref->reduce(&m, 0, 1);
    double *mag = dmalloc(no);
    for (int64_t i = 0; i < no; i++) mag[i] = fabs(bf(o0[i])) + 0.5 * (layout == 2 ? (double)n : layout == 1 ? (double)R : (double)C);
    for (int t = 0; t < ntab; t++)
        for (int nth = 1; nth <= 3; nth += 2) {
            bbuf o = bstart(no, o0);
            kd_reduce_args mf = m;
            mf.out = o.p;
            OC_RUN(tabs[t]->reduce, &mf, nth);
            char what[96];
            snprintf(what, sizeof what, "reduce layout=%d R=%lld C=%lld", layout, (long long)R, (long long)C);
            bcompare(what, tabs[t], nth, o.p, want, mag, 0.0, no, (double)n);
            bfinish(&o, what, tabs[t], nth);
        }
    free(a); free(o0); free(want); free(mag);
}

/* ---------------------------------------------------------------- softmax, LayerNorm, dropout */

static void test_softmax(const kd_kernels **tabs, int ntab, int64_t rows, int64_t cols, int lg)
{
    const int64_t n = rows * cols;
    kd_bf16 *x = bmalloc(n), *y = bmalloc(n), *dy = bmalloc(n), *dx0 = bmalloc(n), *dxw = bmalloc(n);
    double *mag = dmalloc(n), *bmag = dmalloc(n);
    bfill(x, n, -6, 6);
    bfill(dy, n, -1, 1);
    bfill(dx0, n, -1, 1);
    kd_softmax_args s = { .log = lg, .rows = rows, .cols = cols, .x = x, .y = y };
    ref->softmax(&s, 0, 1);
    kd_softmax_bwd_args sb = { .log = lg, .rows = rows, .cols = cols, .y = y, .dy = dy, .dx = dxw };
    memcpy(dxw, dx0, (size_t)n * 2);
    ref->softmax_bwd(&sb, 0, 1);
    for (int64_t r = 0; r < rows; r++) {
        double sabs = 0.0;
        for (int64_t j = 0; j < cols; j++) sabs += lg ? fabs(bf(dy[r * cols + j])) : fabs(bf(dy[r * cols + j]) * bf(y[r * cols + j]));
        for (int64_t j = 0; j < cols; j++) {
            const int64_t i = r * cols + j;
            const double yv = lg ? exp(bf(y[i])) : bf(y[i]);
            mag[i] = fabs(bf(y[i])) + (lg ? 12.0 + log((double)cols) : 0.0);
            bmag[i] = fabs(bf(dx0[i])) + fabs(bf(dy[i])) + 2.0 * yv * (sabs + fabs(bf(dy[i])));
        }
    }
    for (int t = 0; t < ntab; t++)
        for (int nth = 1; nth <= 3; nth += 2) {
            char what[96];
            bbuf o = bstart(n, NULL);
            kd_softmax_args sf = s;
            sf.y = o.p;
            OC_RUN(tabs[t]->softmax, &sf, nth);
            snprintf(what, sizeof what, "%s rows=%lld cols=%lld", lg ? "log_softmax" : "softmax", (long long)rows, (long long)cols);
            bcompare(what, tabs[t], nth, o.p, y, mag, 0.0, n, (double)cols + 8);
            bfinish(&o, what, tabs[t], nth);
            bbuf d = bstart(n, dx0);
            kd_softmax_bwd_args sbf = sb;
            sbf.dx = d.p;
            OC_RUN(tabs[t]->softmax_bwd, &sbf, nth);
            snprintf(what, sizeof what, "%s_bwd rows=%lld cols=%lld", lg ? "log_softmax" : "softmax", (long long)rows, (long long)cols);
            bcompare(what, tabs[t], nth, d.p, dxw, bmag, 0.0, n, (double)cols + 8);
            bfinish(&d, what, tabs[t], nth);
        }
    free(x); free(y); free(dy); free(dx0); free(dxw); free(mag); free(bmag);
}

static void test_layernorm(const kd_kernels **tabs, int ntab, int64_t rows, int64_t cols, int affine)
{
    const int64_t n = rows * cols;
    kd_bf16 *x = bmalloc(n), *y = bmalloc(n), *dy = bmalloc(n), *dx0 = bmalloc(n), *dxw = bmalloc(n);
    float *gamma = malloc((size_t)cols * 4), *beta = malloc((size_t)cols * 4), *mean = malloc((size_t)rows * 4),
          *rstd = malloc((size_t)rows * 4), *dg0 = malloc((size_t)cols * 4), *db0 = malloc((size_t)cols * 4),
          *dgw = malloc((size_t)cols * 4), *dbw = malloc((size_t)cols * 4);
    double *ymag = dmalloc(n), *dxmag = dmalloc(n), *dgmag = dmalloc(cols), *dbmag = dmalloc(cols);
    double *mmag = dmalloc(rows), *rmag = dmalloc(rows);
    bfill(x, n, -2, 3);
    bfill(dy, n, -1, 1);
    bfill(dx0, n, -1, 1);
    oc_fill_f32(gamma, cols, 0.5, 1.5);
    oc_fill_f32(beta, cols, -0.5, 0.5);
    oc_fill_f32(dg0, cols, -1, 1);
    oc_fill_f32(db0, cols, -1, 1);
    kd_layernorm_args l = { .rows = rows, .cols = cols, .eps = 1e-5, .x = x, .gamma = affine ? gamma : NULL,
                            .beta = affine ? beta : NULL, .y = y, .mean = mean, .rstd = rstd };
    ref->layernorm(&l, 0, 1);
    memcpy(dxw, dx0, (size_t)n * 2);
    memcpy(dgw, dg0, (size_t)cols * 4);
    memcpy(dbw, db0, (size_t)cols * 4);
    kd_layernorm_bwd_args lb = { .rows = rows, .cols = cols, .x = x, .mean = mean, .rstd = rstd,
                                 .gamma = affine ? gamma : NULL, .dy = dy, .dx = dxw, .dgamma = dgw, .dbeta = dbw };
    ref->layernorm_bwd(&lb, 0, 1);
    for (int64_t j = 0; j < cols; j++) dgmag[j] = fabs(dg0[j]), dbmag[j] = fabs(db0[j]);
    for (int64_t r = 0; r < rows; r++) {
        double ga = 0.0, gxa = 0.0, xa = 0.0;
        for (int64_t j = 0; j < cols; j++) xa += fabs(bf(x[r * cols + j]));
        mmag[r] = xa / (double)cols;
        rmag[r] = rstd[r] * (1.0 + 4.0 * xa * rstd[r] / (double)cols); /* var cancels against mean^2 */
        for (int64_t j = 0; j < cols; j++) {
            const int64_t i = r * cols + j;
            const double xh = (fabs(bf(x[i])) + fabs(mean[r])) * rstd[r], g = fabs(bf(dy[i])) * (affine ? gamma[j] : 1.0);
            ymag[i] = xh * (affine ? gamma[j] : 1.0) + (affine ? fabs(beta[j]) : 0.0);
            ga += g, gxa += g * xh;
            dgmag[j] += fabs(bf(dy[i])) * xh, dbmag[j] += fabs(bf(dy[i]));
        }
        for (int64_t j = 0; j < cols; j++) {
            const int64_t i = r * cols + j;
            const double xh = (fabs(bf(x[i])) + fabs(mean[r])) * rstd[r], g = fabs(bf(dy[i])) * (affine ? gamma[j] : 1.0);
            dxmag[i] = fabs(bf(dx0[i])) + rstd[r] * (g + (ga + xh * gxa) / (double)cols) * 2.0;
        }
    }
    for (int t = 0; t < ntab; t++)
        for (int nth = 1; nth <= 3; nth += 2) {
            char what[128];
            snprintf(what, sizeof what, "layernorm rows=%lld cols=%lld affine=%d", (long long)rows, (long long)cols, affine);
            bbuf o = bstart(n, NULL);
            oc_fbuf mb = oc_falloc(rows), rb = oc_falloc(rows);
            kd_layernorm_args lf = l;
            lf.y = o.p, lf.mean = mb.p, lf.rstd = rb.p;
            OC_RUN(tabs[t]->layernorm, &lf, nth);
            bcompare(what, tabs[t], nth, o.p, y, ymag, 0.0, n, 2.0 * cols + 8);
            fcompare("layernorm mean", tabs[t], nth, mb.p, mean, mmag, rows, (double)cols);
            fcompare("layernorm rstd", tabs[t], nth, rb.p, rstd, rmag, rows, 2.0 * cols);
            bfinish(&o, what, tabs[t], nth);
            CHECK(oc_fguard_damage(&mb) == 0 && oc_fguard_damage(&rb) == 0, "%s %s: mean/rstd guards", tabs[t]->name, what);
            oc_ffree(&mb), oc_ffree(&rb);
            /* backward: all three gradients, then each alone */
            for (int want_mask = 7; want_mask >= 1; want_mask = want_mask == 7 ? 4 : want_mask >> 1) {
                bbuf d = bstart(n, dx0);
                oc_fbuf gb = oc_falloc(cols), bb = oc_falloc(cols);
                memcpy(gb.p, dg0, (size_t)cols * 4);
                memcpy(bb.p, db0, (size_t)cols * 4);
                kd_layernorm_bwd_args lbf = lb;
                lbf.dx = want_mask & 4 ? (void *)d.p : NULL;
                lbf.dgamma = want_mask & 2 ? (void *)gb.p : NULL;
                lbf.dbeta = want_mask & 1 ? (void *)bb.p : NULL;
                OC_RUN(tabs[t]->layernorm_bwd, &lbf, nth);
                snprintf(what, sizeof what, "layernorm_bwd rows=%lld cols=%lld affine=%d grads=%d", (long long)rows,
                         (long long)cols, affine, want_mask);
                bcompare(what, tabs[t], nth, d.p, want_mask & 4 ? dxw : dx0, dxmag, 0.0, n, 2.0 * cols + 8);
                fcompare("layernorm_bwd dgamma", tabs[t], nth, gb.p, want_mask & 2 ? dgw : dg0, dgmag, cols, (double)rows + 8);
                fcompare("layernorm_bwd dbeta", tabs[t], nth, bb.p, want_mask & 1 ? dbw : db0, dbmag, cols, (double)rows);
                bfinish(&d, what, tabs[t], nth);
                CHECK(oc_fguard_damage(&gb) == 0 && oc_fguard_damage(&bb) == 0, "%s %s: dgamma/dbeta guards", tabs[t]->name, what);
                oc_ffree(&gb), oc_ffree(&bb);
            }
        }
    free(x); free(y); free(dy); free(dx0); free(dxw); free(gamma); free(beta); free(mean); free(rstd);
    free(dg0); free(db0); free(dgw); free(dbw); free(ymag); free(dxmag); free(dgmag); free(dbmag); free(mmag); free(rmag);
}

static void test_dropout(const kd_kernels **tabs, int ntab, int64_t n, double p, int acc)
{
    kd_bf16 *x = bmalloc(n), *o0 = bmalloc(n), *want = bmalloc(n);
    bfill(x, n, -1, 1);
    bfill(o0, n, -1, 1);
    memcpy(want, o0, (size_t)n * 2);
    kd_dropout_args d = { .n = n, .p = p, .seed = 1234, .offset = 99991, .accumulate = acc, .x = x, .out = want };
    ref->dropout(&d, 0, 1);
    for (int t = 0; t < ntab; t++)
        for (int nth = 1; nth <= 3; nth += 2) {
            bbuf o = bstart(n, acc ? o0 : NULL);
            kd_dropout_args df = d;
            df.out = o.p;
            OC_RUN(tabs[t]->dropout, &df, nth);
            char what[96];
            snprintf(what, sizeof what, "dropout n=%lld p=%g acc=%d", (long long)n, p, acc);
            /* a wrong keep decision is an error of |x| / (1 - p) or more: far outside the rule */
            bcompare(what, tabs[t], nth, o.p, want, NULL, 0.0, n, 4.0);
            bfinish(&o, what, tabs[t], nth);
        }
    free(x); free(o0); free(want);
}

/* ---------------------------------------------------------------- attention */

typedef struct acase { int64_t b, h, tq, tk, d; double drop; int mask; } acase;

/* Magnitudes (test_attention.c's reasoning): a score's f32 error moves each probability by a relative
 * ~ d^2 scale u, and the sums over keys (and queries, for dK, dV) add their lengths; one bound per
 * tensor, from the largest inputs (all in [-1, 1)), keeps this simple. */
static void test_attention(const kd_kernels **tabs, int ntab, acase c)
{
    const int64_t pad = 3, st_q = c.h * c.d + pad, sb_q = c.tq * st_q + 1, st_k = c.h * c.d + pad, sb_k = c.tk * st_k + 2;
    const int64_t nq = c.b * sb_q, nk = c.b * sb_k, nl = c.b * c.h * c.tq;
    kd_bf16 *q = bmalloc(nq), *k = bmalloc(nk), *v = bmalloc(nk), *o = bmalloc(nq), *dout = bmalloc(nq);
    kd_bf16 *dq0 = bmalloc(nq), *dk0 = bmalloc(nk), *dv0 = bmalloc(nk), *dqw = bmalloc(nq), *dkw = bmalloc(nk), *dvw = bmalloc(nk);
    float *mask = malloc((size_t)(c.b * c.tk + 1) * 4), *lse = malloc((size_t)(nl + 1) * 4);
    bfill(q, nq, -1, 1);
    bfill(k, nk, -1, 1);
    bfill(v, nk, -1, 1);
    bfill(dout, nq, -1, 1);
    bfill(dq0, nq, -1, 1);
    bfill(dk0, nk, -1, 1);
    bfill(dv0, nk, -1, 1);
    for (int64_t bb = 0; bb < c.b; bb++)
        for (int64_t j = 0; j < c.tk; j++) {
            const int64_t live = c.tk - 3 * bb > 0 ? c.tk - 3 * bb : 1;
            mask[bb * c.tk + j] = j < live ? 0.0f : -INFINITY;
            if (c.b > 1 && bb == c.b - 1) mask[bb * c.tk + j] = -INFINITY; /* fully masked batch */
        }
    const double scale = 1.0 / sqrt((double)c.d);
    memcpy(o, dq0, (size_t)nq * 2); /* padding between rows: any value, compared as is */
    kd_attention_args a = { .batch = c.b, .heads = c.h, .tq = c.tq, .tk = c.tk, .dim = c.d,
        .q = q, .q_sb = sb_q, .q_st = st_q, .q_sh = c.d, .k = k, .k_sb = sb_k, .k_st = st_k, .k_sh = c.d,
        .v = v, .v_sb = sb_k, .v_st = st_k, .v_sh = c.d, .o = o, .o_sb = sb_q, .o_st = st_q, .o_sh = c.d,
        .mask = c.mask ? mask : NULL, .mask_sb = c.tk, .scale = scale, .dropout_p = c.drop, .seed = 77,
        .offset = 1000, .lse = lse, .d_o = dout, .dq = dqw, .dk = dkw, .dv = dvw };
    ref->attention(&a, 0, 1);
    memcpy(dqw, dq0, (size_t)nq * 2);
    memcpy(dkw, dk0, (size_t)nk * 2);
    memcpy(dvw, dv0, (size_t)nk * 2);
    ref->attention_bwd(&a, 0, 1);
    const double ks = c.drop > 0 ? 1.0 / (1.0 - c.drop) : 1.0, sdrift = 1.0 + (double)c.d * c.d * scale;
    const double red = (double)c.tk + 2.0 * (double)c.d * c.d * scale + 8;
    const double mo = ks * sdrift, mdp = ks * (double)c.d;                 /* |O|, |dP| bounds */
    const double mdq = scale * 2.0 * mdp * sdrift;                            /* sum_j p |dP - rs| |k| */
    const double mdk = mdq * (double)c.tq, mdv = ks * sdrift * (double)c.tq; /* summed over queries */
    for (int t = 0; t < ntab; t++)
        for (int nth = 1; nth <= 3; nth += 2) {
            char what[160];
            snprintf(what, sizeof what, "attention b=%lld h=%lld tq=%lld tk=%lld d=%lld drop=%g mask=%d", (long long)c.b,
                     (long long)c.h, (long long)c.tq, (long long)c.tk, (long long)c.d, c.drop, c.mask);
            bbuf ob = bstart(nq, dq0);
            for (int64_t bb = 0; bb < c.b; bb++)
                for (int64_t i = 0; i < c.tq; i++)
                    for (int64_t x = 0; x < c.h * c.d; x++) ob.p[bb * sb_q + i * st_q + x] = 0x7fc0;
            oc_fbuf lb = oc_falloc(nl);
            kd_attention_args af = a;
            af.o = ob.p, af.lse = lb.p;
            OC_RUN(tabs[t]->attention, &af, nth);
            bcompare(what, tabs[t], nth, ob.p, o, NULL, mo, nq, red);
            double *lmag = dmalloc(nl);
            for (int64_t i = 0; i < nl; i++) lmag[i] = fabs(lse[i]) + sdrift + log((double)c.tk + 1);
            fcompare("attention lse", tabs[t], nth, lb.p, lse, lmag, nl, red);
            free(lmag);
            bfinish(&ob, what, tabs[t], nth);
            CHECK(oc_fguard_damage(&lb) == 0, "%s %s: lse guards", tabs[t]->name, what);
            oc_ffree(&lb);
            bbuf gq = bstart(nq, dq0), gk = bstart(nk, dk0), gv = bstart(nk, dv0);
            af = a;
            af.dq = gq.p, af.dk = gk.p, af.dv = gv.p;
            OC_RUN(tabs[t]->attention_bwd, &af, nth);
            char w2[200];
            snprintf(w2, sizeof w2, "%s bwd dq", what);
            bcompare(w2, tabs[t], nth, gq.p, dqw, NULL, 1.0 + mdq, nq, red + (double)c.tk);
            snprintf(w2, sizeof w2, "%s bwd dk", what);
            bcompare(w2, tabs[t], nth, gk.p, dkw, NULL, 1.0 + mdk, nk, red + (double)c.tq);
            snprintf(w2, sizeof w2, "%s bwd dv", what);
            bcompare(w2, tabs[t], nth, gv.p, dvw, NULL, 1.0 + mdv, nk, red + (double)c.tq);
            bfinish(&gq, "attention_bwd dq", tabs[t], nth);
            bfinish(&gk, "attention_bwd dk", tabs[t], nth);
            bfinish(&gv, "attention_bwd dv", tabs[t], nth);
        }
    free(q); free(k); free(v); free(o); free(dout); free(dq0); free(dk0); free(dv0); free(dqw); free(dkw); free(dvw);
    free(mask); free(lse);
}

int main(void)
{
    ref = kd_kernels_ref_bf16();
    const kd_kernels *tabs[2];
    int ntab = 0;
    static const char *names[] = { "avx2", "avx512" };
    for (int i = 0; i < 2; i++) {
        const kd_kernels *t = kd_kernels_cpu_bf16(names[i]);
        const kd_kernels *f = kd_kernels_cpu_f32(names[i]);
        CHECK(!t == !f, "bf16 table %s offered iff the f32 one is", names[i]);
        if (t) {
            CHECK(strcmp(t->name, names[i]) == 0, "bf16 table %s is named %s", names[i], t->name);
            CHECK(!t->embedding && !t->cross_entropy && !t->kl_div && !t->adamw && !t->convert, "bf16 table %s has no f32-only entries", names[i]);
            tabs[ntab++] = t;
        } else {
            printf("skip: bf16 table %s (not built or this CPU cannot run it)\n", names[i]);
        }
        if (f) test_convert(f);
    }
    CHECK(kd_kernels_cpu_bf16("ref") == ref, "bf16 \"ref\" is the reference table");
    CHECK(kd_kernels_cpu_bf16(NULL) == kd_kernels_cpu_bf16("best"), "bf16 NULL and \"best\" agree");
    CHECK(ntab == 0 || kd_kernels_cpu_bf16(NULL) == tabs[ntab - 1], "bf16 best is the fastest table this CPU runs");
    printf("cpu: avx512bf16=%d\n", kd_cpu_detect().avx512bf16);

    static const gcase gc[] = {
        { 1, 1, 1, 1, 0, 0, 1.0, 0.0, 0 },     { 7, 5, 3, 1, 0, 0, 1.0, 0.0, 1 },    { 13, 17, 29, 1, 1, 0, 0.7, 0.5, 0 },
        { 6, 16, 8, 2, 0, 1, 1.0, 1.0, 1 },    { 37, 71, 129, 1, 1, 1, 1.0, 0.0, 0 }, { 129, 65, 300, 1, 0, 0, 1.0, 0.0, 1 },
        { 64, 130, 520, 1, 0, 1, 0.5, 1.0, 1 }, { 19, 33, 777, 3, 1, 0, 1.0, 0.0, 0 }, { 5, 9, 0, 2, 0, 0, 1.0, 0.5, 1 },
        { 5, 9, 0, 1, 1, 1, 1.0, 0.0, 0 },      { 200, 24, 64, 1, 0, 0, 1.0, 0.0, 1 }, { 8, 1000, 40, 1, 0, 1, 1.0, 0.0, 1 },
        { 530, 70, 33, 1, 1, 1, 2.0, 0.0, 1 },
    };
    for (size_t i = 0; i < sizeof gc / sizeof gc[0]; i++) test_gemm(tabs, ntab, gc[i]);

    /* Every bf16 GEMM this CPU runs, each on its own (the table holds only the fastest): the cases above
     * and odd shapes that cross the blocks (KC 512 bf16 of k, NC 768 columns, 516-row chunks), odd k
     * inside and at the end of a block, full 6 x 64 tiles, one-column and one-row products. */
    static const char *gnames[] = { "avx2", "avx512", "avx512bf16" };
    static kd_kernels gtab[3];
    const kd_kernels *gtabs[3];
    int ng = 0;
    for (int i = 0; i < 3; i++) {
        kd_gemm_fn fn = kd_gemm_cpu_bf16(gnames[i]);
        if (!fn) {
            printf("skip: bf16 gemm %s (not built or this CPU cannot run it)\n", gnames[i]);
            continue;
        }
        gtab[ng] = *ref;
        gtab[ng].name = gnames[i];
        gtab[ng].gemm = fn;
        gtabs[ng] = &gtab[ng];
        ng++;
    }
    const kd_kernels *t512 = kd_kernels_cpu_bf16("avx512");
    if (t512) {
        const kd_gemm_fn dp = kd_gemm_cpu_bf16("avx512bf16");
        CHECK(t512->gemm == (kd_cpu_detect().avx512bf16 && dp ? dp : kd_gemm_cpu_bf16("avx512")),
              "the avx512 bf16 table runs the VDPBF16PS GEMM iff the CPU reports avx512bf16 (%d) and it is built (%d)",
              kd_cpu_detect().avx512bf16, dp != NULL);
    }
    CHECK(!kd_gemm_cpu_bf16("nonsense"), "an unknown bf16 gemm name gives NULL");
    static const gcase gx[] = {
        { 131, 773, 1031, 1, 0, 1, 0.75, 0.5, 1 }, { 523, 67, 515, 1, 1, 0, 1.0, 1.0, 1 },
        { 61, 130, 1024, 2, 1, 1, -1.5, 0.0, 0 },  { 12, 128, 513, 1, 0, 1, 1.0, 1.0, 1 },
        { 6, 64, 2, 1, 0, 0, 1.0, 0.0, 0 },        { 1, 2000, 17, 1, 0, 0, 1.0, 0.0, 1 },
        { 100, 3, 1, 1, 1, 1, 0.5, 2.0, 1 },       { 300, 200, 64, 5, 0, 1, 1.0, 0.0, 1 },
        { 18, 640, 96, 1, 0, 1, 1.0, 0.5, 1 },     { 1037, 129, 1, 1, 1, 0, 1.0, 0.0, 0 },
        { 65, 1601, 1539, 1, 1, 1, 0.25, 1.0, 1 }, { 128, 64, 128, 7, 0, 0, 1.0, 0.0, 0 },
    };
    for (size_t i = 0; i < sizeof gc / sizeof gc[0]; i++) test_gemm(gtabs, ng, gc[i]);
    for (size_t i = 0; i < sizeof gx / sizeof gx[0]; i++) test_gemm(gtabs, ng, gx[i]);
    printf("bf16 gemm: %d kernels checked one by one at %d shapes\n", ng,
           (int)(sizeof gc / sizeof gc[0] + sizeof gx / sizeof gx[0]));

    static const int un[] = { KD_UN_COPY, KD_UN_SCALE, KD_UN_GELU, KD_UN_TANH, KD_UN_EXP, KD_UN_NEG, KD_UN_SQUARE, KD_UN_ADD_SCALAR };
    for (size_t i = 0; i < sizeof un / sizeof un[0]; i++) test_map(tabs, ntab, 0, un[i], -5, 5, 16);
    test_map(tabs, ntab, 0, KD_UN_LOG, 0.01, 5, 16);
    test_map(tabs, ntab, 0, KD_UN_SQRT, 0.0, 5, 16);
    for (int op = KD_BIN_ADD; op <= KD_BIN_TANH_BWD; op++) test_map(tabs, ntab, 1, op, -4, 4, 16);

    for (int ci = 0; ci < N_COLS; ci++)
        for (int layout = 0; layout < 4; layout++) test_reduce(tabs, ntab, 37, k_cols[ci], layout);
    test_reduce(tabs, ntab, 3000, 5, 1);

    for (int ci = 0; ci < N_COLS; ci++)
        for (int lg = 0; lg <= 1; lg++) test_softmax(tabs, ntab, 5, k_cols[ci], lg);
    test_softmax(tabs, ntab, 300, 33, 0);
    for (int ci = 0; ci < N_COLS; ci++)
        for (int affine = 0; affine <= 1; affine++) test_layernorm(tabs, ntab, 9, k_cols[ci], affine);
    test_layernorm(tabs, ntab, 300, 40, 1);

    static const double ps[] = { 0.0, 0.1, 0.5 };
    for (int pi = 0; pi < 3; pi++)
        for (int acc = 0; acc <= 1; acc++) {
            test_dropout(tabs, ntab, 1, ps[pi], acc);
            test_dropout(tabs, ntab, 4099, ps[pi], acc);
        }

    static const acase ac[] = {
        { 1, 1, 1, 1, 1, 0.0, 0 },   { 2, 3, 7, 9, 5, 0.0, 1 },   { 3, 2, 33, 17, 16, 0.2, 1 },
        { 1, 2, 65, 129, 64, 0.0, 1 }, { 2, 1, 130, 63, 32, 0.1, 0 }, { 1, 1, 5, 0, 8, 0.0, 0 },
    };
    for (size_t i = 0; i < sizeof ac / sizeof ac[0]; i++) test_attention(tabs, ntab, ac[i]);

    printf("bf16: %d tables, %lld values checked\n", ntab, (long long)n_checked);
    return kd_test_finish("test_bf16");
}
