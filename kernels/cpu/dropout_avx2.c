/* kernels/cpu/dropout_avx2.c — inverted dropout, 8 floats at a time, with the keep decisions of 32
 * consecutive elements drawn from one 8-wide Philox pass (kernels/cpu/philox_avx2.h).
 *
 * The reference computes out = keep ? (double)x / (1 - p) : 0 (plus out, in double, when accumulating)
 * and rounds once to float; so does this kernel, on doubles: x is masked to 0 where dropped, widened,
 * multiplied by the double 1 / (1 - p), added, narrowed. The results are bit-identical to the reference.
 * Also here: the keep-scales of a counter range as floats, for attention's dropout. */
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/philox_avx2.h"
#include "kernels/cpu/vecmath_avx2.h"

/* out[0..8) (lanes of `lanes`) from x and keep mask k: see the header comment. */
static inline void drop8(const float *x, float *out, __m256 k, __m256d ks, int acc, __m256i lanes, int full)
{
    const __m256 xv = full ? _mm256_loadu_ps(x) : _mm256_maskload_ps(x, lanes);
    const __m256 xm = _mm256_and_ps(k, xv);
    __m256d lo = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(xm)), ks);
    __m256d hi = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(xm, 1)), ks);
    if (acc) {
        const __m256 ov = full ? _mm256_loadu_ps(out) : _mm256_maskload_ps(out, lanes);
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(ov)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(ov, 1)));
    }
    const __m256 r = _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
    if (full) _mm256_storeu_ps(out, r);
    else _mm256_maskstore_ps(out, lanes, r);
}

void kd_dropout_avx2_f32(const kd_dropout_args *d, int ith, int nth)
{
    int64_t lo, hi;
    kd_split_range(d->n, ith, nth, &lo, &hi);
    if (lo >= hi) return;
    const float *x = d->x;
    float *out = d->out;
    const float p = (float)d->p;
    const __m256d ks = _mm256_set1_pd(d->p < 1.0 ? 1.0 / (1.0 - d->p) : 0.0);
    const int acc = d->accumulate;
    const __m256i all = _mm256_set1_epi32(-1);
    uint64_t c = d->offset + (uint64_t)lo;
    if (c + (uint64_t)(hi - lo) < c) {
        /* The counter wraps past 2^64 inside this range (the reference wraps it; the blocks here would
         * not): leave such a range to the reference. */
        kd_kernels_ref_f32()->dropout(d, ith, nth);
        return;
    }
    uint64_t blk = c >> 2;
    int64_t skip = (int64_t)(c & 3), i = lo;
    float buf[40] = { 0 }; /* 32 masks, and room for a load that starts at buf + skip + 24 */
    while (i < hi) {
        __m256 k[4];
        kd_keep32_avx2(d->seed, blk, p, k);
        if (skip == 0 && hi - i >= 32) {
            for (int v = 0; v < 4; v++) drop8(x + i + 8 * v, out + i + 8 * v, k[v], ks, acc, all, 1);
            i += 32;
        } else {
            /* The first chunk of a range that does not start on a block, or the last one. */
            for (int v = 0; v < 4; v++) _mm256_storeu_ps(buf + 8 * v, k[v]);
            int64_t n = 32 - skip < hi - i ? 32 - skip : hi - i;
            for (int64_t j = 0; j < n; j += 8) {
                const int64_t m = n - j < 8 ? n - j : 8;
                const __m256i lanes = kd_tail_mask(m);
                drop8(x + i + j, out + i + j, _mm256_and_ps(_mm256_loadu_ps(buf + skip + j), _mm256_castsi256_ps(lanes)),
                      ks, acc, lanes, m == 8);
            }
            i += n;
            skip = 0;
        }
        blk += 8;
    }
}

void kd_keep_scale_avx2(uint64_t seed, uint64_t c0, int64_t n, float p, float *keep)
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
