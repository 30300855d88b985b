/* test/engine/test_graph.c — graph behaviour (a tensor used twice, gradients accumulating over two
 * backward calls, no-grad mode, detach, zero_grad, a deep chain walked without recursion, the hook told
 * when a leaf's gradient is final) and bad input
 * (each a clear status and a message naming the op and the shapes). */
#include <math.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/ops.h"
#include "test/testutil.h"

#define S(...) ((const int64_t[]){ __VA_ARGS__ })

static kd_tensor *param(int ndim, const int64_t *shape, const double *v)
{
    kd_tensor *t = kd_param(KD_F64, ndim, shape, "p");
    memcpy(kd_data(t), v, (size_t)kd_numel(t) * sizeof(double));
    return t;
}

static double g(const kd_tensor *t, int64_t i) { return ((const double *)kd_data(t->grad))[i]; }

static void test_used_twice(void)
{
    /* y = sum(x * x + x): dy/dx = 2x + 1, with x reaching the sum by two paths. */
    kd_tensor *x = param(1, S(3), (const double[]){ 1.0, -2.0, 0.5 });
    kd_tensor *y = kd_sum(kd_add(kd_mul(x, x), x), 0, NULL, 0);
    CHECK(kd_backward(y, NULL) == KD_OK, "used twice: backward: %s", kd_last_error());
    CHECK_CLOSE(g(x, 0), 3.0, 1e-12, 0, "d/dx0 of x^2 + x");
    CHECK_CLOSE(g(x, 1), -3.0, 1e-12, 0, "d/dx1 of x^2 + x");
    CHECK_CLOSE(g(x, 2), 2.0, 1e-12, 0, "d/dx2 of x^2 + x");

    /* Two backward calls add up; zero_grad clears. */
    kd_tensor *z = kd_sum(kd_scale(x, 3.0), 0, NULL, 0);
    kd_zero_grad(&x, 1);
    CHECK(kd_backward(z, NULL) == KD_OK && kd_backward(z, NULL) == KD_OK, "two backward calls");
    CHECK_CLOSE(g(x, 1), 6.0, 1e-12, 0, "gradient accumulated over two backward calls");
    kd_zero_grad(&x, 1);
    CHECK(g(x, 0) == 0.0 && g(x, 2) == 0.0, "zero_grad clears the gradient");
    kd_tensor_free(x);
    kd_arena_reset();
}

static void test_no_grad_detach(void)
{
    kd_tensor *x = param(1, S(2), (const double[]){ 1.0, 2.0 });
    int prev = kd_set_grad_enabled(0);
    kd_tensor *y = kd_mul(x, x);
    kd_set_grad_enabled(prev);
    CHECK(y && !y->requires_grad && !y->node, "no-grad mode records nothing");
    CHECK(kd_backward(kd_sum(y, 0, NULL, 0), NULL) == KD_ERR_STATE, "backward through a no-grad result is refused");
    CHECK(strstr(kd_last_error(), "does not require a gradient") != NULL, "message says why: %s", kd_last_error());

    /* detach: d/dx of (x * detach(x)) is detach(x), not 2x. */
    kd_tensor *z = kd_sum(kd_mul(x, kd_detach(x)), 0, NULL, 0);
    CHECK(kd_backward(z, NULL) == KD_OK, "detach: backward");
    CHECK_CLOSE(g(x, 0), 1.0, 1e-12, 0, "detach stops the gradient (element 0)");
    CHECK_CLOSE(g(x, 1), 2.0, 1e-12, 0, "detach stops the gradient (element 1)");
    kd_tensor_free(x);
    kd_arena_reset();
}

static void test_upstream_and_deep_chain(void)
{
    kd_tensor *x = param(2, S(2, 2), (const double[]){ 1, 2, 3, 4 });
    kd_tensor *y = kd_scale(x, 2.0);
    CHECK(kd_backward(y, NULL) == KD_ERR_STATE, "non-scalar root without upstream is refused");
    CHECK(strstr(kd_last_error(), "[2, 2]") != NULL, "message names the root's shape: %s", kd_last_error());
    kd_tensor *u = kd_from_buffer(KD_F64, 2, S(2, 2), (const double[]){ 1, -1, 0.5, 2 });
    CHECK(kd_backward(y, u) == KD_OK, "backward with an upstream gradient");
    CHECK_CLOSE(g(x, 3), 4.0, 1e-12, 0, "upstream gradient is used");
    kd_tensor *bad = kd_zeros(KD_F64, 1, S(4));
    CHECK(kd_backward(y, bad) == KD_ERR_SHAPE, "upstream of the wrong shape is refused");

    /* 20000 ops in a chain: the topological walk is iterative, so this does not overflow the stack. */
    kd_zero_grad(&x, 1);
    kd_tensor *h = x;
    for (int i = 0; i < 20000; i++) h = kd_add_scalar(h, 1e-4);
    CHECK(kd_backward(kd_sum(h, 0, NULL, 0), NULL) == KD_OK, "deep chain backward");
    CHECK_CLOSE(g(x, 0), 1.0, 1e-12, 0, "deep chain gradient");
    kd_tensor_free(x);
    kd_arena_reset();
}

static void expect_error(const char *what, kd_tensor *r, kd_status st, const char *needle1, const char *needle2)
{
    CHECK(r == NULL, "%s: returns NULL", what);
    CHECK(kd_last_status() == st, "%s: status %s, want %s", what, kd_status_name(kd_last_status()), kd_status_name(st));
    CHECK(strstr(kd_last_error(), needle1) != NULL, "%s: message names '%s': %s", what, needle1, kd_last_error());
    if (needle2) CHECK(strstr(kd_last_error(), needle2) != NULL, "%s: message names '%s': %s", what, needle2, kd_last_error());
    printf("bad input %-28s -> %s\n", what, kd_last_error());
    kd_clear_error();
}

static void test_bad_input(void)
{
    kd_tensor *a = kd_zeros(KD_F32, 2, S(3, 4)), *b = kd_zeros(KD_F32, 2, S(5, 6)), *d = kd_zeros(KD_F64, 2, S(3, 4));
    expect_error("matmul shapes", kd_matmul(a, b), KD_ERR_SHAPE, "matmul", "[3, 4] @ [5, 6]");
    expect_error("add broadcast", kd_add(a, b), KD_ERR_SHAPE, "add", "[3, 4] and [5, 6]");
    expect_error("mixed dtypes", kd_mul(a, d), KD_ERR_DTYPE, "mul", "f32 and f64");
    expect_error("linear weight", kd_linear(a, b, NULL), KD_ERR_SHAPE, "linear", "[5, 6]");
    kd_tensor *table = kd_zeros(KD_F32, 2, S(10, 4));
    kd_tensor *ids = kd_from_buffer(KD_I32, 1, S(3), (const int32_t[]){ 1, 10, 2 });
    expect_error("embedding id out of range", kd_embedding(table, ids), KD_ERR_INDEX, "id 10 at position 1 is outside [0, 10)", "[10, 4]");
    expect_error("embedding float ids", kd_embedding(table, a), KD_ERR_DTYPE, "embedding", "i32");
    kd_tensor *tg = kd_from_buffer(KD_I32, 1, S(3), (const int32_t[]){ 0, 4, 1 });
    expect_error("cross_entropy target", kd_cross_entropy(a, tg), KD_ERR_INDEX, "id 4 at position 1 is outside [0, 4)", "[3, 4]");
    expect_error("kl_div shapes", kd_kl_div(a, b), KD_ERR_SHAPE, "kl_div", "[5, 6]");
    expect_error("layernorm gamma", kd_layernorm(a, kd_ones(KD_F32, 1, S(5)), NULL, 1e-5), KD_ERR_SHAPE, "gamma", "[5]");
    expect_error("reshape count", kd_reshape(a, 2, S(5, 3)), KD_ERR_SHAPE, "reshape", "[3, 4]");
    expect_error("narrow range", kd_narrow(a, 1, 2, 3), KD_ERR_INDEX, "narrow", "[3, 4]");
    expect_error("transpose dim", kd_transpose(a, 0, 2), KD_ERR_INDEX, "transpose", "[3, 4]");
    expect_error("dropout p", kd_dropout(a, 1.5, 1), KD_ERR_ARG, "dropout", "1.5");
    kd_tensor *q = kd_zeros(KD_F32, 4, S(2, 3, 2, 4)), *k = kd_zeros(KD_F32, 4, S(2, 5, 2, 3));
    expect_error("attention shapes", kd_attention(q, k, k, NULL, 1, 0, 0), KD_ERR_SHAPE, "attention", "[2, 5, 2, 3]");
    /* A NULL input (an earlier failure) propagates without replacing the first message. */
    kd_matmul(a, b);
    char first[256];
    snprintf(first, sizeof first, "%s", kd_last_error());
    CHECK(kd_gelu(kd_add(kd_matmul(a, b), a)) == NULL && strcmp(first, kd_last_error()) == 0,
          "a failed op's NULL propagates and keeps the first message");
    kd_clear_error();
    kd_arena_reset();
}

/* kd_arena_keep: a no-grad chain that keeps only each stage's result holds the arena at one stage's
 * worth, with the same values as without it; with a graph it changes nothing. */
static void test_arena_keep(void)
{
    kd_arena_reset();
    int prev = kd_set_grad_enabled(0);
    kd_tensor *x0 = kd_persist(kd_rand_uniform(KD_F32, 2, S(64, 64), -1, 1, 5));
    kd_tensor *a = x0, *b = x0;
    size_t base = kd_arena_used();
    for (int i = 0; i < 20; i++) a = kd_tanh(kd_add_scalar(kd_matmul(a, x0), 0.1));
    size_t plain = kd_arena_used() - base;
    double want = kd_item(kd_sum(a, 0, NULL, 0));
    kd_arena_reset();
    base = kd_arena_used();
    for (int i = 0; i < 20; i++) {
        kd_arena_mark mk = kd_arena_mark_now();
        b = kd_arena_keep(kd_tanh(kd_add_scalar(kd_matmul(b, x0), 0.1)), mk);
    }
    size_t kept = kd_arena_used() - base;
    CHECK(b != NULL, "arena_keep: chain ran: %s", kd_last_error());
    CHECK_CLOSE(kd_item(kd_sum(b, 0, NULL, 0)), want, 0, 0, "arena_keep: same values as the plain chain");
    printf("arena_keep: 20 stages held %zu bytes plain, %zu kept\n", plain, kept);
    CHECK(kept * 2 < plain, "arena_keep: kept %zu bytes, plain %zu: expected under half", kept, plain);
    kd_set_grad_enabled(prev);
    kd_arena_reset();
    x0->requires_grad = 1;
    kd_arena_mark mk = kd_arena_mark_now();
    kd_tensor *g = kd_tanh(x0);
    CHECK(kd_arena_keep(g, mk) == g, "arena_keep: a tensor in a graph is returned as it is");
    kd_tensor_free(x0);
    kd_arena_reset();
}

/* kd_backward_hooked: each leaf that requires a gradient is reported once, after its last contribution:
 * the gradient it holds at that moment is, bit for bit, the one it holds when backward returns. */
enum { NLEAF = 4, NEL = 3 };
typedef struct final_log {
    kd_tensor *leaf[NLEAF];
    int count[NLEAF], order[NLEAF], n;
    double seen[NLEAF][NEL];
    int fail_at;   /* > 0: the hook fails at that report */
} final_log;

static kd_status on_final(kd_tensor *t, void *ctx)
{
    final_log *l = ctx;
    if (l->fail_at && l->n + 1 == l->fail_at) return kd_fail(KD_ERR_STATE, "hook refused");
    for (int i = 0; i < NLEAF; i++)
        if (l->leaf[i] == t) {
            l->count[i]++;
            l->order[l->n] = i;
            for (int k = 0; k < NEL; k++) l->seen[i][k] = t->grad ? g(t, k) : NAN;
        }
    l->n++;
    return KD_OK;
}

/* a used three times, far apart; c twice; b once; d requires no gradient.
 *   y = sum((tanh(a * b + a) * c + a * c) * d) */
static kd_tensor *final_graph(kd_tensor **v)
{
    kd_tensor *a = v[0], *b = v[1], *c = v[2], *d = v[3];
    kd_tensor *u = kd_tanh(kd_add(kd_mul(a, b), a));
    return kd_sum(kd_mul(kd_add(kd_mul(u, c), kd_mul(a, c)), d), 0, NULL, 0);
}

static void test_grad_final(void)
{
    static const char *const names[NLEAF] = { "a (used 3 times)", "b (once)", "c (twice)", "d (no gradient)" };
    kd_tensor *v[NLEAF];
    for (int i = 0; i < NLEAF; i++) v[i] = param(1, S(NEL), (const double[]){ 0.3 + i, -0.7 * i, 1.1 - 0.4 * i });
    v[3]->requires_grad = 0;
    for (int pass = 0; pass < 2; pass++) {
        /* pass 1 adds to the gradients of pass 0 (no zero_grad): final means this call's sum included */
        final_log l = { .leaf = { v[0], v[1], v[2], v[3] } };
        CHECK(kd_backward_hooked(final_graph(v), NULL, on_final, &l) == KD_OK, "hook: backward: %s", kd_last_error());
        CHECK(l.n == 3, "hook pass %d: %d reports, expected 3 (the leaves that require a gradient)", pass, l.n);
        for (int i = 0; i < NLEAF; i++) {
            int want = i < 3;
            CHECK(l.count[i] == want, "hook pass %d: %s reported %d times, expected %d", pass, names[i], l.count[i], want);
            if (!want || !v[i]->grad) continue;
            int same = 1;
            for (int k = 0; k < NEL; k++) same &= l.seen[i][k] == g(v[i], k);   /* NaN: not the same */
            CHECK(same, "hook pass %d: %s: gradient when reported (%g %g %g) = final (%g %g %g)", pass, names[i],
                  l.seen[i][0], l.seen[i][1], l.seen[i][2], g(v[i], 0), g(v[i], 1), g(v[i], 2));
        }
        /* The walk runs the forward backwards: a's and b's last consumer is the forward's first node (a * b),
         * c's is u * c, which the walk reaches earlier: c is reported first, then a and b (after one node). */
        CHECK(l.n == 3 && l.order[0] == 2 && l.order[1] + l.order[2] == 1,
              "hook pass %d: reported in the order c, then a and b (the order the walk finishes them)", pass);
        kd_arena_reset();
    }
    /* The sums the reports saw, against the formula: dy/da = (1 - u^2)(b + 1) c d + c d, at pass 1 doubled. */
    for (int k = 0; k < NEL; k++) {
        double a = ((double *)kd_data(v[0]))[k], b = ((double *)kd_data(v[1]))[k], c = ((double *)kd_data(v[2]))[k],
               d = ((double *)kd_data(v[3]))[k], u = tanh(a * b + a);
        CHECK_CLOSE(g(v[0], k), 2.0 * ((1 - u * u) * (b + 1) * c * d + c * d), 1e-12, 1e-12, "hook: dy/da after two calls");
        CHECK_CLOSE(g(v[2], k), 2.0 * (u + a) * d, 1e-12, 1e-12, "hook: dy/dc after two calls");
    }
    /* A hook's error stops the walk and comes back from backward. */
    final_log l = { .leaf = { v[0], v[1], v[2], v[3] }, .fail_at = 2 };
    kd_status st = kd_backward_hooked(final_graph(v), NULL, on_final, &l);
    CHECK(st == KD_ERR_STATE && l.n == 1 && strstr(kd_last_error(), "hook refused"),
          "hook: an error from the hook stops backward (status %d after %d reports: %s)", (int)st, l.n, kd_last_error());
    kd_clear_error();
    /* A leaf root is reported after its gradient is set. */
    final_log lr = { .leaf = { v[1] } };
    kd_zero_grad(&v[1], 1);
    CHECK(kd_backward_hooked(v[1], kd_ones(KD_F64, 1, S(NEL)), on_final, &lr) == KD_OK && lr.count[0] == 1 &&
          lr.seen[0][2] == 1.0, "hook: a leaf root is reported once, with its gradient (%d reports)", lr.n);
    for (int i = 0; i < NLEAF; i++) kd_tensor_free(v[i]);
    kd_arena_reset();
}

int main(void)
{
    test_arena_keep();
    test_used_twice();
    test_no_grad_detach();
    test_upstream_and_deep_chain();
    test_grad_final();
    test_bad_input();
    kd_shutdown();
    return kd_test_finish("test_graph");
}
