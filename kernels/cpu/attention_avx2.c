/* kernels/cpu/attention_avx2.c — scaled dot-product attention, forward and backward, tiled over keys
 * (flash-attention style), 8 floats at a time.
 *
 * Per (batch, head), K (and V for the backward) is transposed once into dim x tk so that the scores of 8
 * keys come out of one FMA chain per dimension (no horizontal sums). Forward, per query row, over tiles
 * of KT keys, the online softmax (Milakov & Gimelshein 2018; Dao et al. 2022):
 *   m' = max(m, max_j s_j),  l' = l e^(m - m') + sum_j e^(s_j - m'),  acc' = acc e^(m - m') + sum_j e^(s_j - m') keep_j v_j
 * and at the end O = acc / l, lse = m + log l. Dropout draws the reference's Philox keep decisions at
 * counter offset + ((b heads + h) tq + i) tk + j. Memory is O(dim x tk) per thread: no tq x tk matrix.
 * The backward takes each row's probabilities from the forward's lse and keeps P' and dS for a block of
 * query rows (O(QB tk)), so that dK and dV rows are read and written once per block. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/philox_avx2.h"
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

/* keep[jj] = dropout keep-scale of counters c0 + jj, jj < n: exactly the reference's kd_rng_keep
 * (kernels/cpu/philox_avx2.h), 32 counters per Philox pass. */
static void att_keep(uint64_t seed, uint64_t c0, int64_t n, float p, float *keep)
{
    const __m256 vks = _mm256_set1_ps(p < 1.0f ? (float)(1.0 / (1.0 - (double)p)) : 0.0f);
    uint64_t blk = c0 >> 2;
    int64_t skip = (int64_t)(c0 & 3), i = 0;
    float buf[32];
    while (i < n) {
        __m256 k[4];
        kd_keep32_avx2(seed, blk, p, k);
        for (int v = 0; v < 4; v++) _mm256_storeu_ps(buf + 8 * v, _mm256_and_ps(k[v], vks));
        const int64_t m = 32 - skip < n - i ? 32 - skip : n - i;
        memcpy(keep + i, buf + skip, (size_t)m * sizeof(float));
        i += m;
        skip = 0;
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

/* dK_j += sum_r ds[r][j] q_r and dV_j += sum_r pk[r][j] dO_r over a block of nr query rows (coefficient
 * rows ld apart), for every key j: each dK/dV row is loaded and stored once per block, not once per
 * query. Zero coefficients are skipped (as the reference skips dS = 0). For dim 64 and 32 the two rows
 * stay in registers across the block. */
#define KD_ATT_KV(NV)                                                                                    \
    static void att_kv_##NV(float *dK, int64_t k_st, float *dV, int64_t v_st, const float *ds,          \
                            const float *pk, int64_t ld, const float *const *qr, const float *const *dor, \
                            int nr, int64_t tk)                                                         \
    {                                                                                                    \
        for (int64_t j = 0; j < tk; j++) {                                                               \
            __m256 rk[NV], rv[NV];                                                                       \
            float *dk = dK + j * k_st, *dv = dV + j * v_st;                                              \
            for (int q = 0; q < NV; q++) {                                                               \
                rk[q] = _mm256_loadu_ps(dk + 8 * q);                                                     \
                rv[q] = _mm256_loadu_ps(dv + 8 * q);                                                     \
            }                                                                                            \
            for (int r = 0; r < nr; r++) {                                                               \
                const float cs = ds[r * ld + j], cp = pk[r * ld + j];                                    \
                if (cs != 0.0f) {                                                                        \
                    const __m256 vc = _mm256_set1_ps(cs);                                                \
                    for (int q = 0; q < NV; q++) rk[q] = _mm256_fmadd_ps(vc, _mm256_loadu_ps(qr[r] + 8 * q), rk[q]); \
                }                                                                                        \
                if (cp != 0.0f || isnan(cp)) {                                                           \
                    const __m256 vc = _mm256_set1_ps(cp);                                                \
                    for (int q = 0; q < NV; q++) rv[q] = _mm256_fmadd_ps(vc, _mm256_loadu_ps(dor[r] + 8 * q), rv[q]); \
                }                                                                                        \
            }                                                                                            \
            for (int q = 0; q < NV; q++) {                                                               \
                _mm256_storeu_ps(dk + 8 * q, rk[q]);                                                     \
                _mm256_storeu_ps(dv + 8 * q, rv[q]);                                                     \
            }                                                                                            \
        }                                                                                                \
    }
KD_ATT_KV(8)
KD_ATT_KV(4)
#undef KD_ATT_KV

static void att_kv(float *dK, int64_t k_st, float *dV, int64_t v_st, const float *ds, const float *pk, int64_t ld,
                   const float *const *qr, const float *const *dor, int nr, int64_t tk, int64_t dim)
{
    if (dim == 64) att_kv_8(dK, k_st, dV, v_st, ds, pk, ld, qr, dor, nr, tk);
    else if (dim == 32) att_kv_4(dK, k_st, dV, v_st, ds, pk, ld, qr, dor, nr, tk);
    else
        for (int64_t j = 0; j < tk; j++)
            for (int r = 0; r < nr; r++) {
                const float cs = ds[r * ld + j], cp = pk[r * ld + j];
                if (cs != 0.0f) att_axpy(dK + j * k_st, cs, qr[r], dim);
                if (cp != 0.0f || isnan(cp)) att_axpy(dV + j * v_st, cp, dor[r], dim);
            }
}

#define QB 16 /* query rows per block of the backward */

/* With P' = P * keep:  dV += P'^T dO;  dP = (dO V^T) * keep;  dS = P (dP - rowsum(P dP)) scale;
 * dQ += dS K;  dK += dS^T Q. P comes from the forward's log-sum-exp, P_j = e^(s_j - lse) (no max or sum
 * pass), and rowsum(P dP) = sum_j P_j keep_j (dO . V_j) = dO . O (the forward's output). Rows are taken
 * QB at a time: their P' and dS rows are kept (O(QB tk)) so that dK and dV are updated once per block
 * (att_kv). A row whose keys are all masked (lse = -inf) has no gradient. Threads split (batch, head)
 * pairs, which own disjoint dK, dV rows. */
void kd_attention_bwd_avx2_f32(const kd_attention_args *a, int ith, int nth)
{
    int64_t lo, hi;
    kd_split_range(a->batch * a->heads, ith, nth, &lo, &hi);
    if (lo >= hi) return;
    const int64_t D = a->dim, TK = a->tk, ldt = (TK + 7) & ~(int64_t)7;
    const float scale = (float)a->scale, p = (float)a->dropout_p;
    const int drop = a->dropout_p > 0.0;
    float *kt = att_alloc(D * ldt), *vt = att_alloc(D * ldt);
    float *pk = att_alloc(QB * ldt), *ds = att_alloc(QB * ldt), *keep = att_alloc(ldt);
    const float *qr[QB], *dor[QB];
    const __m256 vscale = _mm256_set1_ps(scale);
    for (int64_t bh = lo; bh < hi; bh++) {
        const int64_t b = bh / a->heads, h = bh % a->heads;
        const float *K = (const float *)a->k + b * a->k_sb + h * a->k_sh;
        const float *V = (const float *)a->v + b * a->v_sb + h * a->v_sh;
        float *dK = (float *)a->dk + b * a->k_sb + h * a->k_sh;
        float *dV = (float *)a->dv + b * a->v_sb + h * a->v_sh;
        const float *mask = a->mask ? (const float *)a->mask + b * a->mask_sb : NULL;
        const float *lse = (const float *)a->lse + bh * a->tq;
        att_transpose(K, a->k_st, TK, D, kt, ldt);
        att_transpose(V, a->v_st, TK, D, vt, ldt);
        for (int64_t i0 = 0; i0 < a->tq; i0 += QB) {
            const int64_t i1 = a->tq - i0 < QB ? a->tq : i0 + QB;
            int nr = 0;
            for (int64_t i = i0; i < i1; i++) {
                if (lse[i] == -INFINITY) continue; /* fully masked row: P = 0, no gradient */
                const float *q = (const float *)a->q + b * a->q_sb + i * a->q_st + h * a->q_sh;
                const float *dout = (const float *)a->d_o + b * a->o_sb + i * a->o_st + h * a->o_sh;
                const float *o = (const float *)a->o + b * a->o_sb + i * a->o_st + h * a->o_sh;
                float *dq = (float *)a->dq + b * a->q_sb + i * a->q_st + h * a->q_sh;
                float *P = pk + nr * ldt, *S = ds + nr * ldt;
                /* scores into P, dO . V_j into S (both rounded up to ldt; the lanes past tk are masked below) */
                for (int64_t j0 = 0; j0 < TK; j0 += KT) {
                    const int64_t n = TK - j0 < KT ? TK - j0 : KT;
                    att_scores(q, kt, ldt, D, j0, n, scale, mask, P + j0);
                    att_scores(dout, vt, ldt, D, j0, n, 1.0f, NULL, S + j0);
                }
                float rs = 0.0f;
                for (int64_t d = 0; d < D; d++) rs += dout[d] * o[d];
                if (drop) att_keep(a->seed, a->offset + (uint64_t)(((b * a->heads + h) * a->tq + i) * TK), TK, p, keep);
                const __m256 vl = _mm256_set1_ps(lse[i]), vrs = _mm256_set1_ps(rs);
                for (int64_t j = 0; j < TK; j += 8) {
                    __m256 pj = kd_exp8(_mm256_sub_ps(_mm256_loadu_ps(P + j), vl));
                    __m256 dpj = _mm256_loadu_ps(S + j);
                    if (TK - j < 8) {
                        const __m256 live = _mm256_castsi256_ps(kd_tail_mask(TK - j));
                        pj = _mm256_and_ps(pj, live);
                        dpj = _mm256_and_ps(dpj, live);
                    }
                    if (drop) {
                        const __m256 kj = TK - j < 8 ? _mm256_maskload_ps(keep + j, kd_tail_mask(TK - j)) : _mm256_loadu_ps(keep + j);
                        dpj = _mm256_mul_ps(dpj, kj);
                        _mm256_storeu_ps(P + j, _mm256_mul_ps(pj, kj));
                    } else {
                        _mm256_storeu_ps(P + j, pj);
                    }
                    _mm256_storeu_ps(S + j, _mm256_mul_ps(_mm256_mul_ps(pj, _mm256_sub_ps(dpj, vrs)), vscale));
                }
                att_pv(dq, S, K, a->k_st, TK, D); /* dQ += dS K */
                qr[nr] = q;
                dor[nr] = dout;
                nr++;
            }
            if (nr) att_kv(dK, a->k_st, dV, a->v_st, ds, pk, ldt, qr, dor, nr, TK, D);
        }
    }
    free(kt); free(vt); free(pk); free(ds); free(keep);
}
