/* kernels/cpu/gelu_avx512.h — the AVX-512 forms (16 floats) of gelu_avx2.h's GELU and its derivative:
 * the same formulas and error budgets. Include only from files compiled with -mavx512f. */
#ifndef KD_GELU_AVX512_H
#define KD_GELU_AVX512_H

#include "kernels/cpu/vecmath_avx512.h"

/* Phi(x) = ehi q (x < 0) or 1 - ehi q (x >= 0); phi(x) = ehi e2 / sqrt(2 pi): see gelu_avx2.h. */
static inline void kd_normal_parts16(__m512 x, __m512 *ehi, __m512 *q, __m512 *e2)
{
    const __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752f));
    const __m512 xh = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0xfffff000u)));
    *ehi = kd_exp16(_mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(-0.5f), xh), xh));
    const __m512 dz2 = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), _mm512_sub_ps(x, xh)), _mm512_add_ps(x, xh));
    const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(_mm512_set1_ps(0.5f), z, _mm512_set1_ps(1.0f)));
    __m512 p = _mm512_set1_ps(0.17087277f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.82215223f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.48851587f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.13520398f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.27886807f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.18628806f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.09678418f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.37409196f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.00002368f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.26551223f));
    *q = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), t), kd_exp16(_mm512_sub_ps(p, dz2)));
    if (e2) *e2 = kd_exp16(_mm512_sub_ps(_mm512_setzero_ps(), dz2));
}

static inline __m512 kd_gelu16(__m512 x)
{
    __m512 ehi, q;
    kd_normal_parts16(x, &ehi, &q, NULL);
    const __m512 r = _mm512_mul_ps(ehi, _mm512_mul_ps(x, q));
    const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 g = _mm512_mask_mov_ps(_mm512_sub_ps(x, r), neg, r);
    return _mm512_mask_mov_ps(g, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

static inline __m512 kd_gelu_grad16(__m512 x)
{
    __m512 ehi, q, e2;
    kd_normal_parts16(x, &ehi, &q, &e2);
    const __m512 d = _mm512_mul_ps(_mm512_mul_ps(x, e2), _mm512_set1_ps(0.39894228040143267794f));
    const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 g = _mm512_mask_mov_ps(_mm512_fmadd_ps(ehi, _mm512_sub_ps(d, q), _mm512_set1_ps(1.0f)), neg,
                                        _mm512_mul_ps(ehi, _mm512_add_ps(q, d)));
    return _mm512_mask_mov_ps(g, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

#endif
