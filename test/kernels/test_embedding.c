/* test/kernels/test_embedding.c — the fast embedding lookup and its scatter-add backward against the
 * reference, table by table: bit-identical results (a row copy; one float add per element, which the
 * reference's double add rounded to float equals), widths around the 8-float vectors and the 16-float
 * thread slices, repeated ids (the backward must add every occurrence), 1 and 3 threads, guards around
 * the outputs, the forward's output poisoned with NaN. */
#include "test/kernels/op_case.h"

static const int64_t k_dim[] = { 1, 7, 8, 15, 16, 17, 40, 63, 771 };
static const int64_t k_rows[] = { 1, 5, 37 };
#define LEN(a) ((int)(sizeof a / sizeof a[0]))
#define VOCAB 23

static int64_t count_bad(const float *got, const float *want, int64_t n, int64_t *first)
{
    int64_t bad = 0;
    *first = -1;
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0 && bad++ == 0) *first = i;
    return bad;
}

static void test_case(const kd_kernels *t, int64_t n, int64_t dim, int nth)
{
    const kd_kernels *ref = kd_kernels_ref_f32();
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    float *table = malloc((size_t)(VOCAB * dim) * sizeof(float)), *dout = malloc((size_t)(n * dim) * sizeof(float));
    float *want = malloc((size_t)(n * dim) * sizeof(float)), *dt0 = malloc((size_t)(VOCAB * dim) * sizeof(float));
    float *dwant = malloc((size_t)(VOCAB * dim) * sizeof(float));
    if (!ids || !table || !dout || !want || !dt0 || !dwant) abort();
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)(oc_uniform(0, 1) * VOCAB) % VOCAB;
    if (n > 2) ids[n - 1] = ids[0]; /* a repeat, always */
    oc_fill_f32(table, VOCAB * dim, -1, 1);
    oc_fill_f32(dout, n * dim, -1, 1);
    oc_fill_f32(dt0, VOCAB * dim, -1, 1);
    int64_t first;

    kd_embedding_args e = { .n = n, .dim = dim, .ids = ids, .table = table, .out = want, .dout = dout };
    ref->embedding(&e, 0, 1);
    oc_fbuf got = oc_falloc(n * dim);
    for (int64_t i = 0; i < n * dim; i++) got.p[i] = NAN;
    e.out = got.p;
    OC_RUN(t->embedding, &e, nth);
    int64_t bad = count_bad(got.p, want, n * dim, &first);
    CHECK(bad == 0, "%s embedding n=%lld dim=%lld nth=%d: %lld differ, first [%lld]", t->name, (long long)n,
          (long long)dim, nth, (long long)bad, (long long)first);
    int64_t wild = oc_fguard_damage(&got);
    CHECK(wild == 0, "%s embedding: wrote outside its output", t->name);
    char what[96];
    snprintf(what, sizeof what, "%-12s embedding n=%lld dim=%lld nth=%d", t->name, (long long)n, (long long)dim, nth);
    oc_report_exact(what, n * dim, bad + wild);
    oc_ffree(&got);

    memcpy(dwant, dt0, (size_t)(VOCAB * dim) * sizeof(float));
    e.dtable = dwant;
    ref->embedding_bwd(&e, 0, 1);
    oc_fbuf dgot = oc_falloc(VOCAB * dim);
    memcpy(dgot.p, dt0, (size_t)(VOCAB * dim) * sizeof(float));
    e.dtable = dgot.p;
    OC_RUN(t->embedding_bwd, &e, nth);
    bad = count_bad(dgot.p, dwant, VOCAB * dim, &first);
    CHECK(bad == 0, "%s embedding_bwd n=%lld dim=%lld nth=%d: %lld differ, first [%lld] got %.9g want %.9g", t->name,
          (long long)n, (long long)dim, nth, (long long)bad, (long long)first, first >= 0 ? (double)dgot.p[first] : 0.0,
          first >= 0 ? (double)dwant[first] : 0.0);
    wild = oc_fguard_damage(&dgot);
    CHECK(wild == 0, "%s embedding_bwd: wrote outside its output", t->name);
    snprintf(what, sizeof what, "%-12s embedding_bwd n=%lld dim=%lld nth=%d", t->name, (long long)n, (long long)dim,
             nth);
    oc_report_exact(what, VOCAB * dim, bad + wild);
    oc_ffree(&dgot);
    free(ids);
    free(table);
    free(dout);
    free(want);
    free(dt0);
    free(dwant);
}

int main(void)
{
    OC_FAST_TABLES_OR_SKIP(tabs, ntab, 11);
    for (int ti = 0; ti < ntab; ti++)
        for (int ri = 0; ri < LEN(k_rows); ri++)
            for (int di = 0; di < LEN(k_dim); di++)
                for (int nth = 1; nth <= 3; nth += 2) test_case(tabs[ti], k_rows[ri], k_dim[di], nth);
    return kd_test_finish("test_embedding");
}
