/* test/kernels/test_reduce.c — the fast sum reduction against the reference, table by table: row sums
 * ([R, C] -> [R], and [B, T, H] -> [B, T] with a strided output), column sums ([R, C] -> [C] and
 * [B, T, H] -> [H], the bias-gradient shape), the whole sum, an element-wise (nothing reduced) case, and
 * layouts that must fall back to the reference (a transposed input, a middle-dim reduction). Widths
 * around the vectors and the 16-float thread slices; 1 and 3 threads; alpha 0.5; guards around the
 * output, which is accumulated into (it starts from random values). Tolerance: oc_tol over the reduced
 * length, magnitude |out0| + |alpha| sum |a|, computed by the reference on absolute values. */
#include "test/kernels/op_case.h"

static const int64_t k_w[] = { 1, 7, 8, 16, 17, 33, 129, 771 };
#define LEN(a) ((int)(sizeof a / sizeof a[0]))

/* One case: index space shape[0..nd) with a's strides (a has na elements), output strides, no elements. */
static void run(const kd_kernels *t, const char *what, int nd, const int64_t *shape, const int64_t *as, int64_t na,
                const int64_t *os, int64_t no, double red, int nth)
{
    const kd_kernels *ref = kd_kernels_ref_f32();
    float *a = malloc((size_t)na * sizeof(float)), *aa = malloc((size_t)na * sizeof(float));
    float *o0 = malloc((size_t)no * sizeof(float)), *want = malloc((size_t)no * sizeof(float));
    float *magf = malloc((size_t)no * sizeof(float));
    double *mag = malloc((size_t)no * sizeof(double));
    if (!a || !aa || !o0 || !want || !magf || !mag) abort();
    oc_fill_f32(a, na, -2, 2);
    oc_fill_f32(o0, no, -1, 1);
    for (int64_t i = 0; i < na; i++) aa[i] = fabsf(a[i]);
    kd_reduce_args m = { .op = KD_UN_COPY, .ndim = nd, .alpha = 0.5 };
    for (int d = 0; d < nd; d++) {
        m.shape[d] = shape[d];
        m.a_stride[d] = as[d];
        m.out_stride[d] = os[d];
    }
    memcpy(want, o0, (size_t)no * sizeof(float));
    m.a = a;
    m.out = want;
    ref->reduce(&m, 0, 1);
    for (int64_t i = 0; i < no; i++) magf[i] = fabsf(o0[i]);
    m.a = aa;
    m.out = magf;
    ref->reduce(&m, 0, 1);
    for (int64_t i = 0; i < no; i++) mag[i] = 1.01 * (double)magf[i];   /* the float sum of |terms| is itself rounded */
    oc_fbuf got = oc_falloc(no);
    memcpy(got.p, o0, (size_t)no * sizeof(float));
    m.a = a;
    m.out = got.p;
    OC_RUN(t->reduce, &m, nth);
    char name[96];
    snprintf(name, sizeof name, "%s reduce %s", t->name, what);
    /* The reference rounds after every term: its own error is up to red ulps of mag as well. */
    oc_compare_f32(name, got.p, want, mag, no, 2.0 * red, nth);
    CHECK(oc_fguard_damage(&got) == 0, "%s: wrote outside its output", name);
    oc_ffree(&got);
    free(a);
    free(aa);
    free(o0);
    free(want);
    free(magf);
    free(mag);
}

int main(void)
{
    OC_FAST_TABLES_OR_SKIP(tabs, ntab, 5);
    for (int ti = 0; ti < ntab; ti++) {
        const kd_kernels *t = tabs[ti];
        for (int wi = 0; wi < LEN(k_w); wi++)
            for (int nth = 1; nth <= 3; nth += 2) {
                const int64_t W = k_w[wi], R = 37, B = 3, T = 5;
                char what[64];
                { /* rows: [R, W] -> [R] */
                    int64_t sh[2] = { R, W }, as[2] = { W, 1 }, os[2] = { 1, 0 };
                    snprintf(what, sizeof what, "rows %lldx%lld", (long long)R, (long long)W);
                    run(t, what, 2, sh, as, R * W, os, R, (double)W, nth);
                }
                { /* [B, T, W] -> [B, T] into a strided output (every second float) */
                    int64_t sh[3] = { B, T, W }, as[3] = { T * W, W, 1 }, os[3] = { 2 * T, 2, 0 };
                    snprintf(what, sizeof what, "rows strided out, W=%lld", (long long)W);
                    run(t, what, 3, sh, as, B * T * W, os, 2 * B * T, (double)W, nth);
                }
                { /* columns: [R, W] -> [W] */
                    int64_t sh[2] = { R, W }, as[2] = { W, 1 }, os[2] = { 0, 1 };
                    snprintf(what, sizeof what, "columns %lldx%lld", (long long)R, (long long)W);
                    run(t, what, 2, sh, as, R * W, os, W, (double)R, nth);
                }
                { /* bias gradient: [B, T, W] -> [W], with a size-1 dim in the middle */
                    int64_t sh[4] = { B, 1, T, W }, as[4] = { T * W, T * W, W, 1 }, os[4] = { 0, 0, 0, 1 };
                    snprintf(what, sizeof what, "bias [%lld,1,%lld,%lld]", (long long)B, (long long)T, (long long)W);
                    run(t, what, 4, sh, as, B * T * W, os, W, (double)(B * T), nth);
                }
                { /* whole: [R, W] -> scalar */
                    int64_t sh[2] = { R, W }, as[2] = { W, 1 }, os[2] = { 0, 0 };
                    snprintf(what, sizeof what, "all %lldx%lld", (long long)R, (long long)W);
                    run(t, what, 2, sh, as, R * W, os, 1, (double)(R * W), nth);
                }
                { /* nothing reduced */
                    int64_t sh[2] = { R, W }, as[2] = { W, 1 }, os[2] = { W, 1 };
                    snprintf(what, sizeof what, "elementwise %lldx%lld", (long long)R, (long long)W);
                    run(t, what, 2, sh, as, R * W, os, R * W, 1.0, nth);
                }
                { /* fallback: a transposed ([W, R] stored, read as [R, W]) -> [W] */
                    int64_t sh[2] = { R, W }, as[2] = { 1, R }, os[2] = { 0, 1 };
                    snprintf(what, sizeof what, "transposed columns W=%lld", (long long)W);
                    run(t, what, 2, sh, as, R * W, os, W, (double)R, nth);
                }
                { /* fallback: middle dim [B, R, W] -> [B, W] */
                    int64_t sh[3] = { B, R, W }, as[3] = { R * W, W, 1 }, os[3] = { W, 0, 1 };
                    snprintf(what, sizeof what, "middle dim W=%lld", (long long)W);
                    run(t, what, 3, sh, as, B * R * W, os, B * W, (double)R, nth);
                }
            }
    }
    return kd_test_finish("test_reduce");
}
