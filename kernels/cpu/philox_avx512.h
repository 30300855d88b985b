/* kernels/cpu/philox_avx512.h — Philox4x32-10 (kernels/rng.h) on 16 counters at once, and the dropout
 * keep decisions of 64 consecutive elements as one bit mask. Include only from files compiled with the
 * AVX-512 flags. Element c is word c & 3 of block c >> 2 and is kept when its top 24 bits as a fraction
 * of 2^24 are >= p (kd_rng_keep, the same float compare): bit-identical decisions. */
#ifndef KD_PHILOX_AVX512_H
#define KD_PHILOX_AVX512_H

#include <immintrin.h>
#include <stdint.h>

/* 32 x 32 -> 64-bit products of every lane: even lanes by _mm512_mul_epu32, odd lanes after a shift. */
static inline void kd_mulhilo16(__m512i a, __m512i m, __m512i *lo, __m512i *hi)
{
    const __m512i pe = _mm512_mul_epu32(a, m), po = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
    *lo = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
    *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 32), po);
}

/* Lane l runs counter (block0 + l, 0): out[q] lane l = word q of block block0 + l. */
static inline void kd_philox16(uint64_t seed, uint64_t block0, __m512i out[4])
{
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i base = _mm512_set1_epi32((int)(uint32_t)block0);
    __m512i c0 = _mm512_add_epi32(base, lane);
    /* carry into the high word where the low word wrapped (c0 < base, unsigned) */
    const __mmask16 carry = _mm512_cmplt_epu32_mask(c0, base);
    const __m512i hi32 = _mm512_set1_epi32((int)(uint32_t)(block0 >> 32));
    __m512i c1 = _mm512_mask_add_epi32(hi32, carry, hi32, _mm512_set1_epi32(1));
    __m512i c2 = _mm512_setzero_si512(), c3 = _mm512_setzero_si512();
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    const __m512i m0 = _mm512_set1_epi32((int)0xD2511F53u), m1 = _mm512_set1_epi32((int)0xCD9E8D57u);
    for (int r = 0; r < 10; r++) {
        __m512i lo0, hi0, lo1, hi1;
        kd_mulhilo16(c0, m0, &lo0, &hi0);
        kd_mulhilo16(c2, m1, &lo1, &hi1);
        /* a ^ b ^ k in one ternary-logic instruction (0x96 = three-way xor) */
        const __m512i n0 = _mm512_ternarylogic_epi32(hi1, c1, _mm512_set1_epi32((int)k0), 0x96);
        const __m512i n2 = _mm512_ternarylogic_epi32(hi0, c3, _mm512_set1_epi32((int)k1), 0x96);
        c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* Bits of a 16-bit mask spread to every fourth bit of 64 (bit l -> bit 4 l). */
static inline uint64_t kd_spread4(uint64_t x)
{
    x &= 0xFFFFu;
    x = (x | (x << 24)) & 0x000000FF000000FFull;
    x = (x | (x << 12)) & 0x000F000F000F000Full;
    x = (x | (x << 6)) & 0x0303030303030303ull;
    x = (x | (x << 3)) & 0x1111111111111111ull;
    return x;
}

/* Bit e of the result: element 4 block0 + e is kept (e < 64). */
static inline uint64_t kd_keep64_avx512(uint64_t seed, uint64_t block0, float p)
{
    __m512i w[4];
    kd_philox16(seed, block0, w);
    const __m512 vp = _mm512_set1_ps(p), unit = _mm512_set1_ps(1.0f / 16777216.0f);
    uint64_t bits = 0;
    for (int q = 0; q < 4; q++) {
        const __m512 u = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(w[q], 8)), unit);
        bits |= kd_spread4((uint64_t)_mm512_cmp_ps_mask(u, vp, _CMP_GE_OQ)) << q;
    }
    return bits;
}

#endif
