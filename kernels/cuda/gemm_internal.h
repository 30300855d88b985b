/* kernels/cuda/gemm_internal.h — launchers shared between the GEMM .cu files (internal), and the
 * epilogue every GEMM applies: v = alpha acc + beta C + bias, then optionally GELU. */
#ifndef KD_CUDA_GEMM_INTERNAL_H
#define KD_CUDA_GEMM_INTERNAL_H

#include "kernels/cuda/bf16_cuda.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm_cuda.h"

/* Tensor-core GEMM (gemm_mma.cu): bf16 != 0 takes bf16 inputs, else f32 inputs rounded to tf32. c_bf16 != 0:
 * C and bias are bf16 (the bf16 table), else f32. */
kd_cuda_result kd_cu_gemm_mma(const kd_gemm_args *g, int bf16, int gelu, int c_bf16);
/* Hopper wgmma + TMA GEMM (gemm_wgmma.cu); KD_CUDA_ERR_ARG (with the reason in kd_cuda_last_error()) when
 * the shape/layout is not one it takes or the driver will not encode its tensor maps. */
kd_cuda_result kd_cu_gemm_wgmma(const kd_gemm_args *g, int gelu, int c_bf16);

/* Everything an epilogue needs, passed by value to the kernels. bf16: C and bias are __nv_bfloat16
 * (rounded once, from the f32 value below), else float. */
struct kd_cu_epi {
    float alpha, beta;
    const void *bias;
    int gelu;
    int bf16;
};

/* C[off] = alpha acc + beta C[off] + bias[j] (then GELU), in f32; C is not read when beta == 0. */
template <typename T>
__device__ __forceinline__ void kd_cu_epi_store_t(const kd_cu_epi &e, float acc, T *c, int64_t j)
{
    float v = e.alpha * acc;
    if (e.beta != 0.0f) v += e.beta * kd_cu_ld(*c);
    if (e.bias) v += kd_cu_ld(((const T *)e.bias)[j]);
    if (e.gelu) v = 0.5f * v * (1.0f + erff(v * 0.70710678118654752440f));
    *c = kd_cu_st<T>(v);
}

/* Element `off` (in elements from c) of C, column j. */
__device__ __forceinline__ void kd_cu_epi_store(const kd_cu_epi &e, float acc, void *c, int64_t off, int64_t j)
{
    if (e.bf16) kd_cu_epi_store_t(e, acc, (__nv_bfloat16 *)c + off, j);
    else kd_cu_epi_store_t(e, acc, (float *)c + off, j);
}

#endif
