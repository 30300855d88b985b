/* kernels/cuda/convert.cu — f32 <-> bf16 conversion (the f32 table's convert entry), with or without
 * accumulation. */
#include "kernels/cuda/bf16_cuda.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

typedef __nv_bfloat16 bf16;

/* ---- f32 <-> bf16 (the f32 table's convert): kernels/bf16.h's rounding, bit for bit ---- */

static __global__ void convert_to_bf16_kernel(int64_t n, int accumulate, const float *__restrict__ x,
                                              bf16 *__restrict__ y)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = kd_cu_st<bf16>(accumulate ? kd_cu_ld(y[i]) + x[i] : x[i]);
}

static __global__ void convert_to_f32_kernel(int64_t n, int accumulate, const bf16 *__restrict__ x,
                                             float *__restrict__ y)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = accumulate ? y[i] + kd_cu_ld(x[i]) : kd_cu_ld(x[i]);
}

extern "C" void kd_cu_convert(const kd_convert_args *c, int ith, int nth)
{
    (void)ith; (void)nth;
    if (c->n <= 0) return;
    if (c->to_bf16)
        convert_to_bf16_kernel<<<kd_cu_grid(c->n, 256), 256, 0, kd_cu_stream()>>>(c->n, c->accumulate,
                                                                                (const float *)c->x, (bf16 *)c->y);
    else
        convert_to_f32_kernel<<<kd_cu_grid(c->n, 256), 256, 0, kd_cu_stream()>>>(c->n, c->accumulate,
                                                                               (const bf16 *)c->x, (float *)c->y);
    KD_CU_LAUNCH_VOID();
}
