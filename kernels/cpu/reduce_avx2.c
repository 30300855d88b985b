/* kernels/cpu/reduce_avx2.c — the sum reduction (kernels/kernels.h: out[i . out_stride] += alpha *
 * a[i . a_stride]) for the layouts the engine produces, after merging dims that are contiguous in both
 * out and a and dropping dims of size 1:
 *   rows:    [R, C], a rows contiguous, out_stride (s, 0):  out[r] += alpha sum_j a[r, j]   (threads: rows)
 *   columns: [R, C], a rows contiguous, out_stride (0, 1):  out[j] += alpha sum_r a[r, j]   (threads: columns)
 *   all:     [N], a contiguous, out_stride 0:               out    += alpha sum_i a[i]      (thread 0)
 *   none:    [N], a and out contiguous:                     out[i] += alpha a[i]            (threads: elements)
 * Sums run in double (4 lanes from 8 floats) and are rounded once; anything else goes to the reference. */
#include <stdlib.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/vecmath_avx2.h"

/* sum of x[0..n) in double */
static double sum_row(const float *x, int64_t n)
{
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd(), s2 = _mm256_setzero_pd(), s3 = _mm256_setzero_pd();
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        const __m256 a = _mm256_loadu_ps(x + j), b = _mm256_loadu_ps(x + j + 8);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(a)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)));
        s2 = _mm256_add_pd(s2, _mm256_cvtps_pd(_mm256_castps256_ps128(b)));
        s3 = _mm256_add_pd(s3, _mm256_cvtps_pd(_mm256_extractf128_ps(b, 1)));
    }
    double t[4];
    _mm256_storeu_pd(t, _mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3)));
    double s = (t[0] + t[1]) + (t[2] + t[3]);
    for (; j < n; j++) s += (double)x[j];
    return s;
}

/* Merge the index space into at most KD_KMAX_DIMS dims without size-1 dims; returns the count. */
static int canon(const kd_reduce_args *m, int64_t *shape, int64_t *os, int64_t *as)
{
    int n = 0;
    for (int d = 0; d < m->ndim; d++) {
        if (m->shape[d] == 1) continue;
        if (m->shape[d] == 0) return -1;
        if (n > 0 && os[n - 1] == m->out_stride[d] * m->shape[d] && as[n - 1] == m->a_stride[d] * m->shape[d]) {
            shape[n - 1] *= m->shape[d];
            os[n - 1] = m->out_stride[d];
            as[n - 1] = m->a_stride[d];
            continue;
        }
        shape[n] = m->shape[d];
        os[n] = m->out_stride[d];
        as[n] = m->a_stride[d];
        n++;
    }
    return n;
}

void kd_reduce_avx2_f32(const kd_reduce_args *m, int ith, int nth)
{
    int64_t shape[KD_KMAX_DIMS], os[KD_KMAX_DIMS], as[KD_KMAX_DIMS];
    const int nd = canon(m, shape, os, as);
    if (nd < 0) return; /* an empty index space */
    const float *a = m->a;
    float *out = m->out;
    const double alpha = m->alpha;
    if (nd == 0) {
        if (ith == 0) out[0] = (float)((double)out[0] + alpha * (double)a[0]);
        return;
    }
    if (nd == 1 && as[0] == 1 && os[0] == 0) {
        if (ith == 0) out[0] = (float)((double)out[0] + alpha * sum_row(a, shape[0]));
        return;
    }
    if (nd == 1 && as[0] == 1 && os[0] == 1) {
        int64_t lo, hi;
        kd_split_range(shape[0], ith, nth, &lo, &hi);
        for (int64_t i = lo; i < hi; i++) out[i] = (float)((double)out[i] + alpha * (double)a[i]);
        return;
    }
    if (nd == 2 && as[1] == 1 && os[1] == 0 && os[0] != 0) {
        int64_t lo, hi;
        kd_split_range(shape[0], ith, nth, &lo, &hi);
        for (int64_t r = lo; r < hi; r++)
            out[r * os[0]] = (float)((double)out[r * os[0]] + alpha * sum_row(a + r * as[0], shape[1]));
        return;
    }
    if (nd == 2 && as[1] == 1 && os[1] == 1 && os[0] == 0) {
        /* columns in slices of 16 floats per thread (no shared cache lines); rows streamed in order */
        const int64_t R = shape[0], C = shape[1];
        int64_t lo, hi;
        kd_split_range((C + 15) / 16, ith, nth, &lo, &hi);
        lo *= 16;
        hi = hi * 16 < C ? hi * 16 : C;
        if (lo >= hi) return;
        const int64_t w = hi - lo, w8 = w & ~(int64_t)7;
        double *acc = calloc((size_t)w8 + 8, sizeof(double));
        if (!acc) abort(); /* kernels return no status, as in the reference */
        for (int64_t r = 0; r < R; r++) {
            const float *x = a + r * as[0] + lo;
            int64_t j = 0;
            for (; j < w8; j += 8) {
                const __m256 v = _mm256_loadu_ps(x + j);
                _mm256_storeu_pd(acc + j, _mm256_add_pd(_mm256_loadu_pd(acc + j), _mm256_cvtps_pd(_mm256_castps256_ps128(v))));
                _mm256_storeu_pd(acc + j + 4,
                                 _mm256_add_pd(_mm256_loadu_pd(acc + j + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))));
            }
            for (; j < w; j++) acc[j] += (double)x[j];
        }
        for (int64_t j = 0; j < w; j++) out[lo + j] = (float)((double)out[lo + j] + alpha * acc[j]);
        free(acc);
        return;
    }
    kd_kernels_ref_f32()->reduce(m, ith, nth);
}
