/* test/engine/test_attention_varlen.c — attention over packed sequences (kd_attention_varlen) on every
 * CPU kernel table (ref, avx2, avx512 where the CPU runs them; f32 and bf16 activations) against the padded
 * op in f64 (the reference table): the sequences padded to the longest, padding keys masked with -FLT_MAX,
 * compared at the real rows. Forward output and the gradients of q, k and v under a random upstream
 * gradient, at odd shapes (lengths 1, 7, 65, 129 and an empty sequence; head dims 7 and 64).
 *
 * Tolerance, as test/kernels/test_attention.c derives it: reduction length n = Tk + 2 D^2 scale (+ Tq + D for
 * the gradients), |got - want| <= (n + 4) 2^-24 (|want| + M), M the largest |want| of the tensor (the
 * magnitudes summed are bounded by it); bf16 adds one bf16 step, 2^-7 |want|, and its inputs are bf16 values
 * (so the f64 reference sees what the kernel sees). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/ops.h"
#include "kernels/bf16.h"
#include "test/testutil.h"

static uint64_t rs = 12345;
static double urand(void)
{
    rs ^= rs >> 12; rs ^= rs << 25; rs ^= rs >> 27;
    return (double)((rs * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0;
}

static double round_bf16(double x) { return (double)kd_bf16_to_f32(kd_f32_to_bf16((float)x)); }

typedef struct vcase { int nseq; int64_t len[5], h, d; } vcase;

static int check(const char *what, const double *got, const double *want, int64_t n, double red, int bf16)
{
    double M = 0, worst = 0;
    for (int64_t i = 0; i < n; i++) M = fmax(M, fabs(want[i]));
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double tol = (red + 4.0) * 0x1p-24 * (fabs(want[i]) + M) + (bf16 ? fabs(want[i]) / 128.0 : 0.0) + 1e-30;
        double e = fabs(got[i] - want[i]);
        if (!(e <= tol)) {
            if (bad < 3) fprintf(stderr, "  %s [%lld]: got %.9g, want %.9g\n", what, (long long)i, got[i], want[i]);
            bad++;
        }
        if (e / tol > worst || e != e) worst = e / tol;
    }
    CHECK(bad == 0, "%s: %lld of %lld values outside the tolerance", what, (long long)bad, (long long)n);
    printf("%-72s %7lld values  worst %.3g of tol\n", what, (long long)n, worst);
    return bad == 0;
}

static void run_case(const vcase *c)
{
    int64_t B = c->nseq, T = 0, total = 0, H = c->h, D = c->d, HD = c->h * c->d, off[6];
    off[0] = 0;
    for (int s = 0; s < B; s++) {
        T = c->len[s] > T ? c->len[s] : T;
        off[s + 1] = off[s] + c->len[s];
    }
    total = off[B];
    double scale = 1.0 / sqrt((double)D);
    double *x[3], *u = malloc((size_t)(total * HD) * sizeof *u);
    for (int i = 0; i < 3; i++) {
        x[i] = malloc((size_t)(total * HD) * sizeof *x[i]);
        for (int64_t e = 0; e < total * HD; e++) x[i][e] = round_bf16(urand());   /* bf16 values: exact in every dtype */
    }
    for (int64_t e = 0; e < total * HD; e++) u[e] = round_bf16(urand());
    /* The reference: padded [B, T, H, D] in f64, mask -FLT_MAX at padding keys. */
    int64_t ps[4] = { B, T, H, D }, ms[2] = { B, T };
    kd_tensor *pl[3], *pu = kd_zeros(KD_F64, 4, ps), *mask = kd_persist(kd_zeros(KD_F64, 2, ms));
    pu = kd_persist(pu);
    for (int s = 0; s < B; s++)
        for (int64_t t = c->len[s]; t < T; t++) ((double *)kd_data(mask))[s * T + t] = -FLT_MAX;
    for (int i = 0; i < 3; i++) {
        pl[i] = kd_persist(kd_zeros(KD_F64, 4, ps));
        pl[i]->requires_grad = 1;
        for (int s = 0; s < B; s++)
            memcpy((double *)kd_data(pl[i]) + s * T * HD, x[i] + off[s] * HD, (size_t)(c->len[s] * HD) * sizeof(double));
    }
    for (int s = 0; s < B; s++)
        memcpy((double *)kd_data(pu) + s * T * HD, u + off[s] * HD, (size_t)(c->len[s] * HD) * sizeof(double));
    kd_tensor *po = kd_attention(pl[0], pl[1], pl[2], mask, scale, 0.0, 0);
    CHECK(po && kd_backward(po, pu) == KD_OK, "padded f64 reference ran");
    if (!po) return;
    /* Real rows of the reference, packed. */
    double *want[4];
    for (int i = 0; i < 4; i++) {
        want[i] = malloc((size_t)(total * HD) * sizeof(double));
        const double *src = i == 0 ? kd_data(po) : kd_data(pl[i - 1]->grad);
        for (int s = 0; s < B; s++) memcpy(want[i] + off[s] * HD, src + s * T * HD, (size_t)(c->len[s] * HD) * sizeof(double));
    }
    kd_arena_reset();
    double red_f = (double)T + 2.0 * (double)D * (double)D * scale, red_b = red_f + (double)T + (double)D;
    const char *tables[3] = { "ref", "avx2", "avx512" };
    for (int ti = 0; ti < 3; ti++) {
        if (kd_backend_select(tables[ti]) != KD_OK) {
            printf("kernel table %s: not on this CPU, skipped\n", tables[ti]);
            continue;
        }
        for (int bf = 0; bf < 2; bf++) {
            int64_t qs[3] = { total, H, D };
            float *f = malloc((size_t)(total * HD) * sizeof *f);
            kd_tensor *leaf[3];
            for (int i = 0; i < 3; i++) {
                for (int64_t e = 0; e < total * HD; e++) f[e] = (float)x[i][e];
                leaf[i] = kd_persist(kd_from_buffer(KD_F32, 3, qs, f));
                leaf[i]->requires_grad = 1;
            }
            for (int64_t e = 0; e < total * HD; e++) f[e] = (float)u[e];
            kd_dtype dt = bf ? KD_BF16 : KD_F32;
            kd_tensor *o = kd_attention_varlen(kd_cast(leaf[0], dt), kd_cast(leaf[1], dt), kd_cast(leaf[2], dt), off, B,
                                               scale, 0.0, 0);
            kd_tensor *ut = kd_cast(kd_from_buffer(KD_F32, 3, qs, f), dt);
            int ok = o && ut && kd_backward(o, ut) == KD_OK;
            char what[160];
            snprintf(what, sizeof what, "%s %s varlen B%lld lengths %lld..%lld H%lld D%lld", kd_backend_name(),
                     kd_dtype_name(dt), (long long)B, (long long)c->len[0], (long long)c->len[B - 1], (long long)H, (long long)D);
            CHECK(ok, "%s: ran (%s)", what, ok ? "" : kd_last_error());
            if (ok) {
                double *got = malloc((size_t)(total * HD) * sizeof *got);
                kd_tensor *of = kd_cast(o, KD_F32);
                const char *nm[4] = { "out", "dq", "dk", "dv" };
                for (int i = 0; i < 4; i++) {
                    const float *g = i == 0 ? kd_data(of) : kd_data(leaf[i - 1]->grad);
                    for (int64_t e = 0; e < total * HD; e++) got[e] = g[e];
                    char w2[200];
                    snprintf(w2, sizeof w2, "%s %s", what, nm[i]);
                    check(w2, got, want[i], total * HD, i ? red_b : red_f, bf);
                }
                free(got);
            }
            for (int i = 0; i < 3; i++) kd_tensor_free(leaf[i]);
            free(f);
            kd_arena_reset();
        }
    }
    kd_backend_select("best");
    for (int i = 0; i < 3; i++) {
        kd_tensor_free(pl[i]);
        free(x[i]);
    }
    for (int i = 0; i < 4; i++) free(want[i]);
    kd_tensor_free(pu);
    kd_tensor_free(mask);
    free(u);
}

int main(void)
{
    kd_set_threads(2);
    const vcase cases[] = {
        { 3, { 1, 5, 17 }, 2, 7 },
        { 4, { 7, 65, 1, 129 }, 3, 64 },
        { 3, { 9, 0, 4 }, 2, 8 },        /* an empty sequence between two */
        { 1, { 33 }, 12, 64 },           /* one sequence: BERT-base's heads */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
    /* Bad offsets are refused, naming them. */
    int64_t qs[3] = { 5, 1, 2 }, bad[3] = { 0, 3, 4 };
    kd_tensor *q = kd_zeros(KD_F32, 3, qs);
    CHECK(kd_attention_varlen(q, q, q, bad, 2, 1.0, 0.0, 0) == NULL && strstr(kd_last_error(), "offsets"),
          "offsets that end before the rows do are refused: %s", kd_last_error());
    int64_t desc[3] = { 0, 4, 5 };
    desc[1] = 6;
    CHECK(kd_attention_varlen(q, q, q, desc, 2, 1.0, 0.0, 0) == NULL && strstr(kd_last_error(), "ascending"),
          "descending offsets are refused: %s", kd_last_error());
    kd_arena_reset();
    kd_shutdown();
    return kd_test_finish("test_attention_varlen");
}
