/* kernels/cpu/embedding_avx2.c — embedding lookup (a row copy per id) and its scatter-add backward, 8
 * floats at a time. The backward splits the columns between threads (two ids may be equal, so rows
 * cannot be split), in slices of 16 floats so that no two threads share a cache line of a row. A float
 * sum rounded once equals the reference's double sum rounded to float: the results are bit-identical. */
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/vecmath_avx2.h"

void kd_embedding_avx2_f32(const kd_embedding_args *e, int ith, int nth)
{
    int64_t lo, hi;
    kd_split_range(e->n, ith, nth, &lo, &hi);
    const size_t bytes = (size_t)e->dim * sizeof(float);
    for (int64_t i = lo; i < hi; i++)
        memcpy((float *)e->out + i * e->dim, (const float *)e->table + (int64_t)e->ids[i] * e->dim, bytes);
}

void kd_embedding_bwd_avx2_f32(const kd_embedding_args *e, int ith, int nth)
{
    int64_t lo, hi;
    kd_split_range((e->dim + 15) / 16, ith, nth, &lo, &hi);
    lo *= 16;
    hi = hi * 16 < e->dim ? hi * 16 : e->dim;
    if (lo >= hi) return;
    const int64_t w = hi - lo, w8 = w & ~(int64_t)7;
    const __m256i tail = kd_tail_mask(w - w8);
    for (int64_t i = 0; i < e->n; i++) {
        float *row = (float *)e->dtable + (int64_t)e->ids[i] * e->dim + lo;
        const float *d = (const float *)e->dout + i * e->dim + lo;
        int64_t j = 0;
        for (; j < w8; j += 8) _mm256_storeu_ps(row + j, _mm256_add_ps(_mm256_loadu_ps(row + j), _mm256_loadu_ps(d + j)));
        if (j < w)
            _mm256_maskstore_ps(row + j, tail, _mm256_add_ps(_mm256_maskload_ps(row + j, tail), _mm256_maskload_ps(d + j, tail)));
    }
}
