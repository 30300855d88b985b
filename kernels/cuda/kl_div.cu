/* kernels/cuda/kl_div.cu — KL divergence sum_j p (log p - log q) over f32 rows, forward (one thread block
 * per row) and backward (element-wise); the backward reads its upstream gradient from device memory
 * (kd_kl_div_args.upstream). */
#include <math.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/rows_common.cuh"

/* ---- KL(p || q) as kl_div(log q, p) ---- */

static __global__ void kl_div_kernel(int64_t rows, int64_t cols, const float *__restrict__ LQ, const float *__restrict__ P,
                                 float *__restrict__ out)
{
    __shared__ float sh[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *lq = LQ + r * cols, *p = P + r * cols;
        float s = 0.0f;
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
            if (p[j] != 0.0f || isnan(p[j])) s += p[j] * (logf(p[j]) - lq[j]);
        s = block_sum(s, sh);
        if (threadIdx.x == 0) out[r] = s;
    }
}

extern "C" void kd_cu_kl_div(const kd_kl_div_args *k, int ith, int nth)
{
    (void)ith; (void)nth;
    if (k->rows <= 0 || k->cols <= 0) return;
    kl_div_kernel<<<row_blocks(k->rows), row_threads(k->cols), 0, kd_cu_stream()>>>(
        k->rows, k->cols, (const float *)k->logq, (const float *)k->p, (float *)k->out);
    KD_CU_LAUNCH_VOID();
}

/* dlogq += -s p;  dp += s (log p + 1 - log q) where p > 0;  s = scale u, u = *up (on the device) or 1. */
static __global__ void kl_div_bwd_kernel(int64_t n, const float *__restrict__ LQ, const float *__restrict__ P, float scale,
                                     const float *__restrict__ up, float *__restrict__ dlq, float *__restrict__ dp)
{
    const float s = up ? scale * *up : scale;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float p = P[i];
        if (dlq) dlq[i] -= s * p;
        if (dp && p > 0.0f) dp[i] += s * (logf(p) + 1.0f - LQ[i]);
    }
}

extern "C" void kd_cu_kl_div_bwd(const kd_kl_div_args *k, int ith, int nth)
{
    (void)ith; (void)nth;
    int64_t n = k->rows * k->cols;
    if (n <= 0) return;
    unsigned blocks = kd_cu_blocks(n, 256);
    if (blocks > 32768u) blocks = 32768u;
    kl_div_bwd_kernel<<<blocks, 256, 0, kd_cu_stream()>>>(n, (const float *)k->logq, (const float *)k->p, (float)k->scale,
                                                      (const float *)k->upstream, (float *)k->dlogq, (float *)k->dp);
    KD_CU_LAUNCH_VOID();
}
