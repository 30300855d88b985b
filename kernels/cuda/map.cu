/* kernels/cuda/map.cu — element-wise maps (unary, binary: the arithmetic ops, GELU and tanh forward and
 * backward) and broadcast sum reductions over strided index spaces, on the kd stream; templated on the
 * storage type (float for the f32 table, __nv_bfloat16 for the bf16 table), computed in f32. */
#include <math.h>

#include "kernels/cuda/bf16_cuda.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/gelu.cuh"
#include "kernels/cuda/map_plan.h"

__device__ __forceinline__ float apply_unary(int op, float a, float alpha)
{
    switch (op) {
    case KD_UN_COPY: return a;
    case KD_UN_SCALE: return alpha * a;
    case KD_UN_GELU: return gelu_f(a);
    case KD_UN_TANH: return tanhf(a);
    case KD_UN_EXP: return expf(a);
    case KD_UN_LOG: return logf(a);
    case KD_UN_NEG: return -a;
    case KD_UN_SQUARE: return a * a;
    case KD_UN_ADD_SCALAR: return a + alpha;
    case KD_UN_SQRT: return sqrtf(a);
    case KD_UN_CLIP_COEF:
        if (!isfinite(a)) return 0.0f;
        return alpha > 0.0f && sqrtf(a) > alpha ? alpha / (sqrtf(a) + 1e-6f) : 1.0f;
    }
    return __int_as_float(0x7fc00000);
}

__device__ __forceinline__ float apply_binary(int op, float a, float b)
{
    switch (op) {
    case KD_BIN_ADD: return a + b;
    case KD_BIN_SUB: return a - b;
    case KD_BIN_MUL: return a * b;
    case KD_BIN_DIV: return a / b;
    case KD_BIN_GELU_BWD: return b * gelu_grad_f(a);
    case KD_BIN_TANH_BWD: return b * (1.0f - a * a);
    }
    return __int_as_float(0x7fc00000);
}

/* WHICH: 1 unary, 2 binary, 3 reduce (out += alpha a, atomically: several indices share an output; out
 * is f32 then, the f32 table's output or the bf16 table's f32 sums). */
template <int WHICH, typename T, typename O>
static __global__ void map_kernel(kd_cu_map_plan p, int op, int accumulate, float alpha, O *__restrict__ out,
                                  const T *__restrict__ a, const T *__restrict__ b)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < p.total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t oo, oa, ob;
        if (p.ndim == 1) {
            oo = i * p.so[0];
            oa = i * p.sa[0];
            ob = i * p.sb[0];
        } else {
            kd_cu_map_offsets(&p, i, &oo, &oa, &ob);
        }
        if constexpr (WHICH == 3) {
            atomicAdd(out + oo, alpha * kd_cu_ld(a[oa]));
        } else {
            float v = WHICH == 1 ? apply_unary(op, kd_cu_ld(a[oa]), alpha) : apply_binary(op, kd_cu_ld(a[oa]), kd_cu_ld(b[ob]));
            out[oo] = kd_cu_st<O>(accumulate ? kd_cu_ld(out[oo]) + v : v);
        }
    }
}

/* A reduction into one value (every out stride 0: a loss mean, a gradient's sum of squares): each block
 * sums its share with warp shuffles and adds once, instead of one atomic per element on one address. */
template <typename T>
static __global__ void reduce_all_kernel(kd_cu_map_plan p, float alpha, float *__restrict__ out,
                                         const T *__restrict__ a)
{
    float s = 0.0f;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < p.total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t oo, oa, ob;
        if (p.ndim == 1) oa = i * p.sa[0];
        else kd_cu_map_offsets(&p, i, &oo, &oa, &ob);
        s += kd_cu_ld(a[oa]);
    }
    for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
    __shared__ float warp_sums[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) warp_sums[warp] = s;
    __syncthreads();
    if (warp == 0) {
        s = lane < (int)(blockDim.x >> 5) ? warp_sums[lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
        if (lane == 0) atomicAdd(out, alpha * s);
    }
}

/* out[oo] = round(f32(out[oo]) + sum[oo]) over the outputs a reduction reached (p: the reduction's plan with
 * the reduced dims dropped, a's strides = out's, since the sums are indexed by output offset). */
static __global__ void reduce_finish_kernel(kd_cu_map_plan p, const float *__restrict__ sum, __nv_bfloat16 *__restrict__ out)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < p.total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t oo, oa, ob;
        kd_cu_map_offsets(&p, i, &oo, &oa, &ob);
        out[oo] = kd_cu_st<__nv_bfloat16>(kd_cu_ld(out[oo]) + sum[oo]);
    }
}

/* Sums of a reduction, accumulated with f32 atomics into `out` (f32). */
template <typename T>
static void reduce_into(const kd_cu_map_plan &p, float alpha, float *out, const T *a)
{
    int all = 1;
    for (int d = 0; d < p.ndim; d++) all &= p.so[d] == 0;
    if (all) {
        unsigned blocks = kd_cu_grid(p.total, 256);
        if (blocks > 1024u) blocks = 1024u;
        reduce_all_kernel<T><<<blocks, 256, 0, kd_cu_stream()>>>(p, alpha, out, a);
    } else {
        map_kernel<3, T, float><<<kd_cu_grid(p.total, 256), 256, 0, kd_cu_stream()>>>(p, 0, 1, alpha, out, a, a);
    }
}

/* A bf16 reduction sums in f32 (scratch from the runtime's workspace, indexed by output offset as the
 * reference does) and rounds each reached output once: out = round(f32(out) + sum). */
static void reduce_bf16(const kd_reduce_args *m, const kd_cu_map_plan &p)
{
    int64_t extent = 1;
    for (int d = 0; d < m->ndim; d++) extent += (m->shape[d] - 1) * m->out_stride[d];
    void *ws = NULL;
    kd_cuda_result st = kd_cu_workspace((size_t)extent * sizeof(float), &ws);
    if (st == KD_CUDA_ERR_NOMEM) {
        kd_cuda_note(kd_cuda_fail(KD_CUDA_ERR_NOMEM, "%s:%d: reduce: no device memory for %lld f32 sums", __FILE__, __LINE__,
                             (long long)extent));
        return;
    }
    if (st != KD_CUDA_OK) return;   /* recorded by kd_cu_workspace */
    float *sum = (float *)ws;
    cudaError_t e = cudaMemsetAsync(sum, 0, (size_t)extent * sizeof(float), kd_cu_stream());
    if (e != cudaSuccess) {
        kd_cuda_record(e, KD_CUDA_ERR_DEVICE, __FILE__, __LINE__, "cudaMemsetAsync");
        return;
    }
    reduce_into(p, (float)m->alpha, sum, (const __nv_bfloat16 *)m->a);
    KD_CU_LAUNCH_VOID();
    kd_map_args kept = *m;   /* the reduced dims (out stride 0) dropped: one index per reached output */
    for (int d = 0; d < m->ndim; d++) {
        if (m->out_stride[d] == 0) kept.shape[d] = 1;
        kept.a_stride[d] = m->out_stride[d];
    }
    kd_cu_map_plan q = kd_cu_map_plan_make(&kept, 0);
    reduce_finish_kernel<<<kd_cu_grid(q.total, 256), 256, 0, kd_cu_stream()>>>(q, sum, (__nv_bfloat16 *)m->out);
    KD_CU_LAUNCH_VOID();
}

template <int WHICH, typename T>
static void map_launch(const kd_map_args *m)
{
    kd_cu_map_plan p = kd_cu_map_plan_make(m, WHICH == 2);
    if (p.total <= 0) return;
    if constexpr (WHICH == 3) {
        if constexpr (sizeof(T) == 2) reduce_bf16(m, p);
        else {
            reduce_into(p, (float)m->alpha, (float *)m->out, (const float *)m->a);
            KD_CU_LAUNCH_VOID();
        }
    } else {
        map_kernel<WHICH, T, T><<<kd_cu_grid(p.total, 256), 256, 0, kd_cu_stream()>>>(
            p, m->op, m->accumulate, (float)m->alpha, (T *)m->out, (const T *)m->a, (const T *)m->b);
        KD_CU_LAUNCH_VOID();
    }
}

typedef __nv_bfloat16 bf16;

extern "C" void kd_cu_unary(const kd_map_args *m, int ith, int nth) { (void)ith; (void)nth; map_launch<1, float>(m); }
extern "C" void kd_cu_binary(const kd_map_args *m, int ith, int nth) { (void)ith; (void)nth; map_launch<2, float>(m); }
extern "C" void kd_cu_reduce(const kd_reduce_args *m, int ith, int nth) { (void)ith; (void)nth; map_launch<3, float>(m); }
extern "C" void kd_cu_unary_bf16(const kd_map_args *m, int ith, int nth) { (void)ith; (void)nth; map_launch<1, bf16>(m); }
extern "C" void kd_cu_binary_bf16(const kd_map_args *m, int ith, int nth) { (void)ith; (void)nth; map_launch<2, bf16>(m); }
extern "C" void kd_cu_reduce_bf16(const kd_reduce_args *m, int ith, int nth) { (void)ith; (void)nth; map_launch<3, bf16>(m); }
