/* kernels/cpu/softmax_avx512.c — softmax and log-softmax forward over contiguous rows, 16 columns at a
 * time (the exponentials make it compute-bound on AVX2); the same three passes as softmax_avx2.c.
 * Rows of 113..128 columns (attention over 128 tokens) take a path that holds two rows in registers:
 * one read and one write of memory, and two independent rows to hide the reductions' latency. */
#include <math.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/vecmath_avx512.h"

/* Finish one row held in v[0..8) (lanes past the row are -inf): y = softmax or log-softmax. */
static inline void sm_row8_store(__m512 *v, int nan, __mmask16 last, int lg, float *y)
{
    __m512 mx = v[0];
    for (int q = 1; q < 8; q++) mx = _mm512_max_ps(mx, v[q]);
    const float m = nan ? NAN : _mm512_reduce_max_ps(mx);
    const __m512 vm = _mm512_set1_ps(m);
    __m512 e[8], sum = _mm512_setzero_ps();
    for (int q = 0; q < 8; q++) {
        e[q] = kd_exp16(_mm512_sub_ps(v[q], vm));
        if (q == 7) e[q] = _mm512_maskz_mov_ps(last, e[q]);
        sum = _mm512_add_ps(sum, e[q]);
    }
    const float total = _mm512_reduce_add_ps(sum);
    if (lg) {
        const __m512 lse = _mm512_set1_ps((float)((double)m + log((double)total)));
        for (int q = 0; q < 7; q++) _mm512_storeu_ps(y + 16 * q, _mm512_sub_ps(v[q], lse));
        _mm512_mask_storeu_ps(y + 112, last, _mm512_sub_ps(v[7], lse));
    } else {
        const __m512 inv = _mm512_set1_ps(1.0f / total);
        for (int q = 0; q < 7; q++) _mm512_storeu_ps(y + 16 * q, _mm512_mul_ps(e[q], inv));
        _mm512_mask_storeu_ps(y + 112, last, _mm512_mul_ps(e[7], inv));
    }
}

static inline int sm_row8_load(const float *x, __mmask16 last, __m512 *v)
{
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __mmask16 nan = 0;
    for (int q = 0; q < 7; q++) {
        v[q] = _mm512_loadu_ps(x + 16 * q);
        nan |= _mm512_cmp_ps_mask(v[q], v[q], _CMP_UNORD_Q);
    }
    v[7] = _mm512_mask_loadu_ps(ninf, last, x + 112);
    nan |= _mm512_cmp_ps_mask(v[7], v[7], _CMP_UNORD_Q);
    return nan != 0;
}

void kd_softmax_avx512_f32(const kd_softmax_args *s, int ith, int nth)
{
    int64_t lo, hi;
    kd_split_range(s->rows, ith, nth, &lo, &hi);
    const int64_t n = s->cols;
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    if (n > 112 && n <= 128) {
        const __mmask16 last = kd_tail_mask16(n - 112);
        int64_t r = lo;
        for (; r + 2 <= hi; r += 2) {
            __m512 a[8], b[8];
            const int na = sm_row8_load((const float *)s->x + r * n, last, a);
            const int nb = sm_row8_load((const float *)s->x + (r + 1) * n, last, b);
            sm_row8_store(a, na, last, s->log, (float *)s->y + r * n);
            sm_row8_store(b, nb, last, s->log, (float *)s->y + (r + 1) * n);
        }
        if (r < hi) {
            __m512 a[8];
            const int na = sm_row8_load((const float *)s->x + r * n, last, a);
            sm_row8_store(a, na, last, s->log, (float *)s->y + r * n);
        }
        return;
    }
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
