/* kernels/cpu/softmax_avx2.c — softmax and log-softmax over contiguous rows, forward and backward,
 * 8 columns at a time. Forward: max, then sum of e^(x - max) (the exponentials kept in y), then scale by
 * 1/sum (softmax) or write x - max - log(sum) (log-softmax). A NaN anywhere in a row makes it all NaN,
 * as in the reference. */
#include <math.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/vecmath_avx2.h"

void kd_softmax_avx2_f32(const kd_softmax_args *s, int ith, int nth)
{
    int64_t lo, hi;
    kd_split_range(s->rows, ith, nth, &lo, &hi);
    const int64_t n = s->cols, nv = n & ~(int64_t)7;
    const __m256i tail = kd_tail_mask(n - nv);
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    for (int64_t r = lo; r < hi; r++) {
        const float *x = (const float *)s->x + r * n;
        float *y = (float *)s->y + r * n;
        __m256 mx = ninf, nan = _mm256_setzero_ps();
        for (int64_t j = 0; j < nv; j += 8) {
            __m256 v = _mm256_loadu_ps(x + j);
            mx = _mm256_max_ps(mx, v);
            nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        }
        if (nv < n) {
            __m256 v = _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + nv, tail), _mm256_castsi256_ps(tail));
            mx = _mm256_max_ps(mx, v);
            nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        }
        float m = kd_hmax8(mx);
        if (_mm256_movemask_ps(nan)) m = NAN;
        const __m256 vm = _mm256_set1_ps(m);
        __m256 sum0 = _mm256_setzero_ps(), sum1 = _mm256_setzero_ps();
        int64_t j = 0;
        for (; j + 16 <= nv; j += 16) {
            __m256 e0 = kd_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm));
            __m256 e1 = kd_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), vm));
            sum0 = _mm256_add_ps(sum0, e0);
            sum1 = _mm256_add_ps(sum1, e1);
            if (!s->log) {
                _mm256_storeu_ps(y + j, e0);
                _mm256_storeu_ps(y + j + 8, e1);
            }
        }
        for (; j < nv; j += 8) {
            __m256 e = kd_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm));
            sum0 = _mm256_add_ps(sum0, e);
            if (!s->log) _mm256_storeu_ps(y + j, e);
        }
        if (nv < n) {
            __m256 e = kd_exp8(_mm256_sub_ps(_mm256_maskload_ps(x + nv, tail), vm));
            e = _mm256_and_ps(e, _mm256_castsi256_ps(tail));
            sum1 = _mm256_add_ps(sum1, e);
            if (!s->log) _mm256_maskstore_ps(y + nv, tail, e);
        }
        const float sum = kd_hsum8(_mm256_add_ps(sum0, sum1));
        if (s->log) {
            const __m256 lse = _mm256_set1_ps((float)((double)m + log((double)sum)));
            for (j = 0; j < nv; j += 8) _mm256_storeu_ps(y + j, _mm256_sub_ps(_mm256_loadu_ps(x + j), lse));
            if (nv < n) _mm256_maskstore_ps(y + nv, tail, _mm256_sub_ps(_mm256_maskload_ps(x + nv, tail), lse));
        } else {
            const __m256 inv = _mm256_set1_ps(1.0f / sum);
            for (j = 0; j < nv; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(y + j), inv));
            if (nv < n) _mm256_maskstore_ps(y + nv, tail, _mm256_mul_ps(_mm256_maskload_ps(y + nv, tail), inv));
        }
    }
}

/* dx += y (dy - sum(dy y))  (softmax);   dx += dy - e^y sum(dy)  (log-softmax). */
void kd_softmax_bwd_avx2_f32(const kd_softmax_bwd_args *s, int ith, int nth)
{
    int64_t lo, hi;
    kd_split_range(s->rows, ith, nth, &lo, &hi);
    const int64_t n = s->cols, nv = n & ~(int64_t)7;
    const __m256i tail = kd_tail_mask(n - nv);
    for (int64_t r = lo; r < hi; r++) {
        const float *y = (const float *)s->y + r * n, *dy = (const float *)s->dy + r * n;
        float *dx = (float *)s->dx + r * n;
        __m256 acc = _mm256_setzero_ps();
        for (int64_t j = 0; j < nv; j += 8) {
            __m256 g = _mm256_loadu_ps(dy + j);
            acc = s->log ? _mm256_add_ps(acc, g) : _mm256_fmadd_ps(g, _mm256_loadu_ps(y + j), acc);
        }
        if (nv < n) {
            __m256 g = _mm256_maskload_ps(dy + nv, tail);
            acc = s->log ? _mm256_add_ps(acc, g) : _mm256_fmadd_ps(g, _mm256_maskload_ps(y + nv, tail), acc);
        }
        const __m256 dot = _mm256_set1_ps(kd_hsum8(acc));
        for (int64_t j = 0; j < n; j += 8) {
            const int full = j < nv;
            __m256 yv = full ? _mm256_loadu_ps(y + j) : _mm256_maskload_ps(y + j, tail);
            __m256 g = full ? _mm256_loadu_ps(dy + j) : _mm256_maskload_ps(dy + j, tail);
            __m256 d = full ? _mm256_loadu_ps(dx + j) : _mm256_maskload_ps(dx + j, tail);
            __m256 v = s->log ? _mm256_fnmadd_ps(kd_exp8(yv), dot, g) : _mm256_mul_ps(yv, _mm256_sub_ps(g, dot));
            v = _mm256_add_ps(d, v);
            if (full) _mm256_storeu_ps(dx + j, v);
            else _mm256_maskstore_ps(dx + j, tail, v);
        }
    }
}
