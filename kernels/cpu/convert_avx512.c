/* kernels/cpu/convert_avx512.c — the f32 tables' f32 <-> bf16 conversion, 16 values at a time (masked
 * tails); bit-identical to kernels/ref/convert_ref.inc: integer rounding to nearest even, NaN quiet. */
#include <immintrin.h>

#include "kernels/bf16.h"
#include "kernels/cpu/cpu_kernels.h"

static inline __m512 load16(const kd_bf16 *p, __mmask16 k)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, p)), 16));
}

static inline void store16(kd_bf16 *p, __mmask16 k, __m512 x)
{
    const __m512i u = _mm512_castps_si512(x);
    const __m512i hi = _mm512_srli_epi32(u, 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    const __m512i bias = _mm512_add_epi32(_mm512_and_si512(hi, _mm512_set1_epi32(1)), _mm512_set1_epi32(0x7fff));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);
    r = _mm512_mask_or_epi32(r, nan, hi, _mm512_set1_epi32(0x40));
    _mm256_mask_storeu_epi16(p, k, _mm512_cvtepi32_epi16(r));
}

void kd_convert_avx512(const kd_convert_args *c, int ith, int nth)
{
    int64_t lo, hi;
    kd_split_range(c->n, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i += 16) {
        const __mmask16 k = hi - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (hi - i)) - 1);
        if (c->to_bf16) {
            __m512 v = _mm512_maskz_loadu_ps(k, (const float *)c->x + i);
            if (c->accumulate) v = _mm512_add_ps(load16((kd_bf16 *)c->y + i, k), v);
            store16((kd_bf16 *)c->y + i, k, v);
        } else {
            __m512 v = load16((const kd_bf16 *)c->x + i, k);
            if (c->accumulate) {
                /* y + x; with both NaN the reference's addition gives x's NaN (quieted): so does this */
                const __mmask16 xnan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
                const __m512 q = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x400000)));
                v = _mm512_mask_mov_ps(_mm512_add_ps(_mm512_maskz_loadu_ps(k, (float *)c->y + i), v), xnan, q);
            }
            _mm512_mask_storeu_ps((float *)c->y + i, k, v);
        }
    }
}
