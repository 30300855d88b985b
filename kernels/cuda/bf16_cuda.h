/* kernels/cuda/bf16_cuda.h — kernels/bf16.h's conversions for device code, and the load/store pair the
 * kernels templated on their storage type (float or __nv_bfloat16) read and write through: values are
 * loaded as f32, computed in f32 and rounded to storage once. The rounding is integer arithmetic on the
 * bits (nearest, ties to even; NaN made quiet with its sign; finite values past bf16's range to Inf),
 * bit for bit kd_f32_to_bf16, denormals included. Internal to .cu files. */
#ifndef KD_CUDA_BF16_CUDA_H
#define KD_CUDA_BF16_CUDA_H

#include <cuda_bf16.h>
#include <stdint.h>
#include <string.h>

__host__ __device__ __forceinline__ uint16_t kd_cu_f32_to_bf16_bits(float f)
{
    uint32_t u;
#ifdef __CUDA_ARCH__
    u = __float_as_uint(f);
#else
    memcpy(&u, &f, 4);
#endif
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);   /* NaN: quiet */
    u += 0x7fffu + ((u >> 16) & 1u);                                                 /* nearest, ties even */
    return (uint16_t)(u >> 16);
}

__device__ __forceinline__ float kd_cu_bf16_bits_to_f32(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }

/* Storage <-> f32. */
__device__ __forceinline__ float kd_cu_ld(float x) { return x; }
__device__ __forceinline__ float kd_cu_ld(__nv_bfloat16 x) { return kd_cu_bf16_bits_to_f32(__bfloat16_as_ushort(x)); }

template <typename T> __device__ __forceinline__ T kd_cu_st(float v);
template <> __device__ __forceinline__ float kd_cu_st<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 kd_cu_st<__nv_bfloat16>(float v)
{
    return __ushort_as_bfloat16(kd_cu_f32_to_bf16_bits(v));
}

#endif
