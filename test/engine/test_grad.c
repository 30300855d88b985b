/* test/engine/test_grad.c — every op's backward against central finite differences in f64, with a random
 * upstream gradient, at several shapes (1 and odd sizes included). */
#include "test/engine/gradcheck.h"

static uint64_t seed_counter = 1000;

static kd_tensor *leaf(int ndim, const int64_t *shape, double lo, double hi)
{
    kd_tensor *t = kd_persist(kd_rand_uniform(KD_F64, ndim, shape, lo, hi, seed_counter++));
    t->requires_grad = 1;
    return t;
}

static kd_tensor *const_i32(int ndim, const int64_t *shape, int mod)
{
    kd_tensor *t = kd_persist(kd_zeros(KD_I32, ndim, shape));
    int32_t *p = kd_data(t);
    for (int64_t i = 0; i < kd_numel(t); i++) p[i] = (int32_t)((i * 7 + 3 + (int64_t)seed_counter) % mod);
    seed_counter++;
    return t;
}

static void free_all(kd_tensor **in, int n)
{
    for (int i = 0; i < n; i++) kd_tensor_free(in[i]);
    kd_arena_reset();
}

#define S(...) ((const int64_t[]){ __VA_ARGS__ })

/* --- the functions under test; ctx carries an int or double parameter where needed */
static kd_tensor *f_matmul(kd_tensor **x, void *c) { (void)c; return kd_matmul(x[0], x[1]); }
static kd_tensor *f_matmul_ta(kd_tensor **x, void *c) { (void)c; return kd_matmul(kd_transpose(x[0], -1, -2), x[1]); }
static kd_tensor *f_matmul_tb(kd_tensor **x, void *c) { (void)c; return kd_matmul(x[0], kd_transpose(x[1], -1, -2)); }
static kd_tensor *f_matmul_tab(kd_tensor **x, void *c)
{
    (void)c;
    return kd_matmul(kd_transpose(x[0], -1, -2), kd_transpose(x[1], -1, -2));
}
static kd_tensor *f_linear(kd_tensor **x, void *c) { (void)c; return kd_linear(x[0], x[1], x[2]); }
static kd_tensor *f_add(kd_tensor **x, void *c) { (void)c; return kd_add(x[0], x[1]); }
static kd_tensor *f_sub(kd_tensor **x, void *c) { (void)c; return kd_sub(x[0], x[1]); }
static kd_tensor *f_mul(kd_tensor **x, void *c) { (void)c; return kd_mul(x[0], x[1]); }
static kd_tensor *f_div(kd_tensor **x, void *c) { (void)c; return kd_div(x[0], x[1]); }
static kd_tensor *f_scale(kd_tensor **x, void *c) { (void)c; return kd_scale(x[0], -1.75); }
static kd_tensor *f_add_scalar(kd_tensor **x, void *c) { (void)c; return kd_add_scalar(x[0], 0.5); }
static kd_tensor *f_gelu(kd_tensor **x, void *c) { (void)c; return kd_gelu(x[0]); }
static kd_tensor *f_tanh(kd_tensor **x, void *c) { (void)c; return kd_tanh(x[0]); }
static kd_tensor *f_sqrt(kd_tensor **x, void *c) { (void)c; return kd_sqrt(x[0]); }
static kd_tensor *f_sum_dims(kd_tensor **x, void *c)
{
    const int *d = c;
    return kd_sum(x[0], d[0], d + 2, d[1]);
}
static kd_tensor *f_mean_dims(kd_tensor **x, void *c)
{
    const int *d = c;
    return kd_mean(x[0], d[0], d + 2, d[1]);
}
static kd_tensor *f_reshape(kd_tensor **x, void *c) { (void)c; return kd_reshape(x[0], 2, S(-1, 2)); }
static kd_tensor *f_permute(kd_tensor **x, void *c) { (void)c; return kd_permute(x[0], (const int[]){ 2, 0, 1 }); }
static kd_tensor *f_permute_reshape(kd_tensor **x, void *c)
{
    (void)c;  /* a reshape of a non-contiguous view goes through contiguous() */
    return kd_reshape(kd_permute(x[0], (const int[]){ 1, 0, 2 }), 1, S(-1));
}
static kd_tensor *f_narrow(kd_tensor **x, void *c) { (void)c; return kd_narrow(x[0], 1, 1, 2); }
static kd_tensor *f_contiguous(kd_tensor **x, void *c) { (void)c; return kd_contiguous(kd_transpose(x[0], 0, 1)); }
static kd_tensor *f_softmax(kd_tensor **x, void *c) { (void)c; return kd_softmax(x[0]); }
static kd_tensor *f_log_softmax(kd_tensor **x, void *c) { (void)c; return kd_log_softmax(x[0]); }
static kd_tensor *f_layernorm(kd_tensor **x, void *c) { (void)c; return kd_layernorm(x[0], x[1], x[2], 1e-5); }
static kd_tensor *f_layernorm_plain(kd_tensor **x, void *c) { (void)c; return kd_layernorm(x[0], NULL, NULL, 1e-5); }
static kd_tensor *f_dropout(kd_tensor **x, void *c) { (void)c; return kd_dropout(x[0], 0.3, 1); }
static kd_tensor *f_embedding(kd_tensor **x, void *c) { (void)c; return kd_embedding(x[0], x[1]); }
static kd_tensor *f_attention(kd_tensor **x, void *c)
{
    const double *p = c;
    return kd_attention(x[0], x[1], x[2], x[3], p[0], p[1], p[1] > 0);
}
static kd_tensor *f_attention_views(kd_tensor **x, void *c)
{
    /* q, k, v as head views of one [B, T, 3*H*D] projection, the way BERT feeds them. */
    const int64_t *d = c;
    int64_t B = d[0], T = d[1], H = d[2], D = d[3];
    kd_tensor *q = kd_reshape(kd_narrow(x[0], 2, 0, H * D), 4, S(B, T, H, D));
    kd_tensor *k = kd_reshape(kd_narrow(x[0], 2, H * D, H * D), 4, S(B, T, H, D));
    kd_tensor *v = kd_reshape(kd_narrow(x[0], 2, 2 * H * D, H * D), 4, S(B, T, H, D));
    return kd_attention(q, k, v, NULL, 0.5, 0.0, 0);
}
typedef struct varlen_case {
    const int64_t *offsets;
    int64_t nseq;
    double scale, p;
    int strided;   /* q, k, v as head views of one [total, 3*H*D] projection */
} varlen_case;
static kd_tensor *f_attention_varlen(kd_tensor **x, void *c)
{
    const varlen_case *v = c;
    if (v->strided) {
        int64_t T = x[0]->shape[0], HD = x[0]->shape[1] / 3, H = 2;
        kd_tensor *q = kd_reshape(kd_narrow(x[0], 1, 0, HD), 3, S(T, H, HD / H));
        kd_tensor *k = kd_reshape(kd_narrow(x[0], 1, HD, HD), 3, S(T, H, HD / H));
        kd_tensor *w = kd_reshape(kd_narrow(x[0], 1, 2 * HD, HD), 3, S(T, H, HD / H));
        return kd_attention_varlen(q, k, w, v->offsets, v->nseq, v->scale, v->p, v->p > 0);
    }
    return kd_attention_varlen(x[0], x[1], x[2], v->offsets, v->nseq, v->scale, v->p, v->p > 0);
}
static kd_tensor *f_cross_entropy(kd_tensor **x, void *c) { (void)c; return kd_cross_entropy(x[0], x[1]); }
static kd_tensor *f_kl_div(kd_tensor **x, void *c) { (void)c; return kd_kl_div(x[0], x[1]); }
static kd_tensor *f_kl_div_of_softmax(kd_tensor **x, void *c)
{
    (void)c;  /* the distillation form: log_softmax of the student against softmax of a target */
    return kd_kl_div(kd_log_softmax(x[0]), kd_softmax(x[1]));
}

/* Chains whose ops see intermediate inputs, where backward hands gradients over by aliasing (views,
 * adds) or computes them in place (dropout, GELU, tanh); the inputs are leaves, the ops under test are not. */
static kd_tensor *f_chain_views(kd_tensor **x, void *c)
{
    (void)c;
    kd_tensor *h = kd_scale(x[0], 1.5);
    return kd_reshape(kd_contiguous(kd_reshape(h, 2, S(6, 5))), 3, S(3, 2, 5));
}
static kd_tensor *f_chain_residual(kd_tensor **x, void *c)
{
    (void)c;  /* h feeds both the residual and the branch; the add may alias either way */
    kd_tensor *h = kd_scale(x[0], 0.7);
    kd_tensor *r = kd_add(h, kd_gelu(kd_add_scalar(h, 0.1)));
    return kd_sub(kd_dropout(kd_tanh(kd_mul(r, x[1])), 0.2, 1), kd_scale(h, 0.3));
}
static kd_tensor *f_chain_twice(kd_tensor **x, void *c)
{
    (void)c;
    kd_tensor *h = kd_gelu(kd_scale(x[0], 2.0));
    return kd_add(kd_add(h, h), kd_reshape(h, 3, S(2, 3, 5)));
}

static void check_chains(void)
{
    kd_tensor *a[2] = { leaf(3, S(2, 3, 5), -2, 2), leaf(3, S(2, 3, 5), -1, 1) };
    gradcheck("chain: reshape, contiguous (aliased)", f_chain_views, NULL, a, 1, 120);
    gradcheck("chain: residual, gelu, tanh, dropout in place", f_chain_residual, NULL, a, 2, 121);
    gradcheck("chain: a tensor used three times", f_chain_twice, NULL, a, 1, 122);
    free_all(a, 2);
}

static void check_matmul(void)
{
    const int64_t dims[][3] = { { 1, 1, 1 }, { 3, 5, 7 }, { 8, 1, 4 }, { 2, 9, 3 } };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        int64_t m = dims[i][0], k = dims[i][1], n = dims[i][2];
        char name[64];
        kd_tensor *x[2] = { leaf(2, S(m, k), -1, 1), leaf(2, S(k, n), -1, 1) };
        snprintf(name, sizeof name, "matmul %lldx%lldx%lld", (long long)m, (long long)k, (long long)n);
        gradcheck(name, f_matmul, NULL, x, 2, 1);
        free_all(x, 2);
        kd_tensor *y[2] = { leaf(2, S(k, m), -1, 1), leaf(2, S(k, n), -1, 1) };
        snprintf(name, sizeof name, "matmul A^T %lldx%lldx%lld", (long long)m, (long long)k, (long long)n);
        gradcheck(name, f_matmul_ta, NULL, y, 2, 2);
        free_all(y, 2);
        kd_tensor *z[2] = { leaf(2, S(m, k), -1, 1), leaf(2, S(n, k), -1, 1) };
        snprintf(name, sizeof name, "matmul B^T %lldx%lldx%lld", (long long)m, (long long)k, (long long)n);
        gradcheck(name, f_matmul_tb, NULL, z, 2, 3);
        free_all(z, 2);
        kd_tensor *w[2] = { leaf(2, S(k, m), -1, 1), leaf(2, S(n, k), -1, 1) };
        snprintf(name, sizeof name, "matmul A^T B^T %lldx%lldx%lld", (long long)m, (long long)k, (long long)n);
        gradcheck(name, f_matmul_tab, NULL, w, 2, 4);
        free_all(w, 2);
    }
    kd_tensor *b[2] = { leaf(3, S(3, 4, 5), -1, 1), leaf(3, S(3, 5, 2), -1, 1) };
    gradcheck("matmul batched [3,4,5]@[3,5,2]", f_matmul, NULL, b, 2, 5);
    free_all(b, 2);
    kd_tensor *bt[2] = { leaf(4, S(2, 2, 3, 5), -1, 1), leaf(4, S(2, 2, 4, 5), -1, 1) };
    gradcheck("matmul batched 4-D with B^T", f_matmul_tb, NULL, bt, 2, 6);
    free_all(bt, 2);
    kd_tensor *sh[2] = { leaf(3, S(2, 3, 4), -1, 1), leaf(2, S(4, 3), -1, 1) };
    gradcheck("matmul shared 2-D right operand", f_matmul, NULL, sh, 2, 7);
    free_all(sh, 2);
    kd_tensor *sht[2] = { leaf(3, S(2, 4, 3), -1, 1), leaf(2, S(4, 3), -1, 1) };
    gradcheck("matmul A^T with shared right", f_matmul_ta, NULL, sht, 2, 8);
    free_all(sht, 2);
}

static void check_linear(void)
{
    kd_tensor *a[3] = { leaf(3, S(2, 3, 5), -1, 1), leaf(2, S(4, 5), -1, 1), leaf(1, S(4), -1, 1) };
    gradcheck("linear [2,3,5] W[4,5] + b", f_linear, NULL, a, 3, 11);
    free_all(a, 3);
    kd_tensor *b[3] = { leaf(2, S(1, 1), -1, 1), leaf(2, S(1, 1), -1, 1), NULL };
    gradcheck("linear 1x1 without bias", f_linear, NULL, b, 3, 12);
    free_all(b, 3);
    kd_tensor *c[3] = { leaf(2, S(7, 9), -1, 1), leaf(2, S(3, 9), -1, 1), leaf(1, S(3), -1, 1) };
    gradcheck("linear [7,9] W[3,9] + b", f_linear, NULL, c, 3, 13);
    free_all(c, 3);
}

static void check_elementwise(void)
{
    struct { const char *name; gc_fn f; int64_t sa[3], sb[3]; int na, nb; double lo; } cases[] = {
        { "add same shape [3,4]", f_add, { 3, 4 }, { 3, 4 }, 2, 2, -1 },
        { "add broadcast [2,3,4]+[4]", f_add, { 2, 3, 4 }, { 4 }, 3, 1, -1 },
        { "add broadcast [3,1]+[1,5]", f_add, { 3, 1 }, { 1, 5 }, 2, 2, -1 },
        { "sub broadcast [2,1,3]-[4,3]", f_sub, { 2, 1, 3 }, { 4, 3 }, 3, 2, -1 },
        { "mul broadcast [3,4]*[3,1]", f_mul, { 3, 4 }, { 3, 1 }, 2, 2, -1 },
        { "mul [1]*[1]", f_mul, { 1 }, { 1 }, 1, 1, -1 },
        { "div broadcast [2,5]/[5]", f_div, { 2, 5 }, { 5 }, 2, 1, 0.5 },
        { "div broadcast [1,3]/[4,3]", f_div, { 1, 3 }, { 4, 3 }, 2, 2, 0.5 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kd_tensor *x[2] = { leaf(cases[i].na, cases[i].sa, -1, 1), leaf(cases[i].nb, cases[i].sb, cases[i].lo, 1.5) };
        gradcheck(cases[i].name, cases[i].f, NULL, x, 2, 20 + i);
        free_all(x, 2);
    }
    kd_tensor *s[1] = { leaf(2, S(3, 7), -2, 2) };
    gradcheck("scale [3,7]", f_scale, NULL, s, 1, 30);
    gradcheck("add_scalar [3,7]", f_add_scalar, NULL, s, 1, 31);
    free_all(s, 1);
    kd_tensor *pos[1] = { leaf(2, S(3, 7), 0.2, 3) };
    gradcheck("sqrt [3,7] on [0.2, 3]", f_sqrt, NULL, pos, 1, 32);
    free_all(pos, 1);
}

static void check_activation_reduce_shape(void)
{
    const int64_t shapes[][3] = { { 1, 1, 1 }, { 2, 3, 5 }, { 1, 7, 3 } };
    for (size_t i = 0; i < 3; i++) {
        kd_tensor *x[1] = { leaf(3, shapes[i], -3, 3) };
        char name[64];
        snprintf(name, sizeof name, "gelu [%lld,%lld,%lld]", (long long)shapes[i][0], (long long)shapes[i][1],
                 (long long)shapes[i][2]);
        gradcheck(name, f_gelu, NULL, x, 1, 40 + i);
        snprintf(name, sizeof name, "tanh [%lld,%lld,%lld]", (long long)shapes[i][0], (long long)shapes[i][1],
                 (long long)shapes[i][2]);
        gradcheck(name, f_tanh, NULL, x, 1, 43 + i);
        free_all(x, 1);
    }
    int sum_all[] = { 0, 0 }, sum_last[] = { 1, 0, -1 }, sum_02_keep[] = { 2, 1, 0, 2 }, mean_1[] = { 1, 0, 1 };
    kd_tensor *x[1] = { leaf(3, S(2, 3, 5), -1, 1) };
    gradcheck("sum all", f_sum_dims, sum_all, x, 1, 50);
    gradcheck("sum last dim", f_sum_dims, sum_last, x, 1, 51);
    gradcheck("sum dims 0,2 keepdim", f_sum_dims, sum_02_keep, x, 1, 52);
    gradcheck("mean dim 1", f_mean_dims, mean_1, x, 1, 53);
    gradcheck("mean all", f_mean_dims, sum_all, x, 1, 54);
    gradcheck("reshape [2,3,5]->[15,2]", f_reshape, NULL, x, 1, 55);
    gradcheck("permute (2,0,1)", f_permute, NULL, x, 1, 56);
    gradcheck("permute then reshape", f_permute_reshape, NULL, x, 1, 57);
    gradcheck("narrow dim 1 [1,3)", f_narrow, NULL, x, 1, 58);
    gradcheck("contiguous of transpose", f_contiguous, NULL, x, 1, 59);
    free_all(x, 1);
}

static void check_rows(void)
{
    const int64_t shapes[][2] = { { 1, 1 }, { 3, 7 }, { 5, 2 } };
    for (size_t i = 0; i < 3; i++) {
        char name[64];
        kd_tensor *x[1] = { leaf(2, shapes[i], -2, 2) };
        snprintf(name, sizeof name, "softmax [%lld,%lld]", (long long)shapes[i][0], (long long)shapes[i][1]);
        gradcheck(name, f_softmax, NULL, x, 1, 60 + i);
        snprintf(name, sizeof name, "log_softmax [%lld,%lld]", (long long)shapes[i][0], (long long)shapes[i][1]);
        gradcheck(name, f_log_softmax, NULL, x, 1, 63 + i);
        snprintf(name, sizeof name, "dropout p=0.3 [%lld,%lld]", (long long)shapes[i][0], (long long)shapes[i][1]);
        gradcheck(name, f_dropout, NULL, x, 1, 66 + i);
        free_all(x, 1);
        if (shapes[i][1] < 2) continue;   /* LayerNorm of one element has zero variance: not differentiable */
        kd_tensor *l[3] = { leaf(2, shapes[i], -2, 2), leaf(1, &shapes[i][1], 0.5, 1.5), leaf(1, &shapes[i][1], -1, 1) };
        snprintf(name, sizeof name, "layernorm affine [%lld,%lld]", (long long)shapes[i][0], (long long)shapes[i][1]);
        gradcheck(name, f_layernorm, NULL, l, 3, 69 + i);
        snprintf(name, sizeof name, "layernorm plain [%lld,%lld]", (long long)shapes[i][0], (long long)shapes[i][1]);
        gradcheck(name, f_layernorm_plain, NULL, l, 1, 72 + i);
        free_all(l, 3);
    }
    kd_tensor *e[2] = { leaf(2, S(5, 3), -1, 1), const_i32(2, S(2, 4), 5) };
    gradcheck("embedding [5,3] ids [2,4] (repeats)", f_embedding, NULL, e, 2, 80);
    free_all(e, 2);
}

static void check_attention(void)
{
    struct { int64_t b, tq, tk, h, d; double scale, p; int masked; } cases[] = {
        { 1, 1, 1, 1, 1, 1.0, 0.0, 0 },
        { 2, 3, 3, 2, 4, 0.5, 0.0, 1 },
        { 1, 5, 3, 3, 2, 0.7, 0.0, 1 },
        { 2, 4, 4, 1, 3, 0.6, 0.25, 1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t B = cases[i].b, Tq = cases[i].tq, Tk = cases[i].tk, H = cases[i].h, D = cases[i].d;
        kd_tensor *x[4] = { leaf(4, S(B, Tq, H, D), -1, 1), leaf(4, S(B, Tk, H, D), -1, 1), leaf(4, S(B, Tk, H, D), -1, 1),
                            NULL };
        if (cases[i].masked) {
            /* Padding mask: the last key of batch 0 is masked out with a large negative number. */
            x[3] = kd_persist(kd_zeros(KD_F64, 2, S(B, Tk)));
            ((double *)kd_data(x[3]))[Tk - 1] = -1e9;
        }
        double params[2] = { cases[i].scale, cases[i].p };
        char name[96];
        snprintf(name, sizeof name, "attention B%lld Tq%lld Tk%lld H%lld D%lld%s%s", (long long)B, (long long)Tq,
                 (long long)Tk, (long long)H, (long long)D, cases[i].masked ? " mask" : "", cases[i].p > 0 ? " dropout" : "");
        gradcheck(name, f_attention, params, x, 4, 90 + i);
        free_all(x, 4);
    }
    int64_t dims[4] = { 2, 3, 2, 2 };
    kd_tensor *qkv[1] = { leaf(3, S(2, 3, 12), -1, 1) };
    gradcheck("attention on head views of one projection", f_attention_views, dims, qkv, 1, 99);
    free_all(qkv, 1);

    /* Packed sequences (varlen): lengths 1, 5, 3; one sequence; an empty one between two; with dropout. */
    static const int64_t o1[4] = { 0, 1, 6, 9 }, o2[2] = { 0, 4 }, o3[4] = { 0, 2, 2, 5 };
    struct { const int64_t *off; int64_t nseq, h, d; double scale, p; int strided; const char *name; } vc[] = {
        { o1, 3, 2, 3, 0.6, 0.0, 0, "attention_varlen lengths 1,5,3 H2 D3" },
        { o2, 1, 3, 2, 0.7, 0.0, 0, "attention_varlen length 4 H3 D2" },
        { o3, 3, 1, 4, 0.5, 0.0, 0, "attention_varlen lengths 2,0,3 H1 D4" },
        { o1, 3, 2, 3, 0.6, 0.25, 0, "attention_varlen lengths 1,5,3 dropout" },
        { o1, 3, 2, 2, 0.5, 0.0, 1, "attention_varlen on head views" },
    };
    for (size_t i = 0; i < sizeof vc / sizeof vc[0]; i++) {
        int64_t T = vc[i].off[vc[i].nseq], H = vc[i].h, D = vc[i].d;
        varlen_case c = { vc[i].off, vc[i].nseq, vc[i].scale, vc[i].p, vc[i].strided };
        kd_tensor *x[3] = { NULL, NULL, NULL };
        if (vc[i].strided) x[0] = leaf(2, S(T, 3 * H * D), -1, 1);
        else for (int j = 0; j < 3; j++) x[j] = leaf(3, S(T, H, D), -1, 1);
        gradcheck(vc[i].name, f_attention_varlen, &c, x, vc[i].strided ? 1 : 3, 120 + i);
        free_all(x, 3);
    }
}

static void check_losses(void)
{
    const int64_t shapes[][2] = { { 1, 1 }, { 4, 3 }, { 3, 7 } };
    for (size_t i = 0; i < 3; i++) {
        char name[64];
        kd_tensor *c[2] = { leaf(2, shapes[i], -2, 2), const_i32(1, shapes[i], (int)shapes[i][1]) };
        snprintf(name, sizeof name, "cross_entropy [%lld,%lld]", (long long)shapes[i][0], (long long)shapes[i][1]);
        gradcheck(name, f_cross_entropy, NULL, c, 2, 100 + i);
        free_all(c, 2);
        kd_tensor *k[2] = { leaf(2, shapes[i], -3, -0.1), leaf(2, shapes[i], 0.05, 1) };
        snprintf(name, sizeof name, "kl_div (both inputs) [%lld,%lld]", (long long)shapes[i][0], (long long)shapes[i][1]);
        gradcheck(name, f_kl_div, NULL, k, 2, 103 + i);
        free_all(k, 2);
        kd_tensor *s[2] = { leaf(2, shapes[i], -2, 2), leaf(2, shapes[i], -2, 2) };
        snprintf(name, sizeof name, "kl_div(log_softmax, softmax) [%lld,%lld]", (long long)shapes[i][0], (long long)shapes[i][1]);
        gradcheck(name, f_kl_div_of_softmax, NULL, s, 2, 106 + i);
        free_all(s, 2);
    }
}

int main(void)
{
    kd_manual_seed(1234);
    check_matmul();
    check_linear();
    check_elementwise();
    check_activation_reduce_shape();
    check_rows();
    check_attention();
    check_losses();
    check_chains();
    kd_shutdown();
    return kd_test_finish("test_grad");
}
