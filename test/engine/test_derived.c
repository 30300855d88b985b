/* test/engine/test_derived.c — forms kept with heap tensors (engine/derived.c): prepacked weights and the
 * kept bf16 copy of a no-grad cast.
 *
 * Prepacked weights: a no-grad kd_linear on a heap weight, f32 and bf16, at odd shapes (1, 7, 129, 513
 * columns; k across the GEMM's KC block, n across NC) must give the same bits with KD_PREPACK_ON as with
 * KD_PREPACK_OFF, the first call (packing) and the next (the kept panels) alike, and match the reference
 * table within the GEMM tolerance. Every way a weight changes — kd_copy_into, kd_fill, a write through
 * kd_data() followed by kd_mark_modified, a copy into a view of it, an AdamW step, a move to the simulated
 * device and back — must give the new weights' product (bit-equal to the unpacked one), never the old.
 * AUTO packs products of at most KD_PREPACK_AUTO_ROWS rows, then uses the panels at any row count;
 * a product with a graph packs nothing.
 *
 * The kept cast: kd_cast(w, bf16) without a graph returns the same heap tensor each call, holding
 * round_bf16(w), until w changes; with a graph it is an arena tensor in the graph as before. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/adamw.h"
#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/device.h"
#include "engine/ops.h"
#include "engine/tensor.h"
#include "kernels/bf16.h"
#include "test/testutil.h"

/* A heap weight [rows, cols] with values from seed (requires_grad, as a model's parameters). */
static kd_tensor *make_param(kd_dtype dt, int64_t rows, int64_t cols, uint64_t seed, const char *name)
{
    int64_t shape[2] = { rows, cols };
    kd_tensor *p = kd_param(dt, cols > 0 ? 2 : 1, shape, name);
    kd_tensor *v = kd_rand_uniform(KD_F32, cols > 0 ? 2 : 1, shape, -1, 1, seed);
    if (!p || !v || kd_copy_into(p, dt == KD_F32 ? v : kd_cast(v, dt)) != KD_OK) {
        fprintf(stderr, "FAIL: cannot make %s: %s\n", name, kd_last_error());
        exit(1);
    }
    return p;
}

/* The linear's output as host floats (bf16 widened), in a malloc'd buffer. */
static float *linear_host(kd_tensor *x, kd_tensor *w, kd_tensor *b)
{
    kd_tensor *y = kd_linear(x, w, b);
    if (!y) {
        fprintf(stderr, "FAIL: linear: %s\n", kd_last_error());
        exit(1);
    }
    y = kd_cast(y, KD_F32);
    int64_t n = kd_numel(y);
    float *h = malloc((size_t)(n > 0 ? n : 1) * sizeof *h);
    if (!h || kd_to_host(y, h) != KD_OK) exit(1);
    return h;
}

static int64_t differ_bits(const float *a, const float *b, int64_t n)
{
    int64_t d = 0;
    for (int64_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], sizeof a[i]) != 0;
    return d;
}

/* The product with prepacking off, and with it on (packing, then the kept panels): the same bits. */
static void check_same(const char *what, kd_tensor *x, kd_tensor *w, kd_tensor *b, int64_t n, const float *must_differ)
{
    kd_set_prepack(KD_PREPACK_OFF);
    float *off = linear_host(x, w, b);
    kd_set_prepack(KD_PREPACK_ON);
    float *on1 = linear_host(x, w, b), *on2 = linear_host(x, w, b);
    int64_t d1 = differ_bits(off, on1, n), d2 = differ_bits(off, on2, n), nan = 0;
    for (int64_t i = 0; i < n; i++) nan += !isfinite(off[i]);
    CHECK(nan == 0, "%s: %lld outputs not finite", what, (long long)nan);
    CHECK(d1 == 0 && d2 == 0, "%s: prepacked product differs from the unpacked one in %lld (packing call) and "
          "%lld (kept panels) of %lld values", what, (long long)d1, (long long)d2, (long long)n);
    if (must_differ) {
        int64_t same = n - differ_bits(off, must_differ, n);
        CHECK(same < n, "%s: the product after the change equals the one before (%lld of %lld values the same)",
              what, (long long)same, (long long)n);
    }
    printf("  %-62s %6lld values bit-equal, packed+kept %8zu bytes  %s\n", what, (long long)n,
           kd_derived_bytes(w), d1 || d2 || nan ? "FAIL" : "ok");
    free(off);
    free(on1);
    free(on2);
}

static void shapes(kd_dtype dt)
{
    static const int64_t sh[][3] = {   /* rows, in (k), out (n) */
        { 1, 1, 1 }, { 7, 13, 5 }, { 129, 65, 33 }, { 3, 300, 17 }, { 130, 513, 70 }, { 2, 40, 3100 },
        { 128, 768, 129 },
    };
    for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
        int64_t rows = sh[s][0], in = sh[s][1], out = sh[s][2];
        kd_tensor *w = make_param(dt, out, in, 11 + s, "w"), *b = make_param(dt, out, 0, 23 + s, "b");
        int64_t xs[2] = { rows, in };
        kd_tensor *x = kd_rand_uniform(KD_F32, 2, xs, -1, 1, 31 + s);
        if (dt != KD_F32) x = kd_cast(x, dt);
        char what[96];
        snprintf(what, sizeof what, "%s linear [%lld, %lld] x [%lld, %lld]^T + b", kd_dtype_name(dt), (long long)rows,
                 (long long)in, (long long)out, (long long)in);
        check_same(what, x, w, b, rows * out, NULL);
        /* The reference table, within the GEMM's tolerance (sum of k products, inputs in [-1, 1)). */
        float *fast = linear_host(x, w, b);
        kd_backend_select("ref");
        float *ref = linear_host(x, w, b);
        kd_backend_select("best");
        double tol = dt == KD_F32 ? 1e-5 * (double)(in + 1) : 1e-2 * (1.0 + sqrt((double)in));
        int64_t bad = 0;
        for (int64_t i = 0; i < rows * out; i++) bad += !kd_close(fast[i], ref[i], tol, dt == KD_F32 ? 1e-5 : 8e-3);
        CHECK(bad == 0, "%s: %lld values off the reference table", what, (long long)bad);
        free(fast);
        free(ref);
        kd_tensor_free(w);
        kd_tensor_free(b);
        kd_arena_reset();
    }
}

/* Every way of changing the weight gives the new product. */
static void invalidation(kd_dtype dt)
{
    const int64_t rows = 9, in = 70, out = 37, n = rows * out;
    kd_tensor *w = make_param(dt, out, in, 5, "w"), *b = make_param(dt, out, 0, 6, "b");
    int64_t xs[2] = { rows, in };
    kd_tensor *x = kd_rand_uniform(KD_F32, 2, xs, -1, 1, 7);
    if (dt != KD_F32) x = kd_cast(x, dt);
    char what[96];
    kd_set_prepack(KD_PREPACK_ON);
    float *before = linear_host(x, w, b);
    CHECK(kd_derived_bytes(w) > 0 || !kd_kernels_for(KD_CPU, dt)->gemm_pack_b, "%s: no packed form kept",
          kd_dtype_name(dt));

    snprintf(what, sizeof what, "%s after kd_copy_into(w, new values)", kd_dtype_name(dt));
    kd_tensor *w2 = make_param(dt, out, in, 99, "w2");
    kd_copy_into(w, w2);
    kd_tensor_free(w2);
    check_same(what, x, w, b, n, before);
    free(before);
    before = linear_host(x, w, b);

    snprintf(what, sizeof what, "%s after a write through kd_data + kd_mark_modified", kd_dtype_name(dt));
    if (dt == KD_F32) ((float *)kd_data(w))[3 * in + 4] += 0.5f;
    else ((kd_bf16 *)kd_data(w))[3 * in + 4] = kd_f32_to_bf16(kd_bf16_to_f32(((kd_bf16 *)kd_data(w))[3 * in + 4]) + 0.5f);
    kd_mark_modified(w);
    check_same(what, x, w, b, n, before);
    free(before);
    before = linear_host(x, w, b);

    snprintf(what, sizeof what, "%s after kd_copy_into a view (row 5 of w)", kd_dtype_name(dt));
    int64_t rs[1] = { in }, rst[1] = { 1 };
    kd_tensor *row = kd_view_of(w, 1, rs, rst, 5 * in);
    kd_fill(kd_view_of(row, 1, rs, rst, 5 * in), 0.25);   /* kd_fill through a view of the view */
    check_same(what, x, w, b, n, before);
    free(before);
    before = linear_host(x, w, b);

    snprintf(what, sizeof what, "%s after kd_fill(w, 0.125)", kd_dtype_name(dt));
    kd_fill(w, 0.125);
    check_same(what, x, w, b, n, before);
    free(before);
    before = linear_host(x, w, b);

    if (dt == KD_F32) {
        snprintf(what, sizeof what, "%s after an AdamW step", kd_dtype_name(dt));
        kd_tensor *wr = make_param(dt, out, in, 41, "wr");   /* not constant: AdamW moves every element */
        kd_copy_into(w, wr);
        kd_tensor_free(wr);
        free(before);
        before = linear_host(x, w, b);
        kd_set_grad_enabled(1);
        kd_tensor *y = kd_linear(x, w, b);
        kd_tensor *loss = kd_sum(kd_mul(y, y), 0, NULL, 0);
        kd_set_grad_enabled(0);
        kd_adamw_config c = kd_adamw_defaults();
        kd_tensor *ps[2] = { w, b };
        kd_adamw *opt = kd_adamw_new(ps, 2, &c);
        CHECK(loss && opt && kd_backward(loss, NULL) == KD_OK && kd_adamw_step(opt, 1e-2) == KD_OK, "AdamW step: %s",
              kd_last_error());
        CHECK(kd_derived_bytes(w) == 0, "AdamW step left %zu bytes of forms of the old weight", kd_derived_bytes(w));
        check_same(what, x, w, b, n, before);
        kd_adamw_free(opt);
        kd_zero_grad(ps, 2);

        snprintf(what, sizeof what, "%s after a move to the simulated device and back", kd_dtype_name(dt));
        free(before);
        before = linear_host(x, w, b);
        size_t kept = kd_derived_bytes(w);
        kd_status st = kd_device_open(KD_SIM);
        if (st == KD_OK) st = kd_to_device(w, KD_SIM);
        if (st == KD_OK) st = kd_to_device(w, KD_CPU);
        CHECK(st == KD_OK, "device moves: %s", kd_last_error());
        CHECK(kept > 0 ? kd_derived_bytes(w) == 0 : 1, "a device move kept %zu bytes of forms", kd_derived_bytes(w));
        kd_set_prepack(KD_PREPACK_OFF);
        float *again = linear_host(x, w, b);
        CHECK(differ_bits(before, again, n) == 0, "%s: values changed by the moves", what);
        free(again);
        check_same(what, x, w, b, n, NULL);
    }
    free(before);
    kd_tensor_free(w);
    kd_tensor_free(b);
    kd_arena_reset();
}

/* AUTO: small products pack, large ones do not unless the panels exist; a graph packs nothing. */
static void policy(void)
{
    const int64_t in = 64, out = 48;
    kd_tensor *w = make_param(KD_F32, out, in, 3, "w");
    int has_pack = kd_kernels_for(KD_CPU, KD_F32)->gemm_pack_b != NULL;
    int64_t big[2] = { KD_PREPACK_AUTO_ROWS + 1, in }, small[2] = { 128, in };
    kd_tensor *xb = kd_rand_uniform(KD_F32, 2, big, -1, 1, 8), *xs = kd_rand_uniform(KD_F32, 2, small, -1, 1, 9);
    kd_set_prepack(KD_PREPACK_AUTO);
    kd_set_grad_enabled(1);
    kd_linear(xs, w, NULL);
    CHECK(kd_derived_bytes(w) == 0, "a product with a graph packed its weight (%zu bytes)", kd_derived_bytes(w));
    kd_set_grad_enabled(0);
    kd_linear(xb, w, NULL);
    CHECK(kd_derived_bytes(w) == 0, "AUTO packed for a product of %lld rows", (long long)big[0]);
    kd_linear(xs, w, NULL);
    CHECK((kd_derived_bytes(w) > 0) == has_pack, "AUTO %s for a product of 128 rows", has_pack ? "did not pack" : "packed");
    size_t kept = kd_derived_bytes(w);
    check_same("f32 AUTO: a large product on the kept panels", xb, w, NULL, big[0] * out, NULL);
    CHECK(kd_derived_bytes(w) == kept, "the large product made another packed form");
    kd_set_prepack(KD_PREPACK_OFF);
    float *a = linear_host(xs, w, NULL);
    kd_set_prepack(KD_PREPACK_AUTO);
    float *p = linear_host(xs, w, NULL);
    CHECK(differ_bits(a, p, small[0] * out) == 0, "AUTO product differs from the unpacked one");
    printf("  AUTO: %lld rows pack nothing, 128 rows pack (%zu bytes), a graph packs nothing  %s\n",
           (long long)big[0], kept, kd_test_failed ? "FAIL" : "ok");
    free(a);
    free(p);
    kd_tensor_free(w);
    kd_arena_reset();
}

/* The kept bf16 copy of a no-grad cast. */
static void kept_cast(void)
{
    const int64_t rows = 17, cols = 33;
    kd_tensor *w = make_param(KD_F32, rows, cols, 12, "w");
    kd_set_grad_enabled(0);
    kd_tensor *c1 = kd_cast(w, KD_BF16), *c2 = kd_cast(w, KD_BF16);
    CHECK(c1 && c1 == c2 && c1->persistent && c1->dtype == KD_BF16 && !c1->requires_grad,
          "no-grad kd_cast of a heap tensor: not the same kept heap bf16 tensor on the second call");
    int64_t bad = 0;
    const float *wv = kd_data(w);
    for (int64_t i = 0; c1 && i < rows * cols; i++) bad += ((kd_bf16 *)kd_data(c1))[i] != kd_f32_to_bf16(wv[i]);
    CHECK(bad == 0, "kept bf16 copy: %lld values are not round_bf16(w)", (long long)bad);
    size_t bytes = kd_derived_bytes(w);
    CHECK(bytes >= (size_t)(rows * cols * 2), "kept copy not counted (%zu bytes)", bytes);

    /* A change of w: a new copy of the new values. */
    ((float *)kd_data(w))[7] = 3.0f;
    kd_mark_modified(w);
    kd_tensor *c3 = kd_cast(w, KD_BF16);
    CHECK(c3 && kd_bf16_to_f32(((kd_bf16 *)kd_data(c3))[7]) == 3.0f, "kept copy not remade after the change");
    kd_tensor *v = make_param(KD_F32, rows, cols, 77, "v");
    kd_copy_into(w, v);
    kd_tensor *c4 = kd_cast(w, KD_BF16);
    bad = 0;
    for (int64_t i = 0; c4 && i < rows * cols; i++)
        bad += ((kd_bf16 *)kd_data(c4))[i] != kd_f32_to_bf16(((float *)kd_data(v))[i]);
    CHECK(c4 && bad == 0, "after kd_copy_into: %lld values of the kept copy are stale", (long long)bad);

    /* With a graph: an arena tensor recorded in it, as before. */
    kd_set_grad_enabled(1);
    kd_tensor *g = kd_cast(w, KD_BF16);
    CHECK(g && !g->persistent && g->node, "kd_cast with a graph: expected an arena tensor in the graph");
    kd_set_grad_enabled(0);
    printf("  kept bf16 cast: one heap copy across calls (%zu bytes), remade after kd_mark_modified and "
           "kd_copy_into, none with a graph  %s\n", bytes, kd_test_failed ? "FAIL" : "ok");
    kd_tensor_free(v);
    kd_tensor_free(w);
    kd_arena_reset();
}

int main(void)
{
    kd_set_grad_enabled(0);
    printf("kernels %s; prepacked B in the f32 table: %s, in the bf16 table: %s\n", kd_backend_name(),
           kd_kernels_for(KD_CPU, KD_F32)->gemm_pack_b ? "yes" : "no",
           kd_kernels_for(KD_CPU, KD_BF16)->gemm_pack_b ? "yes" : "no");
    shapes(KD_F32);
    shapes(KD_BF16);
    invalidation(KD_F32);
    invalidation(KD_BF16);
    policy();
    kept_cast();
    kd_shutdown();
    return kd_test_finish("test_derived");
}
