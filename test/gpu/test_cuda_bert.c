/* test/gpu/test_cuda_bert.c — a BERT forward and backward on the GPU against the CPU, through the engine's
 * device path (kd_bert_to_device, ops on the CUDA table, the flash attention kernels, clipping on the
 * device). Two copies of one bert-mini (4 layers, hidden 256, 4 heads of 64) from the same seed; the same
 * padded batch on both:
 *   - f32 GEMMs, eval mode: logits within 1e-3 of the CPU's, every parameter's gradient within 1e-3
 *     relative L2 error;
 *   - bf16 GEMMs (mixed precision): logits within 3e-2 relative L2, every gradient within 8e-2 relative L2
 *     and all gradients together at cosine >= 0.995 — bf16 rounds the GEMM inputs to 8 bits of mantissa;
 *   - bf16 activations (kd_bert_set_precision bf16 on both devices: the CPU's bf16 tables against the
 *     GPU's), and the GPU's bf16 activations against the CPU in f32: the bf16 tolerances above;
 *   - training mode (dropout from the same counter-based stream on both) in f32: logits within 1e-3;
 * A gradient's relative error is taken against max(its norm, 1e-4 G), G the largest gradient norm: the
 * attention key bias has a zero gradient in exact arithmetic (softmax ignores a per-row constant), so both
 * devices hold rounding noise there.
 *   - a bad token id is reported by kd_device_sync naming the id.
 * Exits 77 without a GPU. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/device.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "models/bert.h"
#include "test/testutil.h"
#include "engine/adamw.h"

#define BT 4
#define TT 48

typedef struct result {
    float *logits;
    float **grads;
    size_t np;
    int64_t *n;
} result;

static void make_batch(int32_t *ids, int32_t *mask, int32_t *labels, int vocab)
{
    uint64_t s = 99;
    for (int b = 0; b < BT; b++) {
        int len = TT - 9 * b;
        for (int t = 0; t < TT; t++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            ids[b * TT + t] = t == 0 ? 101 : t < len ? (int32_t)(1000 + (s >> 33) % (uint64_t)(vocab - 1000)) : 0;
            mask[b * TT + t] = t < len;
        }
        labels[b] = b % 2;
    }
}

/* Forward (and backward when grads) of m on its device; results copied to the host. */
static int run(kd_bert *m, int training, int grads, result *r)
{
    kd_bert_config c = *kd_bert_get_config(m);
    int32_t ids[BT * TT], mask[BT * TT], labels[BT];
    make_batch(ids, mask, labels, c.vocab_size);
    kd_bert_set_training(m, training);
    kd_manual_seed(5);
    kd_bert_input in = { .batch = BT, .seq = TT, .ids = ids, .mask = mask };
    kd_tensor *z = kd_bert_logits(m, &in);
    int64_t nb = BT;
    kd_tensor *y = kd_from_buffer_on(kd_bert_device(m), KD_I32, 1, &nb, labels);
    if (!z || !y) return 0;
    r->logits = malloc((size_t)BT * (size_t)c.num_labels * sizeof(float));
    kd_to_host(z, r->logits);
    if (grads) {
        kd_tensor *loss = kd_cross_entropy(z, y);
        if (!loss || kd_backward(loss, NULL) != KD_OK) return 0;
        kd_tensor **p = kd_bert_parameters(m, &r->np);
        r->grads = calloc(r->np, sizeof *r->grads);
        r->n = calloc(r->np, sizeof *r->n);
        for (size_t i = 0; i < r->np; i++) {
            if (!p[i]->grad) continue;
            r->n[i] = kd_numel(p[i]);
            r->grads[i] = malloc((size_t)r->n[i] * sizeof(float));
            kd_to_host(p[i]->grad, r->grads[i]);
        }
        kd_zero_grad(p, r->np);
    }
    kd_status st = kd_device_sync(kd_bert_device(m));
    kd_arena_reset();
    return st == KD_OK;
}

static void result_free(result *r)
{
    free(r->logits);
    for (size_t i = 0; r->grads && i < r->np; i++) free(r->grads[i]);
    free(r->grads);
    free(r->n);
    memset(r, 0, sizeof *r);
}

static double rel_l2(const float *a, const float *b, int64_t n)
{
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) return INFINITY;
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return sqrt(d) / fmax(sqrt(s), 1e-30);
}

static void compare(const char *what, kd_bert *cpu, kd_bert *gpu, int nl, double tol_z, double tol_g, double min_cos)
{
    result a = { 0 }, b = { 0 };
    CHECK(run(cpu, 0, 1, &a) && run(gpu, 0, 1, &b), "%s: forward and backward ran (%s)", what, kd_last_error());
    if (!a.logits || !b.logits) return;
    double ez = rel_l2(b.logits, a.logits, BT * nl);
    printf("%s: logits relative L2 error %.3g\n", what, ez);
    CHECK(ez <= tol_z, "%s: logits relative L2 error %.3g <= %.3g", what, ez, tol_z);
    double dot = 0, na = 0, nb = 0, worst = 0, G = 0;
    const char *worst_name = "";
    size_t np;
    kd_tensor **p = kd_bert_parameters(cpu, &np);
    for (size_t i = 0; i < a.np; i++) {
        double s2 = 0;
        for (int64_t j = 0; a.grads[i] && j < a.n[i]; j++) s2 += (double)a.grads[i][j] * a.grads[i][j];
        G = fmax(G, sqrt(s2));
    }
    for (size_t i = 0; i < a.np && i < b.np; i++) {
        if (!a.grads[i] || !b.grads[i]) {
            CHECK(!a.grads[i] && !b.grads[i], "%s: %s has a gradient on one device only", what, p[i]->name);
            continue;
        }
        double e = rel_l2(b.grads[i], a.grads[i], a.n[i]), sa = 0;
        for (int64_t j = 0; j < a.n[i]; j++) sa += (double)a.grads[i][j] * a.grads[i][j];
        if (isfinite(e) && sqrt(sa) < 1e-4 * G) e *= sqrt(sa) / (1e-4 * G);   /* against the floor */
        double ga = 0;
        for (int64_t j = 0; j < a.n[i]; j++) {
            dot += (double)a.grads[i][j] * b.grads[i][j];
            na += (double)a.grads[i][j] * a.grads[i][j];
            nb += (double)b.grads[i][j] * b.grads[i][j];
            ga += fabs((double)a.grads[i][j]);
        }
        if (ga == 0) continue;   /* e.g. rows of the embedding no token used: zero on both */
        if (e > worst) {
            worst = e;
            worst_name = p[i]->name;
        }
        CHECK(e <= tol_g, "%s: gradient of %s relative L2 error %.3g <= %.3g", what, p[i]->name, e, tol_g);
    }
    double cosv = dot / fmax(sqrt(na) * sqrt(nb), 1e-300);
    printf("%s: worst gradient %s at %.3g; cosine of all gradients %.6f\n", what, worst_name, worst, cosv);
    CHECK(cosv >= min_cos, "%s: cosine of all gradients %.6f >= %.4f", what, cosv, min_cos);
    result_free(&a);
    result_free(&b);
}

int main(void)
{
    if (!kd_device_available(KD_CUDA)) {
        printf("no CUDA device: skipped\n");
        return KD_TEST_SKIP;
    }
    CHECK(kd_device_open(KD_CUDA) == KD_OK, "cuda opens (%s)", kd_last_error());
    kd_bert_config c;
    kd_bert_preset("bert-mini", &c);
    c.num_labels = 2;
    kd_bert *cpu = kd_bert_new(&c, 7), *gpu = kd_bert_new(&c, 7);
    CHECK(cpu && gpu && kd_bert_to_device(gpu, KD_CUDA) == KD_OK, "two models, one on the GPU");
    if (!cpu || !gpu) return kd_test_finish("test_cuda_bert");

    kd_device_set_precision(KD_CUDA, KD_PREC_F32);
    compare("f32", cpu, gpu, c.num_labels, 1e-3, 1e-3, 0.99999);
    kd_device_set_precision(KD_CUDA, KD_PREC_BF16);
    compare("bf16", cpu, gpu, c.num_labels, 3e-2, 8e-2, 0.995);
    kd_bert_set_precision(gpu, KD_BF16);
    compare("bf16 activations (GPU) vs f32 (CPU)", cpu, gpu, c.num_labels, 3e-2, 8e-2, 0.995);
    kd_bert_set_precision(cpu, KD_BF16);
    compare("bf16 activations, GPU vs CPU", cpu, gpu, c.num_labels, 3e-2, 8e-2, 0.995);
    kd_bert_set_precision(cpu, KD_F32);
    kd_bert_set_precision(gpu, KD_F32);

    /* Training mode: dropout masks from the same stream on both devices. */
    kd_device_set_precision(KD_CUDA, KD_PREC_F32);
    result a = { 0 }, b = { 0 };
    CHECK(run(cpu, 1, 0, &a) && run(gpu, 1, 0, &b), "training-mode forwards ran");
    if (a.logits && b.logits) {
        double e = rel_l2(b.logits, a.logits, BT * c.num_labels);
        printf("f32, dropout on: logits relative L2 error %.3g\n", e);
        CHECK(e <= 1e-3, "training mode (dropout) logits relative L2 error %.3g <= 1e-3", e);
    }
    result_free(&a);
    result_free(&b);

    /* A bad token id: the embedding's device-side check. */
    int32_t ids[2] = { 5, c.vocab_size + 10 }, mask[2] = { 1, 1 };
    kd_bert_input in = { .batch = 1, .seq = 2, .ids = ids, .mask = mask };
    kd_bert_set_training(gpu, 0);
    int prev = kd_set_grad_enabled(0);
    kd_bert_logits(gpu, &in);
    kd_set_grad_enabled(prev);
    kd_status st = kd_device_sync(KD_CUDA);
    printf("bad id: %s\n", kd_last_error());
    CHECK(st != KD_OK && strstr(kd_last_error(), "id"), "a bad token id is reported at the sync: %s", kd_last_error());
    kd_arena_reset();

    kd_bert_free(cpu);
    kd_bert_free(gpu);
    kd_shutdown();
    return kd_test_finish("test_cuda_bert");
}
