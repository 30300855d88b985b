/* kernels/cuda/cross_entropy.cu — cross-entropy with class targets over f32 logit rows, forward
 * (logsumexp per row) and backward; the backward reads its upstream gradient from device memory
 * (kd_cross_entropy_args.upstream). */
#include <math.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_error.h"
#include "kernels/cuda/rows_common.cuh"

/* ---- cross-entropy with its softmax fused: the probabilities are never stored ----
 * Targets are checked here, not on the host: a target outside [0, cols) is recorded in the device error
 * word (reported by kd_cuda_sync) and its row is skipped: loss 0, lse still written, and the backward adds
 * nothing for it. */

static __global__ void cross_entropy_kernel(int64_t rows, int64_t cols, const float *__restrict__ Z, const int32_t *__restrict__ T,
                                   float *__restrict__ loss, float *__restrict__ LSE, kd_cu_dev_error *err)
{
    __shared__ float sh[64];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *z = Z + r * cols;
        float lse = block_lse(z, cols, sh);
        if (threadIdx.x == 0) {
            int64_t t = T[r];
            LSE[r] = lse;
            if (t < 0 || t >= cols) {
                kd_cu_report_index(err, KD_CU_ERR_TARGET, (long long)r, (long long)t, (long long)cols);
                loss[r] = 0.0f;
            } else {
                loss[r] = lse - z[t];
            }
        }
    }
}

extern "C" void kd_cu_cross_entropy(const kd_cross_entropy_args *x, int ith, int nth)
{
    (void)ith; (void)nth;
    if (x->rows <= 0 || x->cols <= 0) return;
    cross_entropy_kernel<<<row_blocks(x->rows), row_threads(x->cols), 0, kd_cu_stream()>>>(
        x->rows, x->cols, (const float *)x->logits, x->targets, (float *)x->loss, (float *)x->lse, kd_cu_error_word());
    KD_CU_LAUNCH_VOID();
}

/* dz += scale u (exp(z - lse) - [j == t]), u = *up (the gradient arriving at the loss, read on the device)
 * or 1. A row with a bad target was reported by the forward and gets no gradient. */
static __global__ void cross_entropy_bwd_kernel(int64_t rows, int64_t cols, const float *__restrict__ Z, const int32_t *__restrict__ T,
                                       const float *__restrict__ LSE, float scale, const float *__restrict__ up,
                                       float *__restrict__ DZ)
{
    const float s = up ? scale * *up : scale;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *z = Z + r * cols;
        float *dz = DZ + r * cols;
        float lse = LSE[r];
        int64_t t = T[r];
        if (t < 0 || t >= cols) continue;
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
            dz[j] += s * (expf(z[j] - lse) - (j == t ? 1.0f : 0.0f));
    }
}

extern "C" void kd_cu_cross_entropy_bwd(const kd_cross_entropy_args *x, int ith, int nth)
{
    (void)ith; (void)nth;
    if (x->rows <= 0 || x->cols <= 0) return;
    cross_entropy_bwd_kernel<<<row_blocks(x->rows), row_threads(x->cols), 0, kd_cu_stream()>>>(
        x->rows, x->cols, (const float *)x->logits, x->targets, (const float *)x->lse, (float)x->scale,
        (const float *)x->upstream, (float *)x->dlogits);
    KD_CU_LAUNCH_VOID();
}
