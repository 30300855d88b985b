/* kernels/cpu/layernorm_avx512.c — LayerNorm forward over contiguous rows, 16 columns at a time: the
 * same two-pass mean and variance as layernorm_avx2.c, with half the instructions per row (the AVX2
 * form is instruction-bound, not bandwidth-bound, at BERT widths). */
#include <math.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/vecmath_avx512.h"

void kd_layernorm_avx512_f32(const kd_layernorm_args *l, int ith, int nth)
{
    int64_t lo, hi;
    kd_split_range(l->rows, ith, nth, &lo, &hi);
    const int64_t n = l->cols, nv = n & ~(int64_t)15;
    const __mmask16 tail = kd_tail_mask16(n - nv);
    const float *gamma = l->gamma, *beta = l->beta;
    for (int64_t r = lo; r < hi; r++) {
        const float *x = (const float *)l->x + r * n;
        float *y = (float *)l->y + r * n;
        /* four accumulators: one would serialise on the add latency */
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
        int64_t j = 0;
        for (; j + 64 <= nv; j += 64) {
            s0 = _mm512_add_ps(s0, _mm512_loadu_ps(x + j));
            s1 = _mm512_add_ps(s1, _mm512_loadu_ps(x + j + 16));
            s2 = _mm512_add_ps(s2, _mm512_loadu_ps(x + j + 32));
            s3 = _mm512_add_ps(s3, _mm512_loadu_ps(x + j + 48));
        }
        for (; j < nv; j += 16) s0 = _mm512_add_ps(s0, _mm512_loadu_ps(x + j));
        if (nv < n) s1 = _mm512_add_ps(s1, _mm512_maskz_loadu_ps(tail, x + nv));
        const float mean = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3))) / (float)n;
        const __m512 vm = _mm512_set1_ps(mean);
        s0 = s1 = s2 = s3 = _mm512_setzero_ps();
        for (j = 0; j + 64 <= nv; j += 64) {
            __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + j), vm), d1 = _mm512_sub_ps(_mm512_loadu_ps(x + j + 16), vm);
            __m512 d2 = _mm512_sub_ps(_mm512_loadu_ps(x + j + 32), vm), d3 = _mm512_sub_ps(_mm512_loadu_ps(x + j + 48), vm);
            s0 = _mm512_fmadd_ps(d0, d0, s0);
            s1 = _mm512_fmadd_ps(d1, d1, s1);
            s2 = _mm512_fmadd_ps(d2, d2, s2);
            s3 = _mm512_fmadd_ps(d3, d3, s3);
        }
        for (; j < nv; j += 16) {
            __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + j), vm);
            s0 = _mm512_fmadd_ps(d, d, s0);
        }
        if (nv < n) { /* tail lanes must not add mean^2 */
            __m512 d = _mm512_maskz_sub_ps(tail, _mm512_maskz_loadu_ps(tail, x + nv), vm);
            s1 = _mm512_fmadd_ps(d, d, s1);
        }
        const double var = (double)_mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3))) / (double)n;
        const float rstd = (float)(1.0 / sqrt(var + l->eps));
        const __m512 vr = _mm512_set1_ps(rstd);
        for (j = 0; j < n; j += 16) {
            const __mmask16 mk = j < nv ? (__mmask16)0xffff : tail;
            __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, x + j), vm), vr);
            if (gamma) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(mk, gamma + j));
            if (beta) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, beta + j));
            _mm512_mask_storeu_ps(y + j, mk, v);
        }
        ((float *)l->mean)[r] = mean;
        ((float *)l->rstd)[r] = rstd;
    }
}
