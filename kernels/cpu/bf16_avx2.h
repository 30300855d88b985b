/* kernels/cpu/bf16_avx2.h — bf16 <-> f32 in 8 lanes (AVX2), with the rounding of kernels/bf16.h done in
 * integers: round to nearest even by adding 0x7fff + the kept lowest bit, NaN made quiet, overflow to Inf.
 * (VCVTNEPS2BF16 would flush denormal inputs to zero; this keeps them, bit for bit as the scalar form.) */
#ifndef KD_BF16_AVX2_H
#define KD_BF16_AVX2_H

#include <immintrin.h>
#include <stdint.h>

#include "kernels/bf16.h"

static inline __m256 kd_bf16x8_load(const kd_bf16 *p)
{
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

/* The 8 rounded values in the low 16 bits of each 32-bit lane. */
static inline __m256i kd_bf16x8_round32(__m256 x)
{
    const __m256i u = _mm256_castps_si256(x);
    const __m256i hi = _mm256_srli_epi32(u, 16);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
    const __m256i bias = _mm256_add_epi32(_mm256_and_si256(hi, _mm256_set1_epi32(1)), _mm256_set1_epi32(0x7fff));
    const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, bias), 16);
    return _mm256_blendv_epi8(r, _mm256_or_si256(hi, _mm256_set1_epi32(0x40)), nan);
}

static inline __m128i kd_bf16x8_round(__m256 x)
{
    const __m256i r = kd_bf16x8_round32(x);
    return _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
}

static inline void kd_bf16x8_store(kd_bf16 *p, __m256 x) { _mm_storeu_si128((__m128i *)p, kd_bf16x8_round(x)); }

/* n values, any n (the tail goes through a small buffer). */
static inline void kd_bf16_to_f32_n(const kd_bf16 *x, float *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, kd_bf16x8_load(x + i));
    for (; i < n; i++) y[i] = kd_bf16_to_f32(x[i]);
}
static inline void kd_f32_to_bf16_n(const float *x, kd_bf16 *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) kd_bf16x8_store(y + i, _mm256_loadu_ps(x + i));
    for (; i < n; i++) y[i] = kd_f32_to_bf16(x[i]);
}

#endif
