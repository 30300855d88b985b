/* kernels/cuda/gelu.cuh — GELU (erf form) and its derivative for device code; the map kernels apply them
 * (KD_UN_GELU, KD_BIN_GELU_BWD). Internal to .cu files. */
#ifndef KD_CUDA_GELU_CUH
#define KD_CUDA_GELU_CUH

#include <math.h>

/* GELU(x) = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2. */
__device__ __forceinline__ float gelu_f(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f)); }
/* d/dx [x Phi(x)] = Phi(x) + x phi(x). */
__device__ __forceinline__ float gelu_grad_f(float x)
{
    float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752440f));
    float pdf = 0.39894228040143267794f * expf(-0.5f * x * x);
    return cdf + x * pdf;
}

#endif
