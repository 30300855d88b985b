/* kernels/cuda/rows_common.cuh — what the row kernels (one thread block per row: softmax, LayerNorm,
 * cross-entropy, KL) share: launch geometry, block sums, and the online logsumexp. Internal to .cu files. */
#ifndef KD_CUDA_ROWS_COMMON_CUH
#define KD_CUDA_ROWS_COMMON_CUH

#include <math.h>
#include <stdint.h>

#include "kernels/cuda/bf16_cuda.h"

#define KD_NEG_INF (-__int_as_float(0x7f800000))

/* Threads per row block: a multiple of 32, at most 256, no more than the row needs. */
static inline int row_threads(int64_t cols)
{
    int64_t t = (cols + 31) / 32 * 32;
    return (int)(t > 256 ? 256 : t < 32 ? 32 : t);
}

static inline unsigned row_blocks(int64_t rows) { return (unsigned)(rows > 65535 * 32 ? 65535 * 32 : rows); }

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sum over the block; every thread gets the result. `sh` holds 32 floats. */
static inline __device__ float block_sum(float v, float *sh)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* sh may still be read from a previous call */
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    float t = lane < nw ? sh[lane] : 0.0f;
    return warp_sum(t);
}

/* Online (max, sum of exp(x - max)) pairs, merged as in Milakov & Gimelshein 2018. -inf entries add
 * nothing; a NaN anywhere makes the max NaN, as the reference's max does. */
struct ms { float m, s; };

__device__ __forceinline__ ms ms_push(ms a, float x)
{
    if (x == KD_NEG_INF) return a;
    if (isnan(x) || isnan(a.m)) { a.m = __int_as_float(0x7fc00000); return a; }
    if (x > a.m) { a.s = a.s * expf(a.m - x) + 1.0f; a.m = x; }
    else a.s += expf(x - a.m);
    return a;
}

__device__ __forceinline__ ms ms_merge(ms a, ms b)
{
    if (isnan(a.m) || isnan(b.m)) { a.m = __int_as_float(0x7fc00000); return a; }
    if (b.m == KD_NEG_INF) return a;
    if (a.m == KD_NEG_INF) return b;
    float m = fmaxf(a.m, b.m);
    ms r = { m, a.s * expf(a.m - m) + b.s * expf(b.m - m) };
    return r;
}

/* logsumexp of x[0..n) over the block; every thread gets it. -inf for an all -inf row. */
template <typename T>
__device__ float block_lse(const T *__restrict__ x, int64_t n, float *sh)
{
    ms a = { KD_NEG_INF, 0.0f };
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) a = ms_push(a, kd_cu_ld(x[j]));
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        ms b = { __shfl_xor_sync(0xffffffffu, a.m, o), __shfl_xor_sync(0xffffffffu, a.s, o) };
        a = ms_merge(a, b);
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) { sh[warp] = a.m; sh[32 + warp] = a.s; }
    __syncthreads();
    ms t = { KD_NEG_INF, 0.0f };
    if (lane < nw) { t.m = sh[lane]; t.s = sh[32 + lane]; }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        ms b = { __shfl_xor_sync(0xffffffffu, t.m, o), __shfl_xor_sync(0xffffffffu, t.s, o) };
        t = ms_merge(t, b);
    }
    return t.m + logf(t.s);
}

#endif
