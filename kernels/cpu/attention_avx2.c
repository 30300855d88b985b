/* kernels/cpu/attention_avx2.c — scaled dot-product attention, forward and backward, as packed GEMMs
 * (the table's own GEMM kernel, run on one thread) around vectorised row passes.
 *
 * Per (batch, head) and per block of up to QB query rows, the block's score rows are materialised
 * (QB x tk floats per thread, never the whole tq x tk x heads x batch tensor):
 *   forward:   S = scale Q K^T (GEMM);  row pass: + mask, m = max, e = e^(S - m), l = sum e,
 *              lse = m + log l, P' = e / l * keep;  O = P' V (GEMM)
 *   backward:  S = scale Q K^T and dP = dO V^T (GEMMs);  row pass: P = e^(S + mask - lse) from the
 *              forward's lse, rs = rowsum(P dP keep) = dO . O, P' = P keep, dS = P (dP keep - rs) scale;
 *              dQ += dS K, dK += dS^T Q, dV += P'^T dO (GEMMs, accumulating)
 * Dropout draws the reference's Philox keep decisions at counter offset + ((b heads + h) tq + i) tk + j
 * (kd_keep_scale_*, kernels/cpu/dropout_*.c). Register-tiled packed GEMMs do the O(tq tk dim) work at a large share of
 * the FMA peak; a per-row dot-product loop does not (it is bound by loads and by the branches on
 * dropped keys). The AVX-512 table runs the same code with its AVX-512 GEMM. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/vecmath_avx2.h"
#include "kernels/rng.h"

#define QB 128 /* query rows per block: S, P' and dS blocks are QB x tk */

static float *att_alloc(int64_t n)
{
    size_t bytes = ((size_t)(n > 0 ? n : 1) * sizeof(float) + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (!p) abort(); /* kernels return no status, as in the reference */
    return p;
}

/* C (m x n, row stride ldc) = alpha op(A) op(B) + beta C on the calling thread. */
static void att_gemm(void (*gemm)(const kd_gemm_args *, int, int), int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                     const float *b, int64_t ldb, float *c, int64_t ldc, double alpha, double beta)
{
    kd_gemm_args g = { .trans_a = ta, .trans_b = tb, .m = m, .n = n, .k = k, .batch = 1, .a = a, .lda = lda,
                       .b = b, .ldb = ldb, .c = c, .ldc = ldc, .alpha = alpha, .beta = beta };
    gemm(&g, 0, 1);
}

static inline __m256 att_load(const float *p, int64_t left)
{
    return left >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, kd_tail_mask(left));
}
static inline void att_store(float *p, int64_t left, __m256 v)
{
    if (left >= 8) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, kd_tail_mask(left), v);
}

/* Forward row pass on s[0..n) (scaled scores): P' in place, returns lse. NaN anywhere: P' = NaN (O comes
 * out NaN); every key masked: P' = 0 (O = 0), lse = -inf. */
static float att_row_fwd(float *s, int64_t n, const float *mask, const float *keep)
{
    __m256 vmax = _mm256_set1_ps(-INFINITY), vnan = _mm256_setzero_ps();
    for (int64_t j = 0; j < n; j += 8) {
        __m256 x = att_load(s + j, n - j);
        if (mask) {
            x = _mm256_add_ps(x, att_load(mask + j, n - j));
            att_store(s + j, n - j, x);
        }
        vnan = _mm256_or_ps(vnan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
        if (n - j < 8) x = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), x, _mm256_castsi256_ps(kd_tail_mask(n - j)));
        vmax = _mm256_max_ps(vmax, x);
    }
    if (_mm256_movemask_ps(vnan)) {
        for (int64_t j = 0; j < n; j++) s[j] = NAN;
        return NAN;
    }
    const float m = kd_hmax8(vmax);
    if (m == -INFINITY) {
        memset(s, 0, (size_t)n * sizeof *s);
        return -INFINITY;
    }
    const __m256 vm = _mm256_set1_ps(m);
    __m256 ls = _mm256_setzero_ps();
    for (int64_t j = 0; j < n; j += 8) {
        __m256 e = kd_exp8(_mm256_sub_ps(att_load(s + j, n - j), vm));
        if (n - j < 8) e = _mm256_and_ps(e, _mm256_castsi256_ps(kd_tail_mask(n - j)));
        att_store(s + j, n - j, e);
        ls = _mm256_add_ps(ls, e);
    }
    const float l = kd_hsum8(ls);
    const __m256 inv = _mm256_set1_ps(1.0f / l);
    for (int64_t j = 0; j < n; j += 8) {
        __m256 c = _mm256_mul_ps(att_load(s + j, n - j), inv);
        if (keep) c = _mm256_mul_ps(c, att_load(keep + j, n - j));
        att_store(s + j, n - j, c);
    }
    return m + logf(l);
}

void kd_attention_gemm_f32(const kd_attention_args *a, int ith, int nth, const kd_attention_impl *impl)
{
    void (*gemm)(const kd_gemm_args *, int, int) = impl->gemm;
    int64_t lo, hi;
    kd_split_range(a->batch * a->heads, ith, nth, &lo, &hi);
    if (lo >= hi) return;
    const int64_t D = a->dim, TK = a->tk, ldt = (TK + 15) & ~(int64_t)15;
    const float p = (float)a->dropout_p;
    const int drop = a->dropout_p > 0.0;
    const int64_t qb = a->tq < QB ? a->tq : QB;
    float *s = att_alloc(qb * ldt), *keep = att_alloc(ldt);
    for (int64_t bh = lo; bh < hi; bh++) {
        const int64_t b = bh / a->heads, h = bh % a->heads;
        const float *K = (const float *)a->k + b * a->k_sb + h * a->k_sh;
        const float *V = (const float *)a->v + b * a->v_sb + h * a->v_sh;
        const float *mask = a->mask ? (const float *)a->mask + b * a->mask_sb : NULL;
        float *lse = (float *)a->lse + bh * a->tq;
        for (int64_t i0 = 0; i0 < a->tq; i0 += qb) {
            const int64_t nq = a->tq - i0 < qb ? a->tq - i0 : qb;
            const float *Q = (const float *)a->q + b * a->q_sb + i0 * a->q_st + h * a->q_sh;
            float *O = (float *)a->o + b * a->o_sb + i0 * a->o_st + h * a->o_sh;
            if (TK == 0) { /* no keys: every row fully masked */
                for (int64_t i = 0; i < nq; i++) {
                    memset(O + i * a->o_st, 0, (size_t)D * sizeof(float));
                    lse[i0 + i] = -INFINITY;
                }
                continue;
            }
            att_gemm(gemm, 0, 1, nq, TK, D, Q, a->q_st, K, a->k_st, s, ldt, a->scale, 0.0);
            for (int64_t i = 0; i < nq; i++) {
                if (drop) impl->keep(a->seed, a->offset + (uint64_t)(((b * a->heads + h) * a->tq + i0 + i) * TK), TK, p, keep);
                lse[i0 + i] = att_row_fwd(s + i * ldt, TK, mask, drop ? keep : NULL);
            }
            att_gemm(gemm, 0, 0, nq, D, TK, s, ldt, V, a->v_st, O, a->o_st, 1.0, 0.0);
        }
    }
    free(s);
    free(keep);
}

void kd_attention_bwd_gemm_f32(const kd_attention_args *a, int ith, int nth, const kd_attention_impl *impl)
{
    void (*gemm)(const kd_gemm_args *, int, int) = impl->gemm;
    int64_t lo, hi;
    kd_split_range(a->batch * a->heads, ith, nth, &lo, &hi);
    if (lo >= hi || a->tk == 0) return;
    const int64_t D = a->dim, TK = a->tk, ldt = (TK + 15) & ~(int64_t)15;
    const float p = (float)a->dropout_p;
    const int drop = a->dropout_p > 0.0;
    const int64_t qb = a->tq < QB ? a->tq : QB;
    float *pk = att_alloc(qb * ldt), *ds = att_alloc(qb * ldt), *keep = att_alloc(ldt);
    const __m256 vscale = _mm256_set1_ps((float)a->scale);
    for (int64_t bh = lo; bh < hi; bh++) {
        const int64_t b = bh / a->heads, h = bh % a->heads;
        const float *K = (const float *)a->k + b * a->k_sb + h * a->k_sh;
        const float *V = (const float *)a->v + b * a->v_sb + h * a->v_sh;
        float *dK = (float *)a->dk + b * a->k_sb + h * a->k_sh;
        float *dV = (float *)a->dv + b * a->v_sb + h * a->v_sh;
        const float *mask = a->mask ? (const float *)a->mask + b * a->mask_sb : NULL;
        const float *lse = (const float *)a->lse + bh * a->tq;
        for (int64_t i0 = 0; i0 < a->tq; i0 += qb) {
            const int64_t nq = a->tq - i0 < qb ? a->tq - i0 : qb;
            const float *Q = (const float *)a->q + b * a->q_sb + i0 * a->q_st + h * a->q_sh;
            const float *dO = (const float *)a->d_o + b * a->o_sb + i0 * a->o_st + h * a->o_sh;
            const float *O = (const float *)a->o + b * a->o_sb + i0 * a->o_st + h * a->o_sh;
            float *dQ = (float *)a->dq + b * a->q_sb + i0 * a->q_st + h * a->q_sh;
            att_gemm(gemm, 0, 1, nq, TK, D, Q, a->q_st, K, a->k_st, pk, ldt, a->scale, 0.0);  /* S */
            att_gemm(gemm, 0, 1, nq, TK, D, dO, a->o_st, V, a->v_st, ds, ldt, 1.0, 0.0);      /* dP */
            for (int64_t i = 0; i < nq; i++) {
                float *P = pk + i * ldt, *S = ds + i * ldt;
                const float li = lse[i0 + i];
                if (li == -INFINITY) { /* fully masked row: P = 0, no gradient */
                    memset(P, 0, (size_t)TK * sizeof(float));
                    memset(S, 0, (size_t)TK * sizeof(float));
                    continue;
                }
                const float *doi = dO + i * a->o_st, *oi = O + i * a->o_st;
                float rs = 0.0f;
                for (int64_t d = 0; d < D; d++) rs += doi[d] * oi[d];
                if (drop) impl->keep(a->seed, a->offset + (uint64_t)(((b * a->heads + h) * a->tq + i0 + i) * TK), TK, p, keep);
                const __m256 vl = _mm256_set1_ps(li), vrs = _mm256_set1_ps(rs);
                for (int64_t j = 0; j < TK; j += 8) {
                    __m256 x = att_load(P + j, TK - j);
                    if (mask) x = _mm256_add_ps(x, att_load(mask + j, TK - j));
                    const __m256 pj = kd_exp8(_mm256_sub_ps(x, vl));
                    __m256 dpj = att_load(S + j, TK - j), pkj = pj;
                    if (drop) {
                        const __m256 kj = att_load(keep + j, TK - j);
                        dpj = _mm256_mul_ps(dpj, kj);
                        pkj = _mm256_mul_ps(pj, kj);
                    }
                    att_store(P + j, TK - j, pkj);
                    att_store(S + j, TK - j, _mm256_mul_ps(_mm256_mul_ps(pj, _mm256_sub_ps(dpj, vrs)), vscale));
                }
            }
            att_gemm(gemm, 0, 0, nq, D, TK, ds, ldt, K, a->k_st, dQ, a->q_st, 1.0, 1.0);  /* dQ += dS K */
            att_gemm(gemm, 1, 0, TK, D, nq, ds, ldt, Q, a->q_st, dK, a->k_st, 1.0, 1.0);  /* dK += dS^T Q */
            att_gemm(gemm, 1, 0, TK, D, nq, pk, ldt, dO, a->o_st, dV, a->v_st, 1.0, 1.0); /* dV += P'^T dO */
        }
    }
    free(pk);
    free(ds);
    free(keep);
}

static const kd_attention_impl att_avx2 = { kd_gemm_avx2_f32, kd_keep_scale_avx2 };

void kd_attention_avx2_f32(const kd_attention_args *a, int ith, int nth) { kd_attention_gemm_f32(a, ith, nth, &att_avx2); }

void kd_attention_bwd_avx2_f32(const kd_attention_args *a, int ith, int nth)
{
    kd_attention_bwd_gemm_f32(a, ith, nth, &att_avx2);
}
