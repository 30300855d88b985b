/* kernels/cuda/softmax.cu — softmax and log-softmax over rows, forward and backward, one thread block per
 * row, templated on the storage type of the rows (float, or __nv_bfloat16 for the bf16 table: computed in
 * f32, each output rounded once). Sums are kept in float; rows are re-read from L1/L2, not DRAM. */
#include <math.h>

#include "kernels/cuda/bf16_cuda.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/rows_common.cuh"

template <typename T>
static __global__ void softmax_kernel(int64_t rows, int64_t cols, int log_, const T *__restrict__ X, T *__restrict__ Y)
{
    __shared__ float sh[64];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *x = X + r * cols;
        T *y = Y + r * cols;
        float lse = block_lse(x, cols, sh);
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
            float xj = kd_cu_ld(x[j]);
            y[j] = kd_cu_st<T>(log_ ? xj - lse : expf(xj - lse));
        }
    }
}

template <typename T>
static void softmax_launch(const kd_softmax_args *s)
{
    if (s->rows <= 0 || s->cols <= 0) return;
    softmax_kernel<T><<<row_blocks(s->rows), row_threads(s->cols), 0, kd_cu_stream()>>>(
        s->rows, s->cols, s->log, (const T *)s->x, (T *)s->y);
    KD_CU_LAUNCH_VOID();
}

typedef __nv_bfloat16 bf16;

extern "C" void kd_cu_softmax(const kd_softmax_args *s, int ith, int nth) { (void)ith; (void)nth; softmax_launch<float>(s); }
extern "C" void kd_cu_softmax_bf16(const kd_softmax_args *s, int ith, int nth)
{
    (void)ith; (void)nth;
    softmax_launch<bf16>(s);
}

/* dx += y (dy - sum(dy y))  |  log-softmax: dx += dy - exp(y) sum(dy). */
template <typename T>
static __global__ void softmax_bwd_kernel(int64_t rows, int64_t cols, int log_, const T *__restrict__ Y,
                                          const T *__restrict__ DY, T *__restrict__ DX)
{
    __shared__ float sh[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *y = Y + r * cols, *dy = DY + r * cols;
        T *dx = DX + r * cols;
        float dot = 0.0f;
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
            dot += log_ ? kd_cu_ld(dy[j]) : kd_cu_ld(dy[j]) * kd_cu_ld(y[j]);
        dot = block_sum(dot, sh);
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
            float yj = kd_cu_ld(y[j]), dyj = kd_cu_ld(dy[j]);
            dx[j] = kd_cu_st<T>(kd_cu_ld(dx[j]) + (log_ ? dyj - expf(yj) * dot : yj * (dyj - dot)));
        }
    }
}

template <typename T>
static void softmax_bwd_launch(const kd_softmax_bwd_args *s)
{
    if (s->rows <= 0 || s->cols <= 0) return;
    softmax_bwd_kernel<T><<<row_blocks(s->rows), row_threads(s->cols), 0, kd_cu_stream()>>>(
        s->rows, s->cols, s->log, (const T *)s->y, (const T *)s->dy, (T *)s->dx);
    KD_CU_LAUNCH_VOID();
}

extern "C" void kd_cu_softmax_bwd(const kd_softmax_bwd_args *s, int ith, int nth)
{
    (void)ith; (void)nth;
    softmax_bwd_launch<float>(s);
}
extern "C" void kd_cu_softmax_bwd_bf16(const kd_softmax_bwd_args *s, int ith, int nth)
{
    (void)ith; (void)nth;
    softmax_bwd_launch<bf16>(s);
}
