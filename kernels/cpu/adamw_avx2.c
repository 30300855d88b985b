/* kernels/cpu/adamw_avx2.c — one fused AdamW step (PyTorch's torch.optim.AdamW) over flat f32 arrays,
 * 8 parameters at a time: decay, both moments and the update in one pass over param, grad, m, v. */
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/vecmath_avx2.h"

void kd_adamw_avx2_f32(const kd_adamw_args *o, int ith, int nth)
{
    int64_t lo, hi;
    kd_split_range(o->n, ith, nth, &lo, &hi);
    float *w = o->param, *m = o->m, *v = o->v;
    const float *g = o->grad;
    const __m256 decay = _mm256_set1_ps((float)(1.0 - o->lr * o->weight_decay));
    const __m256 b1 = _mm256_set1_ps((float)o->beta1), c1 = _mm256_set1_ps((float)(1.0 - o->beta1));
    const __m256 b2 = _mm256_set1_ps((float)o->beta2), c2 = _mm256_set1_ps((float)(1.0 - o->beta2));
    /* lr m / bias1 / (sqrt(v / bias2) + eps), with the scalar factors folded once. */
    const __m256 step = _mm256_set1_ps((float)(o->lr / o->bias1));
    const __m256 inv_b2 = _mm256_set1_ps((float)(1.0 / o->bias2));
    const __m256 eps = _mm256_set1_ps((float)o->eps);
    for (int64_t i = lo; i < hi; i += 8) {
        const int full = hi - i >= 8;
        const __m256i mk = kd_tail_mask(hi - i);
        __m256 wi = full ? _mm256_loadu_ps(w + i) : _mm256_maskload_ps(w + i, mk);
        __m256 gi = full ? _mm256_loadu_ps(g + i) : _mm256_maskload_ps(g + i, mk);
        __m256 mi = full ? _mm256_loadu_ps(m + i) : _mm256_maskload_ps(m + i, mk);
        __m256 vi = full ? _mm256_loadu_ps(v + i) : _mm256_maskload_ps(v + i, mk);
        wi = _mm256_mul_ps(wi, decay);
        mi = _mm256_fmadd_ps(b1, mi, _mm256_mul_ps(c1, gi));
        vi = _mm256_fmadd_ps(b2, vi, _mm256_mul_ps(_mm256_mul_ps(c2, gi), gi));
        __m256 den = _mm256_add_ps(_mm256_sqrt_ps(_mm256_mul_ps(vi, inv_b2)), eps);
        wi = _mm256_sub_ps(wi, _mm256_div_ps(_mm256_mul_ps(step, mi), den));
        if (full) {
            _mm256_storeu_ps(w + i, wi);
            _mm256_storeu_ps(m + i, mi);
            _mm256_storeu_ps(v + i, vi);
        } else {
            _mm256_maskstore_ps(w + i, mk, wi);
            _mm256_maskstore_ps(m + i, mk, mi);
            _mm256_maskstore_ps(v + i, mk, vi);
        }
    }
}
