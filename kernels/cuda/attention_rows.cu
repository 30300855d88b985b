/* kernels/cuda/attention_rows.cu — scaled dot-product attention, forward and backward, one thread block
 * per query row with the score row held in shared memory: the plain definition of kernels/kernels.h on
 * the GPU, dropout from the same Philox counters as the CPU. Correct at every head dim, not fast: the
 * table runs the tiled kernels of attention_flash.cu where they apply and this one for other head dims. */
#include <math.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/philox.h"

#define KD_NEG_INF (-__int_as_float(0x7f800000))

__device__ float attn_block_reduce(float v, float *sh, int is_max)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float u = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, u) : v + u;
    }
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : (is_max ? KD_NEG_INF : 0.0f);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float u = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, u) : v + u;
    }
    return v;
}

/* p[0..tk) = softmax of score row (b, h, i); returns its logsumexp (-inf: fully masked, p = 0). */
__device__ float attn_row(const kd_attention_args &a, int64_t b, int64_t h, int64_t i, float *p, float *sh)
{
    const float *q = (const float *)a.q + b * a.q_sb + i * a.q_st + h * a.q_sh;
    float mx = KD_NEG_INF;
    for (int64_t j = threadIdx.x; j < a.tk; j += blockDim.x) {
        const float *k = (const float *)a.k + b * a.k_sb + j * a.k_st + h * a.k_sh;
        float s = 0.0f;
        for (int64_t d = 0; d < a.dim; d++) s = fmaf(q[d], k[d], s);
        s *= (float)a.scale;
        if (a.mask) s += ((const float *)a.mask)[b * a.mask_sb + j];
        p[j] = s;
        mx = fmaxf(mx, s);
    }
    mx = attn_block_reduce(mx, sh, 1);
    if (mx == KD_NEG_INF) {
        for (int64_t j = threadIdx.x; j < a.tk; j += blockDim.x) p[j] = 0.0f;
        __syncthreads();
        return KD_NEG_INF;
    }
    float sum = 0.0f;
    for (int64_t j = threadIdx.x; j < a.tk; j += blockDim.x) sum += expf(p[j] - mx);
    float lse = mx + logf(attn_block_reduce(sum, sh, 0));
    for (int64_t j = threadIdx.x; j < a.tk; j += blockDim.x) p[j] = expf(p[j] - lse);
    __syncthreads();
    return lse;
}

__device__ __forceinline__ float attn_keep(const kd_attention_args &a, int64_t b, int64_t h, int64_t i, int64_t j)
{
    if (a.dropout_p <= 0.0) return 1.0f;
    uint64_t ctr = a.offset + (uint64_t)(((b * a.heads + h) * a.tq + i) * a.tk + j);
    return kd_cu_rng_keep(a.seed, ctr, (float)a.dropout_p) ? (float)(1.0 / (1.0 - a.dropout_p)) : 0.0f;
}

static __global__ void attention_kernel(kd_attention_args a)
{
    extern __shared__ float p[];
    __shared__ float sh[32];
    int64_t row = blockIdx.x, i = row % a.tq, bh = row / a.tq, b = bh / a.heads, h = bh % a.heads;
    float lse = attn_row(a, b, h, i, p, sh);
    if (threadIdx.x == 0) ((float *)a.lse)[bh * a.tq + i] = lse;
    float *o = (float *)a.o + b * a.o_sb + i * a.o_st + h * a.o_sh;
    for (int64_t d = threadIdx.x; d < a.dim; d += blockDim.x) {
        float s = 0.0f;
        for (int64_t j = 0; j < a.tk; j++) {
            const float *v = (const float *)a.v + b * a.v_sb + j * a.v_st + h * a.v_sh;
            s = fmaf(p[j] * attn_keep(a, b, h, i, j), v[d], s);
        }
        o[d] = s;
    }
}

/* dV += P'^T dO; dP = (dO V^T) keep; dS = P (dP - rowsum(P dP)); dQ += scale dS K; dK += scale dS^T Q.
 * Query rows of one (b, h) share dK and dV rows, hence atomics there. */
static __global__ void attention_bwd_kernel(kd_attention_args a)
{
    extern __shared__ float p[];   /* p[0..tk), dp[0..tk) */
    __shared__ float sh[32];
    float *dp = p + a.tk;
    int64_t row = blockIdx.x, i = row % a.tq, bh = row / a.tq, b = bh / a.heads, h = bh % a.heads;
    attn_row(a, b, h, i, p, sh);
    const float *q = (const float *)a.q + b * a.q_sb + i * a.q_st + h * a.q_sh;
    const float *dout = (const float *)a.d_o + b * a.o_sb + i * a.o_st + h * a.o_sh;
    float rs = 0.0f;
    for (int64_t j = threadIdx.x; j < a.tk; j += blockDim.x) {
        const float *v = (const float *)a.v + b * a.v_sb + j * a.v_st + h * a.v_sh;
        float *dv = (float *)a.dv + b * a.v_sb + j * a.v_st + h * a.v_sh;
        float keep = attn_keep(a, b, h, i, j), pk = p[j] * keep, dpj = 0.0f;
        for (int64_t d = 0; d < a.dim; d++) {
            dpj = fmaf(dout[d], v[d], dpj);
            if (pk != 0.0f) atomicAdd(dv + d, pk * dout[d]);
        }
        dp[j] = dpj * keep;
        rs += p[j] * dp[j];
    }
    rs = attn_block_reduce(rs, sh, 0);
    for (int64_t j = threadIdx.x; j < a.tk; j += blockDim.x) dp[j] = p[j] * (dp[j] - rs) * (float)a.scale;
    __syncthreads();
    float *dq = (float *)a.dq + b * a.q_sb + i * a.q_st + h * a.q_sh;
    for (int64_t d = threadIdx.x; d < a.dim; d += blockDim.x) {
        float s = 0.0f;
        for (int64_t j = 0; j < a.tk; j++)
            s = fmaf(dp[j], ((const float *)a.k)[b * a.k_sb + j * a.k_st + h * a.k_sh + d], s);
        dq[d] += s;
    }
    for (int64_t j = threadIdx.x; j < a.tk; j += blockDim.x) {
        if (dp[j] == 0.0f) continue;
        float *dk = (float *)a.dk + b * a.k_sb + j * a.k_st + h * a.k_sh;
        for (int64_t d = 0; d < a.dim; d++) atomicAdd(dk + d, dp[j] * q[d]);
    }
}

static int attn_launchable(const kd_attention_args *a, size_t smem)
{
    int64_t rows = a->batch * a->heads * a->tq;
    if (rows <= 0 || a->tk <= 0) return 0;
    /* 48 KiB without the opt-in holds the static sh[32] of the kernels as well as the dynamic rows */
    if (smem + 32 * sizeof(float) > 48 * 1024 || rows > 0x7fffffffLL) {
        kd_cuda_note(kd_cuda_fail(KD_CUDA_ERR_SHAPE, "%s:%d: attention: tk %lld or %lld query rows beyond this kernel's limits",
                             __FILE__, __LINE__, (long long)a->tk, (long long)rows));
        return 0;
    }
    return 1;
}

extern "C" void kd_cu_attention_rows(const kd_attention_args *a)
{
    size_t smem = (size_t)a->tk * sizeof(float);
    if (!attn_launchable(a, smem)) return;
    attention_kernel<<<(unsigned)(a->batch * a->heads * a->tq), 128, smem, kd_cu_stream()>>>(*a);
    KD_CU_LAUNCH_VOID();
}

extern "C" void kd_cu_attention_rows_bwd(const kd_attention_args *a)
{
    size_t smem = 2 * (size_t)a->tk * sizeof(float);
    if (!attn_launchable(a, smem)) return;
    attention_bwd_kernel<<<(unsigned)(a->batch * a->heads * a->tq), 128, smem, kd_cu_stream()>>>(*a);
    KD_CU_LAUNCH_VOID();
}
