/* test/gpu/test_cuda_attention_bf16.c — CUDA attention on bf16 storage (kd_cu_attention_bf16 and
 * kd_cu_attention_bwd_bf16: tensor-core kernels at head dims 32, 64, 128, the f32 per-row kernels at
 * others) against kd_kernels_ref_bf16()'s attention and attention_bwd on the host.
 *
 * Shapes: lengths 1, 7, 63, 65, 127, 129, 257 and unequal query/key lengths; head dims 32, 64, 128 and
 * 1, 17, 48, 80 (fallback); masks padding the last quarter of batch 0's keys with -inf or -FLT_MAX and
 * masking every key of the last batch item; no mask; dropout on and off; q, k, v as separate
 * [b, t, h, d] tensors (heads interleaved, as BERT's), as views of one packed [b, t, 3, h, d] buffer
 * (16-byte aligned: the cp.async path), or with an odd token stride (the element-wise path). dq, dk, dv
 * start nonzero (they accumulate); O and lse are poisoned with NaN; every buffer sits between guards.
 * The backward runs on the device's own O and lse, as the engine does.
 *
 * Tolerance, per element, from bf16 rounding: |got - want| <= 2^-7 |want| + 2^-7 E + 1e-6, where 2^-7
 * |want| covers the two roundings of the output (device and reference, half an ulp = 2^-8 relative
 * each) and E bounds what rounding the kernel's intermediates to bf16 can move the value (2^-9 relative
 * per term, doubled for f32 sums and the lse read back): for O, E = sum_j P'_ij |v_j|; for dV, E =
 * sum_i P'_ij |dO_i|; for dK and dQ, E = sum (|dS_ij| + scale P_ij M_i) |q_i| or |k_j|, where
 * M_i = sum_d |dO_id| (|O_id| + sum_j P'_ij |v_jd|) bounds 2^8 times the error of D_i = dO_i . O_i
 * computed from the rounded O. E is computed here in double. lse (f32 throughout) gets the f32 rule of
 * test_cuda_attention.c: 4 eps (16 + 4 sqrt(tk dim)), absolute and relative. Exits 77 without a GPU. */
#include <float.h>

#include "kernels/bf16.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/rng.h"
#include "test/gpu/gpu_test.h"

#define G16 64                 /* guard elements each side */
#define S16 ((uint16_t)0x1234) /* guard sentinel */

static const kd_kernels *ref;

/* A bf16 device buffer with guards and its host interior. */
typedef struct bbuf {
    int64_t n;
    kd_bf16 *h;    /* interior, n */
    uint16_t *d;   /* device, n + 2 G16 */
} bbuf;

static bbuf bb_new(int64_t n)
{
    bbuf b;
    b.n = n;
    b.h = malloc((size_t)(n > 0 ? n : 1) * 2);
    void *d = NULL;
    if (!b.h || kd_cuda_malloc(&d, (size_t)(n + 2 * G16) * 2) != KD_OK) gt_die("bf16 buffer");
    b.d = d;
    for (int64_t i = 0; i < n; i++) b.h[i] = kd_f32_to_bf16(gt_randn());
    return b;
}

static void bb_push(bbuf *b)
{
    uint16_t *t = malloc((size_t)(b->n + 2 * G16) * 2);
    if (!t) gt_die("malloc");
    for (int i = 0; i < G16; i++) t[i] = t[G16 + b->n + i] = S16;
    memcpy(t + G16, b->h, (size_t)b->n * 2);
    if (kd_cuda_h2d(b->d, t, (size_t)(b->n + 2 * G16) * 2) != KD_OK) gt_die("h2d");
    free(t);
}

static uint16_t *bb_dev(bbuf *b) { return b->d + G16; }

/* Download the interior; counts changed guards into *bad_guard. */
static kd_bf16 *bb_pull(bbuf *b, int64_t *bad_guard)
{
    uint16_t *t = malloc((size_t)(b->n + 2 * G16) * 2);
    if (!t) gt_die("malloc");
    if (kd_cuda_sync() != KD_OK || kd_cuda_d2h(t, b->d, (size_t)(b->n + 2 * G16) * 2) != KD_OK) gt_die("d2h");
    for (int i = 0; i < G16; i++) *bad_guard += (t[i] != S16) + (t[G16 + b->n + i] != S16);
    memmove(t, t + G16, (size_t)b->n * 2);
    return t;
}

static void bb_free(bbuf *b)
{
    free(b->h);
    kd_cuda_free(b->d);
}

typedef struct acase {
    int64_t batch, heads, tq, tk, dim;
    int drop;      /* dropout p = 0.2 */
    int layout;    /* 0 separate [b, t, h, d]; 1 packed [b, t, 3, h, d] (tq == tk); 2 token stride h d + 3 */
    int maskmode;  /* 0 none; 1 -inf padding; 2 -FLT_MAX padding */
} acase;

static double ldb(const kd_bf16 *p) { return kd_bf16_to_f32(*p); }

/* Per-element error allowances E (see the top comment), in double, for O, dq, dk, dv at the args' strides
 * (host pointers; eo/eq/ek/ev indexed like o/q/k/v). P is the reference's: softmax in double of the
 * scores from the bf16 inputs. */
static void bounds(const kd_attention_args *a, const kd_bf16 *o_ref, double *eo, double *eq, double *ek, double *ev)
{
    const int64_t TQ = a->tq, TK = a->tk, D = a->dim;
    double *s = malloc((size_t)TK * sizeof *s), *keep = malloc((size_t)TK * sizeof *keep);
    double *ds = malloc((size_t)TK * sizeof *ds);
    if (!s || !keep || !ds) gt_die("malloc");
    const kd_bf16 *Q = a->q, *K = a->k, *V = a->v, *dO = a->d_o;
    for (int64_t b = 0; b < a->batch; b++)
        for (int64_t h = 0; h < a->heads; h++)
            for (int64_t i = 0; i < TQ; i++) {
                const kd_bf16 *q = Q + b * a->q_sb + i * a->q_st + h * a->q_sh;
                const kd_bf16 *go = dO + b * a->o_sb + i * a->o_st + h * a->o_sh;
                const kd_bf16 *oi = o_ref + b * a->o_sb + i * a->o_st + h * a->o_sh;
                double mx = -INFINITY;
                for (int64_t j = 0; j < TK; j++) {
                    const kd_bf16 *k = K + b * a->k_sb + j * a->k_st + h * a->k_sh;
                    double t = 0.0;
                    for (int64_t d = 0; d < D; d++) t += ldb(q + d) * ldb(k + d);
                    t *= a->scale;
                    if (a->mask) t += ((const float *)a->mask)[b * a->mask_sb + j];
                    s[j] = t;
                    if (t > mx) mx = t;
                    keep[j] = 1.0;
                    if (a->dropout_p > 0.0) {
                        uint64_t ctr = a->offset + (uint64_t)(((b * a->heads + h) * TQ + i) * TK + j);
                        keep[j] = kd_rng_keep(a->seed, ctr, (float)a->dropout_p) ? 1.0 / (1.0 - a->dropout_p) : 0.0;
                    }
                }
                if (mx == -INFINITY) continue;   /* fully masked: P = 0, no error to allow */
                double sum = 0.0;
                for (int64_t j = 0; j < TK; j++) sum += exp(s[j] - mx);
                const double lse = mx + log(sum);
                for (int64_t j = 0; j < TK; j++) s[j] = exp(s[j] - lse);   /* P */
                /* O's allowance and M_i */
                double M = 0.0, rs = 0.0;
                for (int64_t d = 0; d < D; d++) {
                    double e = 0.0;
                    for (int64_t j = 0; j < TK; j++)
                        e += s[j] * keep[j] * fabs(ldb(V + b * a->v_sb + j * a->v_st + h * a->v_sh + d));
                    eo[b * a->o_sb + i * a->o_st + h * a->o_sh + d] = e;
                    M += fabs(ldb(go + d)) * (fabs(ldb(oi + d)) + e);
                }
                for (int64_t j = 0; j < TK; j++) {
                    const kd_bf16 *v = V + b * a->v_sb + j * a->v_st + h * a->v_sh;
                    double dp = 0.0;
                    for (int64_t d = 0; d < D; d++) dp += ldb(go + d) * ldb(v + d);
                    ds[j] = dp * keep[j];
                    rs += s[j] * ds[j];
                }
                for (int64_t j = 0; j < TK; j++) {
                    const double w = (fabs(s[j] * (ds[j] - rs)) + s[j] * M) * a->scale;
                    const int64_t ko = b * a->k_sb + j * a->k_st + h * a->k_sh, vo = b * a->v_sb + j * a->v_st + h * a->v_sh;
                    const int64_t qo = b * a->q_sb + i * a->q_st + h * a->q_sh;
                    for (int64_t d = 0; d < D; d++) {
                        eq[qo + d] += w * fabs(ldb(K + ko + d));
                        ek[ko + d] += w * fabs(ldb(q + d));
                        ev[vo + d] += s[j] * keep[j] * fabs(ldb(go + d));
                    }
                }
            }
    free(s);
    free(keep);
    free(ds);
}

/* got vs want over n elements with the allowance e (NULL: none); returns the number off, and the worst
 * |got - want| / tol through *worst. */
static int64_t compare(const kd_bf16 *got, const kd_bf16 *want, const double *e, int64_t n, const char *what,
                       double *worst)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        const double g = kd_bf16_to_f32(got[i]), w = kd_bf16_to_f32(want[i]);
        const double tol = ldexp(fabs(w), -7) + (e ? ldexp(e[i], -7) : 0.0) + 1e-6;
        const double r = fabs(g - w) / tol;
        if (!(fabs(g - w) <= tol)) {
            if (bad < 4) fprintf(stderr, "  %s[%lld]: got %.7g, want %.7g (tol %.3g)\n", what, (long long)i, g, w, tol);
            bad++;
        } else if (r > *worst) {
            *worst = r;
        }
    }
    return bad;
}

static int run_case(const acase *c)
{
    const int64_t B = c->batch, H = c->heads, TQ = c->tq, TK = c->tk, D = c->dim;
    char what[200];
    snprintf(what, sizeof what, "B %lld H %lld tq %lld tk %lld D %lld drop %d layout %d mask %d", (long long)B,
             (long long)H, (long long)TQ, (long long)TK, (long long)D, c->drop, c->layout, c->maskmode);
    kd_attention_args a;
    memset(&a, 0, sizeof a);
    a.batch = B; a.heads = H; a.tq = TQ; a.tk = TK; a.dim = D;
    const int packed = c->layout == 1;
    const int64_t pad = c->layout == 2 ? 3 : 0;
    /* token strides; packed: q, k, v (and dq, dk, dv) at offsets 0, H D, 2 H D of one buffer */
    const int64_t st = packed ? 3 * H * D : H * D + pad, ost = H * D + pad;
    const int64_t nq = B * TQ * st, nk = packed ? 0 : B * TK * st, no = B * TQ * ost;
    bbuf q = bb_new(nq), k = bb_new(packed ? 1 : nk), v = bb_new(packed ? 1 : nk);
    bbuf dq = bb_new(nq), dk = bb_new(packed ? 1 : nk), dv = bb_new(packed ? 1 : nk);
    bbuf o = bb_new(no), dO = bb_new(no);
    /* O poisoned with NaN where the kernel must write (an element it forgot shows up); the padding
     * between token rows (layout 2) keeps random values that must survive */
    for (int64_t bt = 0; bt < B * TQ; bt++)
        for (int64_t e = 0; e < H * D; e++) o.h[bt * (H * D + pad) + e] = 0x7fc0;
    a.q_sb = TQ * st; a.k_sb = a.v_sb = packed ? TQ * st : TK * st;
    a.q_st = a.k_st = a.v_st = st;
    a.q_sh = a.k_sh = a.v_sh = D;
    a.o_sb = TQ * ost; a.o_st = ost; a.o_sh = D;
    gt_buf mask = gt_new(B * TK, 0, 0.0f), lse = gt_new(B * H * TQ, 0, NAN);
    const float mval = c->maskmode == 2 ? -FLT_MAX : -INFINITY;
    for (int64_t j = TK - TK / 4; j < TK && TK > 1; j++) gt_h(&mask)[j] = mval;
    if (B > 1)
        for (int64_t j = 0; j < TK; j++) gt_h(&mask)[(B - 1) * TK + j] = mval;
    gt_push(&mask);
    a.mask_sb = TK;
    a.scale = 1.0 / sqrt((double)(D > 0 ? D : 1));
    a.dropout_p = c->drop ? 0.2 : 0.0;
    a.seed = 0xb16ull + (uint64_t)TQ * 31u + (uint64_t)D;
    a.offset = 777;

    /* host reference on copies at the same strides */
    const int64_t koff = packed ? H * D : 0, voff = packed ? 2 * H * D : 0;
    kd_bf16 *wo = malloc((size_t)no * 2), *wdq = malloc((size_t)nq * 2);
    kd_bf16 *wdk = malloc((size_t)(packed ? 1 : nk) * 2), *wdv = malloc((size_t)(packed ? 1 : nk) * 2);
    float *wl = malloc((size_t)(B * H * TQ > 0 ? B * H * TQ : 1) * sizeof *wl);
    if (!wo || !wdq || !wdk || !wdv || !wl) gt_die("malloc");
    memcpy(wo, o.h, (size_t)no * 2);
    memcpy(wdq, dq.h, (size_t)nq * 2);
    if (!packed) {
        memcpy(wdk, dk.h, (size_t)nk * 2);
        memcpy(wdv, dv.h, (size_t)nk * 2);
    }
    kd_attention_args h = a;
    h.q = q.h; h.k = packed ? q.h + koff : k.h; h.v = packed ? q.h + voff : v.h;
    h.o = wo; h.lse = wl; h.d_o = dO.h; h.mask = c->maskmode ? gt_h(&mask) : NULL;
    h.dq = wdq; h.dk = packed ? wdq + koff : wdk; h.dv = packed ? wdq + voff : wdv;
    ref->attention(&h, 0, 1);
    ref->attention_bwd(&h, 0, 1);

    double *eo = calloc((size_t)no, sizeof *eo), *eq = calloc((size_t)nq, sizeof *eq);
    double *ek = calloc((size_t)(packed ? 1 : nk), sizeof *ek), *ev = calloc((size_t)(packed ? 1 : nk), sizeof *ev);
    if (!eo || !eq || !ek || !ev) gt_die("malloc");
    /* packed: k's and v's allowances sit inside eq at their offsets, as the gradients do in dq */
    bounds(&h, wo, eo, eq, packed ? eq + koff : ek, packed ? eq + voff : ev);

    /* device */
    bb_push(&q); bb_push(&dq); bb_push(&o); bb_push(&dO);
    if (!packed) { bb_push(&k); bb_push(&v); bb_push(&dk); bb_push(&dv); }
    kd_attention_args d = a;
    d.q = bb_dev(&q); d.k = packed ? bb_dev(&q) + koff : bb_dev(&k); d.v = packed ? bb_dev(&q) + voff : bb_dev(&v);
    d.o = bb_dev(&o); d.lse = gt_d(&lse); d.d_o = bb_dev(&dO); d.mask = c->maskmode ? gt_d(&mask) : NULL;
    d.dq = bb_dev(&dq); d.dk = packed ? bb_dev(&dq) + koff : bb_dev(&dk); d.dv = packed ? bb_dev(&dq) + voff : bb_dev(&dv);
    kd_cu_attention_bf16(&d, 0, 1);
    kd_cu_attention_bwd_bf16(&d, 0, 1);
    CHECK(kd_cuda_sync() == KD_OK && kd_cuda_status() == KD_OK, "%s: kernels ran: %s", what, kd_last_error());

    int64_t guards = 0, bad = 0;
    double worst = 0.0;
    kd_bf16 *go = bb_pull(&o, &guards), *gq = bb_pull(&dq, &guards);
    kd_bf16 *gk = packed ? NULL : bb_pull(&dk, &guards), *gv = packed ? NULL : bb_pull(&dv, &guards);
    int64_t b_o = compare(go, wo, eo, no, "o", &worst);
    int64_t b_q = compare(gq, wdq, eq, nq, packed ? "dqkv" : "dq", &worst);
    int64_t b_k = packed ? 0 : compare(gk, wdk, ek, nk, "dk", &worst);
    int64_t b_v = packed ? 0 : compare(gv, wdv, ev, nk, "dv", &worst);
    bad = b_o + b_q + b_k + b_v;
    CHECK(b_o == 0, "%s: o: %lld of %lld off", what, (long long)b_o, (long long)no);
    CHECK(b_q == 0, "%s: dq: %lld of %lld off", what, (long long)b_q, (long long)nq);
    CHECK(b_k == 0 && b_v == 0, "%s: dk %lld, dv %lld of %lld off", what, (long long)b_k, (long long)b_v, (long long)nk);

    /* lse: -inf exactly where the reference has -inf, f32 tolerance elsewhere */
    float *gl = gt_pull(&lse, "lse");
    const double lt = FLT_EPSILON * (16.0 + 4.0 * sqrt((double)(TK * D))) * 4;
    int64_t bad_l = 0;
    for (int64_t i = 0; i < B * H * TQ; i++) {
        const double g = gl[GT_GUARD + i], w = wl[i];
        const int ok = isinf(w) && w < 0 ? (isinf(g) && g < 0) : kd_close(g, w, lt, lt);
        if (!ok && bad_l++ < 4) fprintf(stderr, "  lse[%lld]: got %.9g, want %.9g\n", (long long)i, g, w);
    }
    CHECK(bad_l == 0, "%s: lse: %lld of %lld off (tol %g)", what, (long long)bad_l, (long long)(B * H * TQ), lt);
    CHECK(guards == 0, "%s: %lld guard values overwritten (out-of-bounds write)", what, (long long)guards);

    /* the batch item whose keys are all -inf: O exactly 0, its gradients unchanged bit for bit */
    if (B > 1 && c->maskmode == 1) {
        int64_t nz = 0, moved = 0;
        for (int64_t t = 0; t < TQ; t++)
            for (int64_t hh = 0; hh < H; hh++)
                for (int64_t e = 0; e < D; e++) {
                    const int64_t oi = (B - 1) * a.o_sb + t * ost + hh * D + e, qi = (B - 1) * a.q_sb + t * st + hh * D + e;
                    nz += go[oi] != 0;
                    moved += gq[qi] != dq.h[qi];
                }
        CHECK(nz == 0, "%s: fully masked batch item: %lld outputs not 0", what, (long long)nz);
        CHECK(moved == 0, "%s: fully masked batch item: %lld dq values changed", what, (long long)moved);
    }
    printf("  %-62s worst |err|/tol %.3f%s\n", what, worst, bad || bad_l || guards ? "  FAIL" : "");

    free(go); free(gq); free(gk); free(gv); free(gl);
    free(wo); free(wdq); free(wdk); free(wdv); free(wl);
    free(eo); free(eq); free(ek); free(ev);
    bb_free(&q); bb_free(&k); bb_free(&v); bb_free(&dq); bb_free(&dk); bb_free(&dv); bb_free(&o); bb_free(&dO);
    gt_free(&mask); gt_free(&lse);
    return 1;
}

int main(void)
{
    gt_skip_without_gpu("test_cuda_attention_bf16");
    ref = kd_kernels_ref_bf16();
    int ncases = 0;
    const int64_t lens[] = { 1, 7, 63, 65, 127, 129, 257 };
    const int64_t dims[] = { 32, 64, 128 };
    for (int di = 0; di < 3; di++)
        for (int li = 0; li < 7; li++) {
            acase c = { 2, 2, lens[li], lens[li], dims[di], (li + di) & 1, 0, 1 + (li % 3 == 2) };
            ncases += run_case(&c);
        }
    /* unequal lengths, both ways round; one without a mask */
    const int64_t uneq[][2] = { { 63, 129 }, { 129, 7 }, { 1, 200 }, { 300, 65 } };
    for (int u = 0; u < 4; u++)
        for (int di = 0; di < 3; di++) {
            acase c = { 2, 3, uneq[u][0], uneq[u][1], dims[di], u & 1, 0, u == 2 ? 0 : 1 };
            ncases += run_case(&c);
        }
    /* packed QKV views (16-byte aligned), a BERT-like shape, and odd token strides (element-wise loads) */
    for (int di = 0; di < 3; di++) {
        acase p = { 2, 4, 77, 77, dims[di], di == 1, 1, 1 };
        ncases += run_case(&p);
        acase s = { 2, 3, 65, 33, dims[di], di != 1, 2, 1 };
        ncases += run_case(&s);
    }
    {
        acase c = { 2, 12, 128, 128, 64, 1, 1, 1 };
        ncases += run_case(&c);
    }
    /* head dims without a tensor-core kernel */
    const int64_t odd_dims[] = { 1, 17, 48, 80 };
    for (int di = 0; di < 4; di++) {
        acase c = { 2, 2, 33, 65, odd_dims[di], di & 1, di == 3 ? 2 : 0, 1 + (di == 2) };
        ncases += run_case(&c);
    }
    /* a head dim past the fallback's limit is refused through the sticky status */
    kd_attention_args bad;
    memset(&bad, 0, sizeof bad);
    bad.batch = 1; bad.heads = 1; bad.tq = 4; bad.tk = 4; bad.dim = 600;
    kd_cu_attention_bf16(&bad, 0, 1);
    CHECK(kd_cuda_status() == KD_ERR_ARG, "head dim 600 gives KD_ERR_ARG");
    kd_cuda_clear_status();
    kd_clear_error();
    printf("%d bf16 attention cases checked (forward O and lse, backward dq, dk, dv)\n", ncases);
    kd_cuda_shutdown();
    return kd_test_finish("test_cuda_attention_bf16");
}
