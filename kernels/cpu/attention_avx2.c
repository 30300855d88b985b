/* kernels/cpu/attention_avx2.c — scaled dot-product attention, forward and backward, tiled over keys
 * (flash-attention style), 8 floats at a time.
 *
 * Per (batch, head), K (and V for the backward) is transposed once into dim x tk so that the scores of 8
 * keys come out of one FMA chain per dimension (no horizontal sums). Forward, per query row, over tiles
 * of KT keys, the online softmax (Milakov & Gimelshein 2018; Dao et al. 2022):
 *   m' = max(m, max_j s_j),  l' = l e^(m - m') + sum_j e^(s_j - m'),  acc' = acc e^(m - m') + sum_j e^(s_j - m') keep_j v_j
 * and at the end O = acc / l, lse = m + log l. Dropout draws the reference's Philox keep decisions at
 * counter offset + ((b heads + h) tq + i) tk + j. Memory is O(dim x tk) per thread: no tq x tk matrix.
 * The backward recomputes each row's probabilities from the scores (it does not trust a stored lse) and
 * keeps p and dP for one row (O(tk)). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/vecmath_avx2.h"
#include "kernels/rng.h"

#define KT 64 /* keys per tile: 8 vectors of scores in flight */

static float *att_alloc(int64_t n)
{
    size_t bytes = ((size_t)(n > 0 ? n : 1) * sizeof(float) + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (!p) abort(); /* kernels return no status, as in the reference */
    return p;
}

/* dst[d * ldt + j] = src row j (element d), j < tk; columns tk..ldt-1 zero. */
static void att_transpose(const float *src, int64_t st, int64_t tk, int64_t dim, float *dst, int64_t ldt)
{
    for (int64_t j = 0; j < tk; j++) {
        const float *r = src + j * st;
        for (int64_t d = 0; d < dim; d++) dst[d * ldt + j] = r[d];
    }
    for (int64_t d = 0; d < dim; d++)
        for (int64_t j = tk; j < ldt; j++) dst[d * ldt + j] = 0.0f;
}

/* s[0..n) = scale * q . K[j0 + jj] (+ mask), n <= KT, from the transposed K (ldt columns). */
static void att_scores(const float *q, const float *kt, int64_t ldt, int64_t dim, int64_t j0, int64_t n, float scale,
                       const float *mask, float *s)
{
    __m256 acc[KT / 8];
    const int64_t ng = (n + 7) / 8;
    for (int64_t g = 0; g < ng; g++) acc[g] = _mm256_setzero_ps();
    for (int64_t d = 0; d < dim; d++) {
        const __m256 qd = _mm256_set1_ps(q[d]);
        const float *row = kt + d * ldt + j0;
        for (int64_t g = 0; g < ng; g++) acc[g] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(row + 8 * g), acc[g]);
    }
    const __m256 vs = _mm256_set1_ps(scale);
    for (int64_t g = 0; g < ng; g++) _mm256_storeu_ps(s + 8 * g, _mm256_mul_ps(acc[g], vs));
    if (mask)
        for (int64_t jj = 0; jj < n; jj++) s[jj] += mask[j0 + jj];
}

/* Philox4x32-10 (kernels/rng.h) on 8 blocks at once: lane l runs counter (block0 + l, 0) under the key.
 * _mm256_mul_epu32 multiplies the even lanes (32 x 32 -> 64 bits); the odd lanes go through a shift. */
static inline void att_mulhilo8(__m256i a, __m256i m, __m256i *lo, __m256i *hi)
{
    const __m256i pe = _mm256_mul_epu32(a, m), po = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
    *lo = _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
}

static void att_philox8(uint64_t seed, uint64_t block0, __m256i out[4])
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    /* counter_lo = block0 + lane as 64 bits: low word with carry into the high word */
    const __m256i base = _mm256_set1_epi32((int)(uint32_t)block0);
    __m256i c0 = _mm256_add_epi32(base, lane);
    const __m256i carry = _mm256_cmpgt_epi32(_mm256_xor_si256(base, _mm256_set1_epi32((int)0x80000000u)),
                                             _mm256_xor_si256(c0, _mm256_set1_epi32((int)0x80000000u)));
    __m256i c1 = _mm256_sub_epi32(_mm256_set1_epi32((int)(uint32_t)(block0 >> 32)), carry); /* carry is -1 */
    __m256i c2 = _mm256_setzero_si256(), c3 = _mm256_setzero_si256();
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    const __m256i m0 = _mm256_set1_epi32((int)0xD2511F53u), m1 = _mm256_set1_epi32((int)0xCD9E8D57u);
    for (int r = 0; r < 10; r++) {
        __m256i lo0, hi0, lo1, hi1;
        att_mulhilo8(c0, m0, &lo0, &hi0);
        att_mulhilo8(c2, m1, &lo1, &hi1);
        const __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32((int)k0));
        const __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32((int)k1));
        c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* keep[jj] = dropout keep-scale of counters c0 + jj, jj < n: exactly the reference's kd_rng_keep
 * (word c & 3 of Philox block c >> 2, 24 bits to [0, 1), kept when >= p), 8 blocks per pass. */
static void att_keep(uint64_t seed, uint64_t c0, int64_t n, float p, float *keep)
{
    const float ks = p < 1.0f ? (float)(1.0 / (1.0 - (double)p)) : 0.0f;
    const __m256 vp = _mm256_set1_ps(p), vks = _mm256_set1_ps(ks), unit = _mm256_set1_ps(1.0f / 16777216.0f);
    uint64_t blk = c0 >> 2;
    const uint64_t last = (c0 + (uint64_t)n - 1) >> 2;
    float word[4][8];
    while (blk <= last) {
        __m256i w[4];
        att_philox8(seed, blk, w);
        for (int q = 0; q < 4; q++) {
            __m256 u = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(w[q], 8)), unit);
            _mm256_storeu_ps(word[q], _mm256_and_ps(vks, _mm256_cmp_ps(u, vp, _CMP_GE_OQ)));
        }
        for (int l = 0; l < 8 && blk + (uint64_t)l <= last; l++)
            for (int q = 0; q < 4; q++) {
                const uint64_t c = ((blk + (uint64_t)l) << 2) + (uint64_t)q;
                if (c >= c0 && c < c0 + (uint64_t)n) keep[c - c0] = word[q][l];
            }
        blk += 8;
    }
}

/* acc[0..dim) = acc * c + sum ... helpers on a row of dim floats */
static inline void att_axpy(float *y, float a, const float *x, int64_t dim)
{
    const __m256 va = _mm256_set1_ps(a);
    int64_t d = 0;
    for (; d + 8 <= dim; d += 8) _mm256_storeu_ps(y + d, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + d), _mm256_loadu_ps(y + d)));
    if (d < dim) {
        const __m256i mk = kd_tail_mask(dim - d);
        _mm256_maskstore_ps(y + d, mk, _mm256_fmadd_ps(va, _mm256_maskload_ps(x + d, mk), _mm256_maskload_ps(y + d, mk)));
    }
}
static inline void att_scale(float *y, float a, int64_t dim)
{
    const __m256 va = _mm256_set1_ps(a);
    int64_t d = 0;
    for (; d + 8 <= dim; d += 8) _mm256_storeu_ps(y + d, _mm256_mul_ps(va, _mm256_loadu_ps(y + d)));
    if (d < dim) {
        const __m256i mk = kd_tail_mask(dim - d);
        _mm256_maskstore_ps(y + d, mk, _mm256_mul_ps(va, _mm256_maskload_ps(y + d, mk)));
    }
}

/* acc += sum_jj c_jj V[j0 + jj] over a tile, c = e^(s - m) (times keep). For the head sizes of the BERT
 * presets (dim 64 and 32) the accumulator stays in registers across the tile: through memory, every key
 * would wait on the previous key's store. */
#define KD_ATT_PV(NV)                                                                                \
    static void att_pv_##NV(float *acc, const float *c, const float *V, int64_t v_st, int64_t n)     \
    {                                                                                                \
        __m256 r[NV];                                                                                \
        for (int q = 0; q < NV; q++) r[q] = _mm256_loadu_ps(acc + 8 * q);                            \
        for (int64_t jj = 0; jj < n; jj++) {                                                         \
            if (c[jj] == 0.0f) continue;                                                             \
            const __m256 vc = _mm256_set1_ps(c[jj]);                                                 \
            const float *v = V + jj * v_st;                                                          \
            for (int q = 0; q < NV; q++) r[q] = _mm256_fmadd_ps(vc, _mm256_loadu_ps(v + 8 * q), r[q]); \
        }                                                                                            \
        for (int q = 0; q < NV; q++) _mm256_storeu_ps(acc + 8 * q, r[q]);                            \
    }
KD_ATT_PV(8)
KD_ATT_PV(4)
#undef KD_ATT_PV

static void att_pv(float *acc, const float *c, const float *V, int64_t v_st, int64_t n, int64_t dim)
{
    if (dim == 64) att_pv_8(acc, c, V, v_st, n);
    else if (dim == 32) att_pv_4(acc, c, V, v_st, n);
    else
        for (int64_t jj = 0; jj < n; jj++)
            if (c[jj] != 0.0f) att_axpy(acc, c[jj], V + jj * v_st, dim);
}

void kd_attention_avx2_f32(const kd_attention_args *a, int ith, int nth)
{
    int64_t lo, hi;
    kd_split_range(a->batch * a->heads, ith, nth, &lo, &hi);
    if (lo >= hi) return;
    const int64_t D = a->dim, TK = a->tk, ldt = (TK + 7) & ~(int64_t)7;
    const float scale = (float)a->scale, p = (float)a->dropout_p;
    const int drop = a->dropout_p > 0.0;
    float *kt = att_alloc(D * ldt), *acc = att_alloc(D), *s = att_alloc(KT), *keep = att_alloc(KT);
    for (int64_t bh = lo; bh < hi; bh++) {
        const int64_t b = bh / a->heads, h = bh % a->heads;
        const float *K = (const float *)a->k + b * a->k_sb + h * a->k_sh;
        const float *V = (const float *)a->v + b * a->v_sb + h * a->v_sh;
        const float *mask = a->mask ? (const float *)a->mask + b * a->mask_sb : NULL;
        att_transpose(K, a->k_st, TK, D, kt, ldt);
        for (int64_t i = 0; i < a->tq; i++) {
            const float *q = (const float *)a->q + b * a->q_sb + i * a->q_st + h * a->q_sh;
            float *o = (float *)a->o + b * a->o_sb + i * a->o_st + h * a->o_sh;
            float m = -INFINITY, l = 0.0f;
            int nan = 0;
            memset(acc, 0, (size_t)D * sizeof *acc);
            for (int64_t j0 = 0; j0 < TK; j0 += KT) {
                const int64_t n = TK - j0 < KT ? TK - j0 : KT;
                att_scores(q, kt, ldt, D, j0, n, scale, mask, s);
                float tm = -INFINITY;
                for (int64_t jj = 0; jj < n; jj++) {
                    if (s[jj] > tm) tm = s[jj];
                    nan |= isnan(s[jj]);
                }
                if (tm == -INFINITY) continue; /* every key of the tile masked: nothing to add */
                const float mn = tm > m ? tm : m;
                const float corr = expf(m - mn); /* m = -inf on the first live tile: corr = 0 */
                if (corr != 1.0f) {
                    l *= corr;
                    att_scale(acc, corr, D);
                }
                m = mn;
                /* e^(s - m) for the tile, 8 at a time (masked keys give e^-inf = 0) */
                const __m256 vm = _mm256_set1_ps(m);
                __m256 ls = _mm256_setzero_ps();
                for (int64_t jj = 0; jj < n; jj += 8) {
                    __m256 e = kd_exp8(_mm256_sub_ps(_mm256_loadu_ps(s + jj), vm));
                    if (n - jj < 8) e = _mm256_and_ps(e, _mm256_castsi256_ps(kd_tail_mask(n - jj)));
                    _mm256_storeu_ps(s + jj, e);
                    ls = _mm256_add_ps(ls, e);
                }
                l += kd_hsum8(ls);
                if (drop) {
                    uint64_t c0 = a->offset + (uint64_t)(((b * a->heads + h) * a->tq + i) * TK + j0);
                    att_keep(a->seed, c0, n, p, keep);
                }
                if (drop)
                    for (int64_t jj = 0; jj < n; jj++) keep[jj] *= s[jj];
                att_pv(acc, drop ? keep : s, V + j0 * a->v_st, a->v_st, n, D);
            }
            float *lse = (float *)a->lse + bh * a->tq + i;
            if (nan) {
                for (int64_t d = 0; d < D; d++) o[d] = NAN;
                *lse = NAN;
            } else if (m == -INFINITY) { /* all keys masked: O = 0 */
                for (int64_t d = 0; d < D; d++) o[d] = 0.0f;
                *lse = -INFINITY;
            } else {
                const float inv = 1.0f / l;
                for (int64_t d = 0; d < D; d++) o[d] = acc[d] * inv;
                *lse = m + logf(l);
            }
        }
    }
    free(kt); free(acc); free(s); free(keep);
}

/* With P' = P * keep:  dV += P'^T dO;  dP = (dO V^T) * keep;  dS = P (dP - rowsum(P dP)) scale;
 * dQ += dS K;  dK += dS^T Q. Threads split (batch, head) pairs, which own disjoint dK, dV rows. */
void kd_attention_bwd_avx2_f32(const kd_attention_args *a, int ith, int nth)
{
    int64_t lo, hi;
    kd_split_range(a->batch * a->heads, ith, nth, &lo, &hi);
    if (lo >= hi) return;
    const int64_t D = a->dim, TK = a->tk, ldt = (TK + 7) & ~(int64_t)7;
    const float scale = (float)a->scale, p = (float)a->dropout_p;
    const int drop = a->dropout_p > 0.0;
    float *kt = att_alloc(D * ldt), *vt = att_alloc(D * ldt);
    float *pr = att_alloc(ldt), *dp = att_alloc(ldt), *keep = att_alloc(ldt);
    for (int64_t bh = lo; bh < hi; bh++) {
        const int64_t b = bh / a->heads, h = bh % a->heads;
        const float *K = (const float *)a->k + b * a->k_sb + h * a->k_sh;
        const float *V = (const float *)a->v + b * a->v_sb + h * a->v_sh;
        float *dK = (float *)a->dk + b * a->k_sb + h * a->k_sh;
        float *dV = (float *)a->dv + b * a->v_sb + h * a->v_sh;
        const float *mask = a->mask ? (const float *)a->mask + b * a->mask_sb : NULL;
        att_transpose(K, a->k_st, TK, D, kt, ldt);
        att_transpose(V, a->v_st, TK, D, vt, ldt);
        for (int64_t i = 0; i < a->tq; i++) {
            const float *q = (const float *)a->q + b * a->q_sb + i * a->q_st + h * a->q_sh;
            const float *dout = (const float *)a->d_o + b * a->o_sb + i * a->o_st + h * a->o_sh;
            float *dq = (float *)a->dq + b * a->q_sb + i * a->q_st + h * a->q_sh;
            /* P for the row: scores, max, sum (the row fits: O(tk)) */
            for (int64_t j0 = 0; j0 < TK; j0 += KT)
                att_scores(q, kt, ldt, D, j0, TK - j0 < KT ? TK - j0 : KT, scale, mask, pr + j0);
            float m = -INFINITY;
            int nan = 0;
            for (int64_t j = 0; j < TK; j++) {
                if (pr[j] > m) m = pr[j];
                nan |= isnan(pr[j]);
            }
            if (m == -INFINITY) continue; /* fully masked row: P = 0, no gradient */
            if (nan) m = NAN;
            const __m256 vm = _mm256_set1_ps(m);
            __m256 ls = _mm256_setzero_ps();
            for (int64_t j = 0; j < TK; j += 8) {
                __m256 e = kd_exp8(_mm256_sub_ps(_mm256_loadu_ps(pr + j), vm));
                if (TK - j < 8) e = _mm256_and_ps(e, _mm256_castsi256_ps(kd_tail_mask(TK - j)));
                _mm256_storeu_ps(pr + j, e);
                ls = _mm256_add_ps(ls, e);
            }
            const float inv = 1.0f / kd_hsum8(ls);
            for (int64_t j = 0; j < TK; j++) pr[j] *= inv;
            if (drop) att_keep(a->seed, a->offset + (uint64_t)(((b * a->heads + h) * a->tq + i) * TK), TK, p, keep);
            /* dP_j = (dO . V_j) keep_j from the transposed V; rs = sum P dP */
            float rs = 0.0f;
            for (int64_t j0 = 0; j0 < TK; j0 += KT) {
                const int64_t n = TK - j0 < KT ? TK - j0 : KT;
                att_scores(dout, vt, ldt, D, j0, n, 1.0f, NULL, dp + j0);
                for (int64_t jj = 0; jj < n; jj++) {
                    if (drop) dp[j0 + jj] *= keep[j0 + jj];
                    rs += pr[j0 + jj] * dp[j0 + jj];
                }
            }
            /* dS into dp; dQ += dS K with dQ held in registers (att_pv); then the per-key rows of dK, dV */
            for (int64_t j = 0; j < TK; j++) dp[j] = pr[j] * (dp[j] - rs) * scale;
            att_pv(dq, dp, K, a->k_st, TK, D);
            for (int64_t j = 0; j < TK; j++) {
                const float pk = drop ? pr[j] * keep[j] : pr[j];
                if (pk != 0.0f || isnan(pk)) att_axpy(dV + j * a->v_st, pk, dout, D);
                if (dp[j] != 0.0f) att_axpy(dK + j * a->k_st, dp[j], q, D);
            }
        }
    }
    free(kt); free(vt); free(pr); free(dp); free(keep);
}
