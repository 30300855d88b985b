/* kernels/cuda/gemm_internal.h — launchers shared between the GEMM .cu files (internal), and the
 * epilogue every GEMM applies: v = alpha acc + beta C + bias, then optionally GELU. */
#ifndef KD_CUDA_GEMM_INTERNAL_H
#define KD_CUDA_GEMM_INTERNAL_H

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm_cuda.h"

/* Tensor-core GEMM (gemm_mma.cu): bf16 != 0 takes bf16 inputs, else f32 inputs rounded to tf32. */
kd_status kd_cu_gemm_mma(const kd_gemm_args *g, int bf16, int gelu);
/* Hopper wgmma + TMA GEMM (gemm_wgmma.cu); KD_ERR_ARG when the shape/layout is not one it takes. */
kd_status kd_cu_gemm_wgmma(const kd_gemm_args *g, int gelu);
int kd_cu_wgmma_built(void);

/* Everything an epilogue needs, passed by value to the kernels. */
struct kd_cu_epi {
    float alpha, beta;
    const float *bias;
    int gelu;
};

__device__ __forceinline__ float kd_cu_epi_apply(const kd_cu_epi &e, float acc, const float *c, int64_t j)
{
    float v = e.alpha * acc;
    if (e.beta != 0.0f) v += e.beta * *c;
    if (e.bias) v += e.bias[j];
    if (e.gelu) v = 0.5f * v * (1.0f + erff(v * 0.70710678118654752440f));
    return v;
}

#endif
