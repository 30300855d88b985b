/* test/train/test_optim.c — AdamW against the update written out here in double (decay on weights, none on
 * biases and LayerNorm), the state file round trip, gradient clipping and its NaN guard, the linear
 * schedule with warmup, and the metrics on a hand-counted confusion matrix. */
#include <math.h>
#include <stdio.h>
#include <unistd.h>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "test/testutil.h"
#include "engine/adamw.h"
#include "train/metrics.h"
#include "train/schedule.h"

static void set_grad(kd_tensor *p, const float *g)
{
    float *d = kd_grad_buf(p);
    for (int64_t i = 0; i < kd_numel(p); i++) d[i] = g[i];
}

static void adamw(void)
{
    CHECK(kd_adamw_decays("bert.encoder.layer.0.attention.self.query.weight"), "weights decay");
    CHECK(!kd_adamw_decays("bert.encoder.layer.0.attention.self.query.bias"), "biases do not");
    CHECK(!kd_adamw_decays("bert.embeddings.LayerNorm.weight"), "LayerNorm weights do not");

    int64_t n = 5;
    kd_tensor *w = kd_param(KD_F32, 1, &n, "classifier.weight"), *b = kd_param(KD_F32, 1, &n, "classifier.bias");
    double rw[5], rb[5], mw[5] = { 0 }, vw[5] = { 0 }, mb[5] = { 0 }, vb[5] = { 0 };
    for (int i = 0; i < 5; i++) {
        ((float *)kd_data(w))[i] = (float)(0.5 - 0.2 * i);
        ((float *)kd_data(b))[i] = (float)(0.1 * i);
        rw[i] = ((float *)kd_data(w))[i];
        rb[i] = ((float *)kd_data(b))[i];
    }
    kd_tensor *params[2] = { w, b };
    kd_adamw_config cfg = { .beta1 = 0.9, .beta2 = 0.98, .eps = 1e-6, .weight_decay = 0.1 };
    kd_adamw *o = kd_adamw_new(params, 2, &cfg);
    CHECK(o != NULL, "adamw_new: %s", kd_last_error());
    if (!o) return;
    for (int t = 1; t <= 4; t++) {
        float g[5];
        for (int i = 0; i < 5; i++) g[i] = (float)(0.3 * sin(t + i) + 0.01 * i);
        set_grad(w, g);
        set_grad(b, g);
        double lr = 1e-2 / t;
        CHECK(kd_adamw_step(o, lr) == KD_OK, "step");
        for (int i = 0; i < 5; i++) {
            double b1 = 1 - pow(0.9, t), b2 = 1 - pow(0.98, t);
            mw[i] = 0.9 * mw[i] + 0.1 * g[i];
            vw[i] = 0.98 * vw[i] + 0.02 * (double)g[i] * g[i];
            rw[i] = rw[i] * (1 - lr * 0.1) - lr * (mw[i] / b1) / (sqrt(vw[i] / b2) + 1e-6);
            mb[i] = 0.9 * mb[i] + 0.1 * g[i];
            vb[i] = 0.98 * vb[i] + 0.02 * (double)g[i] * g[i];
            rb[i] = rb[i] - lr * (mb[i] / b1) / (sqrt(vb[i] / b2) + 1e-6);
        }
        kd_zero_grad(params, 2);
    }
    for (int i = 0; i < 5; i++) {
        CHECK_CLOSE(((float *)kd_data(w))[i], rw[i], 1e-6, 1e-5, "weight after 4 AdamW steps");
        CHECK_CLOSE(((float *)kd_data(b))[i], rb[i], 1e-6, 1e-5, "bias after 4 AdamW steps (no decay)");
    }

    /* State round trip: a second optimizer loaded from the file takes the identical next step. */
    char path[] = "/tmp/kd_test_adamw_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "temp file");
    if (fd >= 0) close(fd);
    CHECK(kd_adamw_save(o, path) == KD_OK, "save: %s", kd_last_error());
    kd_tensor *w2 = kd_persist(w), *b2 = kd_persist(b);
    w2->requires_grad = b2->requires_grad = 1;
    kd_tensor *params2[2] = { w2, b2 };
    kd_adamw *o2 = kd_adamw_new(params2, 2, &cfg);
    CHECK(o2 && kd_adamw_load(o2, path) == KD_OK, "load: %s", kd_last_error());
    CHECK(o2 && o2->step == 4, "step count restored");
    float g[5] = { 0.1f, -0.2f, 0.3f, -0.4f, 0.5f };
    set_grad(w, g);
    set_grad(b, g);
    set_grad(w2, g);
    set_grad(b2, g);
    kd_adamw_step(o, 1e-3);
    if (o2) kd_adamw_step(o2, 1e-3);
    CHECK(memcmp(kd_data(w), kd_data(w2), 5 * sizeof(float)) == 0 && memcmp(kd_data(b), kd_data(b2), 5 * sizeof(float)) == 0,
          "resumed optimizer takes the bit-identical step");
    /* A state file for other parameters is refused, naming the parameter. */
    snprintf(w2->name, sizeof w2->name, "other.weight");
    CHECK(o2 && kd_adamw_load(o2, path) == KD_ERR_FORMAT && strstr(kd_last_error(), "other.weight"),
          "mismatched state names the parameter: %s", kd_last_error());
    remove(path);
    kd_adamw_free(o2);
    kd_tensor_free(w2);
    kd_tensor_free(b2);

    /* Clipping: norm of [3, 4] and [0...] scaled to 1. */
    float g3[5] = { 3, 4, 0, 0, 0 }, z[5] = { 0 };
    set_grad(w, g3);
    set_grad(b, z);
    kd_tensor *nt = NULL;
    CHECK(kd_clip_grad_norm(params, 2, 1.0, &nt) == KD_OK && nt, "clip");
    double norm = kd_item(nt);
    CHECK_CLOSE(norm, 5.0, 1e-9, 0, "global norm");
    CHECK(kd_check_grad_norm(params, 2, norm) == KD_OK, "a finite norm passes the check");
    CHECK_CLOSE(((float *)kd_data(w->grad))[0], 0.6, 1e-6, 0, "clipped g[0]");
    CHECK_CLOSE(((float *)kd_data(w->grad))[1], 0.8, 1e-6, 0, "clipped g[1]");
    float gn[5] = { 1, NAN, 0, 0, 0 };
    set_grad(b, gn);
    CHECK(kd_clip_grad_norm(params, 2, 1.0, &nt) == KD_OK && nt && isnan(kd_item(nt)), "a NaN gradient gives a NaN norm");
    CHECK(kd_check_grad_norm(params, 2, kd_item(nt)) == KD_ERR_STATE && strstr(kd_last_error(), "classifier.bias"),
          "a NaN gradient norm is an error naming the parameter: %s", kd_last_error());
    kd_adamw_free(o);
    kd_tensor_free(w);
    kd_tensor_free(b);
}

static void schedule(void)
{
    kd_schedule s = kd_schedule_linear(1e-3, 100, -1, 0.1);
    CHECK(s.warmup_steps == 10, "ratio 0.1 of 100 steps is 10 warmup steps");
    CHECK_CLOSE(kd_schedule_lr(&s, 0), 0.0, 1e-15, 0, "lr at step 0");
    CHECK_CLOSE(kd_schedule_lr(&s, 5), 5e-4, 1e-15, 1e-12, "lr halfway through warmup");
    CHECK_CLOSE(kd_schedule_lr(&s, 10), 1e-3, 1e-15, 1e-12, "lr at the peak");
    CHECK_CLOSE(kd_schedule_lr(&s, 55), 5e-4, 1e-15, 1e-12, "lr halfway down");
    CHECK_CLOSE(kd_schedule_lr(&s, 100), 0.0, 1e-15, 0, "lr at the end");
    CHECK_CLOSE(kd_schedule_lr(&s, 150), 0.0, 1e-15, 0, "lr past the end");
    kd_schedule s0 = kd_schedule_linear(2e-5, 10, 0, 0.5);
    CHECK(s0.warmup_steps == 0, "explicit warmup steps win over the ratio");
    CHECK_CLOSE(kd_schedule_lr(&s0, 0), 2e-5, 1e-15, 1e-12, "no warmup: full lr at step 0");
}

static void metrics(void)
{
    kd_metrics m;
    CHECK(kd_metrics_init(&m, 3) == KD_OK, "init");
    /* truth -> predicted: class 0: 3 right, 1 as 1; class 1: 2 right; class 2: 1 right, 1 as 0. */
    const int pairs[][2] = { { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 1 }, { 1, 1 }, { 1, 1 }, { 2, 2 }, { 2, 0 } };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) kd_metrics_add(&m, pairs[i][0], pairs[i][1]);
    CHECK(kd_metrics_add(&m, 3, 0) == KD_ERR_INDEX, "label 3 of 3 is an error");
    kd_metrics_finish(&m);
    CHECK_CLOSE(m.accuracy, 6.0 / 8.0, 1e-12, 0, "accuracy");
    double p[3] = { 3.0 / 4, 2.0 / 3, 1.0 }, r[3] = { 3.0 / 4, 1.0, 1.0 / 2 };
    double f1 = 0, rec = 0;
    for (int c = 0; c < 3; c++) {
        CHECK_CLOSE(m.precision[c], p[c], 1e-12, 0, "precision");
        CHECK_CLOSE(m.recall[c], r[c], 1e-12, 0, "recall");
        f1 += 2 * p[c] * r[c] / (p[c] + r[c]);
        rec += r[c];
    }
    CHECK_CLOSE(m.macro_f1, f1 / 3, 1e-12, 0, "macro-F1");
    CHECK_CLOSE(m.macro_recall, rec / 3, 1e-12, 0, "macro-recall");
    CHECK(m.support[0] == 4 && m.support[1] == 2 && m.support[2] == 2, "support");
    kd_metrics_reset(&m);
    kd_metrics_add(&m, 0, 0);
    kd_metrics_finish(&m);
    CHECK_CLOSE(m.macro_f1, 1.0 / 3, 1e-12, 0, "absent classes count 0 in the macro mean");
    kd_metrics_free(&m);
}

int main(void)
{
    adamw();
    schedule();
    metrics();
    kd_shutdown();
    return kd_test_finish("test_optim");
}
