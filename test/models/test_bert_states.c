/* test/models/test_bert_states.c — the states a forward keeps for intermediate-layer distillation, on a
 * bert-mini with random weights and a padded batch, in eval mode:
 *   - h[L] equals kd_bert_encode's last hidden states and the logits equal kd_bert_logits', all three with
 *     packing off (bit for bit; test_bert_packed compares the packed forward's states with these);
 *   - scores[l] equals scale q k^T + mask computed here in double from h[l-1] and layer l's query and key
 *     weights (1e-4 relative), with -1e9 at padding keys;
 *   - a loss on the kept states sends gradients to the layers below them and none above;
 *   - asking for a layer the model lacks is an error naming the layer count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/device.h"
#include "engine/ops.h"
#include "models/bert.h"
#include "test/testutil.h"

enum { B = 2, T = 11 };

static float *host(const kd_tensor *t)
{
    float *f = malloc((size_t)kd_numel(t) * sizeof *f);
    kd_to_host(t, f);
    return f;
}

int main(void)
{
    kd_bert_config cfg;
    kd_bert_preset("bert-mini", &cfg);
    cfg.vocab_size = 100;
    cfg.num_layers = 3;
    cfg.max_position = 32;
    kd_bert *m = kd_bert_new(&cfg, 5);
    int32_t ids[B * T], mask[B * T], lens[B] = { T, 6 };
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            ids[b * T + t] = t < lens[b] ? (b * 31 + t * 7) % 99 + 1 : 0;
            mask[b * T + t] = t < lens[b];
        }
    kd_bert_input in = { .batch = B, .seq = T, .ids = ids, .mask = mask };
    int L = cfg.num_layers, H = cfg.hidden_size, heads = cfg.num_heads, dh = H / heads;

    kd_set_grad_enabled(0);
    kd_bert_states st = { .hidden = (1u << (L + 1)) - 1, .attention = 0x6 };   /* every h; scores of layers 1, 2 */
    kd_bert_set_packed(m, 0);
    kd_tensor *z = kd_bert_logits_states(m, &in, &st), *z0 = kd_bert_logits(m, &in), *hl = kd_bert_encode(m, &in);
    kd_bert_set_packed(m, 1);
    CHECK(z && z0 && hl, "forwards: %s", kd_last_error());
    float *a = host(z), *b0 = host(z0), *c = host(st.h[L]), *d = host(hl);
    CHECK(memcmp(a, b0, (size_t)kd_numel(z) * 4) == 0, "logits with states == logits");
    CHECK(memcmp(c, d, (size_t)kd_numel(hl) * 4) == 0, "h[L] == kd_bert_encode");
    for (int l = 0; l <= L; l++) CHECK(st.h[l] && st.h[l]->ndim == 3 && st.h[l]->shape[2] == H, "h[%d] [B, T, H]", l);
    CHECK(st.scores[3] == NULL && st.scores[1] && st.scores[2], "scores of the layers asked for only");
    free(a), free(b0), free(c), free(d);

    /* scores[l] from h[l-1] in double */
    double worst = 0;
    for (int l = 1; l <= 2; l++) {
        char qn[96], kn[96], qbn[96], kbn[96];
        snprintf(qn, sizeof qn, "bert.encoder.layer.%d.attention.self.query.weight", l - 1);
        snprintf(kn, sizeof kn, "bert.encoder.layer.%d.attention.self.key.weight", l - 1);
        snprintf(qbn, sizeof qbn, "bert.encoder.layer.%d.attention.self.query.bias", l - 1);
        snprintf(kbn, sizeof kbn, "bert.encoder.layer.%d.attention.self.key.bias", l - 1);
        size_t np;
        kd_tensor **p = kd_bert_parameters(m, &np), *wq = NULL, *wk = NULL, *bq = NULL, *bk = NULL;
        for (size_t i = 0; i < np; i++) {
            if (!strcmp(p[i]->name, qn)) wq = p[i];
            if (!strcmp(p[i]->name, kn)) wk = p[i];
            if (!strcmp(p[i]->name, qbn)) bq = p[i];
            if (!strcmp(p[i]->name, kbn)) bk = p[i];
        }
        float *x = host(st.h[l - 1]), *s = host(st.scores[l]), *Wq = host(wq), *Wk = host(wk), *Bq = host(bq), *Bk = host(bk);
        double *q = malloc((size_t)B * T * H * sizeof *q), *k = malloc((size_t)B * T * H * sizeof *k);
        for (int r = 0; r < B * T; r++)
            for (int o = 0; o < H; o++) {
                double sq = Bq[o], sk = Bk[o];
                for (int i = 0; i < H; i++) {
                    sq += (double)x[r * H + i] * Wq[o * H + i];
                    sk += (double)x[r * H + i] * Wk[o * H + i];
                }
                q[r * H + o] = sq;
                k[r * H + o] = sk;
            }
        for (int bb = 0; bb < B; bb++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < T; i++)
                    for (int j = 0; j < T; j++) {
                        double want = 0;
                        for (int e = 0; e < dh; e++) want += q[(bb * T + i) * H + h * dh + e] * k[(bb * T + j) * H + h * dh + e];
                        want = want / sqrt((double)dh) + (mask[bb * T + j] ? 0.0 : -1e9);
                        double got = s[((bb * heads + h) * T + i) * T + j];
                        double err = fabs(got - want) / (1.0 + fabs(want));
                        if (!(err <= worst)) worst = err;
                    }
        free(x), free(s), free(Wq), free(Wk), free(Bq), free(Bk), free(q), free(k);
    }
    printf("attention scores vs double: worst relative error %.3g\n", worst);
    CHECK(worst < 1e-4, "scores match scale q k^T + mask (worst %.3g)", worst);
    kd_arena_reset();

    /* A loss on h[1] reaches layer 0 and the embeddings, not layer 1 and above. */
    kd_set_grad_enabled(1);
    kd_bert_states s1 = { .hidden = 0x2 };
    kd_tensor *zz = kd_bert_logits_states(m, &in, &s1);
    kd_tensor *loss = kd_mean(kd_mul(s1.h[1], s1.h[1]), 0, NULL, 0);
    CHECK(zz && loss && kd_backward(loss, NULL) == KD_OK, "backward through h[1]: %s", kd_last_error());
    size_t np;
    kd_tensor **p = kd_bert_parameters(m, &np);
    int below = 0, above = 0;
    for (size_t i = 0; i < np; i++) {
        int g = p[i]->grad != NULL;
        if (strstr(p[i]->name, "layer.0.") || strstr(p[i]->name, "embeddings.word")) below += g;
        if (strstr(p[i]->name, "layer.1.") || strstr(p[i]->name, "layer.2.")) above += g;
    }
    CHECK(below >= 17 && above == 0, "gradients below h[1] (%d) and none above (%d)", below, above);
    kd_zero_grad(p, np);
    kd_arena_reset();

    kd_bert_states bad = { .hidden = 1u << (L + 1) };
    CHECK(kd_bert_logits_states(m, &in, &bad) == NULL && strstr(kd_last_error(), "beyond the model's 3"),
          "a layer beyond the model: %s", kd_last_error());
    kd_bert_states bad0 = { .attention = 1 };
    CHECK(kd_bert_logits_states(m, &in, &bad0) == NULL, "attention of layer 0 (the embeddings) is an error");
    kd_bert_free(m);
    kd_shutdown();
    return kd_test_finish("test_bert_states");
}
