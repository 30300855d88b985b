/* kernels/cpu/softmax_avx512.c — softmax and log-softmax forward over contiguous rows, 16 columns at a
 * time (the exponentials make it compute-bound on AVX2); the same three passes as softmax_avx2.c. */
#include <math.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/vecmath_avx512.h"

void kd_softmax_avx512_f32(const kd_softmax_args *s, int ith, int nth)
{
    int64_t lo, hi;
    kd_split_range(s->rows, ith, nth, &lo, &hi);
    const int64_t n = s->cols;
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    for (int64_t r = lo; r < hi; r++) {
        const float *x = (const float *)s->x + r * n;
        float *y = (float *)s->y + r * n;
        __m512 mx = ninf;
        __mmask16 nan = 0;
        for (int64_t j = 0; j < n; j += 16) {
            const __mmask16 mk = kd_tail_mask16(n - j);
            const __m512 v = _mm512_mask_loadu_ps(ninf, mk, x + j);
            mx = _mm512_max_ps(mx, v);
            nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        }
        const float m = nan ? NAN : _mm512_reduce_max_ps(mx);
        const __m512 vm = _mm512_set1_ps(m);
        __m512 sum = _mm512_setzero_ps();
        for (int64_t j = 0; j < n; j += 16) {
            const __mmask16 mk = kd_tail_mask16(n - j);
            const __m512 e = _mm512_maskz_mov_ps(mk, kd_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, x + j), vm)));
            sum = _mm512_add_ps(sum, e);
            if (!s->log) _mm512_mask_storeu_ps(y + j, mk, e);
        }
        const float total = _mm512_reduce_add_ps(sum);
        if (s->log) {
            const __m512 lse = _mm512_set1_ps((float)((double)m + log((double)total)));
            for (int64_t j = 0; j < n; j += 16) {
                const __mmask16 mk = kd_tail_mask16(n - j);
                _mm512_mask_storeu_ps(y + j, mk, _mm512_sub_ps(_mm512_maskz_loadu_ps(mk, x + j), lse));
            }
        } else {
            const __m512 inv = _mm512_set1_ps(1.0f / total);
            for (int64_t j = 0; j < n; j += 16) {
                const __mmask16 mk = kd_tail_mask16(n - j);
                _mm512_mask_storeu_ps(y + j, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, y + j), inv));
            }
        }
    }
}
