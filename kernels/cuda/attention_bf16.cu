/* kernels/cuda/attention_bf16.cu — attention on bf16 storage (kernels/kernels.h's bf16 tables): q, k, v, o,
 * d_o, dq, dk, dv bf16; mask and lse f32. Head dims 32, 64, 128 run on tensor cores (mma.sync m16n8k16,
 * bf16 in, f32 accumulate; FlashAttention-2 schedule); every other head dim up to 512 runs a simple
 * one-warp-per-row kernel that converts on load and computes in f32 on the CUDA cores.
 *
 * Forward, one block of 4 warps per (b, h, 64 query rows), each warp 16 rows, keys in tiles of 64:
 *   S = scale Q K_j^T + mask_j;  m' = max(m, rowmax S);  P = exp(S - m');  l = l e^(m - m') + rowsum P;
 *   O = O e^(m - m') + bf16(P * keep) V_j;  lse = m + log l, O = bf16(O / l) once at the end.
 * The running max and sum stay f32; l sums the undropped P (softmax, then dropout). As in
 * attention_flash.cu: a row with every key at -inf gives O = 0, lse = -inf; when m + log l rounds back
 * to m (every key under a -FLT_MAX mask) the reference's P = e^(S - lse) is 1 per key, so O is not
 * divided by l. Fragments (m16n8k16, PTX ISA "Matrix fragments for mma.m16n8k16"): lane = 4 g + t; an
 * accumulator holds rows g, g + 8 and columns 2t, 2t + 1 of its 16 x 8 tile, which is also the A
 * operand's layout, so P goes from the S accumulators to the PV product without shared memory.
 *
 * Backward, one block of 4 warps per (b, h, 64 keys), each warp 16 keys, query rows in tiles of BQ:
 *   S^T = K Q^T;  P^T = exp(S^T scale + mask - lse);  dV += bf16(P^T keep) dO;  dP^T = V dO^T;
 *   dS^T = scale P^T (dP^T keep - D) with D_i = dO_i . O_i (precomputed, f32);  dK += bf16(dS^T) Q;
 *   dQ += bf16(dS) K, which sums over the key blocks: f32 atomics into a zeroed f32 scratch (the runtime
 *   workspace), added to the bf16 dq once by a last kernel. dK and dV live in f32 registers and are
 *   added to the bf16 outputs once: out = bf16(f32(out) + g).
 *
 * Shared tiles are bf16 rows of D + 8 elements: 16-byte aligned rows for cp.async and ldmatrix, and a
 * pitch of 16 mod 128 bytes, so the 8 row addresses of one ldmatrix matrix hit distinct banks. */
#include <math.h>

#include <cuda_bf16.h>

#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/attention_plan.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/philox.h"

namespace {

constexpr int WARPS = 4, THREADS = 32 * WARPS;
constexpr int BM = 64;        /* forward: query rows per block (16 per warp) */
constexpr int BN = 64;        /* keys per tile (forward), per block (backward; 16 per warp) */
constexpr int PS = BN + 8;    /* pitch of the backward's dS tile [query][key] */
constexpr int SIMPLE_MAX_DIM = 512;
constexpr float L2E = 1.4426950408889634f;
#define B16_NEG_INF (-__int_as_float(0x7f800000))

/* bf16 bits <-> f32; f32 -> bf16 rounds to nearest even, NaN stays NaN, overflow gives Inf (bf16.h). */
__device__ __forceinline__ float ldf(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }
__device__ __forceinline__ uint16_t rnd(float f) { return __bfloat16_as_ushort(__float2bfloat16_rn(f)); }
/* Two f32 as a bf16x2 register: lo in bits 0..15 (the lower column of an mma fragment pair). */
__device__ __forceinline__ uint32_t pack2(float lo, float hi)
{
    return (uint32_t)rnd(lo) | ((uint32_t)rnd(hi) << 16);
}

__device__ __forceinline__ uint32_t smem_u32(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void cp16(uint32_t s, const void *g)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(g));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldsm_x4(uint32_t r[4], const uint16_t *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], const uint16_t *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_u32(p)));
}

/* d += a b, a 16 x 16 bf16 (row), b 16 x 8 bf16 (col), d 16 x 8 f32. */
__device__ __forceinline__ void mma(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* ldmatrix lane addresses for a 16 x 16 block at (r0, c0) of a row-major tile of pitch `pitch`:
 *   a_addr: the A operand (matrices: rows +0/+8 by lane bit 3, columns +0/+8 by lane bit 4);
 *   b_addr: two B operands n-blocks from rows r0.. (n) and columns c0.. (k): rows +8 by lane bit 4,
 *           columns +8 by lane bit 3, so r[0], r[1] are n-block 0's b0b1, b2b3 and r[2], r[3] n-block 1's;
 *   a_addr with .trans is the same two-n-block B operand of a row-major [k][n] tile (V, dO, Q, K). */
__device__ __forceinline__ const uint16_t *a_addr(const uint16_t *s, int pitch, int r0, int c0, int lane)
{
    return s + (r0 + (lane & 7) + ((lane >> 3) & 1) * 8) * pitch + c0 + (lane >> 4) * 8;
}
__device__ __forceinline__ const uint16_t *b_addr(const uint16_t *s, int pitch, int r0, int c0, int lane)
{
    return s + (r0 + (lane & 7) + (lane >> 4) * 8) * pitch + c0 + ((lane >> 3) & 1) * 8;
}

/* rows x D tile of a [.., t, .., D] bf16 operand into shared memory (pitch D + 8); rows at or past `len`
 * are zero (a padded V row must be 0, not garbage, since 0 * NaN is NaN). vec: 16-byte cp.async (the
 * caller checked alignment); the caller commits and waits. */
template <int D>
__device__ __forceinline__ void load_tile(uint16_t *s, const uint16_t *base, int64_t st, int64_t r0, int64_t len,
                                          int rows, bool vec)
{
    constexpr int PT = D + 8, CH = D / 8;
    if (vec) {
        for (int c = threadIdx.x; c < rows * CH; c += THREADS) {
            const int r = c / CH, k = (c % CH) * 8;
            uint16_t *dst = s + r * PT + k;
            const int64_t i = r0 + r;
            if (i < len) cp16(smem_u32(dst), base + i * st + k);
            else *(uint4 *)dst = make_uint4(0u, 0u, 0u, 0u);
        }
    } else {
        for (int e = threadIdx.x; e < rows * D; e += THREADS) {
            const int r = e / D, d = e % D;
            const int64_t i = r0 + r;
            s[r * PT + d] = i < len ? base[i * st + d] : (uint16_t)0;
        }
    }
}

template <int D>
__global__ void __launch_bounds__(THREADS) fwd_mma_kernel(kd_attention_args a, int vec)
{
    constexpr int PT = D + 8, KS = D / 16, NB = BN / 8, ND = D / 8;
    extern __shared__ __align__(16) uint16_t sm[];
    uint16_t *sQ = sm, *sK = sQ + BM * PT, *sV = sK + BN * PT;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, tg = lane & 3;
    const int64_t bh = blockIdx.x, b = bh / a.heads, h = bh % a.heads, q0 = (int64_t)blockIdx.y * BM;
    const uint16_t *Q = (const uint16_t *)a.q + b * a.q_sb + h * a.q_sh;
    const uint16_t *K = (const uint16_t *)a.k + b * a.k_sb + h * a.k_sh;
    const uint16_t *V = (const uint16_t *)a.v + b * a.v_sb + h * a.v_sh;
    const float *mask = a.mask ? (const float *)a.mask + b * a.mask_sb : nullptr;
    const float scale = (float)a.scale;
    const bool drop = a.dropout_p > 0.0;
    kd_cu_keeper kp = kd_cu_make_keeper(a.seed, a.dropout_p);
    const int64_t rows[2] = { q0 + w * 16 + g, q0 + w * 16 + g + 8 };

    load_tile<D>(sQ, Q, a.q_st, q0, a.tq, BM, vec);
    cp_commit();
    cp_wait<0>();
    __syncthreads();
    uint32_t qf[KS][4];
#pragma unroll
    for (int kk = 0; kk < KS; kk++) ldsm_x4(qf[kk], a_addr(sQ, PT, w * 16, kk * 16, lane));

    float o[ND][4], m[2] = { B16_NEG_INF, B16_NEG_INF }, l[2] = { 0.0f, 0.0f };
#pragma unroll
    for (int n = 0; n < ND; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;

    for (int64_t k0 = 0; k0 < a.tk; k0 += BN) {
        __syncthreads();   /* every warp is done with the previous K and V tiles */
        load_tile<D>(sK, K, a.k_st, k0, a.tk, BN, vec);
        cp_commit();
        load_tile<D>(sV, V, a.v_st, k0, a.tk, BN, vec);
        cp_commit();
        cp_wait<1>();      /* K landed (V may still be in flight) */
        __syncthreads();

        float s[NB][4];
#pragma unroll
        for (int n = 0; n < NB; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < KS; kk++)
#pragma unroll
            for (int np = 0; np < NB / 2; np++) {
                uint32_t r[4];
                ldsm_x4(r, b_addr(sK, PT, np * 16, kk * 16, lane));
                mma(s[2 * np], qf[kk], r[0], r[1]);
                mma(s[2 * np + 1], qf[kk], r[2], r[3]);
            }

        /* element c of n-block n: row rows[c >> 1], key k0 + 8 n + 2 tg + (c & 1) */
        float mx[2] = { B16_NEG_INF, B16_NEG_INF };
#pragma unroll
        for (int n = 0; n < NB; n++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                const int64_t kj = k0 + 8 * n + 2 * tg + (c & 1);
                float v = B16_NEG_INF;
                if (kj < a.tk) v = s[n][c] * scale + (mask ? mask[kj] : 0.0f);
                s[n][c] = v;
                mx[c >> 1] = fmaxf(mx[c >> 1], v);
            }
        float mu[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            /* the 4 lanes of a quad hold one row's 64 keys */
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            const float mn = fmaxf(m[r], mx[r]);
            mu[r] = mn == B16_NEG_INF ? 0.0f : mn;   /* all -inf so far: P = 0, not NaN */
            const float alpha = exp2f((m[r] - mu[r]) * L2E);
            m[r] = mn;
            l[r] *= alpha;   /* l is this lane's share of the row sum; the quad adds it up at the end */
#pragma unroll
            for (int n = 0; n < ND; n++) {
                o[n][2 * r] *= alpha;
                o[n][2 * r + 1] *= alpha;
            }
        }
#pragma unroll
        for (int n = 0; n < NB; n++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                float p = exp2f((s[n][c] - mu[c >> 1]) * L2E);
                l[c >> 1] += p;
                if (drop && p != 0.0f && rows[c >> 1] < a.tq)
                    p *= kp.keep(kd_fa_counter(a.offset, b, h, a.heads, a.tq, a.tk, rows[c >> 1], k0 + 8 * n + 2 * tg + (c & 1)));
                s[n][c] = p;
            }

        cp_wait<0>();
        __syncthreads();   /* V landed */
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            const uint32_t pa[4] = { pack2(s[2 * kk][0], s[2 * kk][1]), pack2(s[2 * kk][2], s[2 * kk][3]),
                                     pack2(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack2(s[2 * kk + 1][2], s[2 * kk + 1][3]) };
#pragma unroll
            for (int np = 0; np < ND / 2; np++) {
                uint32_t r[4];
                ldsm_x4_t(r, a_addr(sV, PT, kk * 16, np * 16, lane));
                mma(o[2 * np], pa, r[0], r[1]);
                mma(o[2 * np + 1], pa, r[2], r[3]);
            }
        }
    }

#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        const int64_t qi = rows[r];
        if (qi >= a.tq) continue;
        /* l = 0 only for a row of -inf; a NaN score makes l, and so lse and O, NaN */
        const float lse = l[r] != 0.0f ? m[r] + logf(l[r]) : B16_NEG_INF;
        const float inv = l[r] != 0.0f ? (lse == m[r] ? 1.0f : 1.0f / l[r]) : 0.0f;
        uint16_t *orow = (uint16_t *)a.o + b * a.o_sb + qi * a.o_st + h * a.o_sh;
#pragma unroll
        for (int n = 0; n < ND; n++) {
            orow[8 * n + 2 * tg] = rnd(o[n][2 * r] * inv);
            orow[8 * n + 2 * tg + 1] = rnd(o[n][2 * r + 1] * inv);
        }
        if (tg == 0) ((float *)a.lse)[bh * a.tq + qi] = lse;
    }
}

/* Query rows per backward tile: 64, or 32 at D = 128 (registers: dK and dV are 2 x 64 f32 per lane). */
__host__ __device__ constexpr int bwd_bq(int d) { return d > 64 ? 32 : 64; }

template <int D>
__global__ void __launch_bounds__(THREADS) bwd_mma_kernel(kd_attention_args a, const float *Dv, float *dqacc, int vec)
{
    constexpr int BQ = bwd_bq(D), PT = D + 8, KS = D / 16, NQ = BQ / 8, ND = D / 8;
    /* dQ = dS K: warp w takes query rows 16 (w % RG) and dims [DW (w / RG), DW (w / RG + 1)) */
    constexpr int RG = BQ / 16, DW = D / (WARPS / RG);
    extern __shared__ __align__(16) uint16_t sm[];
    uint16_t *sK = sm, *sV = sK + BN * PT, *sQ = sV + BN * PT, *sdO = sQ + BQ * PT, *sdS = sdO + BQ * PT;
    float *sL = (float *)(sdS + BQ * PS), *sD = sL + BQ;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, tg = lane & 3;
    const int64_t bh = blockIdx.x, b = bh / a.heads, h = bh % a.heads, k0 = (int64_t)blockIdx.y * BN;
    const uint16_t *Q = (const uint16_t *)a.q + b * a.q_sb + h * a.q_sh;
    const uint16_t *K = (const uint16_t *)a.k + b * a.k_sb + h * a.k_sh;
    const uint16_t *V = (const uint16_t *)a.v + b * a.v_sb + h * a.v_sh;
    const uint16_t *dO = (const uint16_t *)a.d_o + b * a.o_sb + h * a.o_sh;
    const float *lse = (const float *)a.lse + bh * a.tq;
    const float *Drow = Dv + bh * a.tq;
    const float *mask = a.mask ? (const float *)a.mask + b * a.mask_sb : nullptr;
    const float scale = (float)a.scale;
    const bool drop = a.dropout_p > 0.0;
    kd_cu_keeper kp = kd_cu_make_keeper(a.seed, a.dropout_p);

    load_tile<D>(sK, K, a.k_st, k0, a.tk, BN, vec);
    load_tile<D>(sV, V, a.v_st, k0, a.tk, BN, vec);
    cp_commit();
    /* this lane's two keys (accumulator rows g, g + 8 of the warp's 16) and their mask, -inf past tk */
    const int64_t keys[2] = { k0 + w * 16 + g, k0 + w * 16 + g + 8 };
    float mk[2];
#pragma unroll
    for (int r = 0; r < 2; r++) mk[r] = keys[r] < a.tk ? (mask ? mask[keys[r]] : 0.0f) : B16_NEG_INF;

    float dk[ND][4], dv[ND][4];
#pragma unroll
    for (int n = 0; n < ND; n++)
#pragma unroll
        for (int c = 0; c < 4; c++) dk[n][c] = dv[n][c] = 0.0f;

    for (int64_t q0 = 0; q0 < a.tq; q0 += BQ) {
        __syncthreads();   /* every warp is done with the previous Q, dO, dS, lse, D */
        load_tile<D>(sQ, Q, a.q_st, q0, a.tq, BQ, vec);
        load_tile<D>(sdO, dO, a.o_st, q0, a.tq, BQ, vec);
        cp_commit();
        for (int r = threadIdx.x; r < BQ; r += THREADS) {
            const int64_t qi = q0 + r;
            sL[r] = qi < a.tq ? lse[qi] : B16_NEG_INF;
            sD[r] = qi < a.tq ? Drow[qi] : 0.0f;
        }
        cp_wait<0>();
        __syncthreads();

        /* S^T = K Q^T and dP^T = V dO^T: 16 keys x BQ queries per warp */
        float st[NQ][4], dp[NQ][4];
#pragma unroll
        for (int n = 0; n < NQ; n++)
#pragma unroll
            for (int c = 0; c < 4; c++) st[n][c] = dp[n][c] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < KS; kk++) {
            uint32_t ka[4], va[4];
            ldsm_x4(ka, a_addr(sK, PT, w * 16, kk * 16, lane));
            ldsm_x4(va, a_addr(sV, PT, w * 16, kk * 16, lane));
#pragma unroll
            for (int np = 0; np < NQ / 2; np++) {
                uint32_t r[4];
                ldsm_x4(r, b_addr(sQ, PT, np * 16, kk * 16, lane));
                mma(st[2 * np], ka, r[0], r[1]);
                mma(st[2 * np + 1], ka, r[2], r[3]);
                ldsm_x4(r, b_addr(sdO, PT, np * 16, kk * 16, lane));
                mma(dp[2 * np], va, r[0], r[1]);
                mma(dp[2 * np + 1], va, r[2], r[3]);
            }
        }

        /* element c of n-block n: key keys[c >> 1], query q0 + 8 n + 2 tg + (c & 1).
         * st becomes P' = P keep (for dV), dp becomes dS = scale P (dP keep - D) (for dK, dQ). */
#pragma unroll
        for (int n = 0; n < NQ; n++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                const int col = 8 * n + 2 * tg + (c & 1);
                const int64_t qi = q0 + col;
                const float lq = sL[col];
                float p = 0.0f, keep = 1.0f;
                /* lse = -inf: a fully masked row, P = 0 (exp(-inf - -inf) would be NaN) */
                if (qi < a.tq && lq != B16_NEG_INF && mk[c >> 1] != B16_NEG_INF)
                    p = exp2f((st[n][c] * scale + mk[c >> 1] - lq) * L2E);
                if (drop && p != 0.0f)
                    keep = kp.keep(kd_fa_counter(a.offset, b, h, a.heads, a.tq, a.tk, qi, keys[c >> 1]));
                st[n][c] = p * keep;
                dp[n][c] = p * (dp[n][c] * keep - sD[col]) * scale;
            }

        /* dV += P'^T dO, dK += dS^T Q (A operands from the accumulators, over BQ queries) */
#pragma unroll
        for (int kk = 0; kk < BQ / 16; kk++) {
            const uint32_t pa[4] = { pack2(st[2 * kk][0], st[2 * kk][1]), pack2(st[2 * kk][2], st[2 * kk][3]),
                                     pack2(st[2 * kk + 1][0], st[2 * kk + 1][1]), pack2(st[2 * kk + 1][2], st[2 * kk + 1][3]) };
            const uint32_t sa[4] = { pack2(dp[2 * kk][0], dp[2 * kk][1]), pack2(dp[2 * kk][2], dp[2 * kk][3]),
                                     pack2(dp[2 * kk + 1][0], dp[2 * kk + 1][1]), pack2(dp[2 * kk + 1][2], dp[2 * kk + 1][3]) };
#pragma unroll
            for (int np = 0; np < ND / 2; np++) {
                uint32_t r[4];
                ldsm_x4_t(r, a_addr(sdO, PT, kk * 16, np * 16, lane));
                mma(dv[2 * np], pa, r[0], r[1]);
                mma(dv[2 * np + 1], pa, r[2], r[3]);
                ldsm_x4_t(r, a_addr(sQ, PT, kk * 16, np * 16, lane));
                mma(dk[2 * np], sa, r[0], r[1]);
                mma(dk[2 * np + 1], sa, r[2], r[3]);
            }
        }

        /* dS to shared memory as [query][key] (bf16, the same values dK used) for dQ = dS K */
#pragma unroll
        for (int n = 0; n < NQ; n++)
#pragma unroll
            for (int c = 0; c < 4; c++) sdS[(8 * n + 2 * tg + (c & 1)) * PS + w * 16 + g + 8 * (c >> 1)] = rnd(dp[n][c]);
        __syncthreads();

        const int rg = w % RG, d0 = DW * (w / RG);
        float dq[DW / 8][4];
#pragma unroll
        for (int n = 0; n < DW / 8; n++) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            uint32_t af[4];
            ldsm_x4(af, a_addr(sdS, PS, rg * 16, kk * 16, lane));
#pragma unroll
            for (int np = 0; np < DW / 16; np++) {
                uint32_t r[4];
                ldsm_x4_t(r, a_addr(sK, PT, kk * 16, d0 + np * 16, lane));
                mma(dq[2 * np], af, r[0], r[1]);
                mma(dq[2 * np + 1], af, r[2], r[3]);
            }
        }
#pragma unroll
        for (int n = 0; n < DW / 8; n++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                const int64_t qi = q0 + rg * 16 + g + 8 * (c >> 1);
                if (qi < a.tq && dq[n][c] != 0.0f)
                    atomicAdd(dqacc + (bh * a.tq + qi) * D + d0 + 8 * n + 2 * tg + (c & 1), dq[n][c]);
            }
    }

    uint16_t *dK = (uint16_t *)a.dk + b * a.k_sb + h * a.k_sh, *dV = (uint16_t *)a.dv + b * a.v_sb + h * a.v_sh;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int64_t kj = keys[r];
        if (kj >= a.tk) continue;
        uint16_t *krow = dK + kj * a.k_st, *vrow = dV + kj * a.v_st;
#pragma unroll
        for (int n = 0; n < ND; n++)
#pragma unroll
            for (int c = 0; c < 2; c++) {
                const int d = 8 * n + 2 * tg + c;
                krow[d] = rnd(ldf(krow[d]) + dk[n][2 * r + c]);
                vrow[d] = rnd(ldf(vrow[d]) + dv[n][2 * r + c]);
            }
    }
}

/* Sum over a warp, every lane gets it. */
__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Backward prologue, one warp per (b, h, i): D_i = dO_i . O_i in f32; the dQ scratch rows zeroed. */
__global__ void bwd_prep_kernel(kd_attention_args a, float *Dv, float *dqacc)
{
    const int lane = threadIdx.x & 31;
    const int64_t n = a.batch * a.heads * a.tq;
    for (int64_t row = (int64_t)blockIdx.x * WARPS + (threadIdx.x >> 5); row < n; row += (int64_t)gridDim.x * WARPS) {
        const int64_t i = row % a.tq, bh = row / a.tq, b = bh / a.heads, h = bh % a.heads;
        const int64_t off = b * a.o_sb + i * a.o_st + h * a.o_sh;
        const uint16_t *o = (const uint16_t *)a.o + off, *go = (const uint16_t *)a.d_o + off;
        float s = 0.0f;
        for (int64_t d = lane; d < a.dim; d += 32) s = fmaf(ldf(go[d]), ldf(o[d]), s);
        s = warp_sum(s);
        if (lane == 0) Dv[row] = s;
        if (dqacc)
            for (int64_t d = lane; d < a.dim; d += 32) dqacc[row * a.dim + d] = 0.0f;
    }
}

/* dq = bf16(f32(dq) + dQ scratch), once per element. */
__global__ void dq_finish_kernel(kd_attention_args a, const float *dqacc)
{
    const int64_t n = a.batch * a.heads * a.tq * a.dim;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t d = e % a.dim, row = e / a.dim, i = row % a.tq, bh = row / a.tq, b = bh / a.heads, h = bh % a.heads;
        uint16_t *p = (uint16_t *)a.dq + b * a.q_sb + i * a.q_st + h * a.q_sh + d;
        *p = rnd(ldf(*p) + dqacc[e]);
    }
}

/* ---- any head dim up to SIMPLE_MAX_DIM: one warp per row, f32 on the CUDA cores, rows in shared memory ---- */

__device__ __forceinline__ float dot_row(const float *x, const uint16_t *y, int64_t dim, int lane)
{
    float s = 0.0f;
    for (int64_t d = lane; d < dim; d += 32) s = fmaf(x[d], ldf(y[d]), s);
    return warp_sum(s);
}

/* Forward, one warp per query row with an online softmax over single keys; x (the q row) and acc (O) in
 * shared memory, lane-owned dims d = lane + 32 e. */
__global__ void fwd_simple_kernel(kd_attention_args a)
{
    extern __shared__ float fs[];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    float *x = fs + (size_t)w * 2 * a.dim, *acc = x + a.dim;
    const int64_t n = a.batch * a.heads * a.tq;
    const float scale = (float)a.scale;
    kd_cu_keeper kp = kd_cu_make_keeper(a.seed, a.dropout_p);
    for (int64_t row = (int64_t)blockIdx.x * WARPS + w; row < n; row += (int64_t)gridDim.x * WARPS) {
        const int64_t i = row % a.tq, bh = row / a.tq, b = bh / a.heads, h = bh % a.heads;
        const uint16_t *q = (const uint16_t *)a.q + b * a.q_sb + i * a.q_st + h * a.q_sh;
        __syncwarp();   /* the previous row's reads of x are done */
        for (int64_t d = lane; d < a.dim; d += 32) {
            x[d] = ldf(q[d]);
            acc[d] = 0.0f;
        }
        __syncwarp();
        float m = B16_NEG_INF, l = 0.0f;
        for (int64_t j = 0; j < a.tk; j++) {
            const uint16_t *k = (const uint16_t *)a.k + b * a.k_sb + j * a.k_st + h * a.k_sh;
            const uint16_t *v = (const uint16_t *)a.v + b * a.v_sb + j * a.v_st + h * a.v_sh;
            const float s = dot_row(x, k, a.dim, lane) * scale + (a.mask ? ((const float *)a.mask)[b * a.mask_sb + j] : 0.0f);
            const float mn = fmaxf(m, s), mu = mn == B16_NEG_INF ? 0.0f : mn;
            const float alpha = expf(m - mu);
            float p = expf(s - mu);
            l = l * alpha + p;
            m = mn;
            if (a.dropout_p > 0.0 && p != 0.0f) p *= kp.keep(kd_fa_counter(a.offset, b, h, a.heads, a.tq, a.tk, i, j));
            for (int64_t d = lane; d < a.dim; d += 32) acc[d] = acc[d] * alpha + p * ldf(v[d]);
        }
        const float lse = l != 0.0f ? m + logf(l) : B16_NEG_INF;
        const float inv = l != 0.0f ? (lse == m ? 1.0f : 1.0f / l) : 0.0f;
        uint16_t *o = (uint16_t *)a.o + b * a.o_sb + i * a.o_st + h * a.o_sh;
        for (int64_t d = lane; d < a.dim; d += 32) o[d] = rnd(acc[d] * inv);
        if (lane == 0) ((float *)a.lse)[row] = lse;
    }
}

/* P_ij and the dropout keep-scale, recomputed from lse as the tiled backward does. */
__device__ __forceinline__ float simple_p(const kd_attention_args &a, float s_scaled_masked, float lse)
{
    if (lse == B16_NEG_INF || s_scaled_masked == B16_NEG_INF) return 0.0f;
    return expf(s_scaled_masked - lse);
}

/* dQ, one warp per query row i: dq_i += sum_j scale P_ij (dP_ij keep - D_i) k_j. */
__global__ void bwd_simple_dq_kernel(kd_attention_args a, const float *Dv)
{
    extern __shared__ float fs[];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    float *x = fs + (size_t)w * 3 * a.dim, *go = x + a.dim, *acc = go + a.dim;
    const int64_t n = a.batch * a.heads * a.tq;
    const float scale = (float)a.scale;
    kd_cu_keeper kp = kd_cu_make_keeper(a.seed, a.dropout_p);
    for (int64_t row = (int64_t)blockIdx.x * WARPS + w; row < n; row += (int64_t)gridDim.x * WARPS) {
        const int64_t i = row % a.tq, bh = row / a.tq, b = bh / a.heads, h = bh % a.heads;
        const uint16_t *q = (const uint16_t *)a.q + b * a.q_sb + i * a.q_st + h * a.q_sh;
        const uint16_t *dO = (const uint16_t *)a.d_o + b * a.o_sb + i * a.o_st + h * a.o_sh;
        __syncwarp();
        for (int64_t d = lane; d < a.dim; d += 32) {
            x[d] = ldf(q[d]);
            go[d] = ldf(dO[d]);
            acc[d] = 0.0f;
        }
        __syncwarp();
        const float lse = ((const float *)a.lse)[row], Di = Dv[row];
        for (int64_t j = 0; j < a.tk; j++) {
            const uint16_t *k = (const uint16_t *)a.k + b * a.k_sb + j * a.k_st + h * a.k_sh;
            const uint16_t *v = (const uint16_t *)a.v + b * a.v_sb + j * a.v_st + h * a.v_sh;
            const float mk = a.mask ? ((const float *)a.mask)[b * a.mask_sb + j] : 0.0f;
            const float p = simple_p(a, dot_row(x, k, a.dim, lane) * scale + mk, lse);
            if (p == 0.0f) continue;   /* the same on every lane */
            const float keep = a.dropout_p > 0.0 ? kp.keep(kd_fa_counter(a.offset, b, h, a.heads, a.tq, a.tk, i, j)) : 1.0f;
            const float ds = p * (dot_row(go, v, a.dim, lane) * keep - Di) * scale;
            for (int64_t d = lane; d < a.dim; d += 32) acc[d] = fmaf(ds, ldf(k[d]), acc[d]);
        }
        uint16_t *dq = (uint16_t *)a.dq + b * a.q_sb + i * a.q_st + h * a.q_sh;
        for (int64_t d = lane; d < a.dim; d += 32) dq[d] = rnd(ldf(dq[d]) + acc[d]);
    }
}

/* dK, dV, one warp per key row j: dv_j += sum_i P'_ij dO_i;  dk_j += sum_i scale P_ij (dP_ij keep - D_i) q_i. */
__global__ void bwd_simple_dkv_kernel(kd_attention_args a, const float *Dv)
{
    extern __shared__ float fs[];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    float *x = fs + (size_t)w * 4 * a.dim, *y = x + a.dim, *gk = y + a.dim, *gv = gk + a.dim;
    const int64_t n = a.batch * a.heads * a.tk;
    const float scale = (float)a.scale;
    kd_cu_keeper kp = kd_cu_make_keeper(a.seed, a.dropout_p);
    for (int64_t row = (int64_t)blockIdx.x * WARPS + w; row < n; row += (int64_t)gridDim.x * WARPS) {
        const int64_t j = row % a.tk, bh = row / a.tk, b = bh / a.heads, h = bh % a.heads;
        const uint16_t *k = (const uint16_t *)a.k + b * a.k_sb + j * a.k_st + h * a.k_sh;
        const uint16_t *v = (const uint16_t *)a.v + b * a.v_sb + j * a.v_st + h * a.v_sh;
        __syncwarp();
        for (int64_t d = lane; d < a.dim; d += 32) {
            x[d] = ldf(k[d]);
            y[d] = ldf(v[d]);
            gk[d] = gv[d] = 0.0f;
        }
        __syncwarp();
        const float mk = a.mask ? ((const float *)a.mask)[b * a.mask_sb + j] : 0.0f;
        for (int64_t i = 0; i < a.tq; i++) {
            const uint16_t *q = (const uint16_t *)a.q + b * a.q_sb + i * a.q_st + h * a.q_sh;
            const uint16_t *dO = (const uint16_t *)a.d_o + b * a.o_sb + i * a.o_st + h * a.o_sh;
            const float lse = ((const float *)a.lse)[bh * a.tq + i];
            const float p = simple_p(a, dot_row(x, q, a.dim, lane) * scale + mk, lse);
            if (p == 0.0f) continue;
            const float keep = a.dropout_p > 0.0 ? kp.keep(kd_fa_counter(a.offset, b, h, a.heads, a.tq, a.tk, i, j)) : 1.0f;
            const float ds = p * (dot_row(y, dO, a.dim, lane) * keep - Dv[bh * a.tq + i]) * scale;
            const float pk = p * keep;
            for (int64_t d = lane; d < a.dim; d += 32) {
                gk[d] = fmaf(ds, ldf(q[d]), gk[d]);
                gv[d] = fmaf(pk, ldf(dO[d]), gv[d]);
            }
        }
        uint16_t *dk = (uint16_t *)a.dk + b * a.k_sb + j * a.k_st + h * a.k_sh;
        uint16_t *dv = (uint16_t *)a.dv + b * a.v_sb + j * a.v_st + h * a.v_sh;
        for (int64_t d = lane; d < a.dim; d += 32) {
            dk[d] = rnd(ldf(dk[d]) + gk[d]);
            dv[d] = rnd(ldf(dv[d]) + gv[d]);
        }
    }
}

/* O = 0, lse = -inf for every row: the forward over zero keys. */
__global__ void empty_rows_kernel(kd_attention_args a)
{
    const int64_t n = a.batch * a.heads * a.tq;
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < n; r += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = r % a.tq, bh = r / a.tq, b = bh / a.heads, h = bh % a.heads;
        uint16_t *o = (uint16_t *)a.o + b * a.o_sb + i * a.o_st + h * a.o_sh;
        for (int64_t d = 0; d < a.dim; d++) o[d] = 0;
        ((float *)a.lse)[r] = B16_NEG_INF;
    }
}

/* ---- host side ---- */

size_t fwd_smem(int d) { return (size_t)(BM + 2 * BN) * (size_t)(d + 8) * 2; }
size_t bwd_smem(int d)
{
    const size_t bq = (size_t)bwd_bq(d);
    return (2 * (size_t)BN + 2 * bq) * (size_t)(d + 8) * 2 + bq * PS * 2 + 2 * bq * sizeof(float);
}

/* Grid for grid-stride kernels over n rows (WARPS per block) or elements. */
unsigned grid_for(int64_t n, int64_t per)
{
    unsigned nb = kd_cu_blocks(n, per);
    return nb > 65535u ? 65535u : nb;
}

/* cp.async needs 16-byte aligned sources: the base and every stride a multiple of 8 bf16. */
bool aligned16(const void *p, int64_t sb, int64_t st, int64_t sh)
{
    return ((uintptr_t)p & 15u) == 0 && sb % 8 == 0 && st % 8 == 0 && sh % 8 == 0;
}

/* The opt-in above 48 KiB of shared memory belongs to one device's copy of a kernel: set it again after a
 * device switch. */
template <typename K>
kd_cuda_result smem_optin(K kernel, size_t smem, int *attr_dev)
{
    if (smem <= 48u * 1024u) return KD_CUDA_OK;
    int dev = 0;
    KD_CU(cudaGetDevice(&dev));
    if (dev != *attr_dev) {
        KD_CU(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        *attr_dev = dev;
    }
    return KD_CUDA_OK;
}

template <int D>
kd_cuda_result launch_fwd(const kd_attention_args *a)
{
    static int attr_dev = -1;
    const size_t smem = fwd_smem(D);
    kd_cuda_result st = smem_optin(fwd_mma_kernel<D>, smem, &attr_dev);
    if (st != KD_CUDA_OK) return st;
    int64_t gx, gy;
    kd_fa_grid(a->batch * a->heads, a->tq, BM, &gx, &gy);
    const int vec = aligned16(a->q, a->q_sb, a->q_st, a->q_sh) && aligned16(a->k, a->k_sb, a->k_st, a->k_sh) &&
                    aligned16(a->v, a->v_sb, a->v_st, a->v_sh);
    fwd_mma_kernel<D><<<dim3((unsigned)gx, (unsigned)gy), THREADS, smem, kd_cu_stream()>>>(*a, vec);
    KD_CU_LAUNCH();
    return KD_CUDA_OK;
}

template <int D>
kd_cuda_result launch_bwd(const kd_attention_args *a, const float *Dv, float *dqacc)
{
    static int attr_dev = -1;
    const size_t smem = bwd_smem(D);
    kd_cuda_result st = smem_optin(bwd_mma_kernel<D>, smem, &attr_dev);
    if (st != KD_CUDA_OK) return st;
    int64_t gx, gy;
    kd_fa_grid(a->batch * a->heads, a->tk, BN, &gx, &gy);
    const int vec = aligned16(a->q, a->q_sb, a->q_st, a->q_sh) && aligned16(a->k, a->k_sb, a->k_st, a->k_sh) &&
                    aligned16(a->v, a->v_sb, a->v_st, a->v_sh) && aligned16(a->d_o, a->o_sb, a->o_st, a->o_sh);
    bwd_mma_kernel<D><<<dim3((unsigned)gx, (unsigned)gy), THREADS, smem, kd_cu_stream()>>>(*a, Dv, dqacc, vec);
    KD_CU_LAUNCH();
    return KD_CUDA_OK;
}

/* 1 when the tensor-core kernels take these args: head dim 32, 64, 128 and both grids within limits. */
int mma_ok(const kd_attention_args *a)
{
    int64_t gx, gy;
    return kd_fa_supported_dim(a->dim) && kd_fa_grid(a->batch * a->heads, a->tq, BM, &gx, &gy) &&
           kd_fa_grid(a->batch * a->heads, a->tk, BN, &gx, &gy);
}

kd_cuda_result check(const kd_attention_args *a, int bwd)
{
    if (a->batch < 0 || a->heads < 0 || a->tq < 0 || a->tk < 0 || a->dim < 0)
        return kd_cuda_fail(KD_CUDA_ERR_SHAPE, "%s:%d: attention (bf16): negative size (batch %lld, heads %lld, tq %lld, tk %lld, dim %lld)",
                       __FILE__, __LINE__, (long long)a->batch, (long long)a->heads, (long long)a->tq,
                       (long long)a->tk, (long long)a->dim);
    if (!kd_fa_supported_dim(a->dim) && a->dim > SIMPLE_MAX_DIM)
        return kd_cuda_fail(KD_CUDA_ERR_ARG, "%s:%d: attention (bf16): head dim %lld (expected 32, 64, 128 or at most %d)",
                       __FILE__, __LINE__, (long long)a->dim, SIMPLE_MAX_DIM);
    if (kd_fa_supported_dim(a->dim) && a->batch * a->heads * a->tq > 0 && a->tk > 0 && !mma_ok(a))
        return kd_cuda_fail(KD_CUDA_ERR_ARG, "%s:%d: attention (bf16): batch*heads %lld, tq %lld, tk %lld beyond the launch grid",
                       __FILE__, __LINE__, (long long)(a->batch * a->heads), (long long)a->tq, (long long)a->tk);
    if (!a->o || !a->lse || (a->tk > 0 && a->dim > 0 && (!a->q || !a->k || !a->v)))
        return kd_cuda_fail(KD_CUDA_ERR_ARG, "%s:%d: attention (bf16): q, k, v, o and lse are required", __FILE__, __LINE__);
    if (bwd && (!a->d_o || !a->dq || !a->dk || !a->dv))
        return kd_cuda_fail(KD_CUDA_ERR_ARG, "%s:%d: attention backward (bf16) needs o and lse from the forward, d_o, dq, dk, dv",
                       __FILE__, __LINE__);
    return KD_CUDA_OK;
}

kd_cuda_result run_fwd(const kd_attention_args *a)
{
    kd_cuda_result st = check(a, 0);
    if (st != KD_CUDA_OK) return st;
    const int64_t rows = a->batch * a->heads * a->tq;
    if (rows == 0) return KD_CUDA_OK;
    if (a->tk == 0) {   /* no keys: O = 0, lse = -inf */
        empty_rows_kernel<<<grid_for(rows, 256), 256, 0, kd_cu_stream()>>>(*a);
        KD_CU_LAUNCH();
        return KD_CUDA_OK;
    }
    switch (a->dim) {
    case 32: return launch_fwd<32>(a);
    case 64: return launch_fwd<64>(a);
    case 128: return launch_fwd<128>(a);
    default: break;
    }
    fwd_simple_kernel<<<grid_for(rows, WARPS), THREADS, (size_t)WARPS * 2 * (size_t)a->dim * sizeof(float), kd_cu_stream()>>>(*a);
    KD_CU_LAUNCH();
    return KD_CUDA_OK;
}

kd_cuda_result run_bwd(const kd_attention_args *a)
{
    kd_cuda_result st = check(a, 1);
    if (st != KD_CUDA_OK) return st;
    const int64_t rows = a->batch * a->heads * a->tq;
    if (rows == 0 || a->tk == 0 || a->dim == 0) return KD_CUDA_OK;   /* every gradient is 0: outputs unchanged */
    const bool tiled = kd_fa_supported_dim(a->dim);
    /* scratch: D (rows f32), then, tiled, the dQ sums (rows x dim f32) */
    const size_t d_bytes = ((size_t)rows * sizeof(float) + 255u) & ~(size_t)255u;
    const size_t bytes = d_bytes + (tiled ? (size_t)rows * (size_t)a->dim * sizeof(float) : 0);
    void *wsp = NULL;
    st = kd_cu_workspace(bytes, &wsp);
    if (st == KD_CUDA_ERR_NOMEM)
        return kd_cuda_note(kd_cuda_fail(KD_CUDA_ERR_NOMEM, "%s:%d: attention backward (bf16): no device memory for %zu bytes of scratch",
                                    __FILE__, __LINE__, bytes));
    if (st != KD_CUDA_OK) return st;   /* recorded by kd_cu_workspace */
    char *ws = (char *)wsp;
    float *Dv = (float *)ws, *dqacc = tiled ? (float *)(ws + d_bytes) : nullptr;
    bwd_prep_kernel<<<grid_for(rows, WARPS), THREADS, 0, kd_cu_stream()>>>(*a, Dv, dqacc);
    KD_CU_LAUNCH();
    if (tiled) {
        switch (a->dim) {
        case 32: st = launch_bwd<32>(a, Dv, dqacc); break;
        case 64: st = launch_bwd<64>(a, Dv, dqacc); break;
        default: st = launch_bwd<128>(a, Dv, dqacc); break;
        }
        if (st != KD_CUDA_OK) return st;
        dq_finish_kernel<<<grid_for(rows * a->dim, 256), 256, 0, kd_cu_stream()>>>(*a, dqacc);
        KD_CU_LAUNCH();
        return KD_CUDA_OK;
    }
    const size_t dim = (size_t)a->dim;
    bwd_simple_dq_kernel<<<grid_for(rows, WARPS), THREADS, WARPS * 3 * dim * sizeof(float), kd_cu_stream()>>>(*a, Dv);
    KD_CU_LAUNCH();
    bwd_simple_dkv_kernel<<<grid_for(a->batch * a->heads * a->tk, WARPS), THREADS, WARPS * 4 * dim * sizeof(float),
                            kd_cu_stream()>>>(*a, Dv);
    KD_CU_LAUNCH();
    return KD_CUDA_OK;
}

} /* namespace */

/* Table entries (bf16 storage): device pointers, ith/nth ignored, errors to the sticky status. */
extern "C" void kd_cu_attention_bf16(const kd_attention_args *a, int ith, int nth)
{
    (void)ith; (void)nth;
    kd_cuda_note(run_fwd(a));
}

extern "C" void kd_cu_attention_bwd_bf16(const kd_attention_args *a, int ith, int nth)
{
    (void)ith; (void)nth;
    kd_cuda_note(run_bwd(a));
}
