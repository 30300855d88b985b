/* kernels/cpu/gemm_s8_avx512vnni.c — the int8 linear (kernels.h, kd_gemm_s8_args) on AVX-512 VNNI: VPDPBUSD
 * (four u8 x s8 products added into each int32 lane, without intermediate saturation), an 8x32 micro-kernel
 * (16 zmm accumulators).
 *
 * VPDPBUSD wants unsigned activations: qa (s8 in [-127, 127]) goes in as u8 = qa + 128, and
 *   sum_p (qa + 128) qw = S + 128 sum_p qw,
 * so S comes back by subtracting 128 times each column's weight sum, computed once when packing. Every
 * product fits (255 x 127) and VPDPBUSD adds the four of a lane in int32: S is exact and the result matches
 * the reference bit for bit.
 *
 * Weights are packed once (kd_gemm_s8_pack_avx512vnni) into 32-column panels: 32 int32 of 128 x the column
 * sums, then for each group of four reduction steps p4 the 32 columns' (w[j][4 p4 .. 4 p4 + 3]) (128
 * bytes), zero past the edges. Activations are quantized per row into u8 as each block of rows is packed. */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"

#define V_MR 8
#define V_NR 32
#define V_MC 64   /* rows quantized at once: 64 x k bytes (192 KiB at k = 3072) */

static int64_t k_quads(int64_t k) { return (k + 3) / 4; }
static size_t panel_bytes(int64_t k) { return (size_t)(V_NR * 4 + k_quads(k) * V_NR * 4); }

size_t kd_gemm_s8_pack_avx512vnni(int64_t n, int64_t k, const int8_t *w, void *dst)
{
    const int64_t k4 = k_quads(k), panels = (n + V_NR - 1) / V_NR;
    size_t bytes = (size_t)panels * panel_bytes(k);
    if (!dst) return bytes;
    char *d = dst;
    for (int64_t c = 0; c < panels; c++) {
        int32_t *sums = (int32_t *)d;
        int8_t *q = (int8_t *)(d + V_NR * 4);
        for (int64_t j = 0; j < V_NR; j++) {
            int64_t col = c * V_NR + j;
            int32_t s = 0;
            for (int64_t p = 0; col < n && p < k; p++) s += w[col * k + p];
            sums[j] = 128 * s;
        }
        for (int64_t p4 = 0; p4 < k4; p4++)
            for (int64_t j = 0; j < V_NR; j++)
                for (int t = 0; t < 4; t++) {
                    int64_t col = c * V_NR + j, p = 4 * p4 + t;
                    *q++ = col < n && p < k ? w[col * k + p] : 0;
                }
        d += panel_bytes(k);
    }
    return bytes;
}

/* Quantize row x[0..k) into k4 * 4 bytes of u8 = qa + 128 (128, i.e. qa = 0, past k); returns its scale. */
static float quantize_row(const float *x, int64_t k, float act_scale, uint8_t *q)
{
    float s;
    if (act_scale > 0.0f) {
        s = act_scale;
    } else {
        __m512 mx16 = _mm512_setzero_ps();
        int64_t p = 0;
        for (; p + 16 <= k; p += 16) mx16 = _mm512_max_ps(mx16, _mm512_abs_ps(_mm512_loadu_ps(x + p)));
        _Alignas(64) float lanes[16];
        _mm512_store_ps(lanes, mx16);
        float mx = 0.0f;
        for (int i = 0; i < 16; i++) mx = fmaxf(mx, lanes[i]);
        for (; p < k; p++) mx = fmaxf(mx, fabsf(x[p]));
        s = mx > 0.0f ? mx / 127.0f : 1.0f;
    }
    const float inv = 1.0f / s;
    const __m512 vinv = _mm512_set1_ps(inv), hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
    const __m512i shift = _mm512_set1_epi32(128);
    int64_t p = 0;
    for (; p + 16 <= k; p += 16) {
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + p), vinv);
        v = _mm512_max_ps(_mm512_min_ps(v, hi), lo);
        __m512i u = _mm512_add_epi32(_mm512_cvtps_epi32(v), shift);   /* rounds to nearest even; 1..255 */
        _mm_storeu_si128((__m128i *)(q + p), _mm512_cvtepi32_epi8(u));
    }
    for (; p < k; p++) q[p] = (uint8_t)(kd_quantize_s8(x[p], inv) + 128);
    for (; p < 4 * k_quads(k); p++) q[p] = 128;
    return s;
}

/* acc[8][32] = sum_p4 dpbusd(a_i[p4], b[p4]) - 128 colsum (a row i at a + i * lda4 int32 words). */
static inline void ukr_8x32(int64_t k4, const int32_t *restrict a, int64_t lda4, const char *restrict panel,
                            int32_t *restrict acc)
{
    __m512i c[V_MR][2];
    for (int i = 0; i < V_MR; i++) c[i][0] = c[i][1] = _mm512_setzero_si512();
    const int8_t *b = (const int8_t *)(panel + V_NR * 4);
    for (int64_t p = 0; p < k4; p++) {
        const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
        for (int i = 0; i < V_MR; i++) {
            const __m512i x = _mm512_set1_epi32(a[i * lda4 + p]);
            c[i][0] = _mm512_dpbusd_epi32(c[i][0], x, b0);
            c[i][1] = _mm512_dpbusd_epi32(c[i][1], x, b1);
        }
        b += 128;
    }
    const __m512i s0 = _mm512_loadu_si512(panel), s1 = _mm512_loadu_si512(panel + 64);
    for (int i = 0; i < V_MR; i++) {
        _mm512_storeu_si512(acc + i * V_NR, _mm512_sub_epi32(c[i][0], s0));
        _mm512_storeu_si512(acc + i * V_NR + 16, _mm512_sub_epi32(c[i][1], s1));
    }
}

/* C rows [i0, i0 + mr) x columns [j0, j0 + nr) from the int32 tile: fma(S, sa * sw, bias). */
static void dequant(const kd_gemm_s8_args *g, const int32_t *acc, const float *sa, int64_t i0, int mr,
                    int64_t j0, int nr)
{
    const float *sw = g->w_scale + j0, *bias = g->bias ? g->bias + j0 : NULL;
    for (int i = 0; i < mr; i++) {
        float *c = g->c + (i0 + i) * g->ldc + j0;
        const int32_t *s = acc + i * V_NR;
        const __m512 vs = _mm512_set1_ps(sa[i]);
        for (int j = 0; j < nr; j += 16) {
            const __mmask16 mk = nr - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (nr - j)) - 1);
            __m512 sc = _mm512_mul_ps(vs, _mm512_maskz_loadu_ps(mk, sw + j));
            __m512 b = bias ? _mm512_maskz_loadu_ps(mk, bias + j) : _mm512_setzero_ps();
            __m512 v = _mm512_cvtepi32_ps(_mm512_loadu_si512(s + j));
            _mm512_mask_storeu_ps(c + j, mk, _mm512_fmadd_ps(v, sc, b));
        }
    }
}

/* Rows [r0, r1) x panels [c0, c1) of C. */
static void vnni_block(const kd_gemm_s8_args *g, int64_t r0, int64_t r1, int64_t c0, int64_t c1, uint8_t *qa, float *sa)
{
    const int64_t k = g->k, k4 = k_quads(k);
    const char *W = g->w;
    _Alignas(64) int32_t acc[V_MR * V_NR];
    for (int64_t ic = r0; ic < r1; ic += V_MC) {
        int64_t mc = r1 - ic < V_MC ? r1 - ic : V_MC;
        for (int64_t i = 0; i < mc; i++) sa[i] = quantize_row(g->a + (ic + i) * g->lda, k, g->act_scale, qa + i * 4 * k4);
        for (int64_t c = c0; c < c1; c++) {
            const char *panel = W + (size_t)c * panel_bytes(k);
            int64_t j0 = c * V_NR;
            int nr = (int)(g->n - j0 < V_NR ? g->n - j0 : V_NR);
            for (int64_t ir = 0; ir < mc; ir += V_MR) {
                int mr = (int)(mc - ir < V_MR ? mc - ir : V_MR);
                /* a short block's missing rows are rows of the buffer: their sums are not stored */
                ukr_8x32(k4, (const int32_t *)(qa + ir * 4 * k4), k4, panel, acc);
                dequant(g, acc, sa + ir, ic + ir, mr, j0, nr);
            }
        }
    }
}

void kd_gemm_s8_avx512vnni(const kd_gemm_s8_args *g, int ith, int nth)
{
    const int64_t m = g->m, n = g->n, k4 = k_quads(g->k);
    if (m <= 0 || n <= 0) return;
    const int64_t mb = (m + V_MR - 1) / V_MR, panels = (n + V_NR - 1) / V_NR;
    size_t qbytes = (size_t)(V_MC * 4 * (k4 > 0 ? k4 : 1));
    uint8_t *qa = aligned_alloc(64, (qbytes + 63) & ~(size_t)63);
    float *sa = malloc(V_MC * sizeof(float));
    if (!qa || !sa) abort(); /* kernels return no status */
    memset(qa, 128, qbytes);
    if (mb >= 2 * (int64_t)nth || panels < 2 * (int64_t)nth) {
        int64_t lo, hi;
        kd_split_range(mb, ith, nth, &lo, &hi);
        if (lo < hi) vnni_block(g, lo * V_MR, hi * V_MR < m ? hi * V_MR : m, 0, panels, qa, sa);
    } else {
        int64_t lo, hi;
        kd_split_range(panels, ith, nth, &lo, &hi);
        if (lo < hi) vnni_block(g, 0, m, lo, hi, qa, sa);
    }
    free(qa);
    free(sa);
}
