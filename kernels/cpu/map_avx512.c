/* kernels/cpu/map_avx512.c — the compute-bound element-wise maps (GELU, its gradient, exp) 16 floats at a
 * time on contiguous data; every other map, and strided index spaces, go to the AVX2 kernels (which hand
 * what they cannot do to the reference). */
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/gelu_avx512.h"
#include "kernels/cpu/vecmath_avx512.h"

static int dense16(const kd_map_args *m, int binary, int64_t *total)
{
    int64_t n = 1;
    for (int d = m->ndim - 1; d >= 0; d--) {
        if (m->shape[d] != 1 && (m->out_stride[d] != n || m->a_stride[d] != n || (binary && m->b_stride[d] != n)))
            return 0;
        n *= m->shape[d];
    }
    *total = n;
    return 1;
}

void kd_unary_avx512_f32(const kd_map_args *m, int ith, int nth)
{
    int64_t total;
    if ((m->op != KD_UN_GELU && m->op != KD_UN_EXP) || !dense16(m, 0, &total)) {
        kd_unary_avx2_f32(m, ith, nth);
        return;
    }
    int64_t lo, hi;
    kd_split_range(total, ith, nth, &lo, &hi);
    const float *a = m->a;
    float *out = m->out;
    const int gelu = m->op == KD_UN_GELU, acc = m->accumulate;
    for (int64_t i = lo; i < hi; i += 16) {
        const __mmask16 mk = kd_tail_mask16(hi - i);
        const __m512 x = _mm512_maskz_loadu_ps(mk, a + i);
        __m512 v = gelu ? kd_gelu16(x) : kd_exp16(x);
        if (acc) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, out + i), v);
        _mm512_mask_storeu_ps(out + i, mk, v);
    }
}

void kd_binary_avx512_f32(const kd_map_args *m, int ith, int nth)
{
    int64_t total;
    if (m->op != KD_BIN_GELU_BWD || !dense16(m, 1, &total)) {
        kd_binary_avx2_f32(m, ith, nth);
        return;
    }
    int64_t lo, hi;
    kd_split_range(total, ith, nth, &lo, &hi);
    const float *a = m->a, *b = m->b;
    float *out = m->out;
    const int acc = m->accumulate;
    for (int64_t i = lo; i < hi; i += 16) {
        const __mmask16 mk = kd_tail_mask16(hi - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, b + i), kd_gelu_grad16(_mm512_maskz_loadu_ps(mk, a + i)));
        if (acc) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, out + i), v);
        _mm512_mask_storeu_ps(out + i, mk, v);
    }
}
