/* test/train/test_loss.c — the distillation loss: the seed notebook's soft targets for teacher logits
 * [10, 2] at T = 1, 2, 5; the loss and its gradient on random logits against the formula evaluated here
 * independently in double; alpha's two ends; bad alpha, T and shapes as named errors. */
#include <math.h>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/ops.h"
#include "test/engine/gradcheck.h"
#include "test/testutil.h"
#include "train/loss.h"

/* Independent double evaluation of L and dL/dzs for one batch; rows with y[i] < 0 have no label: the soft
 * term is the mean over all n rows, the hard one over the labelled rows. */
static double ref_loss(const double *zs, const double *zt, const int *y, int n, int c, double alpha, double T,
                       double *grad)
{
    double total_kl = 0.0, total_ce = 0.0;
    int m = 0;
    for (int i = 0; i < n; i++) m += y[i] >= 0;
    for (int i = 0; i < n; i++) {
        const double *s = zs + i * c, *t = zt + i * c;
        double ms = -INFINITY, mt = -INFINITY, m1 = -INFINITY;
        for (int j = 0; j < c; j++) {
            ms = fmax(ms, s[j] / T);
            mt = fmax(mt, t[j] / T);
            m1 = fmax(m1, s[j]);
        }
        double zsT = 0, ztT = 0, z1 = 0;
        for (int j = 0; j < c; j++) {
            zsT += exp(s[j] / T - ms);
            ztT += exp(t[j] / T - mt);
            z1 += exp(s[j] - m1);
        }
        for (int j = 0; j < c; j++) {
            double logq = s[j] / T - ms - log(zsT), logp = t[j] / T - mt - log(ztT), p = exp(logp);
            total_kl += p * (logp - logq);
            double q = exp(logq), sm = exp(s[j] - m1) / z1;
            grad[i * c + j] = alpha * T * (q - p) / n + (y[i] >= 0 ? (1 - alpha) * (sm - (j == y[i])) / m : 0.0);
        }
        if (y[i] >= 0) total_ce += -(s[y[i]] - m1 - log(z1));
    }
    return alpha * T * T * total_kl / n + (m ? (1 - alpha) * total_ce / m : 0.0);
}

static void seed_example(void)
{
    const float zt[2] = { 10.0f, 2.0f };
    const double T[3] = { 1.0, 2.0, 5.0 };
    /* The seed notebook's printed values, and the exact ones e^(8/T) / (1 + e^(8/T)). */
    const double want0[3] = { 0.9997, 0.982, 0.83 };
    const double tol[3] = { 5e-5, 5e-4, 5e-3 };
    int64_t shape[2] = { 1, 2 };
    for (int k = 0; k < 3; k++) {
        kd_tensor *p = kd_soft_targets(kd_from_buffer(KD_F32, 2, shape, zt), T[k]);
        CHECK(p != NULL, "soft targets at T=%g: %s", T[k], kd_last_error());
        if (!p) continue;
        int64_t i0[2] = { 0, 0 }, i1[2] = { 0, 1 };
        double exact = 1.0 / (1.0 + exp(-8.0 / T[k]));
        CHECK_CLOSE(kd_get(p, i0), want0[k], tol[k], 0, "p[0] vs the notebook");
        CHECK_CLOSE(kd_get(p, i1), 1.0 - want0[k], tol[k], 0, "p[1] vs the notebook");
        CHECK_CLOSE(kd_get(p, i0), exact, 1e-6, 1e-6, "p[0] vs e^(8/T)/(1+e^(8/T))");
        CHECK(p->node == NULL && !p->requires_grad, "soft targets carry no graph");
        printf("T=%g: p = [%.4f, %.4f]\n", T[k], kd_get(p, i0), kd_get(p, i1));
    }
    kd_arena_reset();
}

static void random_logits(void)
{
    enum { N = 7, C = 5 };
    int64_t shape[2] = { N, C }, ns = N;
    const double alphas[4] = { 0.0, 0.3, 0.5, 1.0 }, Ts[3] = { 1.0, 2.0, 4.5 };
    uint64_t seed = 11;
    /* labelled: every row; some rows (targets for rows `rows`); none (alpha > 0 only) */
    for (int lab = 0; lab < 3; lab++)
    for (int ai = 0; ai < 4; ai++) {
        if (lab == 2 && ai == 0) continue;
        for (int ti = 0; ti < 3; ti++) {
            kd_tensor *zs = kd_persist(kd_randn(KD_F64, 2, shape, 0.0, 3.0, seed++));
            kd_tensor *zt = kd_randn(KD_F64, 2, shape, 0.0, 3.0, seed++);
            kd_set_requires_grad(zs, 1);
            int y[N];
            int32_t y32[N], rows32[N];
            int64_t m = 0;
            for (int i = 0; i < N; i++) {
                y[i] = (i * 3 + ai + ti) % C;
                if (lab == 2 || (lab == 1 && (i + ai) % 3 == 0)) y[i] = -1;
                if (y[i] >= 0) {
                    rows32[m] = i;
                    y32[m++] = y[i];
                }
            }
            kd_tensor *tg = m ? kd_from_buffer(KD_I32, 1, &m, y32) : NULL;
            kd_tensor *rows = lab == 1 ? kd_from_buffer(KD_I32, 1, &m, rows32) : NULL;
            double want_grad[N * C];
            double want = ref_loss(kd_data(zs), kd_data(zt), y, N, C, alphas[ai], Ts[ti], want_grad);
            kd_loss_parts lp;
            kd_status st = kd_distill_loss(zs, zt, tg, rows, alphas[ai], Ts[ti], &lp);
            CHECK(st == KD_OK, "loss (%lld of %d rows labelled) alpha=%g T=%g: %s", (long long)m, N, alphas[ai], Ts[ti],
                  kd_last_error());
            if (st == KD_OK) {
                CHECK_CLOSE(kd_item(lp.total), want, 1e-12, 1e-10, "loss vs double formula");
                CHECK((lp.hard == NULL) == (m == 0), "a hard part exactly when a row is labelled");
                CHECK_CLOSE(alphas[ai] * kd_item(lp.soft) + (lp.hard ? (1 - alphas[ai]) * kd_item(lp.hard) : 0.0), want,
                            1e-12, 1e-10, "alpha*soft + (1-alpha)*hard == total");
                CHECK(kd_backward(lp.total, NULL) == KD_OK, "backward: %s", kd_last_error());
                const double *g = zs->grad ? kd_data(zs->grad) : NULL;
                CHECK(g != NULL, "student logits got a gradient");
                for (int i = 0; g && i < N * C; i++)
                    CHECK_CLOSE(g[i], want_grad[i], 1e-12, 1e-9, "dL/dzs");
                CHECK(zt->grad == NULL, "teacher logits got no gradient");
            }
            kd_tensor_free(zs);
            kd_arena_reset();
        }
    }
    printf("loss and gradient vs the double formula: all rows, some rows and no row labelled\n");
    /* f32 as the trainer runs it: the same numbers to float precision. */
    kd_tensor *zs = kd_randn(KD_F32, 2, shape, 0.0, 2.0, 99), *zt = kd_randn(KD_F32, 2, shape, 0.0, 2.0, 98);
    int y[N];
    int32_t y32[N];
    double zsd[N * C], ztd[N * C], gd[N * C];
    for (int i = 0; i < N; i++) y[i] = y32[i] = i % C;
    for (int i = 0; i < N * C; i++) {
        zsd[i] = ((float *)kd_data(zs))[i];
        ztd[i] = ((float *)kd_data(zt))[i];
    }
    kd_loss_parts lp;
    CHECK(kd_distill_loss(zs, zt, kd_from_buffer(KD_I32, 1, &ns, y32), NULL, 0.5, 2.0, &lp) == KD_OK, "f32 loss");
    CHECK_CLOSE(kd_item(lp.total), ref_loss(zsd, ztd, y, N, C, 0.5, 2.0, gd), 1e-6, 1e-5, "f32 loss vs double");
    kd_arena_reset();
}

static void bad_input(void)
{
    int64_t shape[2] = { 2, 3 }, s3[2] = { 2, 4 }, ns = 2;
    int32_t y[2] = { 0, 1 };
    kd_tensor *zs = kd_zeros(KD_F32, 2, shape), *zt = kd_zeros(KD_F32, 2, shape), *tg = kd_from_buffer(KD_I32, 1, &ns, y);
    kd_loss_parts lp;
    CHECK(kd_distill_loss(zs, zt, tg, NULL, 1.5, 2.0, &lp) == KD_ERR_ARG && strstr(kd_last_error(), "alpha"),
          "alpha 1.5 is an error naming alpha");
    CHECK(kd_distill_loss(zs, zt, tg, NULL, -0.1, 2.0, &lp) == KD_ERR_ARG, "alpha -0.1 is an error");
    CHECK(kd_distill_loss(zs, zt, tg, NULL, 0.5, 0.0, &lp) == KD_ERR_ARG && strstr(kd_last_error(), "temperature"),
          "T 0 is an error naming the temperature");
    CHECK(kd_distill_loss(zs, zt, tg, NULL, 0.5, -1.0, &lp) == KD_ERR_ARG, "T -1 is an error");
    CHECK(kd_distill_loss(zs, zt, tg, NULL, 0.5, NAN, &lp) == KD_ERR_ARG, "T NaN is an error");
    CHECK(kd_distill_loss(zs, kd_zeros(KD_F32, 2, s3), tg, NULL, 0.5, 2.0, &lp) == KD_ERR_SHAPE &&
              strstr(kd_last_error(), "label count"),
          "teacher with 4 labels vs student with 3 is a shape error naming the label count");
    CHECK(kd_distill_loss(zs, NULL, tg, NULL, 0.5, 2.0, &lp) == KD_ERR_ARG, "alpha > 0 without a teacher is an error");
    CHECK(kd_distill_loss(zs, NULL, tg, NULL, 0.0, 2.0, &lp) == KD_OK, "alpha 0 needs no teacher");
    CHECK_CLOSE(kd_item(lp.total), log(3.0), 1e-6, 1e-6, "uniform logits: CE = log 3");
    CHECK(kd_distill_loss(zs, zt, NULL, NULL, 0.0, 2.0, &lp) == KD_ERR_ARG && strstr(kd_last_error(), "without labels"),
          "a batch without labels at alpha 0 is an error");
    kd_arena_reset();
}

/* --- intermediate-layer losses: values against the formulas in double, gradients by finite differences. */
enum { IB = 2, IT = 5, IHS = 4, IHT = 6, IH = 3 };
static int32_t tok_rows[] = { 0, 1, 2, 5, 6, 7, 8 };                 /* batch 0: 3 tokens, batch 1: 4 */
static int32_t q_rows[IB * IH * IT];
static int nq;

typedef struct hctx { kd_hidden_kind kind; int proj; } hctx;
static kd_tensor *f_hidden(kd_tensor **x, void *c)
{
    const hctx *h = c;
    int64_t n = 7;
    return kd_hidden_loss(x[0], x[1], h->proj ? x[2] : NULL, kd_from_buffer(KD_I32, 1, &n, tok_rows), h->kind);
}
static kd_tensor *f_attention(kd_tensor **x, void *c)
{
    int64_t n = nq;
    return kd_attention_loss(x[0], x[1], kd_from_buffer(KD_I32, 1, &n, q_rows), *(kd_attention_kind *)c);
}

static double hidden_ref(const double *hs, const double *ht, const double *w, kd_hidden_kind kind, int hsz)
{
    double total = 0;
    for (int r = 0; r < 7; r++) {
        const double *a = hs + tok_rows[r] * hsz, *b = ht + tok_rows[r] * IHT;
        double p[IHT], dot = 0, na = 0, nb = 0, se = 0;
        for (int o = 0; o < IHT; o++) {
            p[o] = 0;
            for (int i = 0; i < hsz; i++) p[o] += (w ? w[o * hsz + i] : (o == i)) * a[i];
            dot += p[o] * b[o], na += p[o] * p[o], nb += b[o] * b[o], se += (p[o] - b[o]) * (p[o] - b[o]);
        }
        total += kind == KD_HIDDEN_MSE ? se / IHT : 1 - dot / sqrt(na * nb);
    }
    return total / 7;
}

static void intermediate(void)
{
    for (int b = 0; b < IB; b++)
        for (int h = 0; h < IH; h++)
            for (int t = 0; t < (b ? 4 : 3); t++) q_rows[nq++] = (b * IH + h) * IT + t;
    int64_t shs[3] = { IB, IT, IHS }, sht[3] = { IB, IT, IHT }, sw[2] = { IHT, IHS }, same[3] = { IB, IT, IHT };
    for (int k = 0; k < 2; k++)
        for (int pj = 0; pj < 2; pj++) {
            hctx c = { k ? KD_HIDDEN_COS : KD_HIDDEN_MSE, pj };
            kd_tensor *x[3] = { kd_persist(kd_randn(KD_F64, 3, pj ? shs : same, 0, 1, 300 + k * 2 + pj)),
                                kd_persist(kd_randn(KD_F64, 3, sht, 0, 1, 310 + k)),
                                kd_persist(kd_randn(KD_F64, 2, sw, 0, 0.5, 320 + k)) };
            kd_tensor *v = f_hidden(x, &c);
            double want = hidden_ref(kd_data(x[0]), kd_data(x[1]), pj ? kd_data(x[2]) : NULL, c.kind, pj ? IHS : IHT);
            CHECK(v && v->ndim == 0, "hidden loss is a scalar: %s", kd_last_error());
            if (v) CHECK_CLOSE(kd_item(v), want, 1e-12, 1e-10, k ? "hidden cos loss vs double" : "hidden mse loss vs double");
            kd_set_requires_grad(x[0], 1);
            kd_set_requires_grad(x[2], pj);
            char name[64];
            snprintf(name, sizeof name, "hidden %s loss%s", k ? "cos" : "mse", pj ? " with a projection" : "");
            gradcheck(name, f_hidden, &c, x, 3, 330 + k * 2 + pj);
            CHECK(x[1]->grad == NULL, "%s: the teacher's states get no gradient", name);
            for (int i = 0; i < 3; i++) kd_tensor_free(x[i]);
            kd_arena_reset();
        }
    int64_t ssh[4] = { IB, IH, IT, IT };
    for (int k = 0; k < 2; k++) {
        kd_attention_kind kind = k ? KD_ATTENTION_MSE : KD_ATTENTION_KL;
        kd_tensor *x[2] = { kd_persist(kd_randn(KD_F64, 4, ssh, 0, 2, 340 + k)), kd_persist(kd_randn(KD_F64, 4, ssh, 0, 2, 350 + k)) };
        /* padding keys of batch 1 (t >= 4) at -1e9, as the model writes them */
        for (int i = 0; i < 2; i++) {
            double *d = kd_data(x[i]);
            for (int r = 0; r < IH * IT; r++) d[(IH * IT + r) * IT + 4] = -1e9;
        }
        kd_tensor *v = f_attention(x, &kind);
        double want = 0;
        for (int r = 0; r < nq; r++) {
            const double *a = (double *)kd_data(x[0]) + q_rows[r] * IT, *b = (double *)kd_data(x[1]) + q_rows[r] * IT;
            double ma = -INFINITY, mb = -INFINITY, za = 0, zb = 0;
            for (int j = 0; j < IT; j++) ma = fmax(ma, a[j]), mb = fmax(mb, b[j]);
            for (int j = 0; j < IT; j++) za += exp(a[j] - ma), zb += exp(b[j] - mb);
            for (int j = 0; j < IT; j++) {
                double q = exp(a[j] - ma) / za, p = exp(b[j] - mb) / zb;
                want += kind == KD_ATTENTION_KL ? (p > 0 ? p * (log(p) - log(q)) : 0.0) : (q - p) * (q - p) / IT;
            }
        }
        want /= nq;
        CHECK(v != NULL, "attention loss: %s", kd_last_error());
        if (v) CHECK_CLOSE(kd_item(v), want, 1e-12, 1e-10, k ? "attention mse loss vs double" : "attention kl loss vs double");
        kd_set_requires_grad(x[0], 1);
        gradcheck(k ? "attention mse loss" : "attention kl loss", f_attention, &kind, x, 2, 360 + k);
        CHECK(x[1]->grad == NULL, "the teacher's scores get no gradient");
        for (int i = 0; i < 2; i++) kd_tensor_free(x[i]);
        kd_arena_reset();
    }
    /* mismatched heads are a shape error naming both */
    int64_t s2[4] = { IB, 2, IT, IT };
    kd_tensor *a = kd_zeros(KD_F64, 4, ssh), *b = kd_zeros(KD_F64, 4, s2);
    int64_t n = 1;
    int32_t r0 = 0;
    CHECK(kd_attention_loss(a, b, kd_from_buffer(KD_I32, 1, &n, &r0), KD_ATTENTION_KL) == NULL &&
              strstr(kd_last_error(), "heads"),
          "3 heads against 2: %s", kd_last_error());
    kd_arena_reset();
}

int main(void)
{
    seed_example();
    random_logits();
    bad_input();
    intermediate();
    kd_shutdown();
    return kd_test_finish("test_loss");
}
