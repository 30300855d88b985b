/* kernels/cuda/layernorm.cu — LayerNorm over rows, forward and backward (dx per row, column sums for
 * dgamma/dbeta), templated on the storage type of the rows (float, or __nv_bfloat16 for the bf16 table;
 * the parameters and statistics stay f32). */
#include <math.h>

#include "kernels/cuda/bf16_cuda.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/rows_common.cuh"

typedef __nv_bfloat16 bf16;

/* Two-pass mean and variance (no E[x^2] - E[x]^2 cancellation), then the affine write. */
template <typename T>
static __global__ void layernorm_kernel(int64_t rows, int64_t cols, float eps, const T *__restrict__ X,
                                        const float *__restrict__ gamma, const float *__restrict__ beta,
                                        T *__restrict__ Y, float *__restrict__ MEAN, float *__restrict__ RSTD)
{
    __shared__ float sh[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *x = X + r * cols;
        T *y = Y + r * cols;
        float s = 0.0f;
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += kd_cu_ld(x[j]);
        float mean = block_sum(s, sh) / (float)cols;
        float v = 0.0f;
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
            float d = kd_cu_ld(x[j]) - mean;
            v += d * d;
        }
        float rstd = rsqrtf(block_sum(v, sh) / (float)cols + eps);
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
            float o = (kd_cu_ld(x[j]) - mean) * rstd;
            if (gamma) o *= gamma[j];
            if (beta) o += beta[j];
            y[j] = kd_cu_st<T>(o);
        }
        if (threadIdx.x == 0) {
            MEAN[r] = mean;
            RSTD[r] = rstd;
        }
    }
}

template <typename T>
static void layernorm_launch(const kd_layernorm_args *l)
{
    if (l->rows <= 0 || l->cols <= 0) return;
    layernorm_kernel<T><<<row_blocks(l->rows), row_threads(l->cols), 0, kd_cu_stream()>>>(
        l->rows, l->cols, (float)l->eps, (const T *)l->x, (const float *)l->gamma, (const float *)l->beta,
        (T *)l->y, (float *)l->mean, (float *)l->rstd);
    KD_CU_LAUNCH_VOID();
}

extern "C" void kd_cu_layernorm(const kd_layernorm_args *l, int ith, int nth) { (void)ith; (void)nth; layernorm_launch<float>(l); }
extern "C" void kd_cu_layernorm_bf16(const kd_layernorm_args *l, int ith, int nth)
{
    (void)ith; (void)nth;
    layernorm_launch<bf16>(l);
}

/* dx += rstd (g - mean(g) - xhat mean(g xhat)), g = dy gamma. */
template <typename T>
static __global__ void layernorm_dx_kernel(int64_t rows, int64_t cols, const T *__restrict__ X,
                                           const float *__restrict__ MEAN, const float *__restrict__ RSTD,
                                           const float *__restrict__ gamma, const T *__restrict__ DY,
                                           T *__restrict__ DX)
{
    __shared__ float sh[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *x = X + r * cols, *dy = DY + r * cols;
        T *dx = DX + r * cols;
        float mean = MEAN[r], rstd = RSTD[r];
        float sg = 0.0f, sgx = 0.0f;
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
            float g = kd_cu_ld(dy[j]) * (gamma ? gamma[j] : 1.0f);
            sg += g;
            sgx += g * (kd_cu_ld(x[j]) - mean) * rstd;
        }
        float mg = block_sum(sg, sh) / (float)cols;
        float mgx = block_sum(sgx, sh) / (float)cols;
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
            float g = kd_cu_ld(dy[j]) * (gamma ? gamma[j] : 1.0f);
            float xh = (kd_cu_ld(x[j]) - mean) * rstd;
            dx[j] = kd_cu_st<T>(kd_cu_ld(dx[j]) + rstd * (g - mg - xh * mgx));
        }
    }
}

/* Column sums dgamma += sum_r dy xhat, dbeta += sum_r dy: a 32 x 8 block owns 32 columns and a slice of
 * rows; the 8 partial sums meet in shared memory and one atomic per column per block lands the result. */
template <typename T>
static __global__ void layernorm_dgb_kernel(int64_t rows, int64_t cols, const T *__restrict__ X,
                                            const float *__restrict__ MEAN, const float *__restrict__ RSTD,
                                            const T *__restrict__ DY, float *__restrict__ dgamma,
                                            float *__restrict__ dbeta)
{
    __shared__ float sg[8][33], sb[8][33];
    int64_t j = blockIdx.x * 32 + threadIdx.x;
    float ag = 0.0f, ab = 0.0f;
    if (j < cols) {
        for (int64_t r = blockIdx.y * 8 + threadIdx.y; r < rows; r += (int64_t)gridDim.y * 8) {
            float dy = kd_cu_ld(DY[r * cols + j]);
            ag += dy * (kd_cu_ld(X[r * cols + j]) - MEAN[r]) * RSTD[r];
            ab += dy;
        }
    }
    sg[threadIdx.y][threadIdx.x] = ag;
    sb[threadIdx.y][threadIdx.x] = ab;
    __syncthreads();
    if (threadIdx.y == 0 && j < cols) {
        for (int t = 1; t < 8; t++) {
            ag += sg[t][threadIdx.x];
            ab += sb[t][threadIdx.x];
        }
        if (dgamma) atomicAdd(dgamma + j, ag);
        if (dbeta) atomicAdd(dbeta + j, ab);
    }
}

template <typename T>
static void layernorm_bwd_launch(const kd_layernorm_bwd_args *l)
{
    if (l->rows <= 0 || l->cols <= 0) return;
    cudaStream_t st = kd_cu_stream();
    if (l->dx) {
        layernorm_dx_kernel<T><<<row_blocks(l->rows), row_threads(l->cols), 0, st>>>(
            l->rows, l->cols, (const T *)l->x, (const float *)l->mean, (const float *)l->rstd,
            (const float *)l->gamma, (const T *)l->dy, (T *)l->dx);
        KD_CU_LAUNCH_VOID();
    }
    if (l->dgamma || l->dbeta) {
        /* Enough row slices to fill the machine (~1k blocks), each at least 64 rows long. */
        int64_t cb = (l->cols + 31) / 32;
        int64_t ry = 1024 / cb;
        int64_t max_ry = (l->rows + 63) / 64;
        if (ry > max_ry) ry = max_ry;
        if (ry < 1) ry = 1;
        if (ry > 65535) ry = 65535;
        dim3 grid((unsigned)cb, (unsigned)ry);
        layernorm_dgb_kernel<T><<<grid, dim3(32, 8), 0, st>>>(l->rows, l->cols, (const T *)l->x,
                                                              (const float *)l->mean, (const float *)l->rstd,
                                                              (const T *)l->dy, (float *)l->dgamma,
                                                              (float *)l->dbeta);
        KD_CU_LAUNCH_VOID();
    }
}

extern "C" void kd_cu_layernorm_bwd(const kd_layernorm_bwd_args *l, int ith, int nth)
{
    (void)ith; (void)nth;
    layernorm_bwd_launch<float>(l);
}
extern "C" void kd_cu_layernorm_bwd_bf16(const kd_layernorm_bwd_args *l, int ith, int nth)
{
    (void)ith; (void)nth;
    layernorm_bwd_launch<bf16>(l);
}
