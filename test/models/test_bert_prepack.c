/* test/models/test_bert_prepack.c — BERT's no-grad forward with prepacked weights and kept bf16 weights.
 *
 * A bert-mini with random weights and a padded batch (batch 1 and batch 3, odd length 19), in f32 and in
 * bf16 mixed precision: eval-mode logits and last hidden states with every weight prepacked (KD_PREPACK_ON) must equal, bit for
 * bit, the logits with nothing prepacked (KD_PREPACK_OFF), the first forward (packing, converting) and the
 * next (the kept forms) alike. In bf16 the second forward must reuse the first one's bf16 weights (the same
 * heap copy, no new conversion). A training step (train mode, backward, AdamW) must drop what was kept and
 * the next eval forward give the new weights' logits — again equal to the unpacked ones, and not the
 * old logits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/adamw.h"
#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/device.h"
#include "engine/ops.h"
#include "models/bert.h"
#include "test/testutil.h"

enum { T = 19 };

/* The logits, then the last hidden states (kd_bert_encode), as host floats. */
static float *logits_host(kd_bert *m, const kd_bert_input *in, int64_t *n)
{
    int prev = kd_set_grad_enabled(0);
    kd_tensor *z = kd_bert_logits(m, in);
    kd_tensor *h = z ? kd_bert_encode(m, in) : NULL;
    kd_set_grad_enabled(prev);
    if (!z || !h) {
        fprintf(stderr, "FAIL: forward: %s\n", kd_last_error());
        exit(1);
    }
    *n = kd_numel(z) + kd_numel(h);
    float *v = malloc((size_t)*n * sizeof *v);
    if (!v || kd_to_host(z, v) != KD_OK || kd_to_host(h, v + kd_numel(z)) != KD_OK) exit(1);
    kd_arena_reset();
    return v;
}

static int64_t differ(const float *a, const float *b, int64_t n)
{
    int64_t d = 0;
    for (int64_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], sizeof *a) != 0 || !isfinite(a[i]);
    return d;
}

/* Bytes kept with the model's parameters (bf16 copies and packed panels). */
static size_t kept_bytes(kd_bert *m)
{
    size_t np, s = 0;
    kd_tensor **p = kd_bert_parameters(m, &np);
    for (size_t i = 0; i < np; i++) s += kd_derived_bytes(p[i]);
    return s;
}

static void check(kd_bert *m, kd_dtype dt, const kd_bert_input *in, const char *what, const float *old)
{
    int64_t n;
    kd_set_prepack(KD_PREPACK_OFF);
    float *off = logits_host(m, in, &n);
    kd_set_prepack(KD_PREPACK_ON);
    float *on1 = logits_host(m, in, &n);
    size_t kept1 = kept_bytes(m);
    /* In bf16: the query weight's kept copy, before and after another forward. */
    kd_tensor *qw = NULL, *c1 = NULL, *c2 = NULL;
    size_t np;
    kd_tensor **p = kd_bert_parameters(m, &np);
    for (size_t i = 0; i < np; i++)
        if (strcmp(p[i]->name, "bert.encoder.layer.0.attention.self.query.weight") == 0) qw = p[i];
    int prev = kd_set_grad_enabled(0);
    if (dt == KD_BF16 && qw) c1 = kd_cast(qw, KD_BF16);
    float *on2 = logits_host(m, in, &n);
    if (dt == KD_BF16 && qw) c2 = kd_cast(qw, KD_BF16);
    kd_set_grad_enabled(prev);
    size_t kept2 = kept_bytes(m);
    int64_t d1 = differ(off, on1, n), d2 = differ(off, on2, n);
    CHECK(d1 == 0 && d2 == 0, "%s %s batch %lld: prepacked logits differ from the unpacked ones in %lld and %lld of "
          "%lld values", kd_dtype_name(dt), what, (long long)in->batch, (long long)d1, (long long)d2, (long long)n);
    CHECK(kept1 > 0 && kept1 == kept2, "%s %s: kept %zu bytes after the first forward, %zu after the second",
          kd_dtype_name(dt), what, kept1, kept2);
    if (dt == KD_BF16)
        CHECK(c1 && c1 == c2 && c1->persistent, "bf16 %s: the second forward did not reuse the kept bf16 weights", what);
    if (old) {
        int64_t same = n - differ(old, off, n);
        CHECK(same < n, "%s %s: logits after the step equal those before (%lld of %lld)", kd_dtype_name(dt), what,
              (long long)same, (long long)n);
    }
    printf("  %-5s %-28s batch %lld: %lld logits and hidden states bit-equal packed and unpacked, %.2f MiB kept  %s\n", kd_dtype_name(dt),
           what, (long long)in->batch, (long long)n, (double)kept1 / (1 << 20), kd_test_failed ? "FAIL" : "ok");
    free(off);
    free(on1);
    free(on2);
}

int main(void)
{
    kd_bert_config cfg;
    if (kd_bert_preset("bert-mini", &cfg) != KD_OK) return 1;
    cfg.vocab_size = 1000;   /* a small table: the test is about the linears */
    int32_t ids[3 * T], mask[3 * T], labels[3] = { 0, 1, 1 };
    for (int b = 0; b < 3; b++)
        for (int t = 0; t < T; t++) {
            int len = T - 5 * b;
            ids[b * T + t] = t == 0 ? 101 : t < len ? 200 + (b * 37 + t * 11) % 700 : 0;
            mask[b * T + t] = t < len;
        }
    printf("kernels %s\n", kd_backend_name());
    for (int prec = 0; prec < 2; prec++) {
        kd_dtype dt = prec ? KD_BF16 : KD_F32;
        kd_bert *m = kd_bert_new(&cfg, 7);
        if (!m || kd_bert_set_precision(m, dt) != KD_OK) return 1;
        kd_bert_set_training(m, 0);
        kd_bert_input one = { 1, T, ids, NULL, mask }, three = { 3, T, ids, NULL, mask };
        check(m, dt, &one, "fresh weights", NULL);
        check(m, dt, &three, "fresh weights", NULL);
        int64_t n;
        kd_set_prepack(KD_PREPACK_ON);
        float *before = logits_host(m, &three, &n);

        /* One training step: train mode, cross-entropy, backward, AdamW. */
        size_t np;
        kd_tensor **p = kd_bert_parameters(m, &np);
        kd_adamw_config ac = kd_adamw_defaults();
        kd_adamw *opt = kd_adamw_new(p, np, &ac);
        kd_bert_set_training(m, 1);
        kd_set_grad_enabled(1);
        int64_t nb = 3;
        kd_tensor *loss = kd_cross_entropy(kd_bert_logits(m, &three), kd_from_buffer(KD_I32, 1, &nb, labels));
        CHECK(opt && loss && kd_backward(loss, NULL) == KD_OK && kd_adamw_step(opt, 1e-3) == KD_OK, "training step: %s",
              kd_last_error());
        kd_arena_reset();
        kd_zero_grad(p, np);
        kd_bert_set_training(m, 0);
        CHECK(kept_bytes(m) == 0, "%s: %zu bytes of forms of the old weights kept after the AdamW step",
              kd_dtype_name(dt), kept_bytes(m));
        check(m, dt, &three, "after an AdamW step", before);
        check(m, dt, &one, "after an AdamW step", NULL);
        free(before);
        kd_adamw_free(opt);
        kd_bert_free(m);
    }
    kd_shutdown();
    return kd_test_finish("test_bert_prepack");
}
