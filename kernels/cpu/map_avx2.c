/* kernels/cpu/map_avx2.c — element-wise maps (unary and binary) on contiguous data, 8 floats at a time:
 * GELU and its gradient (erfc-based normal CDF), tanh and its gradient, and the arithmetic ops.
 * Strided or broadcasting index spaces, and ops without a vector form, go to the reference. */
#include <math.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/gelu_avx2.h"
#include "kernels/cpu/vecmath_avx2.h"

/* The index space is one dense run when every dim of size > 1 has the row-major stride in out, a (and b). */
static int map_dense(const kd_map_args *m, int binary, int64_t *total)
{
    int64_t n = 1;
    for (int d = m->ndim - 1; d >= 0; d--) {
        if (m->shape[d] != 1) {
            if (m->out_stride[d] != n || m->a_stride[d] != n || (binary && m->b_stride[d] != n)) return 0;
        }
        n *= m->shape[d];
    }
    *total = n;
    return 1;
}

/* tanh: for |x| < 0.625 the odd polynomial of Cephes' tanhf (x + x^3 P(x^2), ~2 ulp); above,
 * 1 - 2 / (e^(2|x|) + 1), free of cancellation there; the sign is put back at the end. */
static inline __m256 tanh8(__m256 x)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 ax = _mm256_andnot_ps(sign, x);
    const __m256 s = _mm256_mul_ps(x, x);
    __m256 p = _mm256_set1_ps(-5.70498872745e-3f);
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(2.06390887954e-2f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-5.37397155531e-2f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(1.33314422036e-1f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-3.33332819422e-1f));
    const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, s), ax, ax);
    const __m256 e = kd_exp8(_mm256_add_ps(ax, ax));
    const __m256 big = _mm256_sub_ps(_mm256_set1_ps(1.0f),
                                     _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
    __m256 r = _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_LT_OQ));
    r = _mm256_or_ps(r, _mm256_and_ps(sign, x));
    return _mm256_blendv_ps(r, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

static inline __m256 unary8(int op, __m256 a, __m256 alpha)
{
    switch (op) {
    case KD_UN_COPY: return a;
    case KD_UN_SCALE: return _mm256_mul_ps(alpha, a);
    case KD_UN_GELU: return kd_gelu8(a);
    case KD_UN_TANH: return tanh8(a);
    case KD_UN_EXP: return kd_exp8(a);
    case KD_UN_NEG: return _mm256_sub_ps(_mm256_setzero_ps(), a);
    case KD_UN_SQUARE: return _mm256_mul_ps(a, a);
    case KD_UN_ADD_SCALAR: return _mm256_add_ps(a, alpha);
    case KD_UN_LOG: return kd_log8(a);
    default: return _mm256_set1_ps(NAN); /* not reached: filtered by unary_has_vector */
    }
}

static int unary_has_vector(int op) { return op >= KD_UN_COPY && op <= KD_UN_ADD_SCALAR; }

static inline __m256 binary8(int op, __m256 a, __m256 b)
{
    switch (op) {
    case KD_BIN_ADD: return _mm256_add_ps(a, b);
    case KD_BIN_SUB: return _mm256_sub_ps(a, b);
    case KD_BIN_MUL: return _mm256_mul_ps(a, b);
    case KD_BIN_DIV: return _mm256_div_ps(a, b);
    case KD_BIN_GELU_BWD: return _mm256_mul_ps(b, kd_gelu_grad8(a)); /* b (Phi(a) + a phi(a)) */
    case KD_BIN_TANH_BWD: return _mm256_mul_ps(b, _mm256_fnmadd_ps(a, a, _mm256_set1_ps(1.0f)));
    default: return _mm256_set1_ps(NAN);
    }
}

static int binary_has_vector(int op) { return op >= KD_BIN_ADD && op <= KD_BIN_TANH_BWD; }

void kd_unary_avx2_f32(const kd_map_args *m, int ith, int nth)
{
    int64_t total;
    if (!unary_has_vector(m->op) || !map_dense(m, 0, &total)) {
        kd_kernels_ref_f32()->unary(m, ith, nth);
        return;
    }
    int64_t lo, hi;
    kd_split_range(total, ith, nth, &lo, &hi);
    const float *a = m->a;
    float *out = m->out;
    const __m256 alpha = _mm256_set1_ps((float)m->alpha);
    const int op = m->op, acc = m->accumulate;
    for (int64_t i = lo; i < hi; i += 8) {
        const int64_t left = hi - i;
        if (left >= 8) {
            __m256 v = unary8(op, _mm256_loadu_ps(a + i), alpha);
            if (acc) v = _mm256_add_ps(_mm256_loadu_ps(out + i), v);
            _mm256_storeu_ps(out + i, v);
        } else {
            const __m256i mk = kd_tail_mask(left);
            __m256 v = unary8(op, _mm256_maskload_ps(a + i, mk), alpha);
            if (acc) v = _mm256_add_ps(_mm256_maskload_ps(out + i, mk), v);
            _mm256_maskstore_ps(out + i, mk, v);
        }
    }
}

void kd_binary_avx2_f32(const kd_map_args *m, int ith, int nth)
{
    int64_t total;
    if (!binary_has_vector(m->op) || !map_dense(m, 1, &total)) {
        kd_kernels_ref_f32()->binary(m, ith, nth);
        return;
    }
    int64_t lo, hi;
    kd_split_range(total, ith, nth, &lo, &hi);
    const float *a = m->a, *b = m->b;
    float *out = m->out;
    const int op = m->op, acc = m->accumulate;
    for (int64_t i = lo; i < hi; i += 8) {
        const int64_t left = hi - i;
        if (left >= 8) {
            __m256 v = binary8(op, _mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
            if (acc) v = _mm256_add_ps(_mm256_loadu_ps(out + i), v);
            _mm256_storeu_ps(out + i, v);
        } else {
            const __m256i mk = kd_tail_mask(left);
            /* Tail lanes load as 0: DIV gives NaN there, but those lanes are never stored. */
            __m256 v = binary8(op, _mm256_maskload_ps(a + i, mk), _mm256_maskload_ps(b + i, mk));
            if (acc) v = _mm256_add_ps(_mm256_maskload_ps(out + i, mk), v);
            _mm256_maskstore_ps(out + i, mk, v);
        }
    }
}
