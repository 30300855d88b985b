/* test/models/test_bert_bf16.c — BERT in mixed precision against the same model in f32, on the CPU.
 *
 * A bert-mini with random weights, a padded batch, train mode with dropout (the same dropout decisions in
 * both runs): the bf16 forward's logits must agree with the f32 forward's within
 *     ||bf16 - f32||_2 <= 3e-2 ||f32||_2,
 * and after one backward of a cross-entropy loss every parameter's gradient (f32 in both runs: the bf16
 * weight copies hand their gradients back to the f32 parameters) must satisfy
 *     ||bf16 - f32||_2 <= 8e-2 max(||f32||_2, 1e-4 G) and cosine >= 0.995
 * (the tolerances the GPU suite uses for the same comparison), G the largest gradient norm of any
 * parameter. The floor and the cosine's exemption below 1e-4 G are for gradients that are zero in exact
 * arithmetic (the attention key bias: softmax ignores a per-row constant), where both runs hold noise. Also: parameters stay f32, their gradients
 * are f32, the hidden states kd_bert_encode returns are f32, and a bad precision is refused. */
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

enum { B = 3, T = 19 };

static double *host_copy(const kd_tensor *t)
{
    int64_t n = kd_numel(t);
    float *f = malloc((size_t)n * sizeof *f);
    double *d = malloc((size_t)n * sizeof *d);
    kd_to_host(t, f);
    for (int64_t i = 0; i < n; i++) d[i] = f[i];
    free(f);
    return d;
}

/* One forward + backward; fills logits (B x labels) and every parameter's gradient (copies). */
static int run(kd_bert *m, kd_dtype dt, const kd_bert_input *in, const int32_t *labels, double **logits,
               double ***grads)
{
    size_t np;
    kd_tensor **p = kd_bert_parameters(m, &np);
    kd_zero_grad(p, np);
    if (kd_bert_set_precision(m, dt) != KD_OK) return 0;
    kd_generator_set((kd_generator){ .seed = 1234, .counter = 0 });
    kd_tensor *z = kd_bert_logits(m, in);
    if (!z) return 0;
    CHECK(z->dtype == KD_F32, "%s: logits are f32 (got %s)", kd_dtype_name(dt), kd_dtype_name(z->dtype));
    *logits = host_copy(z);
    int64_t nb = B;
    kd_tensor *y = kd_from_buffer(KD_I32, 1, &nb, labels);
    kd_tensor *loss = kd_cross_entropy(z, y);
    if (!loss || kd_backward(loss, NULL) != KD_OK) return 0;
    *grads = calloc(np, sizeof **grads);
    for (size_t i = 0; i < np; i++) {
        CHECK(p[i]->dtype == KD_F32 && p[i]->grad && p[i]->grad->dtype == KD_F32,
              "%s: parameter %s and its gradient are f32", kd_dtype_name(dt), p[i]->name);
        if (p[i]->grad) (*grads)[i] = host_copy(p[i]->grad);
    }
    kd_arena_reset();
    return 1;
}

int main(void)
{
    kd_set_threads(2);
    kd_bert_config cfg;
    if (kd_bert_preset("bert-mini", &cfg) != KD_OK) return 1;
    cfg.num_labels = 3;
    kd_bert *m = kd_bert_new(&cfg, 7);
    if (!m) {
        fprintf(stderr, "bert_new: %s\n", kd_last_error());
        return 1;
    }
    kd_bert_set_training(m, 1);
    int32_t ids[B * T], mask[B * T], types[B * T];
    int len[B] = { T, 11, 4 };
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int i = b * T + t;
            mask[i] = t < len[b];
            ids[i] = !mask[i] ? 0 : t == 0 ? 101 : t == len[b] - 1 ? 102 : 1000 + (b * 7919 + t * 104729) % 29000;
            types[i] = t >= len[b] / 2 && mask[i];
        }
    int32_t labels[B] = { 2, 0, 1 };
    kd_bert_input in = { .batch = B, .seq = T, .ids = ids, .type_ids = types, .mask = mask };

    double *lf = NULL, *lb = NULL, **gf = NULL, **gb = NULL;
    int ok = run(m, KD_F32, &in, labels, &lf, &gf) && run(m, KD_BF16, &in, labels, &lb, &gb);
    CHECK(ok, "forward/backward ran in both precisions: %s", ok ? "" : kd_last_error());
    if (ok) {
        double d2 = 0, f2 = 0;
        for (int i = 0; i < B * cfg.num_labels; i++) {
            d2 += (lb[i] - lf[i]) * (lb[i] - lf[i]);
            f2 += lf[i] * lf[i];
        }
        double rel = sqrt(d2 / f2);
        CHECK(rel <= 3e-2, "logits: relative L2 error %.4g, expected <= 3e-2", rel);
        printf("logits (%d x %d): relative L2 error bf16 vs f32 %.4g (<= 3e-2)\n", B, cfg.num_labels, rel);
        size_t np;
        kd_tensor **p = kd_bert_parameters(m, &np);
        double worst_rel = 0, worst_cos = 1, G = 0;
        const char *wr = "", *wc = "";
        size_t checked = 0, tiny = 0;
        for (size_t i = 0; i < np; i++) {
            double ff = 0;
            for (int64_t e = 0; gf[i] && e < kd_numel(p[i]); e++) ff += gf[i][e] * gf[i][e];
            G = fmax(G, sqrt(ff));
        }
        for (size_t i = 0; i < np; i++) {
            if (!gf[i] || !gb[i]) continue;
            int64_t n = kd_numel(p[i]);
            double dd = 0, ff = 0, bb = 0, fb = 0;
            for (int64_t e = 0; e < n; e++) {
                dd += (gb[i][e] - gf[i][e]) * (gb[i][e] - gf[i][e]);
                ff += gf[i][e] * gf[i][e];
                bb += gb[i][e] * gb[i][e];
                fb += gf[i][e] * gb[i][e];
            }
            if (ff == 0.0) {   /* rows of the embedding tables the batch does not touch, and the like */
                CHECK(bb == 0.0, "%s: f32 gradient is zero, bf16's is not", p[i]->name);
                continue;
            }
            double r = sqrt(dd) / fmax(sqrt(ff), 1e-4 * G), c = fb / sqrt(ff * bb);
            int small = sqrt(ff) < 1e-4 * G;
            tiny += small;
            if (small) printf("  %s: gradient norm %.3g is below 1e-4 G; compared against the floor only\n", p[i]->name, sqrt(ff));
            if (small) c = 1.0;
            CHECK(r <= 8e-2 && c >= 0.995, "%s: gradient relative L2 %.4g (<= 8e-2), cosine %.5f (>= 0.995)",
                  p[i]->name, r, c);
            if (!(r <= worst_rel)) worst_rel = r, wr = p[i]->name;
            if (!(c >= worst_cos)) worst_cos = c, wc = p[i]->name;
            checked++;
        }
        printf("gradients of %zu parameters (%zu below 1e-4 G = %.3g): worst relative L2 %.4g (%s), worst cosine "
               "%.5f (%s)\n", checked, tiny, 1e-4 * G, worst_rel, wr, worst_cos, wc);
        for (size_t i = 0; i < np; i++) {
            free(gf[i]);
            free(gb[i]);
        }
    }
    free(gf);
    free(gb);
    free(lf);
    free(lb);

    /* Hidden states come back f32 from a bf16 encoder; a bad precision is refused. */
    kd_set_grad_enabled(0);
    kd_bert_set_precision(m, KD_BF16);
    kd_tensor *h = kd_bert_encode(m, &in);
    CHECK(h && h->dtype == KD_F32 && h->ndim == 3 && h->shape[2] == cfg.hidden_size,
          "kd_bert_encode in bf16 returns f32 [B, T, hidden]");
    CHECK(kd_bert_set_precision(m, KD_F64) != KD_OK && strstr(kd_last_error(), "expected f32 or bf16"),
          "kd_bert_set_precision(f64) is refused: %s", kd_last_error());
    kd_arena_reset();
    kd_bert_free(m);
    printf("%d passed, %d failed\n", kd_test_passed, kd_test_failed);
    kd_shutdown();
    return kd_test_failed ? 1 : 0;
}
