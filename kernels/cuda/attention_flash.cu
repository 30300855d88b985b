/* kernels/cuda/attention_flash.cu — flash attention (FlashAttention-2 schedule) forward and backward for
 * head dims 32, 64, 128, f32 or bf16 q/k/v, f32 arithmetic; and the table's attention entries, which run
 * these where they apply and the per-row kernels of attention_rows.cu elsewhere.
 *
 * Forward, one block per (b, h, BQ query rows), keys in tiles of BK = 64 (Dao 2023, algorithm 1):
 *   S = scale Q K_j^T + mask_j;  m' = max(m, rowmax S);  P = exp(S - m');  l = l e^(m - m') + rowsum P;
 *   O = O e^(m - m') + (P * keep) V_j;  finally lse = m + log l, O /= l (O /= e^(lse - m) = 1 where log l
 *   vanishes in m: the row whose keys all carry a -FLT_MAX mask, matching the reference).
 * The sum l is of the undropped P, as softmax-then-dropout defines it. A row with every key at -inf
 * keeps m = -inf: exponentials use 0 in place of m' then, so P = 0, l = 0, and O = 0, lse = -inf.
 *
 * Backward, one block per (b, h, BK keys), query rows in tiles of BQ (algorithm 2), nothing stored but
 * lse and O from the forward:  P = exp(S - lse);  dV += (P keep)^T dO;  dP = (dO V^T) keep;
 *   D = rowsum(dO * O) (= rowsum(P dP));  dS = scale P (dP - D);  dK += dS^T Q;  dQ += dS K.
 * The block owns its dK, dV rows (registers, added to memory once); dQ rows are shared by the key tiles,
 * so they are added with atomics. Thread ownership of tiles: kernels/cuda/attention_plan.h. */
#include <math.h>

#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/attention_plan.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/philox.h"

namespace {

constexpr int THREADS = KD_FA_THREADS, BK = KD_FA_BK, PK = BK + 1;
#define FA_NEG_INF (-__int_as_float(0x7f800000))

__device__ __forceinline__ float ld_elem(const float *p) { return *p; }
__device__ __forceinline__ float ld_elem(const uint16_t *p) { return __uint_as_float((uint32_t)*p << 16); }

/* Max / sum over the 16 threads of a row group (one half-warp: lanes differ in bits 0..3). */
__device__ __forceinline__ float group_max(float v)
{
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float group_sum(float v)
{
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* rows x D tile of a [.., t, .., D] operand into shared memory (pitch D + 1), rows past `len` zero. */
template <typename T, int D>
__device__ __forceinline__ void load_rows(float *s, const T *base, int64_t st, int64_t r0, int64_t len, int rows)
{
    for (int e = threadIdx.x; e < rows * D; e += THREADS) {
        int r = e / D, d = e % D;
        int64_t i = r0 + r;
        s[r * (D + 1) + d] = i < len ? ld_elem(base + i * st + d) : 0.0f;
    }
}

template <typename T, int D>
__global__ void __launch_bounds__(THREADS) fa_fwd_kernel(kd_attention_args a)
{
    constexpr int BQ = D > 64 ? 32 : 64, P = D + 1, RA = BQ / 16, CB = BK / 16, DE = D / 16;
    extern __shared__ float sm[];
    float *sQ = sm, *sK = sQ + BQ * P, *sV = sK + BK * P, *sP = sV + BK * P;
    const int t = threadIdx.x, tx = kd_fa_tx(t), ty = kd_fa_ty(t);
    const int64_t bh = blockIdx.x, b = bh / a.heads, h = bh % a.heads;
    const int64_t q0 = (int64_t)blockIdx.y * BQ;
    const T *Q = (const T *)a.q + b * a.q_sb + h * a.q_sh;
    const T *K = (const T *)a.k + b * a.k_sb + h * a.k_sh;
    const T *V = (const T *)a.v + b * a.v_sb + h * a.v_sh;
    const float *mask = a.mask ? (const float *)a.mask + b * a.mask_sb : nullptr;
    const float scale = (float)a.scale;
    const bool drop = a.dropout_p > 0.0;
    kd_cu_keeper dr = kd_cu_make_keeper(a.seed, a.dropout_p);

    load_rows<T, D>(sQ, Q, a.q_st, q0, a.tq, BQ);

    float m[RA], l[RA], o[RA][DE];
#pragma unroll
    for (int i = 0; i < RA; i++) {
        m[i] = FA_NEG_INF;
        l[i] = 0.0f;
#pragma unroll
        for (int e = 0; e < DE; e++) o[i][e] = 0.0f;
    }

    for (int64_t k0 = 0; k0 < a.tk; k0 += BK) {
        __syncthreads();   /* the previous tile's K, V, P' are no longer read */
        load_rows<T, D>(sK, K, a.k_st, k0, a.tk, BK);
        load_rows<T, D>(sV, V, a.v_st, k0, a.tk, BK);
        __syncthreads();

        float s[RA][CB];
#pragma unroll
        for (int i = 0; i < RA; i++)
#pragma unroll
            for (int j = 0; j < CB; j++) s[i][j] = 0.0f;
#pragma unroll 8
        for (int d = 0; d < D; d++) {
            float qv[RA], kv[CB];
#pragma unroll
            for (int i = 0; i < RA; i++) qv[i] = sQ[kd_fa_row(t, i) * P + d];
#pragma unroll
            for (int j = 0; j < CB; j++) kv[j] = sK[kd_fa_key(t, j) * P + d];
#pragma unroll
            for (int i = 0; i < RA; i++)
#pragma unroll
                for (int j = 0; j < CB; j++) s[i][j] = fmaf(qv[i], kv[j], s[i][j]);
        }

#pragma unroll
        for (int i = 0; i < RA; i++) {
            const int64_t qi = q0 + kd_fa_row(t, i);
            float mt = FA_NEG_INF;
#pragma unroll
            for (int j = 0; j < CB; j++) {
                int64_t kj = k0 + kd_fa_key(t, j);
                float v = FA_NEG_INF;
                if (kj < a.tk) v = s[i][j] * scale + (mask ? mask[kj] : 0.0f);
                s[i][j] = v;
                mt = fmaxf(mt, v);
            }
            mt = group_max(mt);
            const float mn = fmaxf(m[i], mt);
            const float mu = mn == FA_NEG_INF ? 0.0f : mn;   /* all -inf so far: P = 0, not NaN */
            const float alpha = expf(m[i] - mu);
            float rs = 0.0f;
#pragma unroll
            for (int j = 0; j < CB; j++) {
                float p = expf(s[i][j] - mu);
                rs += p;
                if (drop && p != 0.0f && qi < a.tq)
                    p *= dr.keep(kd_fa_counter(a.offset, b, h, a.heads, a.tq, a.tk, qi, k0 + kd_fa_key(t, j)));
                sP[kd_fa_row(t, i) * PK + kd_fa_key(t, j)] = p;
            }
            rs = group_sum(rs);
            l[i] = l[i] * alpha + rs;
            m[i] = mn;
#pragma unroll
            for (int e = 0; e < DE; e++) o[i][e] *= alpha;
        }
        __syncthreads();

#pragma unroll 4
        for (int c = 0; c < BK; c++) {
            float vv[DE];
#pragma unroll
            for (int e = 0; e < DE; e++) vv[e] = sV[c * P + kd_fa_dim(t, e)];
#pragma unroll
            for (int i = 0; i < RA; i++) {
                float p = sP[kd_fa_row(t, i) * PK + c];
#pragma unroll
                for (int e = 0; e < DE; e++) o[i][e] = fmaf(p, vv[e], o[i][e]);
            }
        }
    }

#pragma unroll
    for (int i = 0; i < RA; i++) {
        const int64_t qi = q0 + kd_fa_row(t, i);
        if (qi >= a.tq) continue;
        /* The reference's P is e^(S - lse). When m + log l rounds back to m (every key under BERT's finite
         * -FLT_MAX mask: m = -FLT_MAX), that is e^0 = 1 per key, O is the sum of V' rather than the mean,
         * and the backward (P = e^(S - lse) from this lse) needs O to agree: no division then. l = 0 only
         * for a row of -inf; a NaN score makes l NaN, and lse then NaN as the reference's (not -inf). */
        const float lse = l[i] != 0.0f ? m[i] + logf(l[i]) : FA_NEG_INF;
        const float inv = l[i] != 0.0f ? (lse == m[i] ? 1.0f : 1.0f / l[i]) : 0.0f;
        float *orow = (float *)a.o + b * a.o_sb + qi * a.o_st + h * a.o_sh;
#pragma unroll
        for (int e = 0; e < DE; e++) orow[kd_fa_dim(t, e)] = o[i][e] * inv;
        if (tx == 0) ((float *)a.lse)[bh * a.tq + qi] = lse;
    }
}

template <typename T, int D>
__global__ void __launch_bounds__(THREADS) fa_bwd_kernel(kd_attention_args a)
{
    constexpr int BQ = D > 64 ? 32 : 64, P = D + 1, RA = BQ / 16, CB = BK / 16, DE = D / 16;
    extern __shared__ float sm[];
    float *sQ = sm, *sdO = sQ + BQ * P, *sK = sdO + BQ * P, *sV = sK + BK * P, *sP = sV + BK * P, *sdS = sP + BQ * PK;
    const int t = threadIdx.x, tx = kd_fa_tx(t), ty = kd_fa_ty(t);
    (void)ty;
    const int64_t bh = blockIdx.x, b = bh / a.heads, h = bh % a.heads;
    const int64_t k0 = (int64_t)blockIdx.y * BK;
    const T *Q = (const T *)a.q + b * a.q_sb + h * a.q_sh;
    const T *K = (const T *)a.k + b * a.k_sb + h * a.k_sh;
    const T *V = (const T *)a.v + b * a.v_sb + h * a.v_sh;
    const float *dO = (const float *)a.d_o + b * a.o_sb + h * a.o_sh;
    const float *O = (const float *)a.o + b * a.o_sb + h * a.o_sh;
    const float *lse = (const float *)a.lse + bh * a.tq;
    float *dQ = (float *)a.dq + b * a.q_sb + h * a.q_sh;
    const float *mask = a.mask ? (const float *)a.mask + b * a.mask_sb : nullptr;
    const float scale = (float)a.scale;
    const bool drop = a.dropout_p > 0.0;
    kd_cu_keeper dr = kd_cu_make_keeper(a.seed, a.dropout_p);

    load_rows<T, D>(sK, K, a.k_st, k0, a.tk, BK);
    load_rows<T, D>(sV, V, a.v_st, k0, a.tk, BK);
    /* the mask of this block's keys, per owned key column (-inf past tk) */
    float mk[CB];
#pragma unroll
    for (int j = 0; j < CB; j++) {
        int64_t kj = k0 + kd_fa_key(t, j);
        mk[j] = kj < a.tk ? (mask ? mask[kj] : 0.0f) : FA_NEG_INF;
    }

    float dk[CB][DE], dv[CB][DE];
#pragma unroll
    for (int j = 0; j < CB; j++)
#pragma unroll
        for (int e = 0; e < DE; e++) dk[j][e] = dv[j][e] = 0.0f;

    for (int64_t q0 = 0; q0 < a.tq; q0 += BQ) {
        __syncthreads();   /* the previous tile's Q, dO, P', dS are no longer read */
        load_rows<T, D>(sQ, Q, a.q_st, q0, a.tq, BQ);
        load_rows<float, D>(sdO, dO, a.o_st, q0, a.tq, BQ);
        __syncthreads();

        /* per owned row: lse and D = dO . O (16 threads of the row group share the dot product) */
        float lr[RA], Dr[RA];
#pragma unroll
        for (int i = 0; i < RA; i++) {
            const int r = kd_fa_row(t, i);
            const int64_t qi = q0 + r;
            float part = 0.0f;
            lr[i] = FA_NEG_INF;
            if (qi < a.tq) {
                lr[i] = lse[qi];
                const float *orow = O + qi * a.o_st;
#pragma unroll
                for (int e = 0; e < DE; e++) part = fmaf(sdO[r * P + kd_fa_dim(t, e)], orow[kd_fa_dim(t, e)], part);
            }
            Dr[i] = group_sum(part);
        }

        float s[RA][CB], dp[RA][CB];
#pragma unroll
        for (int i = 0; i < RA; i++)
#pragma unroll
            for (int j = 0; j < CB; j++) s[i][j] = dp[i][j] = 0.0f;
#pragma unroll 4
        for (int d = 0; d < D; d++) {
            float qv[RA], gv[RA], kv[CB], vv[CB];
#pragma unroll
            for (int i = 0; i < RA; i++) {
                qv[i] = sQ[kd_fa_row(t, i) * P + d];
                gv[i] = sdO[kd_fa_row(t, i) * P + d];
            }
#pragma unroll
            for (int j = 0; j < CB; j++) {
                kv[j] = sK[kd_fa_key(t, j) * P + d];
                vv[j] = sV[kd_fa_key(t, j) * P + d];
            }
#pragma unroll
            for (int i = 0; i < RA; i++)
#pragma unroll
                for (int j = 0; j < CB; j++) {
                    s[i][j] = fmaf(qv[i], kv[j], s[i][j]);
                    dp[i][j] = fmaf(gv[i], vv[j], dp[i][j]);
                }
        }

#pragma unroll
        for (int i = 0; i < RA; i++) {
            const int64_t qi = q0 + kd_fa_row(t, i);
#pragma unroll
            for (int j = 0; j < CB; j++) {
                float p = 0.0f, keep = 1.0f;
                /* lse = -inf: a fully masked row, P = 0 (exp(-inf - -inf) would be NaN) */
                if (qi < a.tq && lr[i] != FA_NEG_INF && mk[j] != FA_NEG_INF) p = expf(s[i][j] * scale + mk[j] - lr[i]);
                if (drop && p != 0.0f)
                    keep = dr.keep(kd_fa_counter(a.offset, b, h, a.heads, a.tq, a.tk, qi, k0 + kd_fa_key(t, j)));
                sP[kd_fa_row(t, i) * PK + kd_fa_key(t, j)] = p * keep;
                sdS[kd_fa_row(t, i) * PK + kd_fa_key(t, j)] = p * (dp[i][j] * keep - Dr[i]) * scale;
            }
        }
        __syncthreads();

        /* dV += P'^T dO and dK += dS^T Q on this block's key rows */
#pragma unroll 2
        for (int r = 0; r < BQ; r++) {
            float go[DE], qv[DE];
#pragma unroll
            for (int e = 0; e < DE; e++) {
                go[e] = sdO[r * P + kd_fa_dim(t, e)];
                qv[e] = sQ[r * P + kd_fa_dim(t, e)];
            }
#pragma unroll
            for (int j = 0; j < CB; j++) {
                float pj = sP[r * PK + kd_fa_krow(t, j)], sj = sdS[r * PK + kd_fa_krow(t, j)];
#pragma unroll
                for (int e = 0; e < DE; e++) {
                    dv[j][e] = fmaf(pj, go[e], dv[j][e]);
                    dk[j][e] = fmaf(sj, qv[e], dk[j][e]);
                }
            }
        }

        /* dQ += dS K for the tile's query rows (other key tiles add to the same rows) */
        float dq[RA][DE];
#pragma unroll
        for (int i = 0; i < RA; i++)
#pragma unroll
            for (int e = 0; e < DE; e++) dq[i][e] = 0.0f;
#pragma unroll 4
        for (int c = 0; c < BK; c++) {
            float kv[DE];
#pragma unroll
            for (int e = 0; e < DE; e++) kv[e] = sK[c * P + kd_fa_dim(t, e)];
#pragma unroll
            for (int i = 0; i < RA; i++) {
                float ds = sdS[kd_fa_row(t, i) * PK + c];
#pragma unroll
                for (int e = 0; e < DE; e++) dq[i][e] = fmaf(ds, kv[e], dq[i][e]);
            }
        }
#pragma unroll
        for (int i = 0; i < RA; i++) {
            const int64_t qi = q0 + kd_fa_row(t, i);
            if (qi >= a.tq) continue;
            float *row = dQ + qi * a.q_st;
#pragma unroll
            for (int e = 0; e < DE; e++)
                if (dq[i][e] != 0.0f) atomicAdd(row + kd_fa_dim(t, e), dq[i][e]);
        }
    }

    float *dK = (float *)a.dk + b * a.k_sb + h * a.k_sh, *dV = (float *)a.dv + b * a.v_sb + h * a.v_sh;
#pragma unroll
    for (int j = 0; j < CB; j++) {
        const int64_t kj = k0 + kd_fa_krow(t, j);
        if (kj >= a.tk) continue;
#pragma unroll
        for (int e = 0; e < DE; e++) {
            dK[kj * a.k_st + kd_fa_dim(t, e)] += dk[j][e];
            dV[kj * a.v_st + kd_fa_dim(t, e)] += dv[j][e];
        }
    }
}

template <typename T, int D>
kd_cuda_result launch_fwd(const kd_attention_args *a)
{
    /* the opt-in above 48 KiB of shared memory, once per instantiation and device (the attribute belongs
     * to the device's copy of the kernel, so a device switch needs it again) */
    static int attr_dev = -1;
    const size_t smem = kd_fa_fwd_smem(D);
    int dev = 0;
    KD_CU(cudaGetDevice(&dev));
    if (dev != attr_dev) {
        KD_CU(cudaFuncSetAttribute(fa_fwd_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        attr_dev = dev;
    }
    int64_t gx, gy;
    kd_fa_grid(a->batch * a->heads, a->tq, kd_fa_bq(D), &gx, &gy);
    fa_fwd_kernel<T, D><<<dim3((unsigned)gx, (unsigned)gy), THREADS, smem, kd_cu_stream()>>>(*a);
    KD_CU_LAUNCH();
    return KD_CUDA_OK;
}

template <typename T, int D>
kd_cuda_result launch_bwd(const kd_attention_args *a)
{
    static int attr_dev = -1;
    const size_t smem = kd_fa_bwd_smem(D);
    int dev = 0;
    KD_CU(cudaGetDevice(&dev));
    if (dev != attr_dev) {
        KD_CU(cudaFuncSetAttribute(fa_bwd_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        attr_dev = dev;
    }
    int64_t gx, gy;
    kd_fa_grid(a->batch * a->heads, a->tk, BK, &gx, &gy);
    fa_bwd_kernel<T, D><<<dim3((unsigned)gx, (unsigned)gy), THREADS, smem, kd_cu_stream()>>>(*a);
    KD_CU_LAUNCH();
    return KD_CUDA_OK;
}

template <typename T>
kd_cuda_result dispatch(const kd_attention_args *a, int bwd)
{
    switch (a->dim) {
    case 32: return bwd ? launch_bwd<T, 32>(a) : launch_fwd<T, 32>(a);
    case 64: return bwd ? launch_bwd<T, 64>(a) : launch_fwd<T, 64>(a);
    default: return bwd ? launch_bwd<T, 128>(a) : launch_fwd<T, 128>(a);
    }
}

kd_cuda_result check(const kd_attention_args *a, int bwd)
{
    if (a->batch < 0 || a->heads < 0 || a->tq < 0 || a->tk < 0 || a->dim < 0)
        return kd_cuda_fail(KD_CUDA_ERR_SHAPE, "%s:%d: attention: negative size (batch %lld, heads %lld, tq %lld, tk %lld, dim %lld)",
                       __FILE__, __LINE__, (long long)a->batch, (long long)a->heads, (long long)a->tq,
                       (long long)a->tk, (long long)a->dim);
    if (!kd_cuda_flash_supported(a))
        return kd_cuda_fail(KD_CUDA_ERR_ARG, "%s:%d: flash attention: head dim %lld (expected 32, 64 or 128) or batch*heads %lld, "
                       "tq %lld, tk %lld beyond the launch grid", __FILE__, __LINE__, (long long)a->dim,
                       (long long)(a->batch * a->heads), (long long)a->tq, (long long)a->tk);
    if (bwd && (!a->o || !a->lse || !a->d_o || !a->dq || !a->dk || !a->dv))
        return kd_cuda_fail(KD_CUDA_ERR_ARG, "%s:%d: flash attention backward needs o and lse from the forward, d_o, dq, dk, dv",
                       __FILE__, __LINE__);
    return KD_CUDA_OK;
}

/* The empty cases: nothing to compute, but a forward over zero keys still defines O = 0, lse = -inf. */
int empty(const kd_attention_args *a) { return a->batch * a->heads * a->tq == 0 || a->tk == 0; }

__global__ void fa_empty_rows(kd_attention_args a)
{
    int64_t n = a.batch * a.heads * a.tq;
    for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < n; r += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = r % a.tq, bh = r / a.tq, b = bh / a.heads, h = bh % a.heads;
        float *o = (float *)a.o + b * a.o_sb + i * a.o_st + h * a.o_sh;
        for (int64_t d = 0; d < a.dim; d++) o[d] = 0.0f;
        ((float *)a.lse)[r] = FA_NEG_INF;
    }
}

kd_cuda_result run(const kd_attention_args *a, int bf16, int bwd)
{
    if (empty(a)) {
        if (bwd || a->batch * a->heads * a->tq <= 0) return KD_CUDA_OK;
        unsigned nb = kd_cu_blocks(a->batch * a->heads * a->tq, 256);
        fa_empty_rows<<<nb > 4096u ? 4096u : nb, 256, 0, kd_cu_stream()>>>(*a);
        KD_CU_LAUNCH();
        return KD_CUDA_OK;
    }
    kd_cuda_result st = check(a, bwd);
    if (st != KD_CUDA_OK) return st;
    return bf16 ? dispatch<uint16_t>(a, bwd) : dispatch<float>(a, bwd);
}

} /* namespace */

extern "C" int kd_cuda_flash_supported(const kd_attention_args *a)
{
    int64_t gx, gy;
    if (!kd_fa_supported_dim(a->dim) || a->batch < 1 || a->heads < 1 || a->tq < 1 || a->tk < 1) return 0;
    return kd_fa_grid(a->batch * a->heads, a->tq, kd_fa_bq((int)a->dim), &gx, &gy) &&
           kd_fa_grid(a->batch * a->heads, a->tk, BK, &gx, &gy);
}

extern "C" kd_cuda_result kd_cuda_flash_attention_f32(const kd_attention_args *a) { return run(a, 0, 0); }
extern "C" kd_cuda_result kd_cuda_flash_attention_bwd_f32(const kd_attention_args *a) { return run(a, 0, 1); }
extern "C" kd_cuda_result kd_cuda_flash_attention_bf16(const kd_attention_args *a) { return run(a, 1, 0); }
extern "C" kd_cuda_result kd_cuda_flash_attention_bwd_bf16(const kd_attention_args *a) { return run(a, 1, 1); }

/* The table entries: tiled where the head dim allows (and, backward, where the forward's O and lse are
 * at hand), per-row otherwise. Errors go to the sticky status (kd_cuda_status()). */
extern "C" void kd_cu_attention(const kd_attention_args *a, int ith, int nth)
{
    (void)ith; (void)nth;
    if (kd_cuda_flash_supported(a) || empty(a)) kd_cuda_note(run(a, 0, 0));
    else kd_cu_attention_rows(a);
}

extern "C" void kd_cu_attention_bwd(const kd_attention_args *a, int ith, int nth)
{
    (void)ith; (void)nth;
    if (empty(a)) return;
    if (kd_cuda_flash_supported(a) && a->o && a->lse) kd_cuda_note(run(a, 0, 1));
    else kd_cu_attention_rows_bwd(a);
}
