/* test/engine/test_device.c — the device path of the engine, on the simulated device (engine/device.h):
 * device memory the host cannot read outside kernels and copies, the CPU's kernels.
 *
 *  - a training step of a small model using every op family (embedding, linear, GELU, LayerNorm, attention
 *    with a mask and dropout, mean, tanh, matmul with a transposed view, softmax, log-softmax,
 *    cross-entropy, KL) run on the CPU and on the simulated device from the same values: loss, every
 *    gradient, the clipped norm and every parameter after AdamW must agree (the device sums losses and
 *    norms with its reduce kernel, the CPU on the host in double: 1e-5 relative);
 *  - between the batch's upload and the loss's read-back, the device step copies nothing either way;
 *  - the guard is real: a child process that reads device memory from the host dies;
 *  - a bad embedding id and a bad class index are reported at the next sync, naming the value;
 *  - an op mixing devices fails naming both; leaf backward, kd_arena_keep, kd_to round trips;
 *  - CUDA without a GPU (or without a CUDA build) and bf16 on the simulated device fail clearly. */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/device.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "test/testutil.h"
#include "engine/adamw.h"

#define B 4
#define T 6
#define H 2
#define D 8
#define E (H * D)
#define V 20
#define C 3

enum { P_TABLE, P_W1, P_B1, P_G, P_BETA, P_W2, NP };

typedef struct step_out {
    double loss, norm;
    float *grad[NP], *param[NP];
    int64_t n[NP];
} step_out;

static kd_tensor *make_param(int ndim, const int64_t *shape, uint64_t seed, double std, const char *name)
{
    kd_tensor *r = kd_randn(KD_F32, ndim, shape, 0.0, std, seed);
    kd_tensor *p = kd_persist(r);
    p->requires_grad = 1;
    snprintf(p->name, sizeof p->name, "%s", name);
    return p;
}

static const int32_t ids_host[B * T] = { 1, 5, 7, 2, 0, 0, 3, 3, 19, 4, 6, 0, 8, 9, 10, 11, 12, 13, 2, 4, 0, 0, 0, 0 };
static const int32_t y_host[B] = { 0, 2, 1, 1 };

/* One step on `dev`; everything the step needs is uploaded first, and the copies made between then and the
 * loss's read-back are counted into *copies. */
static int run_step(kd_device dev, step_out *o, uint64_t *copies)
{
    int64_t s_tab[2] = { V, E }, s_w1[2] = { E, E }, s_e[1] = { E }, s_w2[2] = { C, E };
    kd_tensor *p[NP] = {
        make_param(2, s_tab, 1, 0.5, "table"), make_param(2, s_w1, 2, 0.3, "w1"), make_param(1, s_e, 3, 0.1, "b1"),
        make_param(1, s_e, 4, 0.2, "ln.weight"), make_param(1, s_e, 5, 0.1, "ln.bias"), make_param(2, s_w2, 6, 0.3, "w2"),
    };
    for (int i = 0; i < NP; i++) CHECK(kd_to_device(p[i], dev) == KD_OK, "parameter %d moved to %s", i, kd_device_name(dev));

    /* The batch: ids, mask, targets, teacher logits, an input offset. */
    int64_t s_ids[2] = { B, T }, s_x[3] = { B, T, E }, s_y[1] = { B }, s_t[2] = { B, C };
    float mask_h[B * T];
    for (int i = 0; i < B * T; i++) mask_h[i] = ids_host[i] == 0 && (i % T) > 3 ? -INFINITY : 0.0f;
    kd_tensor *ids = kd_from_buffer_on(dev, KD_I32, 2, s_ids, ids_host);
    kd_tensor *mask = kd_from_buffer_on(dev, KD_F32, 2, s_ids, mask_h);
    kd_tensor *y = kd_from_buffer_on(dev, KD_I32, 1, s_y, y_host);
    kd_tensor *x = kd_to(kd_randn(KD_F32, 3, s_x, 0.0, 0.5, 7), dev);
    kd_tensor *zt = kd_to(kd_randn(KD_F32, 2, s_t, 0.0, 2.0, 8), dev);
    kd_adamw_config ac = kd_adamw_defaults();
    kd_adamw *opt = kd_adamw_new(p, NP, &ac);
    CHECK(ids && mask && y && x && zt && opt, "inputs and optimizer on %s", kd_device_name(dev));
    if (!ids || !mask || !y || !x || !zt || !opt) return 0;
    kd_device_stats s0 = kd_device_get_stats(dev);

    kd_manual_seed(11);
    kd_tensor *h = kd_add(kd_embedding(p[P_TABLE], ids), x);
    h = kd_layernorm(kd_gelu(kd_linear(h, p[P_W1], p[P_B1])), p[P_G], p[P_BETA], 1e-5);
    kd_tensor *q = kd_reshape(h, 4, (int64_t[]){ B, T, H, D });
    kd_tensor *a = kd_attention(q, q, q, mask, 1.0 / sqrt((double)D), 0.1, 1);
    a = kd_dropout(kd_reshape(a, 3, s_x), 0.1, 1);
    kd_tensor *pooled = kd_tanh(kd_mean(a, 1, (int[]){ 1 }, 0));
    kd_tensor *z = kd_linear(pooled, p[P_W2], NULL);
    kd_tensor *ce = kd_cross_entropy(z, y);
    kd_tensor *pt = kd_softmax(kd_scale(zt, 0.5));
    kd_tensor *kl = kd_kl_div(kd_log_softmax(kd_scale(z, 0.5)), pt);
    kd_tensor *gram = kd_softmax(kd_matmul(z, kd_contiguous(kd_transpose(z, 0, 1))));
    kd_tensor *loss = kd_add(kd_add(kd_scale(ce, 0.5), kd_scale(kl, 2.0)),
                             kd_scale(kd_mean(gram, 2, (int[]){ 0, 1 }, 0), 0.01));
    CHECK(loss != NULL, "graph built on %s (%s)", kd_device_name(dev), loss ? "" : kd_last_error());
    if (!loss) return 0;
    CHECK(kd_backward(loss, NULL) == KD_OK, "backward on %s", kd_device_name(dev));
    for (int i = 0; i < NP; i++) {
        o->n[i] = kd_numel(p[i]);
        o->grad[i] = malloc((size_t)o->n[i] * sizeof(float));
        o->param[i] = malloc((size_t)o->n[i] * sizeof(float));
    }
    kd_tensor *norm_t = NULL;
    kd_status cs = kd_clip_grad_norm(p, NP, 0.2, &norm_t);
    CHECK(cs == KD_OK, "clipping on %s", kd_device_name(dev));
    kd_device_stats s1 = kd_device_get_stats(dev);
    /* (gradients are read after clipping on both devices; those reads are not part of a step) */
    for (int i = 0; i < NP; i++) kd_to_host(p[i]->grad, o->grad[i]);
    kd_device_stats s2 = kd_device_get_stats(dev);
    CHECK(kd_adamw_step(opt, 1e-2) == KD_OK, "adamw on %s", kd_device_name(dev));
    kd_device_stats s3 = kd_device_get_stats(dev);
    *copies = (s1.h2d_copies - s0.h2d_copies) + (s1.d2h_copies - s0.d2h_copies) + (s3.h2d_copies - s2.h2d_copies) +
              (s3.d2h_copies - s2.d2h_copies);
    o->loss = kd_item(loss);
    o->norm = kd_item(norm_t);
    for (int i = 0; i < NP; i++) kd_to_host(p[i], o->param[i]);
    CHECK(kd_device_sync(dev) == KD_OK, "sync on %s", kd_device_name(dev));
    kd_adamw_free(opt);
    kd_arena_reset();
    for (int i = 0; i < NP; i++) kd_tensor_free(p[i]);
    return 1;
}

static void test_step_matches(void)
{
    step_out c, s;
    uint64_t cc = 0, sc = 0;
    memset(&c, 0, sizeof c);
    memset(&s, 0, sizeof s);
    if (!run_step(KD_CPU, &c, &cc) || !run_step(KD_SIM, &s, &sc)) return;
    /* One path: the same kernels in the same order on both, so the results are the same bits. */
    CHECK(isfinite(c.loss) && c.loss == s.loss, "loss cpu %.9g sim %.9g", c.loss, s.loss);
    CHECK(isfinite(c.norm) && c.norm > 0.2 && c.norm == s.norm,
          "gradient norm (clipped to 0.2) cpu %.9g sim %.9g", c.norm, s.norm);
    static const char *names[NP] = { "table", "w1", "b1", "ln.weight", "ln.bias", "w2" };
    for (int i = 0; i < NP; i++) {
        double worst_g = 0, worst_p = 0, gmax = 0;
        int nan = 0;
        for (int64_t j = 0; j < c.n[i]; j++) {
            if (!isfinite(c.grad[i][j]) || !isfinite(s.grad[i][j]) || !isfinite(s.param[i][j])) nan = 1;
            worst_g = fmax(worst_g, fabs((double)c.grad[i][j] - s.grad[i][j]));
            worst_p = fmax(worst_p, fabs((double)c.param[i][j] - s.param[i][j]));
            gmax = fmax(gmax, fabs((double)c.grad[i][j]));
        }
        CHECK(!nan && gmax > 0 && worst_g == 0,
              "%s: clipped gradients are identical (max |cpu - sim| %.3g, max |g| %.3g)", names[i], worst_g, gmax);
        CHECK(!nan && worst_p == 0, "%s: parameters after AdamW are identical (max |cpu - sim| %.3g)", names[i], worst_p);
        free(c.grad[i]); free(c.param[i]); free(s.grad[i]); free(s.param[i]);
    }
    printf("training step cpu vs sim: loss %.9g / %.9g, clipped norm %.9g / %.9g, host copies inside the device "
           "step: %llu\n", c.loss, s.loss, c.norm, s.norm, (unsigned long long)sc);
    CHECK(sc == 0, "the device step (forward, backward, clipping, AdamW) copied nothing to or from the host "
                   "(%llu copies)", (unsigned long long)sc);
}

/* A child reads device memory from the host: it must not survive (SIGSEGV, or a sanitizer's report). */
static void test_guard(void)
{
    int64_t n = 64;
    kd_tensor *t = kd_full_on(KD_SIM, KD_F32, 1, &n, 3.0);
    kd_tensor *h = kd_full(KD_F32, 1, &n, 3.0);
    CHECK(t && t->device == KD_SIM && h, "tensors on sim and cpu");
    if (!t || !h) return;
    for (int which = 0; which < 2; which++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            volatile float v = ((const float *)kd_data(which ? h : t))[5];
            _exit(v == 3.0f ? 0 : 3);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        int survived = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        printf("host read of %s memory: the reader %s\n", which ? "host" : "device",
               survived ? "read 3.0" : WIFSIGNALED(status) ? "was killed by a signal" : "exited with an error");
        if (which == 0)
            CHECK(!survived && (WIFSIGNALED(status) || WEXITSTATUS(status) != 3),
                  "host read of device memory stopped the reader (%s %d)", WIFSIGNALED(status) ? "signal" : "exit",
                  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        else
            CHECK(survived, "host read of host memory in the same harness reads 3.0");
    }
    float back[64];
    CHECK(kd_to_host(t, back) == KD_OK && back[5] == 3.0f && back[63] == 3.0f, "kd_to_host reads the device's values");
    kd_arena_reset();
}

static void test_errors(void)
{
    int64_t s_tab[2] = { V, E }, s_ids[1] = { 5 };
    int32_t bad[5] = { 1, 2, 99, 3, -4 };
    kd_tensor *table = kd_to(kd_randn(KD_F32, 2, s_tab, 0, 1, 1), KD_SIM);
    kd_tensor *ids = kd_from_buffer_on(KD_SIM, KD_I32, 1, s_ids, bad);
    kd_tensor *out = kd_embedding(table, ids);
    CHECK(out != NULL, "embedding with a bad id is queued (the host cannot see the ids)");
    kd_status st = kd_device_sync(KD_SIM);
    CHECK(st == KD_ERR_ARG && strstr(kd_last_error(), "embedding of table [20, 16], ids [5]: id 99 at position 2"),
          "the bad id is reported at the sync: %s", kd_last_error());
    CHECK(kd_device_sync(KD_SIM) == KD_OK, "the error is reported once");

    int64_t s_z[2] = { 2, 3 }, s_y[1] = { 2 };
    int32_t yb[2] = { 1, 3 };
    kd_tensor *ce = kd_cross_entropy(kd_to(kd_randn(KD_F32, 2, s_z, 0, 1, 2), KD_SIM),
                                     kd_from_buffer_on(KD_SIM, KD_I32, 1, s_y, yb));
    (void)ce;
    st = kd_device_sync(KD_SIM);
    CHECK(st == KD_ERR_ARG && strstr(kd_last_error(), "3 at position 1"),
          "the bad class index is reported at the sync: %s", kd_last_error());

    kd_tensor *c = kd_ones(KD_F32, 1, s_ids);
    kd_tensor *d = kd_full_on(KD_SIM, KD_F32, 1, s_ids, 1.0);
    CHECK(kd_add(c, d) == NULL && strstr(kd_last_error(), "add: b is on sim, the op's other inputs on cpu"),
          "mixing devices fails naming both: %s", kd_last_error());

    /* Leaf backward twice: the gradient accumulates on the device. */
    kd_tensor *leaf = kd_persist(kd_full_on(KD_SIM, KD_F32, 0, NULL, 2.0));
    leaf->requires_grad = 1;
    CHECK(kd_backward(leaf, NULL) == KD_OK && kd_backward(leaf, NULL) == KD_OK && kd_item(leaf->grad) == 2.0,
          "a leaf's gradient accumulates on the device (got %g)", leaf->grad ? kd_item(leaf->grad) : NAN);
    kd_tensor_free(leaf);

    /* Inference memory reuse on the device keeps the values. */
    int prev = kd_set_grad_enabled(0);
    kd_arena_mark mk = kd_arena_mark_now();
    kd_tensor *big = kd_scale(kd_to(kd_randn(KD_F32, 2, s_tab, 0, 1, 3), KD_SIM), 2.0);
    kd_tensor *kept = kd_arena_keep(big, mk);
    kd_tensor *ref = kd_scale(kd_to(kd_randn(KD_F32, 2, s_tab, 0, 1, 3), KD_SIM), 2.0);
    float a[V * E], b[V * E];
    CHECK(kept && ref && kd_to_host(kept, a) == KD_OK && kd_to_host(ref, b) == KD_OK && memcmp(a, b, sizeof a) == 0,
          "kd_arena_keep on the device keeps the values");
    kd_set_grad_enabled(prev);
    kd_arena_reset();

    CHECK(kd_device_set_precision(KD_SIM, KD_PREC_TF32) != KD_OK && strstr(kd_last_error(), "only the cuda device"),
          "tf32 on the simulated device fails: %s", kd_last_error());
    CHECK(kd_device_set_precision(KD_SIM, KD_PREC_BF16) == KD_OK && kd_device_compute_dtype(KD_SIM) == KD_BF16 &&
          kd_device_precision(KD_SIM) == KD_PREC_BF16, "bf16 on the simulated device: bf16 activations");
    CHECK(kd_device_set_precision(KD_SIM, KD_PREC_DEFAULT) == KD_OK && kd_device_compute_dtype(KD_SIM) == KD_F32,
          "the simulated device's default precision is f32");
    kd_precision pr;
    CHECK(kd_precision_parse("f16", &pr) != KD_OK && strstr(kd_last_error(), "expected f32, tf32 or bf16"),
          "an unknown precision fails: %s", kd_last_error());
    if (!kd_device_available(KD_CUDA))
        CHECK(kd_device_open(KD_CUDA) != KD_OK && strstr(kd_last_error(), "device cuda:"),
              "cuda without a GPU fails clearly: %s", kd_last_error());
    kd_device dv;
    CHECK(kd_device_parse("tpu", &dv) != KD_OK && strstr(kd_last_error(), "expected cpu, cuda or sim"),
          "an unknown device name fails: %s", kd_last_error());
}

int main(void)
{
    if (kd_device_open(KD_SIM) != KD_OK) {
        printf("sim device unavailable: %s\n", kd_last_error());
        return 1;
    }
    test_step_matches();
    test_guard();
    test_errors();
    kd_shutdown();
    return kd_test_finish("test_device");
}
