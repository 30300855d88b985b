/* kernels/ref/gemm_s8_ref.c — the reference int8 linear (kernels.h, kd_gemm_s8_args): activations quantized
 * per row, s8 x s8 products summed in int32, dequantized with the row's and the channel's scales. Its weight
 * layout is the plain [n, k] matrix. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

void kd_quantize_s8_rows(int64_t rows, int64_t cols, const float *x, int64_t ld, int8_t *q, float *scale)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * ld;
        float mx = 0.0f;
        for (int64_t c = 0; c < cols; c++) mx = fmaxf(mx, fabsf(xr[c]));
        float s = mx > 0.0f ? mx / 127.0f : 1.0f;
        float inv = 1.0f / s;
        for (int64_t c = 0; c < cols; c++) q[r * cols + c] = kd_quantize_s8(xr[c], inv);
        scale[r] = s;
    }
}

size_t kd_gemm_s8_pack_ref(int64_t n, int64_t k, const int8_t *w, void *dst)
{
    size_t bytes = (size_t)(n * k);
    if (dst && bytes) memcpy(dst, w, bytes);
    return bytes;
}

void kd_gemm_s8_ref(const kd_gemm_s8_args *g, int ith, int nth)
{
    /* Threads split the rows of C. */
    int64_t lo, hi;
    kd_split_range(g->m, ith, nth, &lo, &hi);
    const int8_t *W = g->w;
    int8_t *qa = malloc((size_t)(g->k > 0 ? g->k : 1));
    if (!qa) abort(); /* kernels return no status */
    for (int64_t i = lo; i < hi; i++) {
        float sa;
        if (g->act_scale > 0.0f) {
            sa = g->act_scale;
            float inv = 1.0f / sa;
            for (int64_t p = 0; p < g->k; p++) qa[p] = kd_quantize_s8(g->a[i * g->lda + p], inv);
        } else {
            kd_quantize_s8_rows(1, g->k, g->a + i * g->lda, g->lda, qa, &sa);
        }
        float *c = g->c + i * g->ldc;
        for (int64_t j = 0; j < g->n; j++) {
            int32_t s = 0;
            for (int64_t p = 0; p < g->k; p++) s += (int32_t)qa[p] * (int32_t)W[j * g->k + p];
            c[j] = fmaf((float)s, sa * g->w_scale[j], g->bias ? g->bias[j] : 0.0f);
        }
    }
    free(qa);
}
