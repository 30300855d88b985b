/* kernels/cuda/elementwise.cu — element-wise maps (unary, binary, GELU forward/backward), broadcast sum
 * reductions, dropout from the Philox stream, embedding forward/backward, fused AdamW and the f32 <-> bf16
 * conversion, on the kd stream. Maps, reductions and dropout are templated on the storage type (float for
 * the f32 table, __nv_bfloat16 for the bf16 table) and compute in f32. Each entry has the kernel-table
 * signature (args, ith, nth); ith/nth are ignored. */
#include <math.h>

#include "kernels/cuda/bf16_cuda.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/map_plan.h"
#include "kernels/cuda/philox.h"

/* Grid for a grid-stride loop over n items: enough blocks to fill the device, no more than needed. */
static unsigned grid_for(int64_t n, int threads)
{
    unsigned b = kd_cu_blocks(n, threads);
    return b > 4096u * 8u ? 4096u * 8u : b;
}

__device__ __forceinline__ float gelu_f(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f)); }
/* d/dx [x Phi(x)] = Phi(x) + x phi(x). */
__device__ __forceinline__ float gelu_grad_f(float x)
{
    float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752440f));
    float pdf = 0.39894228040143267794f * expf(-0.5f * x * x);
    return cdf + x * pdf;
}

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
        unsigned blocks = grid_for(p.total, 256);
        if (blocks > 1024u) blocks = 1024u;
        reduce_all_kernel<T><<<blocks, 256, 0, kd_cu_stream()>>>(p, alpha, out, a);
    } else {
        map_kernel<3, T, float><<<grid_for(p.total, 256), 256, 0, kd_cu_stream()>>>(p, 0, 1, alpha, out, a, a);
    }
}

/* A bf16 reduction sums in f32 (scratch from the runtime's workspace, indexed by output offset as the
 * reference does) and rounds each reached output once: out = round(f32(out) + sum). */
static void reduce_bf16(const kd_reduce_args *m, const kd_cu_map_plan &p)
{
    int64_t extent = 1;
    for (int d = 0; d < m->ndim; d++) extent += (m->shape[d] - 1) * m->out_stride[d];
    float *sum = (float *)kd_cu_workspace((size_t)extent * sizeof(float));
    if (!sum) {
        kd_cuda_note(kd_fail(KD_ERR_NOMEM, "%s:%d: reduce: no device memory for %lld f32 sums", __FILE__, __LINE__,
                             (long long)extent));
        return;
    }
    cudaError_t e = cudaMemsetAsync(sum, 0, (size_t)extent * sizeof(float), kd_cu_stream());
    if (e != cudaSuccess) {
        kd_cuda_record(e, KD_ERR_DEVICE, __FILE__, __LINE__, "cudaMemsetAsync");
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
    reduce_finish_kernel<<<grid_for(q.total, 256), 256, 0, kd_cu_stream()>>>(q, sum, (__nv_bfloat16 *)m->out);
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
        map_kernel<WHICH, T, T><<<grid_for(p.total, 256), 256, 0, kd_cu_stream()>>>(
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

/* ---- dropout: one Philox block (four draws) per thread ---- */

/* Block q of the stream covers counters 4q..4q+3, i.e. elements i = 4q + r - offset. */
template <typename T>
static __global__ void dropout_kernel(int64_t n, float p, float keep_scale, uint64_t seed, uint64_t offset,
                                      int accumulate, const T *__restrict__ x, T *__restrict__ out)
{
    uint64_t q0 = offset >> 2, q1 = (offset + (uint64_t)n + 3) >> 2;
    for (uint64_t q = q0 + blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; q < q1; q += (uint64_t)gridDim.x * blockDim.x) {
        kd_cu_philox4 r = kd_cu_philox(seed, q, 0);
#pragma unroll
        for (int w = 0; w < 4; w++) {
            uint64_t ctr = 4 * q + (uint64_t)w;
            if (ctr < offset || ctr >= offset + (uint64_t)n) continue;
            int64_t i = (int64_t)(ctr - offset);
            float v = kd_cu_keep_word(r.v[w], p) ? kd_cu_ld(x[i]) * keep_scale : 0.0f;
            out[i] = kd_cu_st<T>(accumulate ? kd_cu_ld(out[i]) + v : v);
        }
    }
}

template <typename T>
static void dropout_launch(const kd_dropout_args *d)
{
    if (d->n <= 0) return;
    /* The CPU computes x * (1/(1-p)) in double and rounds once; in float the product may differ by 1 ulp. */
    float keep_scale = d->p < 1.0 ? (float)(1.0 / (1.0 - d->p)) : 0.0f;
    int64_t blocks4 = (int64_t)(((d->offset + (uint64_t)d->n + 3) >> 2) - (d->offset >> 2));
    dropout_kernel<T><<<grid_for(blocks4, 256), 256, 0, kd_cu_stream()>>>(
        d->n, (float)d->p, keep_scale, d->seed, d->offset, d->accumulate, (const T *)d->x, (T *)d->out);
    KD_CU_LAUNCH_VOID();
}

extern "C" void kd_cu_dropout(const kd_dropout_args *d, int ith, int nth) { (void)ith; (void)nth; dropout_launch<float>(d); }
extern "C" void kd_cu_dropout_bf16(const kd_dropout_args *d, int ith, int nth)
{
    (void)ith; (void)nth;
    dropout_launch<bf16>(d);
}

/* ---- embedding ---- */

/* One block row per id: out[i, :] = table[ids[i], :]; float4 when dim and the pointers allow. */
static __global__ void embedding_kernel(int64_t n, int64_t dim, int64_t rows, const int32_t *__restrict__ ids,
                                        const float *__restrict__ table, float *__restrict__ out, int vec)
{
    for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
        float *dst = out + i * dim;
        if (rows > 0 && (ids[i] < 0 || ids[i] >= rows)) {   /* reported by the id check; never read past */
            for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) dst[j] = 0.0f;
            continue;
        }
        const float *src = table + (int64_t)ids[i] * dim;
        if (vec) {
            for (int64_t j = threadIdx.x; j < dim / 4; j += blockDim.x)
                ((float4 *)dst)[j] = ((const float4 *)src)[j];
        } else {
            for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) dst[j] = src[j];
        }
    }
}

/* dtable[ids[i], :] += dout[i, :]; equal ids collide, hence atomics. */
static __global__ void embedding_bwd_kernel(int64_t n, int64_t dim, int64_t rows, const int32_t *__restrict__ ids,
                                            float *__restrict__ dtable, const float *__restrict__ dout)
{
    for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
        if (rows > 0 && (ids[i] < 0 || ids[i] >= rows)) continue;
        float *dst = dtable + (int64_t)ids[i] * dim;
        const float *src = dout + i * dim;
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) atomicAdd(dst + j, src[j]);
    }
}

static unsigned rows_grid(int64_t rows) { return (unsigned)(rows < 65535 * 16 ? (rows < 1 ? 1 : rows) : 65535 * 16); }

extern "C" void kd_cu_embedding(const kd_embedding_args *e, int ith, int nth)
{
    (void)ith; (void)nth;
    if (e->n <= 0 || e->dim <= 0) return;
    int vec = e->dim % 4 == 0 && ((uintptr_t)e->table % 16) == 0 && ((uintptr_t)e->out % 16) == 0;
    embedding_kernel<<<rows_grid(e->n), 128, 0, kd_cu_stream()>>>(e->n, e->dim, e->rows, e->ids, (const float *)e->table,
                                                                   (float *)e->out, vec);
    KD_CU_LAUNCH_VOID();
}

extern "C" void kd_cu_embedding_bwd(const kd_embedding_args *e, int ith, int nth)
{
    (void)ith; (void)nth;
    if (e->n <= 0 || e->dim <= 0) return;
    embedding_bwd_kernel<<<rows_grid(e->n), 128, 0, kd_cu_stream()>>>(e->n, e->dim, e->rows, e->ids, (float *)e->dtable,
                                                                       (const float *)e->dout);
    KD_CU_LAUNCH_VOID();
}

/* ---- AdamW (torch.optim.AdamW), one fused pass: read w, g, m, v once, write w, m, v once ---- */

static __global__ void adamw_kernel(int64_t n, float *__restrict__ w, const float *__restrict__ g, float *__restrict__ m,
                                    float *__restrict__ v, float lr, float beta1, float beta2, float eps, float decay,
                                    float inv_bias1, float inv_bias2)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float gi = g[i];
        float wi = w[i] * decay;
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        wi -= lr * (mi * inv_bias1) / (sqrtf(vi * inv_bias2) + eps);
        w[i] = wi;
        m[i] = mi;
        v[i] = vi;
    }
}

extern "C" void kd_cu_adamw(const kd_adamw_args *o, int ith, int nth)
{
    (void)ith; (void)nth;
    if (o->n <= 0) return;
    adamw_kernel<<<grid_for(o->n, 256), 256, 0, kd_cu_stream()>>>(
        o->n, (float *)o->param, (const float *)o->grad, (float *)o->m, (float *)o->v, (float)o->lr,
        (float)o->beta1, (float)o->beta2, (float)o->eps, (float)(1.0 - o->lr * o->weight_decay),
        (float)(1.0 / o->bias1), (float)(1.0 / o->bias2));
    KD_CU_LAUNCH_VOID();
}

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
        convert_to_bf16_kernel<<<grid_for(c->n, 256), 256, 0, kd_cu_stream()>>>(c->n, c->accumulate,
                                                                                (const float *)c->x, (bf16 *)c->y);
    else
        convert_to_f32_kernel<<<grid_for(c->n, 256), 256, 0, kd_cu_stream()>>>(c->n, c->accumulate,
                                                                               (const bf16 *)c->x, (float *)c->y);
    KD_CU_LAUNCH_VOID();
}
