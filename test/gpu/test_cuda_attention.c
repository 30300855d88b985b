/* test/gpu/test_cuda_attention.c — CUDA attention (the table's entries: flash kernels for head dims 32,
 * 64, 128, per-row kernels otherwise; and the bf16-input flash entries) against kd_kernels_ref_f32(),
 * forward and backward, at query/key lengths 1, 7, 63, 128, 129, 512 and unequal ones, with a key-padding
 * mask of -inf (a batch item whose keys are all masked: O = 0, lse = -inf, no gradient) or of -FLT_MAX as
 * BERT's (the fully masked item then has every score equal: lse rounds back to the row max, the kernels'
 * other branch), or no mask, dropout on and off, q/k/v read from a packed QKV buffer by strides. O and lse are poisoned with NaN first; dq, dk, dv start
 * random (they accumulate); every buffer sits between guard zones.
 *
 * Tolerance: f32 epsilon scaled by the reduction length tk * dim (gt_tol), as the other kernel tests. The
 * bf16 variant's reference sees q, k, v rounded to bf16 on the host exactly as the device reads them, so
 * what remains is f32 accumulation and the same tolerance applies. Exits 77 without a GPU. */
#include <float.h>

#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/gemm_plan.h"
#include "test/gpu/gpu_test.h"

static const kd_kernels *ref, *cu;

typedef struct acase {
    int64_t batch, heads, tq, tk, dim;
    int drop;      /* dropout p = 0.2 */
    int packed;    /* q, k, v are views of one [B, T, 3, H, D] buffer (tq == tk) */
    int bf16;      /* the bf16-input entries instead of the table */
    int maskmode;  /* 0 none; 1 -inf padding; 2 -FLT_MAX padding (BERT's) */
} acase;

static float *dup(const float *p, int64_t n)
{
    float *q = malloc((size_t)(n > 0 ? n : 1) * sizeof *q);
    if (!q) gt_die("malloc");
    memcpy(q, p, (size_t)n * sizeof *q);
    return q;
}

/* lse: -inf where the reference has -inf (fully masked rows), close elsewhere. */
static void compare_lse(gt_buf *b, const float *want, double tol, const char *what)
{
    float *got = gt_pull(b, what);
    int64_t bad = 0;
    for (int64_t i = 0; i < b->n; i++) {
        double g = got[GT_GUARD + i], w = want[i];
        int ok = isinf(w) && w < 0 ? (isinf(g) && g < 0) : kd_close(g, w, tol, tol);
        if (!ok && bad++ < 4) fprintf(stderr, "  %s[%lld]: got %.9g, want %.9g\n", what, (long long)i, g, w);
    }
    CHECK(bad == 0, "%s: %lld of %lld values off (tol %g)", what, (long long)bad, (long long)b->n, tol);
    free(got);
}

static void run_case(const acase *c)
{
    const int64_t B = c->batch, H = c->heads, TQ = c->tq, TK = c->tk, D = c->dim;
    char what[160];
    snprintf(what, sizeof what, "attention%s B %lld H %lld tq %lld tk %lld D %lld drop %d packed %d mask %d",
             c->bf16 ? " bf16" : "", (long long)B, (long long)H, (long long)TQ, (long long)TK, (long long)D, c->drop,
             c->packed, c->maskmode);
    /* q, k, v and their gradients: separate [B, T, H, D] buffers, or one [B, T, 3, H, D] each */
    int64_t nq = B * TQ * H * D, nk = B * TK * H * D, nqkv = c->packed ? B * TQ * 3 * H * D : 0;
    gt_buf q, k, v, dq, dk, dv;
    kd_attention_args a;
    memset(&a, 0, sizeof a);
    a.batch = B; a.heads = H; a.tq = TQ; a.tk = TK; a.dim = D;
    if (c->packed) {
        q = gt_new(nqkv, 1, 0);
        dq = gt_new(nqkv, 1, 0);
        a.q_sb = a.k_sb = a.v_sb = TQ * 3 * H * D;
        a.q_st = a.k_st = a.v_st = 3 * H * D;
    } else {
        q = gt_new(nq, 1, 0); k = gt_new(nk, 1, 0); v = gt_new(nk, 1, 0);
        dq = gt_new(nq, 1, 0); dk = gt_new(nk, 1, 0); dv = gt_new(nk, 1, 0);
        a.q_sb = TQ * H * D; a.k_sb = a.v_sb = TK * H * D;
        a.q_st = a.k_st = a.v_st = H * D;
    }
    a.q_sh = a.k_sh = a.v_sh = D;
    gt_buf o = gt_new(nq, 0, NAN), lse = gt_new(B * H * TQ, 0, NAN), dO = gt_new(nq, 1, 0);
    a.o_sb = TQ * H * D; a.o_st = H * D; a.o_sh = D;
    /* mask: batch 0 pads its last quarter of keys; the last batch item (when B > 1) masks every key */
    gt_buf mask = gt_new(B * TK, 0, 0.0f);
    const float mval = c->maskmode == 2 ? -FLT_MAX : -INFINITY;
    for (int64_t j = TK - TK / 4; j < TK && TK > 1; j++) gt_h(&mask)[j] = mval;
    if (B > 1)
        for (int64_t j = 0; j < TK; j++) gt_h(&mask)[(B - 1) * TK + j] = mval;
    gt_push(&mask);
    a.mask_sb = TK;
    a.scale = 1.0 / sqrt((double)D);
    a.dropout_p = c->drop ? 0.2 : 0.0;
    a.seed = 0x5eedull + (uint64_t)TQ;
    a.offset = 1000003;

    /* bf16: round q, k, v on the host; the device gets the bf16 bits */
    gt_buf *ins[3] = { &q, c->packed ? &q : &k, c->packed ? &q : &v };
    int nins = c->packed ? 1 : 3;
    uint16_t *bits[3] = { NULL, NULL, NULL };
    void *dbits[3] = { NULL, NULL, NULL };
    if (c->bf16) {
        for (int t = 0; t < nins; t++) {
            gt_buf *g = ins[t];
            bits[t] = malloc((size_t)g->n * 2);
            if (!bits[t]) gt_die("malloc");
            for (int64_t i = 0; i < g->n; i++) {
                bits[t][i] = kd_cu_bf16_from_f32(gt_h(g)[i]);
                gt_h(g)[i] = kd_cu_bf16_to_f32(bits[t][i]);
            }
            if (kd_cuda_malloc(&dbits[t], (size_t)g->n * 2) != KD_OK ||
                kd_cuda_h2d(dbits[t], bits[t], (size_t)g->n * 2) != KD_OK)
                gt_die("bf16 upload");
        }
    }

    int64_t nd_q = c->packed ? nqkv : nq, nd_k = c->packed ? 0 : nk;
    float *wo = dup(gt_h(&o), nq), *wl = dup(gt_h(&lse), B * H * TQ);
    float *wdq = dup(gt_h(&dq), nd_q), *wdk = c->packed ? NULL : dup(gt_h(&dk), nd_k),
          *wdv = c->packed ? NULL : dup(gt_h(&dv), nd_k);
    float *dq0 = dup(gt_h(&dq), nd_q);
    kd_attention_args h = a, d = a;
    int64_t koff = c->packed ? H * D : 0, voff = c->packed ? 2 * H * D : 0;
    h.q = gt_h(&q); h.k = gt_h(ins[1]) + koff; h.v = gt_h(ins[2]) + voff;
    h.o = wo; h.mask = c->maskmode ? gt_h(&mask) : NULL; h.lse = wl; h.d_o = gt_h(&dO);
    h.dq = wdq; h.dk = c->packed ? wdq + koff : wdk; h.dv = c->packed ? wdq + voff : wdv;
    ref->attention(&h, 0, 1);
    ref->attention_bwd(&h, 0, 1);

    if (c->bf16) {
        d.q = dbits[0]; d.k = (uint16_t *)dbits[c->packed ? 0 : 1] + koff; d.v = (uint16_t *)dbits[c->packed ? 0 : 2] + voff;
    } else {
        d.q = gt_d(&q); d.k = gt_d(ins[1]) + koff; d.v = gt_d(ins[2]) + voff;
    }
    d.o = gt_d(&o); d.mask = c->maskmode ? gt_d(&mask) : NULL; d.lse = gt_d(&lse); d.d_o = gt_d(&dO);
    d.dq = gt_d(&dq); d.dk = c->packed ? gt_d(&dq) + koff : gt_d(&dk); d.dv = c->packed ? gt_d(&dq) + voff : gt_d(&dv);
    if (c->bf16) {
        CHECK(kd_cuda_flash_attention_bf16(&d) == KD_OK, "%s: forward: %s", what, kd_last_error());
        CHECK(kd_cuda_flash_attention_bwd_bf16(&d) == KD_OK, "%s: backward: %s", what, kd_last_error());
    } else {
        cu->attention(&d, 0, 1);
        cu->attention_bwd(&d, 0, 1);
    }
    CHECK(kd_cuda_status() == KD_OK, "%s: no kernel error: %s", what, kd_last_error());

    double t = gt_tol(TK * D) * 4;
    char w2[200];
    snprintf(w2, sizeof w2, "%s: o", what);
    gt_compare(&o, wo, t, t, w2);
    snprintf(w2, sizeof w2, "%s: lse", what);
    compare_lse(&lse, wl, t, w2);
    snprintf(w2, sizeof w2, "%s: dq%s", what, c->packed ? "kv" : "");
    gt_compare(&dq, wdq, t * 4, t, w2);
    if (!c->packed) {
        snprintf(w2, sizeof w2, "%s: dk", what);
        gt_compare(&dk, wdk, t * 4, t, w2);
        snprintf(w2, sizeof w2, "%s: dv", what);
        gt_compare(&dv, wdv, t * 4, t, w2);
    }
    /* the batch item whose keys are all -inf: O exactly 0, its dq untouched (bit for bit); under -FLT_MAX
     * it is an ordinary row of equal scores, compared with the reference above */
    if (B > 1 && c->maskmode == 1) {
        float *go = gt_pull(&o, "o"), *gq = gt_pull(&dq, "dq");
        int64_t nz = 0, moved = 0;
        for (int64_t i = (B - 1) * TQ * H * D; i < nq; i++) nz += go[GT_GUARD + i] != 0.0f;
        int64_t qb = c->packed ? TQ * 3 * H * D : TQ * H * D;
        for (int64_t i = (B - 1) * qb; i < B * qb; i++) moved += gq[GT_GUARD + i] != dq0[i];
        CHECK(nz == 0, "%s: fully masked batch item: %lld outputs not 0", what, (long long)nz);
        CHECK(moved == 0, "%s: fully masked batch item: %lld gradient values changed", what, (long long)moved);
        free(go); free(gq);
    }

    for (int i = 0; i < 3; i++) {
        free(bits[i]);
        kd_cuda_free(dbits[i]);
    }
    free(wo); free(wl); free(wdq); free(wdk); free(wdv); free(dq0);
    gt_free(&q); gt_free(&dq);
    if (!c->packed) { gt_free(&k); gt_free(&v); gt_free(&dk); gt_free(&dv); }
    gt_free(&o); gt_free(&lse); gt_free(&dO); gt_free(&mask);
}

int main(void)
{
    gt_skip_without_gpu("test_cuda_attention");
    ref = kd_kernels_ref_f32();
    cu = kd_kernels_cuda_f32();
    CHECK(cu != NULL, "kd_kernels_cuda_f32() with a device present");
    if (!cu) return kd_test_finish("test_cuda_attention");
    const int64_t lens[] = { 1, 7, 63, 128, 129, 512 };
    const int64_t dims[] = { 32, 64, 128 };
    int ncases = 0;
    for (int di = 0; di < 3; di++)
        for (int li = 0; li < 6; li++)
            for (int drop = 0; drop < 2; drop++) {
                int64_t L = lens[li];
                /* the reference draws Philox per (i, j, d): at 512 keep dropout to D = 32 */
                if (L == 512 && drop && dims[di] != 32) continue;
                /* BERT's -FLT_MAX mask at lengths 63 and 512 (li % 3 == 2), -inf elsewhere */
                acase c = { L >= 512 ? 1 : 2, 2, L, L, dims[di], drop, 0, 0, 1 + (li % 3 == 2) };
                if (L == 512) {
                    c.batch = 2;
                    c.heads = 1;
                }
                run_case(&c);
                ncases++;
            }
    /* unequal lengths, both ways round; -FLT_MAX on one, no mask on another */
    const int64_t uneq[][2] = { { 63, 129 }, { 129, 7 }, { 1, 200 }, { 300, 65 } };
    for (int u = 0; u < 4; u++)
        for (int di = 0; di < 3; di++) {
            acase c = { 2, 3, uneq[u][0], uneq[u][1], dims[di], u & 1, 0, 0, u == 2 ? 0 : u == 3 ? 2 : 1 };
            run_case(&c);
            ncases++;
        }
    /* q, k, v (and their gradients) as strided views of packed QKV buffers */
    for (int di = 0; di < 3; di++) {
        acase c = { 2, 4, 77, 77, dims[di], di == 1, 1, 0, 1 + (di != 1) };
        run_case(&c);
        ncases++;
    }
    /* bf16 inputs */
    for (int di = 0; di < 3; di++)
        for (int li = 1; li < 5; li++) {
            acase c = { 2, 2, lens[li], lens[li], dims[di], li & 1, 0, 1, 1 + (li % 2 == 0) };
            run_case(&c);
            ncases++;
        }
    {
        acase c = { 2, 2, 96, 96, 64, 1, 1, 1, 2 };
        run_case(&c);
        ncases++;
    }
    /* head dims without a tiled kernel take the per-row fallback through the same table entries */
    const int64_t odd_dims[] = { 16, 80, 1 };
    for (int di = 0; di < 3; di++) {
        acase c = { 2, 2, 33, 65, odd_dims[di], di & 1, 0, 0, 1 + (di != 1) };
        run_case(&c);
        ncases++;
    }
    /* the bf16 entries refuse a head dim they have no kernel for */
    kd_attention_args bad;
    memset(&bad, 0, sizeof bad);
    bad.batch = 1; bad.heads = 1; bad.tq = 4; bad.tk = 4; bad.dim = 48;
    CHECK(kd_cuda_flash_attention_bf16(&bad) == KD_ERR_ARG, "head dim 48 is KD_ERR_ARG for the bf16 entry");
    kd_clear_error();
    CHECK(kd_cuda_status() == KD_OK, "no kernel reported an error: %s", kd_last_error());
    printf("%d attention cases checked\n", ncases);
    kd_cuda_shutdown();
    return kd_test_finish("test_cuda_attention");
}
