/* kernels/cpu/gemm_s8_avx2.c — the int8 linear (kernels.h, kd_gemm_s8_args) on AVX2: VPMADDWD on s8 values
 * widened to s16, a 4x16 micro-kernel (8 ymm accumulators of int32).
 *
 * Why VPMADDWD on widened values and not VPMADDUBSW on bytes: VPMADDUBSW multiplies u8 by s8 and adds pairs
 * into s16 with saturation, so with activations shifted to u8 (+128) two products of 255 * 127 overflow
 * (64770 > 32767) and the sum is silently wrong; avoiding that needs 7-bit weights (half the weight
 * resolution). VPMADDWD multiplies s16 pairs into an exact int32, with the same 16 products per
 * instruction as VPMADDUBSW + VPMADDWD-by-ones takes two for 32: the same multiply throughput, exact, at
 * the cost of twice the bytes for the packed operands (read from L1/L2 in the loop; the weights are still
 * stored as s8). S = sum qa qw is then exact and the result matches the reference bit for bit.
 *
 * Weights are packed once (kd_gemm_s8_pack_avx2) into 16-column panels: panel c holds, for each pair of
 * reduction steps p2, the 16 columns' (w[j][2 p2], w[j][2 p2 + 1]) as s16 pairs (64 bytes), zero past the
 * edges. Activations are quantized per row into s16 pairs as each block of rows is packed. */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"

#define S8_MR 4
#define S8_NR 16
/* Rows quantized at once: as many as keep their s16 values within 192 KiB (L2, beside a k x 16 panel of
 * weights), 32 to 256, a multiple of MR: each panel is then read from L3 once per block of rows. */
static int64_t s8_mc(int64_t k2)
{
    int64_t mc = (192 * 1024) / (4 * (k2 > 0 ? k2 : 1));
    mc = mc < 32 ? 32 : mc > 256 ? 256 : mc;
    return mc / S8_MR * S8_MR;
}

static int64_t k_pairs(int64_t k) { return (k + 1) / 2; }

size_t kd_gemm_s8_pack_avx2(int64_t n, int64_t k, const int8_t *w, void *dst)
{
    const int64_t k2 = k_pairs(k), panels = (n + S8_NR - 1) / S8_NR;
    size_t bytes = (size_t)(panels * k2 * S8_NR * 2) * sizeof(int16_t);
    if (!dst) return bytes;
    int16_t *d = dst;
    for (int64_t c = 0; c < panels; c++)
        for (int64_t p2 = 0; p2 < k2; p2++)
            for (int64_t j = 0; j < S8_NR; j++)
                for (int t = 0; t < 2; t++) {
                    int64_t col = c * S8_NR + j, p = 2 * p2 + t;
                    *d++ = col < n && p < k ? w[col * k + p] : 0;
                }
    return bytes;
}

/* Quantize row x[0..k) into k2 s16 pairs (a zero after an odd k); returns the row's scale. */
static float quantize_row(const float *x, int64_t k, float act_scale, int16_t *q)
{
    float s;
    if (act_scale > 0.0f) {
        s = act_scale;
    } else {
        const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
        __m256 mx8 = _mm256_setzero_ps();
        int64_t p = 0;
        for (; p + 8 <= k; p += 8) mx8 = _mm256_max_ps(mx8, _mm256_and_ps(_mm256_loadu_ps(x + p), absmask));
        _Alignas(32) float lanes[8];
        _mm256_store_ps(lanes, mx8);
        float mx = 0.0f;
        for (int i = 0; i < 8; i++) mx = fmaxf(mx, lanes[i]);
        for (; p < k; p++) mx = fmaxf(mx, fabsf(x[p]));
        s = mx > 0.0f ? mx / 127.0f : 1.0f;
    }
    const float inv = 1.0f / s;
    const __m256 vinv = _mm256_set1_ps(inv), hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
    int64_t p = 0;
    for (; p + 16 <= k; p += 16) {
        __m256 v0 = _mm256_mul_ps(_mm256_loadu_ps(x + p), vinv), v1 = _mm256_mul_ps(_mm256_loadu_ps(x + p + 8), vinv);
        v0 = _mm256_max_ps(_mm256_min_ps(v0, hi), lo);
        v1 = _mm256_max_ps(_mm256_min_ps(v1, hi), lo);
        /* cvtps rounds to nearest even; packs interleaves 128-bit lanes, the permute puts them back in order */
        __m256i q16 = _mm256_packs_epi32(_mm256_cvtps_epi32(v0), _mm256_cvtps_epi32(v1));
        _mm256_storeu_si256((__m256i *)(q + p), _mm256_permute4x64_epi64(q16, 0xD8));
    }
    for (; p < k; p++) q[p] = kd_quantize_s8(x[p], inv);
    if (k & 1) q[k] = 0;
    return s;
}

/* acc[4][16] = sum_p2 a_i[p2] . b[p2] (s16 pairs; a row i at a + i * lda2 int32 words). */
static inline void ukr_4x16(int64_t k2, const int32_t *restrict a, int64_t lda2, const int16_t *restrict b,
                            int32_t *restrict acc)
{
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    const int32_t *a0 = a, *a1 = a + lda2, *a2 = a + 2 * lda2, *a3 = a + 3 * lda2;
    for (int64_t p = 0; p < k2; p++) {
        const __m256i b0 = _mm256_loadu_si256((const __m256i *)b), b1 = _mm256_loadu_si256((const __m256i *)(b + 16));
        __m256i x;
        x = _mm256_set1_epi32(a0[p]);
        c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(x, b0));
        c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(x, b1));
        x = _mm256_set1_epi32(a1[p]);
        c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(x, b0));
        c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(x, b1));
        x = _mm256_set1_epi32(a2[p]);
        c20 = _mm256_add_epi32(c20, _mm256_madd_epi16(x, b0));
        c21 = _mm256_add_epi32(c21, _mm256_madd_epi16(x, b1));
        x = _mm256_set1_epi32(a3[p]);
        c30 = _mm256_add_epi32(c30, _mm256_madd_epi16(x, b0));
        c31 = _mm256_add_epi32(c31, _mm256_madd_epi16(x, b1));
        b += 32;
    }
    _mm256_storeu_si256((__m256i *)(acc + 0), c00);
    _mm256_storeu_si256((__m256i *)(acc + 8), c01);
    _mm256_storeu_si256((__m256i *)(acc + 16), c10);
    _mm256_storeu_si256((__m256i *)(acc + 24), c11);
    _mm256_storeu_si256((__m256i *)(acc + 32), c20);
    _mm256_storeu_si256((__m256i *)(acc + 40), c21);
    _mm256_storeu_si256((__m256i *)(acc + 48), c30);
    _mm256_storeu_si256((__m256i *)(acc + 56), c31);
}

/* C rows [i0, i0 + mr) x columns [j0, j0 + nr) from the int32 tile: fma(S, sa * sw, bias). */
static void dequant(const kd_gemm_s8_args *g, const int32_t *acc, const float *sa, int64_t i0, int mr,
                    int64_t j0, int nr)
{
    const float *sw = g->w_scale + j0, *bias = g->bias ? g->bias + j0 : NULL;
    for (int i = 0; i < mr; i++) {
        float *c = g->c + (i0 + i) * g->ldc + j0;
        const int32_t *s = acc + i * S8_NR;
        if (nr == S8_NR) {
            const __m256 vs = _mm256_set1_ps(sa[i]);
            for (int j = 0; j < S8_NR; j += 8) {
                __m256 sc = _mm256_mul_ps(vs, _mm256_loadu_ps(sw + j));
                __m256 b = bias ? _mm256_loadu_ps(bias + j) : _mm256_setzero_ps();
                __m256 v = _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(s + j)));
                _mm256_storeu_ps(c + j, _mm256_fmadd_ps(v, sc, b));
            }
        } else {
            for (int j = 0; j < nr; j++) c[j] = fmaf((float)s[j], sa[i] * sw[j], bias ? bias[j] : 0.0f);
        }
    }
}

/* Rows [r0, r1) x panels [c0, c1) of C. */
static void s8_block(const kd_gemm_s8_args *g, int64_t r0, int64_t r1, int64_t c0, int64_t c1, int16_t *qa, float *sa,
                     int64_t MC)
{
    const int64_t k = g->k, k2 = k_pairs(k);
    const int16_t *W = g->w;
    _Alignas(32) int32_t acc[S8_MR * S8_NR];
    for (int64_t ic = r0; ic < r1; ic += MC) {
        int64_t mc = r1 - ic < MC ? r1 - ic : MC;
        for (int64_t i = 0; i < mc; i++) sa[i] = quantize_row(g->a + (ic + i) * g->lda, k, g->act_scale, qa + i * 2 * k2);
        for (int64_t c = c0; c < c1; c++) {
            const int16_t *bp = W + c * k2 * S8_NR * 2;
            int64_t j0 = c * S8_NR;
            int nr = (int)(g->n - j0 < S8_NR ? g->n - j0 : S8_NR);
            for (int64_t ir = 0; ir < mc; ir += S8_MR) {
                int mr = (int)(mc - ir < S8_MR ? mc - ir : S8_MR);
                /* a short block's missing rows are rows of the buffer (zeros or older rows): their sums
                 * are not stored */
                ukr_4x16(k2, (const int32_t *)(qa + ir * 2 * k2), k2, bp, acc);
                dequant(g, acc, sa + ir, ic + ir, mr, j0, nr);
            }
        }
    }
}

void kd_gemm_s8_avx2(const kd_gemm_s8_args *g, int ith, int nth)
{
    const int64_t m = g->m, n = g->n, k2 = k_pairs(g->k);
    if (m <= 0 || n <= 0) return;
    const int64_t mb = (m + S8_MR - 1) / S8_MR, panels = (n + S8_NR - 1) / S8_NR;
    const int64_t MC = s8_mc(k2);
    int16_t *qa = aligned_alloc(64, ((size_t)(MC * 2 * (k2 > 0 ? k2 : 1)) * sizeof(int16_t) + 63) & ~(size_t)63);
    float *sa = malloc((size_t)MC * sizeof(float));
    if (!qa || !sa) abort(); /* kernels return no status */
    memset(qa, 0, (size_t)(MC * 2 * k2) * sizeof(int16_t));
    /* Threads take runs of MR-row blocks, or (too few rows to go round) runs of panels, each quantizing
     * all the rows then: A is the small operand (k per row against k x 16 per panel). */
    if (mb >= 2 * (int64_t)nth || panels < 2 * (int64_t)nth) {
        int64_t lo, hi;
        kd_split_range(mb, ith, nth, &lo, &hi);
        if (lo < hi) s8_block(g, lo * S8_MR, hi * S8_MR < m ? hi * S8_MR : m, 0, panels, qa, sa, MC);
    } else {
        int64_t lo, hi;
        kd_split_range(panels, ith, nth, &lo, &hi);
        if (lo < hi) s8_block(g, 0, m, lo, hi, qa, sa, MC);
    }
    free(qa);
    free(sa);
}
