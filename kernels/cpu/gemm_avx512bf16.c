/* kernels/cpu/gemm_avx512bf16.c — GEMM on bf16 storage with VDPBF16PS (AVX-512 BF16): a 6x64 micro-kernel
 * whose 24 zmm accumulators each take, per instruction, the products of two bf16 pairs along k (twice the
 * multiply-adds of an f32 FMA), inside the blocked loop nest of gemm_bf16_driver.inc.
 *
 * Packed layout: op(A) and op(B) stay bf16, as pairs along k in one 32-bit word (k even in the low half,
 * k odd in the high half; k padded to even with a zero). A micro-panel: word q*MR + i = (A[i,2q], A[i,2q+1]);
 * B micro-panel: word q*NR + j = (B[2q,j], B[2q+1,j]). Step q broadcasts A's word of each row against
 * four B vectors. The sum over k stays f32 (kernels.h): in registers within a KC block, in an f32 block of
 * sums between KC blocks; the last block writes C = round(alpha * sum + beta * C + bias) straight from
 * the registers. VDPBF16PS treats denormal inputs and results as zero and rounds each product-sum to
 * nearest even (Intel SDM): within the f32-accumulation tolerance of the bf16 tables.
 *
 * Prepacked B (kd_gemm_args.b_packed, from kd_gemm_pack_b_avx512bf16): op(B) as NR-column panels of all
 * (k+1)/2 pair words, panel r at r * ((k+1)/2) * NR. Every KC block but the last is even, so the block at pc
 * is words pc/2 onwards of each panel, the same words dp_pack_b makes for it (the last block's odd end is
 * paired with zero in both): the product is bit-identical to one that packs B as it goes. */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/bf16.h"
#include "kernels/cpu/cpu_kernels.h"

#define DP_MR 6
#define DP_NR 64
/* Blocks as gemm_avx512.c's in bytes: a KC of 512 bf16 is a 256-float reduction's footprint. */
#ifndef DP_KC
#define DP_KC 512 /* even: every block but the last covers whole pairs */
#endif
#ifndef DP_MC
#define DP_MC 480
#endif
#ifndef DP_NC
#define DP_NC 768
#endif
#define DP_RC (((512 + DP_MR - 1) / DP_MR) * DP_MR)

#define DP_MIN(a, b) ((a) < (b) ? (a) : (b))

static inline uint32_t dp_load_pair(const kd_bf16 *p)
{
    uint32_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

static inline __m512 dp_bf16x16_load(const kd_bf16 *p)
{
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}

/* Round 16 f32 to bf16 as kd_f32_to_bf16 does (nearest even, NaN made quiet), not with VCVTNEPS2BF16,
 * which flushes denormals. */
static inline __m256i dp_bf16x16_round(__m512 x)
{
    const __m512i u = _mm512_castps_si512(x);
    const __m512i hi = _mm512_srli_epi32(u, 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                  _mm512_set1_epi32(0x7f800000));
    const __m512i bias = _mm512_add_epi32(_mm512_and_si512(hi, _mm512_set1_epi32(1)), _mm512_set1_epi32(0x7fff));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
    return _mm512_cvtepi32_epi16(r);
}

/* Transpose an 8 x 8 block of 32-bit words (row stride lds words, as bytes at src) into dst (row stride
 * ldd words): dst[c * ldd + r] = src[r * lds + c]. Shuffles move bits unchanged, so floats carry them. */
static inline void dp_transpose8(const kd_bf16 *src, int64_t lds, uint32_t *dst, int64_t ldd)
{
    __m256 r[8];
    for (int k = 0; k < 8; k++) r[k] = _mm256_loadu_ps((const float *)(const void *)(src + k * lds));
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    float *d = (float *)(void *)dst;
    _mm256_storeu_ps(d + 0 * ldd, _mm256_permute2f128_ps(s0, s4, 0x20));
    _mm256_storeu_ps(d + 1 * ldd, _mm256_permute2f128_ps(s1, s5, 0x20));
    _mm256_storeu_ps(d + 2 * ldd, _mm256_permute2f128_ps(s2, s6, 0x20));
    _mm256_storeu_ps(d + 3 * ldd, _mm256_permute2f128_ps(s3, s7, 0x20));
    _mm256_storeu_ps(d + 4 * ldd, _mm256_permute2f128_ps(s0, s4, 0x31));
    _mm256_storeu_ps(d + 5 * ldd, _mm256_permute2f128_ps(s1, s5, 0x31));
    _mm256_storeu_ps(d + 6 * ldd, _mm256_permute2f128_ps(s2, s6, 0x31));
    _mm256_storeu_ps(d + 7 * ldd, _mm256_permute2f128_ps(s3, s7, 0x31));
}

/* Rows [i0, i0+mc) x reduction [p0, p0+kc) of op(A) into MR-row micro-panels of (kc+1)/2 pair words,
 * zero rows past the edge. */
static void dp_pack_a(const kd_gemm_args *g, const kd_bf16 *A, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
                      uint32_t *dst)
{
    const int64_t lda = g->lda, kq = (kc + 1) / 2, kw = kc / 2; /* kw whole pairs */
    for (int64_t ir = 0; ir < mc; ir += DP_MR) {
        const int64_t mr = DP_MIN(DP_MR, mc - ir);
        if (!g->trans_a) {
            /* op(A)[i, p] = A[i * lda + p]: a row's pairs are consecutive words. */
            for (int64_t i = 0; i < mr; i++) {
                const kd_bf16 *src = A + (i0 + ir + i) * lda + p0;
                for (int64_t q = 0; q < kw; q++) dst[q * DP_MR + i] = dp_load_pair(src + 2 * q);
                if (kq > kw) dst[kw * DP_MR + i] = src[2 * kw];
            }
        } else {
            /* op(A)[i, p] = A[p * lda + i]: rows p and p+1 interleaved. */
            for (int64_t q = 0; q < kq; q++) {
                const kd_bf16 *r0 = A + (p0 + 2 * q) * lda + i0 + ir, *r1 = r0 + lda;
                uint32_t *d = dst + q * DP_MR;
                if (q < kw)
                    for (int64_t i = 0; i < mr; i++) d[i] = (uint32_t)r0[i] | (uint32_t)r1[i] << 16;
                else
                    for (int64_t i = 0; i < mr; i++) d[i] = r0[i];
            }
        }
        for (int64_t i = mr; i < DP_MR; i++)
            for (int64_t q = 0; q < kq; q++) dst[q * DP_MR + i] = 0;
        dst += DP_MR * kq;
    }
}

/* Reduction [p0, p0+kc) x columns [j0, j0+nc) of op(B) into NR-column micro-panels of (kc+1)/2 pair
 * words, zero columns past the edge. */
static void dp_pack_b(const kd_gemm_args *g, const kd_bf16 *B, int64_t p0, int64_t kc, int64_t j0, int64_t nc,
                      uint32_t *dst)
{
    const int64_t ldb = g->ldb, kq = (kc + 1) / 2, kw = kc / 2;
    for (int64_t jr = 0; jr < nc; jr += DP_NR) {
        const int64_t nr = DP_MIN(DP_NR, nc - jr);
        if (!g->trans_b) {
            /* op(B)[p, j] = B[p * ldb + j]: rows p and p+1, 32 columns at a time, interleaved by word. */
            static const short lo_idx[32] = { 0, 32, 1, 33, 2, 34, 3, 35, 4, 36, 5, 37, 6, 38, 7, 39,
                                              8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47 };
            const __m512i ilo = _mm512_loadu_si512(lo_idx), ihi = _mm512_add_epi16(ilo, _mm512_set1_epi16(16));
            const __mmask32 m0 = nr >= 32 ? 0xffffffffu : (__mmask32)((1u << nr) - 1);
            const __mmask32 m1 = nr >= 64 ? 0xffffffffu : nr > 32 ? (__mmask32)((1u << (nr - 32)) - 1) : 0;
            for (int64_t q = 0; q < kq; q++) {
                const kd_bf16 *r0 = B + (p0 + 2 * q) * ldb + j0 + jr, *r1 = r0 + ldb;
                const __m512i x0 = _mm512_maskz_loadu_epi16(m0, r0), x1 = _mm512_maskz_loadu_epi16(m1, r0 + 32);
                __m512i y0 = _mm512_setzero_si512(), y1 = _mm512_setzero_si512();
                if (q < kw) {
                    y0 = _mm512_maskz_loadu_epi16(m0, r1);
                    y1 = _mm512_maskz_loadu_epi16(m1, r1 + 32);
                }
                uint32_t *d = dst + q * DP_NR;
                _mm512_store_si512(d, _mm512_permutex2var_epi16(x0, ilo, y0));
                _mm512_store_si512(d + 16, _mm512_permutex2var_epi16(x0, ihi, y0));
                _mm512_store_si512(d + 32, _mm512_permutex2var_epi16(x1, ilo, y1));
                _mm512_store_si512(d + 48, _mm512_permutex2var_epi16(x1, ihi, y1));
            }
        } else {
            /* op(B)[p, j] = B[j * ldb + p]: a column's pairs are consecutive words; whole panels go
             * through 8 x 8 word transposes, the rest word by word. */
            int64_t q8 = 0;
            if (nr == DP_NR)
                for (; q8 + 8 <= kw; q8 += 8)
                    for (int64_t j8 = 0; j8 < DP_NR; j8 += 8)
                        dp_transpose8(B + (j0 + jr + j8) * ldb + p0 + 2 * q8, ldb, dst + q8 * DP_NR + j8, DP_NR);
            for (int64_t j = 0; j < nr; j++) {
                const kd_bf16 *src = B + (j0 + jr + j) * ldb + p0;
                for (int64_t q = q8; q < kw; q++) dst[q * DP_NR + j] = dp_load_pair(src + 2 * q);
                if (kq > kw) dst[kw * DP_NR + j] = src[2 * kw];
            }
            for (int64_t j = nr; j < DP_NR; j++)
                for (int64_t q = 0; q < kq; q++) dst[q * DP_NR + j] = 0;
        }
        dst += DP_NR * kq;
    }
}

/* One 6 x 64 tile over kq pair steps. s (row stride lds) holds f32 sums of earlier KC blocks when
 * add_s. c == NULL: s = sum (+ s). Otherwise: c = round(alpha * (sum (+ s)) + beta * c + bias), c
 * unread when beta == 0. */
static inline void dp_ukr(int64_t kq, const uint32_t *restrict a, const uint32_t *restrict b, float *restrict s,
                          int64_t lds, int add_s, kd_bf16 *restrict c, int64_t ldc, float alpha, float beta,
                          const kd_bf16 *restrict bias)
{
#define DP_ACC(i)                                                                                    \
    __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps(), c##i##2 = _mm512_setzero_ps(), \
           c##i##3 = _mm512_setzero_ps();
    DP_ACC(0) DP_ACC(1) DP_ACC(2) DP_ACC(3) DP_ACC(4) DP_ACC(5)
#undef DP_ACC
    for (int64_t q = 0; q < kq; q++) {
        const __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 16);
        const __m512bh b2 = (__m512bh)_mm512_load_si512(b + 32), b3 = (__m512bh)_mm512_load_si512(b + 48);
#define DP_STEP(i)                                                                                   \
    {                                                                                                \
        const __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[i]);                                  \
        c##i##0 = _mm512_dpbf16_ps(c##i##0, ai, b0);                                                 \
        c##i##1 = _mm512_dpbf16_ps(c##i##1, ai, b1);                                                 \
        c##i##2 = _mm512_dpbf16_ps(c##i##2, ai, b2);                                                 \
        c##i##3 = _mm512_dpbf16_ps(c##i##3, ai, b3);                                                 \
    }
        DP_STEP(0) DP_STEP(1) DP_STEP(2) DP_STEP(3) DP_STEP(4) DP_STEP(5)
#undef DP_STEP
        a += DP_MR;
        b += DP_NR;
    }
    if (!c) {
#define DP_SUM1(i, q)                                                                                \
    {                                                                                                \
        float *r = s + (i) * lds + 16 * (q);                                                         \
        _mm512_storeu_ps(r, add_s ? _mm512_add_ps(c##i##q, _mm512_loadu_ps(r)) : c##i##q);           \
    }
#define DP_SUM(i) DP_SUM1(i, 0) DP_SUM1(i, 1) DP_SUM1(i, 2) DP_SUM1(i, 3)
        DP_SUM(0) DP_SUM(1) DP_SUM(2) DP_SUM(3) DP_SUM(4) DP_SUM(5)
#undef DP_SUM
#undef DP_SUM1
        return;
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#define DP_OUT1(i, q)                                                                                \
    {                                                                                                \
        __m512 v = c##i##q;                                                                          \
        if (add_s) v = _mm512_add_ps(v, _mm512_loadu_ps(s + (i) * lds + 16 * (q)));                  \
        v = _mm512_mul_ps(va, v);                                                                    \
        kd_bf16 *r = c + (i) * ldc + 16 * (q);                                                       \
        if (beta != 0.0f) v = _mm512_fmadd_ps(vb, dp_bf16x16_load(r), v);                            \
        if (bias) v = _mm512_add_ps(v, dp_bf16x16_load(bias + 16 * (q)));                            \
        _mm256_storeu_si256((__m256i *)r, dp_bf16x16_round(v));                                      \
    }
#define DP_OUT(i) DP_OUT1(i, 0) DP_OUT1(i, 1) DP_OUT1(i, 2) DP_OUT1(i, 3)
    DP_OUT(0) DP_OUT(1) DP_OUT(2) DP_OUT(3) DP_OUT(4) DP_OUT(5)
#undef DP_OUT
#undef DP_OUT1
}

/* C[r0..r1) x [c0..c1) = round(alpha * s + beta * C + bias), s the f32 sums at sum (row stride lds),
 * or no sums (k == 0). */
static void dp_finish(const kd_gemm_args *g, kd_bf16 *C, const float *sum, int64_t lds, int64_t r0, int64_t r1,
                      int64_t c0, int64_t c1)
{
    const kd_bf16 *bias = g->bias;
    const float alpha = (float)g->alpha, beta = (float)g->beta;
    for (int64_t i = r0; i < r1; i++) {
        kd_bf16 *c = C + i * g->ldc;
        for (int64_t j = c0; j < c1; j++) {
            float v = sum ? alpha * sum[(i - r0) * lds + j - c0] : 0.0f;
            if (beta != 0.0f) v += beta * kd_bf16_to_f32(c[j]);
            if (bias) v += kd_bf16_to_f32(bias[j]);
            c[j] = kd_f32_to_bf16(v);
        }
    }
}

/* Rows [m0, m1) x columns [n0, n1) of batch bi; pa, pb: packing buffers; cs: the f32 sums between KC
 * blocks, whole tiles (rows and columns padded). Loop order of gemm_bf16_driver.inc: jc, row chunk, pc,
 * ic, then a row of tiles against each B micro-panel (an A micro-panel stays in L1). */
static void dp_block(const kd_gemm_args *g, int64_t bi, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                     uint32_t *pa, uint32_t *pb, float *cs)
{
    const kd_bf16 *A = (const kd_bf16 *)g->a + bi * g->stride_a;
    const kd_bf16 *B = (const kd_bf16 *)g->b + bi * g->stride_b;
    kd_bf16 *C = (kd_bf16 *)g->c + bi * g->stride_c;
    const kd_bf16 *bias = g->bias;
    const int64_t k = g->k, ldc = g->ldc;
    const float alpha = (float)g->alpha, beta = (float)g->beta;
    if (k == 0) {
        dp_finish(g, C, NULL, 0, m0, m1, n0, n1);
        return;
    }
    for (int64_t jc = n0; jc < n1; jc += DP_NC) {
        const int64_t nc = DP_MIN(DP_NC, n1 - jc), lds = (nc + DP_NR - 1) / DP_NR * DP_NR;
        for (int64_t rc = m0; rc < m1; rc += DP_RC) {
            const int64_t rows = DP_MIN(DP_RC, m1 - rc);
            for (int64_t pc = 0; pc < k; pc += DP_KC) {
                const int64_t kc = DP_MIN(DP_KC, k - pc), kq = (kc + 1) / 2;
                const int add_s = pc > 0, last = pc + kc == k;
                /* B's micro-panels: packed now (panel stride kq words * NR), or prepacked. */
                const uint32_t *pbk = pb;
                int64_t pstride = kq * DP_NR;
                if (g->b_packed) {
                    const int64_t kqf = (k + 1) / 2;
                    pbk = (const uint32_t *)g->b_packed + (jc / DP_NR) * kqf * DP_NR + (pc / 2) * DP_NR;
                    pstride = kqf * DP_NR;
                } else {
                    dp_pack_b(g, B, pc, kc, jc, nc, pb);
                }
                for (int64_t ic = 0; ic < rows; ic += DP_MC) {
                    const int64_t mc = DP_MIN(DP_MC, rows - ic);
                    dp_pack_a(g, A, rc + ic, mc, pc, kc, pa);
                    for (int64_t ir = 0; ir < mc; ir += DP_MR) {
                        const int64_t mr = DP_MIN(DP_MR, mc - ir);
                        for (int64_t jr = 0; jr < nc; jr += DP_NR) {
                            const int64_t nr = DP_MIN(DP_NR, nc - jr);
                            const uint32_t *ap = pa + ir * kq, *bp = pbk + (jr / DP_NR) * pstride;
                            float *s = cs + (ic + ir) * lds + jr;
                            if (last && mr == DP_MR && nr == DP_NR) {
                                dp_ukr(kq, ap, bp, s, lds, add_s, C + (rc + ic + ir) * ldc + jc + jr, ldc, alpha, beta,
                                       bias ? bias + jc + jr : NULL);
                            } else {
                                dp_ukr(kq, ap, bp, s, lds, add_s, NULL, 0, 0.0f, 0.0f, NULL);
                                if (last) /* edge tile: the valid part out of the sums */
                                    dp_finish(g, C, s, lds, rc + ic + ir, rc + ic + ir + mr, jc + jr, jc + jr + nr);
                            }
                        }
                    }
                }
            }
        }
    }
}

static void *dp_alloc(int64_t nword)
{
    size_t bytes = ((size_t)(nword > 0 ? nword : 1) * 4 + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, bytes);
    if (!p) abort(); /* kernels return no status: the engine sizes its work so this does not happen */
    return p;
}

void kd_gemm_avx512bf16_bf16(const kd_gemm_args *g, int ith, int nth)
{
    const int64_t m = g->m, n = g->n, k = g->k, batch = g->batch;
    if (m <= 0 || n <= 0 || batch <= 0) return;
    const int64_t mb = (m + DP_MR - 1) / DP_MR, nb = (n + DP_NR - 1) / DP_NR;
    const int64_t units = batch * mb;
    const int64_t kq_max = (DP_MIN(DP_KC, k > 0 ? k : 1) + 1) / 2;
    /* The thread split of gemm_driver.inc: runs of (batch, MR-row block) units, or column blocks. */
    const int rows_ok = units >= 4 * (int64_t)nth || units >= nb;
    const int cols_better = nth > 1 && batch == 1 && m < n && nb >= 2 * (int64_t)nth;
    const int by_rows = rows_ok && !cols_better;
    int64_t lo, hi, rows_max, cols_max;
    kd_split_range(by_rows ? units : nb, ith, nth, &lo, &hi);
    if (lo >= hi) return;
    if (by_rows) {
        rows_max = DP_MIN(DP_RC, DP_MIN(hi - lo, mb) * DP_MR);
        cols_max = DP_MIN(DP_NC, nb * DP_NR);
    } else {
        rows_max = DP_MIN(DP_RC, mb * DP_MR);
        cols_max = DP_MIN(DP_NC, (hi - lo) * DP_NR);
    }
    rows_max = (rows_max + DP_MR - 1) / DP_MR * DP_MR;
    cols_max = (cols_max + DP_NR - 1) / DP_NR * DP_NR;
    uint32_t *pa = dp_alloc(DP_MIN(DP_MC, rows_max) * kq_max);
    uint32_t *pb = g->b_packed ? NULL : dp_alloc(cols_max * kq_max);
    float *cs = dp_alloc(rows_max * cols_max);
    if (by_rows) {
        for (int64_t bi = lo / mb; bi <= (hi - 1) / mb; bi++) {
            int64_t u0 = bi == lo / mb ? lo % mb : 0;
            int64_t u1 = bi == (hi - 1) / mb ? (hi - 1) % mb + 1 : mb;
            dp_block(g, bi, u0 * DP_MR, DP_MIN(m, u1 * DP_MR), 0, n, pa, pb, cs);
        }
    } else {
        for (int64_t bi = 0; bi < batch; bi++)
            dp_block(g, bi, 0, m, lo * DP_NR, DP_MIN(n, hi * DP_NR), pa, pb, cs);
    }
    free(pa);
    free(pb);
    free(cs);
}

/* Bytes of op(B) prepacked: ceil(n / NR) panels of (k+1)/2 pair words x NR. */
size_t kd_gemm_packed_b_size_avx512bf16(int64_t k, int64_t n)
{
    if (k <= 0 || n <= 0) return 64;
    return (size_t)((n + DP_NR - 1) / DP_NR) * (size_t)((k + 1) / 2) * DP_NR * sizeof(uint32_t);
}

/* Prepack op(B): dp_pack_b over the whole reduction, the panels split between threads. */
void kd_gemm_pack_b_avx512bf16(const kd_gemm_pack_args *p, int ith, int nth)
{
    if (p->k <= 0 || p->n <= 0) return;
    const int64_t nb = (p->n + DP_NR - 1) / DP_NR;
    int64_t lo, hi;
    kd_split_range(nb, ith, nth, &lo, &hi);
    if (lo >= hi) return;
    const kd_gemm_args g = { .trans_b = p->trans_b, .k = p->k, .n = p->n, .b = p->b, .ldb = p->ldb };
    const int64_t j0 = lo * DP_NR, nc = DP_MIN(p->n, hi * DP_NR) - j0;
    dp_pack_b(&g, p->b, 0, p->k, j0, nc, (uint32_t *)p->dst + j0 * ((p->k + 1) / 2));
}
