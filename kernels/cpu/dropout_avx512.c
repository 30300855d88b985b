/* kernels/cpu/dropout_avx512.c — inverted dropout, 16 floats at a time, the keep decisions of 64
 * consecutive elements drawn from one 16-wide Philox pass as a bit mask (kernels/cpu/philox_avx512.h).
 * As the reference: out = keep ? (double)x / (1 - p) : 0 (+ out when accumulating), in double, rounded
 * once to float: bit-identical results. Also here: the keep-scales of a counter range as floats, for
 * attention's dropout. */
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/philox_avx512.h"

/* out[0..16) under lanes (the elements to write), keep bits k. */
static inline void drop16(const float *x, float *out, __mmask16 k, __m512d ks, int acc, __mmask16 lanes)
{
    const __m512 xm = _mm512_maskz_loadu_ps((__mmask16)(k & lanes), x);   /* dropped lanes read as +0 */
    __m512d lo = _mm512_mul_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(xm)), ks);
    __m512d hi = _mm512_mul_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(xm, 1)), ks);
    if (acc) {
        const __m512 ov = _mm512_maskz_loadu_ps(lanes, out);
        lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(ov)));
        hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(ov, 1)));
    }
    const __m512 r = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo)), _mm512_cvtpd_ps(hi), 1);
    _mm512_mask_storeu_ps(out, lanes, r);
}

void kd_dropout_avx512_f32(const kd_dropout_args *d, int ith, int nth)
{
    int64_t lo, hi;
    kd_split_range(d->n, ith, nth, &lo, &hi);
    if (lo >= hi) return;
    const float *x = d->x;
    float *out = d->out;
    const float p = (float)d->p;
    const __m512d ks = _mm512_set1_pd(d->p < 1.0 ? 1.0 / (1.0 - d->p) : 0.0);
    const int acc = d->accumulate;
    uint64_t c = d->offset + (uint64_t)lo;
    if (c + (uint64_t)(hi - lo) < c) {
        /* The counter wraps past 2^64 inside this range (the reference wraps it; the blocks here would
         * not): leave such a range to the reference. */
        kd_kernels_ref_f32()->dropout(d, ith, nth);
        return;
    }
    uint64_t blk = c >> 2;
    int64_t skip = (int64_t)(c & 3), i = lo;
    while (i < hi) {
        /* bits of elements i, i+1, ...: the chunk starts `skip` elements before i */
        const uint64_t bits = kd_keep64_avx512(d->seed, blk, p) >> skip;
        const int64_t n = 64 - skip < hi - i ? 64 - skip : hi - i;
        for (int64_t j = 0; j < n; j += 16) {
            const int64_t m = n - j < 16 ? n - j : 16;
            const __mmask16 lanes = (__mmask16)(m == 16 ? 0xFFFFu : (1u << m) - 1u);
            drop16(x + i + j, out + i + j, (__mmask16)(bits >> j), ks, acc, lanes);
        }
        i += n;
        skip = 0;
        blk += 16;
    }
}

void kd_keep_scale_avx512(uint64_t seed, uint64_t c0, int64_t n, float p, float *keep)
{
    const __m512 vks = _mm512_set1_ps(p < 1.0f ? (float)(1.0 / (1.0 - (double)p)) : 0.0f);
    uint64_t blk = c0 >> 2;
    int64_t skip = (int64_t)(c0 & 3), i = 0;
    while (i < n) {
        const uint64_t bits = kd_keep64_avx512(seed, blk, p) >> skip;
        const int64_t m = 64 - skip < n - i ? 64 - skip : n - i;
        for (int64_t j = 0; j < m; j += 16) {
            const int64_t r = m - j < 16 ? m - j : 16;
            const __mmask16 lanes = (__mmask16)(r == 16 ? 0xFFFFu : (1u << r) - 1u);
            _mm512_mask_storeu_ps(keep + i + j, lanes, _mm512_maskz_mov_ps((__mmask16)(bits >> j), vks));
        }
        i += m;
        skip = 0;
        blk += 16;
    }
}
