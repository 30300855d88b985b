/* kernels/cpu/convert_avx2.c — the f32 tables' f32 <-> bf16 conversion, 8 values at a time; bit-identical
 * to kernels/ref/convert_ref.inc (the same integer rounding, the same f32 additions when accumulating). */
#include "kernels/cpu/bf16_avx2.h"
#include "kernels/cpu/cpu_kernels.h"

void kd_convert_avx2(const kd_convert_args *c, int ith, int nth)
{
    int64_t lo, hi, i;
    kd_split_range(c->n, ith, nth, &lo, &hi);
    if (c->to_bf16) {
        const float *x = c->x;
        kd_bf16 *y = c->y;
        for (i = lo; i + 8 <= hi; i += 8) {
            __m256 v = _mm256_loadu_ps(x + i);
            if (c->accumulate) v = _mm256_add_ps(kd_bf16x8_load(y + i), v);
            kd_bf16x8_store(y + i, v);
        }
        for (; i < hi; i++) y[i] = kd_f32_to_bf16(c->accumulate ? kd_bf16_to_f32(y[i]) + x[i] : x[i]);
    } else {
        const kd_bf16 *x = c->x;
        float *y = c->y;
        for (i = lo; i + 8 <= hi; i += 8) {
            __m256 v = kd_bf16x8_load(x + i);
            if (c->accumulate) {
                /* y + x; with both NaN the reference's addition gives x's NaN (quieted): so does this */
                const __m256 q = _mm256_castsi256_ps(_mm256_or_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x400000)));
                v = _mm256_blendv_ps(_mm256_add_ps(_mm256_loadu_ps(y + i), v), q, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
            }
            _mm256_storeu_ps(y + i, v);
        }
        for (; i < hi; i++) y[i] = c->accumulate ? y[i] + kd_bf16_to_f32(x[i]) : kd_bf16_to_f32(x[i]);
    }
}
