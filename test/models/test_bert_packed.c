/* test/models/test_bert_packed.c — the padding-free (packed) BERT forward against the padded one.
 *
 * A small BERT with random weights, batches with padding at odd shapes (batch 3 with lengths 1, 5, 17 in
 * seq 17; batch 4 with lengths 3, 8, 2, 7 in seq 8), dropout off, in train and in eval mode, f32 and bf16
 * activations, on the fastest kernel table and on the reference one: logits and every parameter's gradient
 * (after kd_backward with a random upstream gradient on the logits) of the packed forward must equal the
 * padded forward's within
 *     f32:  ||packed - padded||_2 <= 1e-5 ||padded||_2   (about 100 f32 epsilons: sums of up to a few hundred
 *           terms taken in another order, through a few layers)
 *     bf16: ||packed - padded||_2 <= 2e-2 ||padded||_2   (about 2.5 bf16 epsilons: an f32 sum taken in another
 *           order can round an activation to the neighbouring bf16 value, and that difference propagates)
 * with a floor of 1e-4 G on the norm for gradients that are zero in exact arithmetic (G: the largest
 * gradient norm), and no NaN or Inf. The states kept for intermediate-layer losses (every hidden state and
 * attention score, in the padded layout) equal the padded forward's at real positions, and gradients through
 * them agree within the same bounds. Also: masks that are not a prefix of ones and a batch without padding
 * run padded (the same bits as with packing off); dropout in packed mode is
 * deterministic (the same generator state gives the same bits) and does drop; KD_PACKED=0 turns packing
 * off for new models. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/device.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "models/bert.h"
#include "test/testutil.h"

typedef struct result {
    int64_t n_logits;
    float *logits;
    size_t np;
    float **grads;
} result;

static void result_free(result *r)
{
    for (size_t i = 0; i < r->np; i++) free(r->grads[i]);
    free(r->grads);
    free(r->logits);
    memset(r, 0, sizeof *r);
}

static float *host_f32(const kd_tensor *t)
{
    float *f = malloc((size_t)kd_numel(t) * sizeof *f);
    if (f) kd_to_host(t, f);
    return f;
}

/* One forward (and a backward of sum(U * logits) when grad is set) of m on in, the generator at a fixed state. */
static int run(kd_bert *m, const kd_bert_input *in, int packed, int grad, result *r)
{
    memset(r, 0, sizeof *r);
    size_t np;
    kd_tensor **p = kd_bert_parameters(m, &np);
    kd_zero_grad(p, np);
    kd_bert_set_packed(m, packed);
    int prev = kd_set_grad_enabled(grad);
    kd_generator_set((kd_generator){ .seed = 99, .counter = 0 });
    kd_tensor *z = kd_bert_logits(m, in);
    int ok = z != NULL;
    if (ok) {
        r->n_logits = kd_numel(z);
        r->logits = host_f32(z);
    }
    if (ok && grad) {
        kd_tensor *u = kd_randn(KD_F32, z->ndim, z->shape, 0.0, 1.0, 4242);
        ok = u && kd_backward(z, u) == KD_OK;
        r->np = np;
        r->grads = calloc(np, sizeof *r->grads);
        for (size_t i = 0; ok && i < np; i++)
            if (p[i]->grad) r->grads[i] = host_f32(p[i]->grad);
    }
    kd_set_grad_enabled(prev);
    kd_arena_reset();
    if (!ok) fprintf(stderr, "  forward/backward failed: %s\n", kd_last_error());
    return ok;
}

static double rel_l2(const float *a, const float *b, int64_t n, double floor, int *finite)
{
    double d = 0, f = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) *finite = 0;
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        f += (double)b[i] * b[i];
    }
    return sqrt(d) / fmax(sqrt(f), floor);
}

/* packed against padded: logits and (with grad) every gradient; returns the worst relative error. */
static void compare(kd_bert *m, const kd_bert_input *in, int grad, double tol, const char *what)
{
    result a, b;
    int ok = run(m, in, 1, grad, &a) && run(m, in, 0, grad, &b);
    CHECK(ok, "%s: both forwards ran", what);
    if (!ok) {
        result_free(&a);
        result_free(&b);
        return;
    }
    int finite = 1;
    double rl = rel_l2(a.logits, b.logits, a.n_logits, 0.0, &finite), worst = 0, G = 0;
    CHECK(rl <= tol && finite, "%s: logits relative L2 %.3g (<= %.0e), finite %d", what, rl, tol, finite);
    const char *wn = "";
    size_t np = 0, ng = 0;
    kd_tensor **p = kd_bert_parameters(m, &np);
    if (grad) {
        for (size_t i = 0; i < np; i++) {
            double s = 0;
            for (int64_t e = 0; b.grads[i] && e < kd_numel(p[i]); e++) s += (double)b.grads[i][e] * b.grads[i][e];
            G = fmax(G, sqrt(s));
        }
        for (size_t i = 0; i < np; i++) {
            CHECK((a.grads[i] != NULL) == (b.grads[i] != NULL), "%s: %s has a gradient in both or neither", what, p[i]->name);
            if (!a.grads[i] || !b.grads[i]) continue;
            int fin = 1;
            double r = rel_l2(a.grads[i], b.grads[i], kd_numel(p[i]), 1e-4 * G, &fin);
            CHECK(r <= tol && fin, "%s: gradient of %s relative L2 %.3g (<= %.0e), finite %d", what, p[i]->name, r, tol, fin);
            if (!(r <= worst)) worst = r, wn = p[i]->name;
            ng++;
        }
    }
    printf("%-58s logits rel L2 %.2e", what, rl);
    if (grad) printf(", %zu gradients worst %.2e (%s)", ng, worst, wn);
    printf("\n");
    result_free(&a);
    result_free(&b);
}

/* Bitwise: packing on and off give the same bits (the padded path ran both times). */
static void same_bits(kd_bert *m, const kd_bert_input *in, const char *what)
{
    result a, b;
    int ok = run(m, in, 1, 1, &a) && run(m, in, 0, 1, &b);
    int same = ok && memcmp(a.logits, b.logits, (size_t)a.n_logits * sizeof(float)) == 0;
    for (size_t i = 0; same && i < a.np; i++)
        if (a.grads[i] && b.grads[i]) {
            size_t np;
            kd_tensor **p = kd_bert_parameters(m, &np);
            same = memcmp(a.grads[i], b.grads[i], (size_t)kd_numel(p[i]) * sizeof(float)) == 0;
        }
    CHECK(same, "%s: runs padded (packing on and off give the same bits)", what);
    printf("%-58s padded path: same bits with packing on and off\n", what);
    result_free(&a);
    result_free(&b);
}

typedef struct batch {
    int64_t B, T;
    int32_t ids[64], types[64], mask[64];
} batch;

static kd_bert_input make_batch(batch *bt, int64_t B, int64_t T, const int *len, int vocab)
{
    bt->B = B;
    bt->T = T;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            int64_t i = b * T + t;
            bt->mask[i] = t < len[b];
            bt->ids[i] = !bt->mask[i] ? 0 : t == 0 ? 1 : 3 + (int32_t)((b * 7919 + t * 104729) % (vocab - 3));
            bt->types[i] = bt->mask[i] && t >= len[b] / 2;
        }
    return (kd_bert_input){ .batch = B, .seq = T, .ids = bt->ids, .type_ids = bt->types, .mask = bt->mask };
}

int main(void)
{
    kd_set_threads(2);
    kd_bert_config cfg;
    if (kd_bert_preset("bert-tiny", &cfg) != KD_OK) return 1;
    cfg.vocab_size = 211;
    cfg.hidden_size = 48;
    cfg.num_heads = 4;
    cfg.num_layers = 2;
    cfg.intermediate_size = 67;
    cfg.max_position = 40;
    cfg.num_labels = 3;
    kd_bert *m = kd_bert_new(&cfg, 5);
    if (!m) {
        fprintf(stderr, "bert_new: %s\n", kd_last_error());
        return 1;
    }
    CHECK(kd_bert_packed(m), "packing is on by default");
    /* The LayerNorm and bias parameters start at 1 and 0; perturb them so their gradients say something. */
    size_t np;
    kd_tensor **p = kd_bert_parameters(m, &np);
    for (size_t i = 0; i < np; i++)
        if (p[i]->ndim == 1) {
            float *d = kd_data(p[i]);
            for (int64_t e = 0; e < kd_numel(p[i]); e++) d[e] += 0.1f * (float)sin(3.0 * e + (double)i);
        }
    batch b1, b2;
    const int len1[3] = { 1, 5, 17 }, len2[4] = { 3, 8, 2, 7 };
    kd_bert_input in1 = make_batch(&b1, 3, 17, len1, cfg.vocab_size);
    kd_bert_input in2 = make_batch(&b2, 4, 8, len2, cfg.vocab_size);
    const char *tables[2] = { "best", "ref" };
    for (int ti = 0; ti < 2; ti++) {
        if (kd_backend_select(tables[ti]) != KD_OK) {
            CHECK(0, "kernel table %s: %s", tables[ti], kd_last_error());
            continue;
        }
        for (int prec = 0; prec < 2; prec++) {
            kd_dtype dt = prec ? KD_BF16 : KD_F32;
            kd_bert_set_precision(m, dt);
            double tol = prec ? 2e-2 : 1e-5;
            char what[128];
            /* train mode with dropout 0: the backward through every op */
            kd_bert_set_dropout(m, 0.0, 0.0);
            kd_bert_set_training(m, 1);
            snprintf(what, sizeof what, "%s %s train, batch 3 lengths 1,5,17 seq 17", kd_backend_name(), kd_dtype_name(dt));
            compare(m, &in1, 1, tol, what);
            snprintf(what, sizeof what, "%s %s train, batch 4 lengths 3,8,2,7 seq 8", kd_backend_name(), kd_dtype_name(dt));
            compare(m, &in2, 1, tol, what);
            /* eval mode (dropout configured but off), no graph: the inference path */
            kd_bert_set_dropout(m, 0.1, 0.1);
            kd_bert_set_training(m, 0);
            snprintf(what, sizeof what, "%s %s eval no-grad, batch 3 lengths 1,5,17", kd_backend_name(), kd_dtype_name(dt));
            compare(m, &in1, 0, tol, what);
        }
    }
    kd_backend_select("best");
    kd_bert_set_precision(m, KD_F32);

    /* Masks that are not a prefix of ones, and a batch with no padding, run padded. */
    kd_bert_set_training(m, 1);
    kd_bert_set_dropout(m, 0.0, 0.0);
    batch b3;
    const int full[2] = { 6, 6 };
    kd_bert_input in3 = make_batch(&b3, 2, 6, full, cfg.vocab_size);
    same_bits(m, &in3, "no padding (lengths 6,6 in seq 6)");
    b3.mask[2] = 0;   /* row 0: 1 1 0 1 1 1 */
    same_bits(m, &in3, "a mask with a hole (1 1 0 1 1 1)");
    b3.mask[2] = 1;
    for (int t = 0; t < 6; t++) b3.mask[6 + t] = 0;   /* row 1 empty */
    same_bits(m, &in3, "a row without tokens");

    /* States for intermediate-layer losses: packed, they come back in the padded layout [B, T, ...]; at real
     * tokens (and real query/key pairs of the scores) they equal the padded forward's, and a loss on them
     * (random weights at real positions, zero at padding, as the losses read them) gives the same gradients. */
    for (int prec = 0; prec < 2; prec++) {
        kd_dtype dt = prec ? KD_BF16 : KD_F32;
        double tol = prec ? 2e-2 : 1e-5;
        kd_bert_set_precision(m, dt);
        kd_bert_set_training(m, 1);
        kd_bert_set_dropout(m, 0.0, 0.0);
        const kd_bert_input *in = &in1;
        int64_t Bn = in->batch, Tn = in->seq, Hn = cfg.hidden_size, nh = cfg.num_heads, L = cfg.num_layers;
        float *hs[2][8] = { { 0 } }, *ss[2][8] = { { 0 } }, *zz[2] = { 0 }, **gg[2] = { 0 };
        for (int pk = 0; pk < 2; pk++) {
            kd_bert_set_packed(m, pk);
            kd_zero_grad(p, np);
            kd_bert_states st = { .hidden = (1u << (L + 1)) - 1, .attention = ((1u << (L + 1)) - 1) & ~1u };
            kd_tensor *z = kd_bert_logits_states(m, in, &st);
            CHECK(z != NULL, "forward with states (packed %d): %s", pk, z ? "" : kd_last_error());
            if (!z) continue;
            int64_t zs[2] = { Bn, cfg.num_labels };
            kd_tensor *loss = kd_sum(kd_mul(z, kd_randn(KD_F32, 2, zs, 0.0, 1.0, 7)), 0, NULL, 0);
            zz[pk] = host_f32(z);
            for (int64_t l = 0; l <= L; l++) {
                int64_t hsh[3] = { Bn, Tn, Hn }, ssh[4] = { Bn, nh, Tn, Tn };
                CHECK(st.h[l] && kd_same_shape(st.h[l], kd_zeros(KD_F32, 3, hsh)), "h[%lld] is [B, T, hidden]", (long long)l);
                kd_tensor *uh = kd_randn(KD_F32, 3, hsh, 0.0, 1.0, 100 + (uint64_t)l);
                for (int64_t i = 0; i < Bn * Tn; i++)
                    if (!b1.mask[i]) memset((float *)kd_data(uh) + i * Hn, 0, (size_t)Hn * sizeof(float));
                loss = kd_add(loss, kd_sum(kd_mul(st.h[l], uh), 0, NULL, 0));
                hs[pk][l] = host_f32(st.h[l]);
                if (l == 0) continue;
                CHECK(st.scores[l] && kd_same_shape(st.scores[l], kd_zeros(KD_F32, 4, ssh)), "scores[%lld] is [B, heads, T, T]",
                      (long long)l);
                kd_tensor *us = kd_randn(KD_F32, 4, ssh, 0.0, 1.0, 200 + (uint64_t)l);
                float *u = kd_data(us);
                for (int64_t b = 0; b < Bn; b++)
                    for (int64_t h = 0; h < nh; h++)
                        for (int64_t i = 0; i < Tn; i++)
                            for (int64_t j = 0; j < Tn; j++)
                                if (!b1.mask[b * Tn + i] || !b1.mask[b * Tn + j]) u[((b * nh + h) * Tn + i) * Tn + j] = 0.0f;
                loss = kd_add(loss, kd_sum(kd_mul(st.scores[l], us), 0, NULL, 0));
                ss[pk][l] = host_f32(st.scores[l]);
            }
            CHECK(loss && kd_backward(loss, NULL) == KD_OK, "backward through the states: %s", kd_last_error());
            gg[pk] = calloc(np, sizeof *gg[pk]);
            for (size_t i = 0; i < np; i++)
                if (p[i]->grad) gg[pk][i] = host_f32(p[i]->grad);
            kd_arena_reset();
        }
        if (!zz[0] || !zz[1]) continue;
        int fin = 1;
        double worst_h = 0, worst_s = 0, worst_g = 0, G = 0;
        double rz = rel_l2(zz[1], zz[0], Bn * cfg.num_labels, 0.0, &fin);
        for (int64_t l = 0; l <= L; l++) {
            /* real positions only: gather them */
            float *a = malloc((size_t)(Bn * Tn * Tn * nh + Bn * Tn * Hn) * sizeof *a), *b = malloc((size_t)(Bn * Tn * Tn * nh + Bn * Tn * Hn) * sizeof *b);
            int64_t n = 0;
            for (int64_t i = 0; i < Bn * Tn; i++)
                if (b1.mask[i]) for (int64_t e = 0; e < Hn; e++, n++) a[n] = hs[1][l][i * Hn + e], b[n] = hs[0][l][i * Hn + e];
            worst_h = fmax(worst_h, rel_l2(a, b, n, 0.0, &fin));
            if (l > 0) {
                n = 0;
                for (int64_t bb = 0; bb < Bn; bb++)
                    for (int64_t h = 0; h < nh; h++)
                        for (int64_t i = 0; i < Tn; i++)
                            for (int64_t j = 0; j < Tn; j++)
                                if (b1.mask[bb * Tn + i] && b1.mask[bb * Tn + j]) {
                                    int64_t e = ((bb * nh + h) * Tn + i) * Tn + j;
                                    a[n] = ss[1][l][e], b[n++] = ss[0][l][e];
                                }
                worst_s = fmax(worst_s, rel_l2(a, b, n, 0.0, &fin));
            }
            free(a);
            free(b);
            free(hs[0][l]), free(hs[1][l]), free(ss[0][l]), free(ss[1][l]);
        }
        for (size_t i = 0; i < np; i++) {
            double t2 = 0;
            for (int64_t e = 0; gg[0][i] && e < kd_numel(p[i]); e++) t2 += (double)gg[0][i][e] * gg[0][i][e];
            G = fmax(G, sqrt(t2));
        }
        for (size_t i = 0; i < np; i++) {
            CHECK((gg[0][i] != NULL) == (gg[1][i] != NULL), "states: %s has a gradient in both runs or neither", p[i]->name);
            if (gg[0][i] && gg[1][i]) worst_g = fmax(worst_g, rel_l2(gg[1][i], gg[0][i], kd_numel(p[i]), 1e-4 * G, &fin));
            free(gg[0][i]), free(gg[1][i]);
        }
        free(gg[0]), free(gg[1]), free(zz[0]), free(zz[1]);
        CHECK(fin && rz <= tol && worst_h <= tol && worst_s <= tol && worst_g <= tol,
              "%s states: logits %.3g, hidden states %.3g, scores %.3g, gradients %.3g (each <= %.0e), finite %d",
              kd_dtype_name(dt), rz, worst_h, worst_s, worst_g, tol, fin);
        printf("%-58s logits %.2e, h %.2e, scores %.2e, gradients %.2e\n",
               prec ? "bf16 states (all h, all scores), batch 3 lengths 1,5,17" : "f32 states (all h, all scores), batch 3 lengths 1,5,17",
               rz, worst_h, worst_s, worst_g);
    }
    kd_bert_set_precision(m, KD_F32);
    kd_bert_set_packed(m, 1);

    /* Dropout in packed mode: deterministic, and it drops. */
    {
        kd_bert_set_dropout(m, 0.1, 0.1);
        kd_bert_set_training(m, 1);
        result a, b, c;
        int ok = run(m, &in1, 1, 1, &a) && run(m, &in1, 1, 1, &b);
        kd_bert_set_dropout(m, 0.0, 0.0);
        ok = ok && run(m, &in1, 1, 0, &c);
        int same = ok && memcmp(a.logits, b.logits, (size_t)a.n_logits * sizeof(float)) == 0;
        for (size_t i = 0; same && i < a.np; i++)
            if (a.grads[i]) same = memcmp(a.grads[i], b.grads[i], (size_t)kd_numel(p[i]) * sizeof(float)) == 0;
        int differs = ok && memcmp(a.logits, c.logits, (size_t)a.n_logits * sizeof(float)) != 0;
        CHECK(same, "packed dropout: the same generator state gives the same logits and gradients");
        CHECK(differs, "packed dropout 0.1 changes the logits");
        printf("%-58s deterministic: %s, differs from dropout 0: %s\n", "packed dropout 0.1", same ? "yes" : "NO",
               differs ? "yes" : "NO");
        result_free(&a);
        result_free(&b);
        result_free(&c);
        /* The packed forward draws one dropout decision per real value: embeddings total x hidden, per layer
         * heads x sum len^2 attention probabilities and two total x hidden outputs, then batch x hidden
         * pooled; the padded forward as many with total = batch x seq. */
        kd_bert_set_dropout(m, 0.1, 0.1);
        uint64_t drawn[2];
        for (int pk = 0; pk < 2; pk++) {
            kd_bert_set_packed(m, pk);
            kd_generator_set((kd_generator){ .seed = 99, .counter = 0 });
            kd_tensor *z = kd_bert_logits(m, &in1);
            drawn[pk] = kd_generator_get().counter;
            CHECK(z != NULL, "dropout forward ran");
            kd_arena_reset();
        }
        uint64_t Hd = (uint64_t)cfg.hidden_size, nh = (uint64_t)cfg.num_heads, L = (uint64_t)cfg.num_layers;
        uint64_t tot = 1 + 5 + 17, sq = 1 + 25 + 289, want_p = tot * Hd + L * (nh * sq + 2 * tot * Hd) + 3 * Hd;
        uint64_t want_d = 51 * Hd + L * (nh * 3 * 17 * 17 + 2 * 51 * Hd) + 3 * Hd;
        CHECK(drawn[1] == want_p && drawn[0] == want_d, "dropout draws: packed %llu (want %llu), padded %llu (want %llu)",
              (unsigned long long)drawn[1], (unsigned long long)want_p, (unsigned long long)drawn[0],
              (unsigned long long)want_d);
        printf("%-58s packed %llu, padded %llu (the packed path ran)\n", "dropout decisions drawn, batch 3 lengths 1,5,17",
               (unsigned long long)drawn[1], (unsigned long long)drawn[0]);
    }

    /* KD_PACKED=0 turns packing off for models made after it is set. */
    setenv("KD_PACKED", "0", 1);
    kd_bert *m0 = kd_bert_new(&cfg, 5);
    CHECK(m0 && !kd_bert_packed(m0), "KD_PACKED=0: a new model does not pack");
    unsetenv("KD_PACKED");
    printf("KD_PACKED=0: new model packs: %d\n", m0 ? kd_bert_packed(m0) : -1);
    kd_bert_free(m0);
    kd_bert_free(m);
    kd_shutdown();
    return kd_test_finish("test_bert_packed");
}
