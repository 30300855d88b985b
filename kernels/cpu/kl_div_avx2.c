/* kernels/cpu/kl_div_avx2.c — KL divergence over contiguous rows, forward and backward, 8 classes at a
 * time. */
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/vecmath_avx2.h"

/* out[r] = sum_j p (log p - log q) over terms with p != 0 (a NaN p counts, and poisons the row). */
void kd_kl_div_avx2_f32(const kd_kl_div_args *k, int ith, int nth)
{
    int64_t lo, hi;
    kd_split_range(k->rows, ith, nth, &lo, &hi);
    const int64_t n = k->cols, nv = n & ~(int64_t)7;
    const __m256i tail = kd_tail_mask(n - nv);
    for (int64_t r = lo; r < hi; r++) {
        const float *lq = (const float *)k->logq + r * n, *p = (const float *)k->p + r * n;
        __m256 s = _mm256_setzero_ps();
        for (int64_t j = 0; j < n; j += 8) {
            const int full = j < nv;
            __m256 pv = full ? _mm256_loadu_ps(p + j) : _mm256_maskload_ps(p + j, tail);
            __m256 qv = full ? _mm256_loadu_ps(lq + j) : _mm256_maskload_ps(lq + j, tail);
            __m256 t = _mm256_mul_ps(pv, _mm256_sub_ps(kd_log8(pv), qv));
            s = _mm256_add_ps(s, _mm256_and_ps(t, _mm256_cmp_ps(pv, _mm256_setzero_ps(), _CMP_NEQ_UQ)));
        }
        ((float *)k->out)[r] = kd_hsum8(s);
    }
}

/* dlogq += -scale p;  dp += scale (log p + 1 - log q) where p > 0. */
void kd_kl_div_bwd_avx2_f32(const kd_kl_div_args *k, int ith, int nth)
{
    int64_t lo, hi;
    kd_split_range(k->rows, ith, nth, &lo, &hi);
    const int64_t n = k->cols, nv = n & ~(int64_t)7;
    const __m256i tail = kd_tail_mask(n - nv);
    const double s1 = k->scale * (k->upstream ? (double)*(const float *)k->upstream : 1.0);
    const __m256 sc = _mm256_set1_ps((float)s1), one = _mm256_set1_ps(1.0f);
    for (int64_t r = lo; r < hi; r++) {
        const float *lq = (const float *)k->logq + r * n, *p = (const float *)k->p + r * n;
        float *dlq = k->dlogq ? (float *)k->dlogq + r * n : NULL, *dp = k->dp ? (float *)k->dp + r * n : NULL;
        for (int64_t j = 0; j < n; j += 8) {
            const int full = j < nv;
            __m256 pv = full ? _mm256_loadu_ps(p + j) : _mm256_maskload_ps(p + j, tail);
            if (dlq) {
                __m256 d = full ? _mm256_loadu_ps(dlq + j) : _mm256_maskload_ps(dlq + j, tail);
                d = _mm256_fnmadd_ps(sc, pv, d);
                if (full) _mm256_storeu_ps(dlq + j, d);
                else _mm256_maskstore_ps(dlq + j, tail, d);
            }
            if (dp) {
                __m256 qv = full ? _mm256_loadu_ps(lq + j) : _mm256_maskload_ps(lq + j, tail);
                __m256 g = _mm256_mul_ps(sc, _mm256_sub_ps(_mm256_add_ps(kd_log8(pv), one), qv));
                g = _mm256_and_ps(g, _mm256_cmp_ps(pv, _mm256_setzero_ps(), _CMP_GT_OQ));
                __m256 d = full ? _mm256_loadu_ps(dp + j) : _mm256_maskload_ps(dp + j, tail);
                d = _mm256_add_ps(d, g);
                if (full) _mm256_storeu_ps(dp + j, d);
                else _mm256_maskstore_ps(dp + j, tail, d);
            }
        }
    }
}
