/* kernels/cpu/layernorm_avx2.c — LayerNorm over contiguous rows, forward and backward, 8 columns at a
 * time. The mean and the (biased) variance are two passes, as in the reference: one-pass E[x^2] - E[x]^2
 * cancels badly when |mean| >> std. */
#include <math.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/vecmath_avx2.h"

#define LN_LOAD(p, j, full, tail) ((full) ? _mm256_loadu_ps((p) + (j)) : _mm256_maskload_ps((p) + (j), (tail)))

void kd_layernorm_avx2_f32(const kd_layernorm_args *l, int ith, int nth)
{
    int64_t lo, hi;
    kd_split_range(l->rows, ith, nth, &lo, &hi);
    const int64_t n = l->cols, nv = n & ~(int64_t)7;
    const __m256i tail = kd_tail_mask(n - nv);
    const float *gamma = l->gamma, *beta = l->beta;
    for (int64_t r = lo; r < hi; r++) {
        const float *x = (const float *)l->x + r * n;
        float *y = (float *)l->y + r * n;
        /* four accumulators: one would serialise on the add latency (3-4 cycles per vector) */
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
        int64_t j = 0;
        for (; j + 32 <= nv; j += 32) {
            s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + j));
            s1 = _mm256_add_ps(s1, _mm256_loadu_ps(x + j + 8));
            s2 = _mm256_add_ps(s2, _mm256_loadu_ps(x + j + 16));
            s3 = _mm256_add_ps(s3, _mm256_loadu_ps(x + j + 24));
        }
        for (; j < n; j += 8) s0 = _mm256_add_ps(s0, LN_LOAD(x, j, j < nv, tail));
        const float mean = kd_hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3))) / (float)n;
        const __m256 vmean = _mm256_set1_ps(mean);
        s0 = s1 = s2 = s3 = _mm256_setzero_ps();
        for (j = 0; j + 32 <= nv; j += 32) {
            __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + j), vmean), d1 = _mm256_sub_ps(_mm256_loadu_ps(x + j + 8), vmean);
            __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(x + j + 16), vmean), d3 = _mm256_sub_ps(_mm256_loadu_ps(x + j + 24), vmean);
            s0 = _mm256_fmadd_ps(d0, d0, s0);
            s1 = _mm256_fmadd_ps(d1, d1, s1);
            s2 = _mm256_fmadd_ps(d2, d2, s2);
            s3 = _mm256_fmadd_ps(d3, d3, s3);
        }
        for (; j < n; j += 8) {
            /* tail lanes load 0 and would add mean^2: mask them out */
            __m256 d = _mm256_sub_ps(LN_LOAD(x, j, j < nv, tail), vmean);
            if (j >= nv) d = _mm256_and_ps(d, _mm256_castsi256_ps(tail));
            s0 = _mm256_fmadd_ps(d, d, s0);
        }
        const double var = (double)kd_hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3))) / (double)n;
        const float rstd = (float)(1.0 / sqrt(var + l->eps));
        const __m256 vr = _mm256_set1_ps(rstd);
        for (j = 0; j < n; j += 8) {
            const int full = j < nv;
            __m256 v = _mm256_mul_ps(_mm256_sub_ps(LN_LOAD(x, j, full, tail), vmean), vr);
            if (gamma) v = _mm256_mul_ps(v, LN_LOAD(gamma, j, full, tail));
            if (beta) v = _mm256_add_ps(v, LN_LOAD(beta, j, full, tail));
            if (full) _mm256_storeu_ps(y + j, v);
            else _mm256_maskstore_ps(y + j, tail, v);
        }
        ((float *)l->mean)[r] = mean;
        ((float *)l->rstd)[r] = rstd;
    }
}

/* dx += rstd (g - mean(g) - xhat mean(g xhat)), g = dy gamma; dgamma += sum_rows dy xhat; dbeta += sum dy.
 * Rows are split for dx, columns for dgamma/dbeta (blocks of 32 columns summed down all rows). */
void kd_layernorm_bwd_avx2_f32(const kd_layernorm_bwd_args *l, int ith, int nth)
{
    const float *X = l->x, *mean = l->mean, *rstd = l->rstd, *gamma = l->gamma, *DY = l->dy;
    const int64_t n = l->cols, nv = n & ~(int64_t)7;
    const __m256i tail = kd_tail_mask(n - nv);
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t lo, hi;
    if (l->dx) {
        kd_split_range(l->rows, ith, nth, &lo, &hi);
        for (int64_t r = lo; r < hi; r++) {
            const float *x = X + r * n, *dy = DY + r * n;
            float *dx = (float *)l->dx + r * n;
            const __m256 vm = _mm256_set1_ps(mean[r]), vr = _mm256_set1_ps(rstd[r]);
            /* two accumulator pairs: one would serialise on the add latency */
            __m256 sg = _mm256_setzero_ps(), sgx = _mm256_setzero_ps(), sg2 = _mm256_setzero_ps(), sgx2 = _mm256_setzero_ps();
            for (int64_t j = 0; j < n; j += 8) {
                const int full = j < nv;
                __m256 g = _mm256_mul_ps(LN_LOAD(dy, j, full, tail), gamma ? LN_LOAD(gamma, j, full, tail) : one);
                __m256 xh = _mm256_mul_ps(_mm256_sub_ps(LN_LOAD(x, j, full, tail), vm), vr);
                if (j & 8) {
                    sg2 = _mm256_add_ps(sg2, g);
                    sgx2 = _mm256_fmadd_ps(g, xh, sgx2);
                } else {
                    sg = _mm256_add_ps(sg, g);
                    sgx = _mm256_fmadd_ps(g, xh, sgx); /* g is 0 in tail lanes */
                }
            }
            const __m256 mg = _mm256_set1_ps(kd_hsum8(_mm256_add_ps(sg, sg2)) / (float)n);
            const __m256 mgx = _mm256_set1_ps(kd_hsum8(_mm256_add_ps(sgx, sgx2)) / (float)n);
            for (int64_t j = 0; j < n; j += 8) {
                const int full = j < nv;
                __m256 g = _mm256_mul_ps(LN_LOAD(dy, j, full, tail), gamma ? LN_LOAD(gamma, j, full, tail) : one);
                __m256 xh = _mm256_mul_ps(_mm256_sub_ps(LN_LOAD(x, j, full, tail), vm), vr);
                __m256 v = _mm256_mul_ps(vr, _mm256_fnmadd_ps(xh, mgx, _mm256_sub_ps(g, mg)));
                v = _mm256_add_ps(LN_LOAD(dx, j, full, tail), v);
                if (full) _mm256_storeu_ps(dx + j, v);
                else _mm256_maskstore_ps(dx + j, tail, v);
            }
        }
    }
    if (l->dgamma || l->dbeta) {
        /* Columns in blocks of 8 so each thread's range starts on a vector; the last block may be partial. */
        const int64_t nb = (n + 7) / 8;
        kd_split_range(nb, ith, nth, &lo, &hi);
        float *dgamma = l->dgamma, *dbeta = l->dbeta;
        for (int64_t jb = lo; jb < hi; jb++) {
            const int64_t j = jb * 8;
            const int full = j + 8 <= n;
            const __m256i mk = kd_tail_mask(n - j);
            __m256 sg = _mm256_setzero_ps(), sb = _mm256_setzero_ps();
            for (int64_t r = 0; r < l->rows; r++) {
                __m256 dy = full ? _mm256_loadu_ps(DY + r * n + j) : _mm256_maskload_ps(DY + r * n + j, mk);
                __m256 x = full ? _mm256_loadu_ps(X + r * n + j) : _mm256_maskload_ps(X + r * n + j, mk);
                __m256 xh = _mm256_mul_ps(_mm256_sub_ps(x, _mm256_set1_ps(mean[r])), _mm256_set1_ps(rstd[r]));
                sg = _mm256_fmadd_ps(dy, xh, sg);
                sb = _mm256_add_ps(sb, dy);
            }
            if (dgamma) {
                __m256 v = _mm256_add_ps(full ? _mm256_loadu_ps(dgamma + j) : _mm256_maskload_ps(dgamma + j, mk), sg);
                if (full) _mm256_storeu_ps(dgamma + j, v);
                else _mm256_maskstore_ps(dgamma + j, mk, v);
            }
            if (dbeta) {
                __m256 v = _mm256_add_ps(full ? _mm256_loadu_ps(dbeta + j) : _mm256_maskload_ps(dbeta + j, mk), sb);
                if (full) _mm256_storeu_ps(dbeta + j, v);
                else _mm256_maskstore_ps(dbeta + j, mk, v);
            }
        }
    }
}
