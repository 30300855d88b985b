/* kernels/cpu/gelu_avx2.h — GELU (erf form) and its derivative for AVX2+FMA code (8 floats), from the
 * normal CDF and density built on vecmath's exp. Include only from files compiled with -mavx2 -mfma. */
#ifndef KD_GELU_AVX2_H
#define KD_GELU_AVX2_H

#include "kernels/cpu/vecmath_avx2.h"

/* The pieces of the normal CDF Phi(x) and density phi(x) = e^(-x^2/2) / sqrt(2 pi), for GELU:
 *   Phi(x) = ehi q (x < 0),  1 - ehi q (x >= 0);   phi(x) = ehi e2 / sqrt(2 pi).
 * Phi(x) = erfc(|x| / sqrt 2) / 2 on the negative side, with erfc(z), z >= 0, from the Chebyshev fit of
 * Numerical Recipes (erfcc: fractional error < 1.2e-7 for every z >= 0):
 *   erfc(z) = t exp(-z^2 - 1.26551223 + t P(t)),  t = 1 / (1 + z/2),
 * so Phi is accurate relative to itself in the far negative tail too (no 1 + erf cancellation).
 * e^(-z^2) = e^(-x^2/2) is split as ehi = e^(-xh^2/2) times e^(-(x - xh)(x + xh)/2) with xh = x cut to 12
 * mantissa bits: xh^2/2 is exact, so no rounding of x^2 (or of z = x/sqrt 2: an error of ~x^2 ulp)
 * reaches the exponent. ehi is kept apart so that callers multiply it in last: the other factors are
 * O(1), and a result near the subnormal range is rounded once, not at every step. */
static inline void kd_normal_parts8(__m256 x, __m256 *ehi, __m256 *q, __m256 *e2)
{
    const __m256 z = _mm256_mul_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x), _mm256_set1_ps(0.70710678118654752f));
    const __m256 xh = _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32((int)0xfffff000u)));
    *ehi = kd_exp8(_mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(-0.5f), xh), xh));
    const __m256 dz2 = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_sub_ps(x, xh)),
                                     _mm256_add_ps(x, xh)); /* (x^2 - xh^2) / 2 */
    const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(_mm256_set1_ps(0.5f), z, _mm256_set1_ps(1.0f)));
    __m256 p = _mm256_set1_ps(0.17087277f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.82215223f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.48851587f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.13520398f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.27886807f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.18628806f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.09678418f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.37409196f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.00002368f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.26551223f));
    *q = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), t), kd_exp8(_mm256_sub_ps(p, dz2)));
    if (e2) *e2 = kd_exp8(_mm256_sub_ps(_mm256_setzero_ps(), dz2));
}

/* GELU(x) = x Phi(x): ehi (x q) for x < 0, x - ehi (x q) for x >= 0; NaN passes through. */
static inline __m256 kd_gelu8(__m256 x)
{
    __m256 ehi, q;
    kd_normal_parts8(x, &ehi, &q, NULL);
    const __m256 r = _mm256_mul_ps(ehi, _mm256_mul_ps(x, q));
    const __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    const __m256 g = _mm256_blendv_ps(_mm256_sub_ps(x, r), r, neg);
    return _mm256_blendv_ps(g, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/* GELU'(x) = Phi(x) + x phi(x): ehi (q + d) for x < 0, 1 + ehi (d - q) for x >= 0, d = x e2 / sqrt(2 pi). */
static inline __m256 kd_gelu_grad8(__m256 x)
{
    __m256 ehi, q, e2;
    kd_normal_parts8(x, &ehi, &q, &e2);
    const __m256 d = _mm256_mul_ps(_mm256_mul_ps(x, e2), _mm256_set1_ps(0.39894228040143267794f));
    const __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    const __m256 g = _mm256_blendv_ps(_mm256_fmadd_ps(ehi, _mm256_sub_ps(d, q), _mm256_set1_ps(1.0f)),
                                      _mm256_mul_ps(ehi, _mm256_add_ps(q, d)), neg);
    return _mm256_blendv_ps(g, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

#endif
