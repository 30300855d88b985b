/* kernels/cpu/philox_avx2.h — Philox4x32-10 (kernels/rng.h) on 8 counters at once, and the dropout keep
 * masks it gives, in the reference's element order. Include only from files compiled with -mavx2 -mfma.
 *
 * Element c of the stream is word c & 3 of block c >> 2 (kd_rng_u32), kept when its top 24 bits as a
 * fraction of 2^24 are >= p (kd_rng_keep): the float compare below is the reference's, so the decisions
 * are bit-identical. */
#ifndef KD_PHILOX_AVX2_H
#define KD_PHILOX_AVX2_H

#include <immintrin.h>
#include <stdint.h>

/* 32 x 32 -> 64-bit products of every lane: _mm256_mul_epu32 multiplies the even lanes, the odd lanes
 * go through a shift. */
static inline void kd_mulhilo8(__m256i a, __m256i m, __m256i *lo, __m256i *hi)
{
    const __m256i pe = _mm256_mul_epu32(a, m), po = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
    *lo = _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
}

/* Lane l runs counter (block0 + l, 0) under the key: out[q] lane l = word q of block block0 + l. */
static inline void kd_philox8(uint64_t seed, uint64_t block0, __m256i out[4])
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
        kd_mulhilo8(c0, m0, &lo0, &hi0);
        kd_mulhilo8(c2, m1, &lo1, &hi1);
        const __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32((int)k0));
        const __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32((int)k1));
        c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* Keep masks (all ones = kept) of the 32 elements 4 block0 .. 4 block0 + 31, in element order:
 * keep[v] lane e is element 4 block0 + 8 v + e. The 4 x 8 word matrix (word q, block l) is transposed so
 * that element 4 l + q comes out in order. */
static inline void kd_keep32_avx2(uint64_t seed, uint64_t block0, float p, __m256 keep[4])
{
    __m256i w[4];
    kd_philox8(seed, block0, w);
    const __m256 vp = _mm256_set1_ps(p), unit = _mm256_set1_ps(1.0f / 16777216.0f);
    __m256 k[4];
    for (int q = 0; q < 4; q++)
        k[q] = _mm256_cmp_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(w[q], 8)), unit), vp, _CMP_GE_OQ);
    /* t0 = (k0 k1) blocks 0,1 | 4,5 interleaved, ...; u_b = words 0..3 of block b | block b + 4 */
    const __m256 t0 = _mm256_unpacklo_ps(k[0], k[1]), t1 = _mm256_unpackhi_ps(k[0], k[1]);
    const __m256 t2 = _mm256_unpacklo_ps(k[2], k[3]), t3 = _mm256_unpackhi_ps(k[2], k[3]);
    const __m256 u0 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
    const __m256 u1 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
    const __m256 u2 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
    const __m256 u3 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
    keep[0] = _mm256_permute2f128_ps(u0, u1, 0x20);
    keep[1] = _mm256_permute2f128_ps(u2, u3, 0x20);
    keep[2] = _mm256_permute2f128_ps(u0, u1, 0x31);
    keep[3] = _mm256_permute2f128_ps(u2, u3, 0x31);
}

#endif
