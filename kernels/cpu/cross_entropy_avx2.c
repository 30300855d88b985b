/* kernels/cpu/cross_entropy_avx2.c — cross-entropy with class targets over contiguous logit rows,
 * forward (logsumexp per row) and backward (softmax minus the one-hot target), 8 classes at a time. */
#include <math.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/vecmath_avx2.h"

/* logsumexp of z[0..n): max, then the sum of e^(z - max); NaN anywhere gives NaN. */
static double row_lse(const float *z, int64_t n)
{
    const int64_t nv = n & ~(int64_t)7;
    const __m256i tail = kd_tail_mask(n - nv);
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 mx = ninf, nan = _mm256_setzero_ps();
    for (int64_t j = 0; j < n; j += 8) {
        __m256 v = j < nv ? _mm256_loadu_ps(z + j)
                          : _mm256_blendv_ps(ninf, _mm256_maskload_ps(z + j, tail), _mm256_castsi256_ps(tail));
        mx = _mm256_max_ps(mx, v);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    if (_mm256_movemask_ps(nan)) return NAN;
    const float m = kd_hmax8(mx);
    const __m256 vm = _mm256_set1_ps(m);
    __m256 s = _mm256_setzero_ps();
    for (int64_t j = 0; j < n; j += 8) {
        __m256 e = kd_exp8(_mm256_sub_ps(j < nv ? _mm256_loadu_ps(z + j) : _mm256_maskload_ps(z + j, tail), vm));
        if (j >= nv) e = _mm256_and_ps(e, _mm256_castsi256_ps(tail));
        s = _mm256_add_ps(s, e);
    }
    return (double)m + log((double)kd_hsum8(s));
}

void kd_cross_entropy_avx2_f32(const kd_cross_entropy_args *x, int ith, int nth)
{
    int64_t lo, hi;
    kd_split_range(x->rows, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const float *z = (const float *)x->logits + r * x->cols;
        const double lse = row_lse(z, x->cols);
        ((float *)x->lse)[r] = (float)lse;
        ((float *)x->loss)[r] = (float)(lse - (double)z[x->targets[r]]);
    }
}

/* dz += scale (e^(z - lse) - [j == t]) */
void kd_cross_entropy_bwd_avx2_f32(const kd_cross_entropy_args *x, int ith, int nth)
{
    int64_t lo, hi;
    kd_split_range(x->rows, ith, nth, &lo, &hi);
    const int64_t n = x->cols, nv = n & ~(int64_t)7;
    const __m256i tail = kd_tail_mask(n - nv);
    const double sc = x->scale * (x->upstream ? (double)*(const float *)x->upstream : 1.0);
    const __m256 scale = _mm256_set1_ps((float)sc);
    for (int64_t r = lo; r < hi; r++) {
        const float *z = (const float *)x->logits + r * n;
        float *dz = (float *)x->dlogits + r * n;
        const __m256 lse = _mm256_set1_ps(((const float *)x->lse)[r]);
        for (int64_t j = 0; j < n; j += 8) {
            const int full = j < nv;
            __m256 p = kd_exp8(_mm256_sub_ps(full ? _mm256_loadu_ps(z + j) : _mm256_maskload_ps(z + j, tail), lse));
            __m256 d = full ? _mm256_loadu_ps(dz + j) : _mm256_maskload_ps(dz + j, tail);
            d = _mm256_fmadd_ps(scale, p, d);
            if (full) _mm256_storeu_ps(dz + j, d);
            else _mm256_maskstore_ps(dz + j, tail, d);
        }
        /* the target's -1, in double like the reference, after the vector pass wrote its element */
        const int64_t t = x->targets[r];
        dz[t] = (float)((double)dz[t] - sc);
    }
}
