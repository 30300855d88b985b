/* test/engine/test_train.c — a small model (embedding, one self-attention block with residual and
 * LayerNorm, a GELU MLP) trained by SGD on a synthetic task: does the token 0 occur after token 1 in the
 * sequence? (order matters, so bag-of-words is not enough). The loss must fall below a stated threshold,
 * and 200 steps must hold memory flat: the step arena and the heap are the same size after step 2 and
 * after step 400. */
#include <string.h>
#include <sys/resource.h>

#include "engine/backend.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "kernels/rng.h"
#include "test/testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define KD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KD_ASAN 1
#endif
#endif

#define V 6
#define T 8
#define D 16
#define H 2
#define BATCH 32
#define STEPS 400

#define S(...) ((const int64_t[]){ __VA_ARGS__ })

enum { EMB, POS, WQ, BQ, WK, BK, WV, BV, WO, BO, LNG, LNB, W1, B1, W2, B2, NPARAM };

static kd_tensor *P[NPARAM];

static void init_params(void)
{
    const int64_t shapes[NPARAM][2] = { { V, D }, { T, D }, { D, D }, { D, 0 }, { D, D }, { D, 0 }, { D, D }, { D, 0 },
                                        { D, D }, { D, 0 }, { D, 0 }, { D, 0 }, { 32, D }, { 32, 0 }, { 2, 32 }, { 2, 0 } };
    for (int i = 0; i < NPARAM; i++) {
        int nd = shapes[i][1] ? 2 : 1;
        if (nd == 2) P[i] = kd_persist(kd_trunc_normal(KD_F32, 2, shapes[i], 0.3, -0.6, 0.6, 100 + (uint64_t)i));
        else P[i] = kd_persist(kd_full(KD_F32, 1, shapes[i], i == LNG ? 1.0 : 0.0));
        P[i]->requires_grad = 1;
    }
    kd_arena_reset();
}

/* Batch number `step`: ids [BATCH, T]; label 1 when some 0 comes after some 1. */
static void make_batch(uint64_t step, int32_t *ids, int32_t *labels)
{
    for (int b = 0; b < BATCH; b++) {
        int seen1 = 0, y = 0;
        for (int t = 0; t < T; t++) {
            int32_t id = (int32_t)(kd_rng_u32(42, (step * BATCH + (uint64_t)b) * T + (uint64_t)t) % V);
            ids[b * T + t] = id;
            if (id == 1) seen1 = 1;
            if (id == 0 && seen1) y = 1;
        }
        labels[b] = y;
    }
}

static kd_tensor *forward(const int32_t *ids_buf, const int32_t *labels_buf)
{
    kd_tensor *ids = kd_from_buffer(KD_I32, 2, S(BATCH, T), ids_buf);
    kd_tensor *labels = kd_from_buffer(KD_I32, 1, S(BATCH), labels_buf);
    kd_tensor *x = kd_add(kd_embedding(P[EMB], ids), P[POS]);                     /* [B, T, D] */
    kd_tensor *q = kd_reshape(kd_linear(x, P[WQ], P[BQ]), 4, S(BATCH, T, H, D / H));
    kd_tensor *k = kd_reshape(kd_linear(x, P[WK], P[BK]), 4, S(BATCH, T, H, D / H));
    kd_tensor *v = kd_reshape(kd_linear(x, P[WV], P[BV]), 4, S(BATCH, T, H, D / H));
    kd_tensor *a = kd_reshape(kd_attention(q, k, v, NULL, 1.0 / sqrt(D / H), 0.1, 1), 3, S(BATCH, T, D));
    x = kd_layernorm(kd_add(x, kd_linear(a, P[WO], P[BO])), P[LNG], P[LNB], 1e-5);
    kd_tensor *pooled = kd_mean(x, 1, (const int[]){ 1 }, 0);                        /* [B, D] */
    kd_tensor *logits = kd_linear(kd_gelu(kd_linear(pooled, P[W1], P[B1])), P[W2], P[B2]);
    return kd_cross_entropy(logits, labels);
}

static long maxrss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

int main(void)
{
    kd_manual_seed(7);
    init_params();
    int32_t ids[BATCH * T], labels[BATCH];
    double first = 0, last = 0;
    size_t cap2 = 0, peak2 = 0, heap2 = 0;
    long rss2 = 0;
    for (int step = 0; step < STEPS; step++) {
        make_batch((uint64_t)step, ids, labels);
        kd_zero_grad(P, NPARAM);
        kd_tensor *loss = forward(ids, labels);
        if (!loss || kd_backward(loss, NULL) != KD_OK) {
            CHECK(0, "step %d failed: %s", step, kd_last_error());
            break;
        }
        double l = kd_item(loss);
        if (step < 10) first += l / 10;
        if (step >= STEPS - 10) last += l / 10;
        for (int i = 0; i < NPARAM; i++) {   /* SGD, lr 0.3 */
            float *w = kd_data(P[i]);
            const float *g = kd_data(P[i]->grad);
            for (int64_t j = 0; j < kd_numel(P[i]); j++) w[j] -= 0.3f * g[j];
        }
        kd_arena_reset();
        if (step == 1) {
            cap2 = kd_arena_capacity();
            peak2 = kd_arena_peak();
            heap2 = kd_heap_bytes();
            rss2 = maxrss_kb();
        }
    }
    printf("loss: first 10 steps %.4f, last 10 steps %.4f (want < 0.3)\n", first, last);
    CHECK(isfinite(last) && last < 0.3, "loss after %d steps is %.4f, want < 0.3", STEPS, last);
    CHECK(last < first - 0.15, "loss fell from %.4f to %.4f, want a drop of at least 0.15", first, last);
    printf("memory after step 2: arena %zu B held (peak use %zu), heap %zu B, maxrss %ld KiB\n", cap2, peak2, heap2, rss2);
    printf("memory after step %d: arena %zu B held (peak use %zu), heap %zu B, maxrss %ld KiB\n", STEPS,
           kd_arena_capacity(), kd_arena_peak(), kd_heap_bytes(), maxrss_kb());
    CHECK(kd_arena_capacity() == cap2, "arena held %zu bytes after step 2, %zu after step %d", cap2, kd_arena_capacity(), STEPS);
    CHECK(kd_arena_peak() == peak2, "arena peak use grew from %zu to %zu", peak2, kd_arena_peak());
    CHECK(kd_heap_bytes() == heap2, "heap tensors grew from %zu to %zu bytes", heap2, kd_heap_bytes());
#if defined(KD_ASAN)
    /* AddressSanitizer quarantines freed blocks, so RSS grows by design there; the arena and heap checks
     * above still hold. */
    printf("max RSS check skipped under AddressSanitizer\n");
#else
    CHECK(maxrss_kb() - rss2 < 4096, "max RSS grew by %ld KiB after step 2 (want < 4 MiB)", maxrss_kb() - rss2);
#endif
    for (int i = 0; i < NPARAM; i++) kd_tensor_free(P[i]);
    kd_shutdown();
    return kd_test_finish("test_train");
}
