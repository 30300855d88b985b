/* kernels/cuda/gemm_plan.h — host-side GEMM tiling math shared by the CUDA GEMMs and tested on the CPU
 * (test/gpu/test_cuda_plan.c): launch grids, when 16-byte vector/cp.async loads are legal, the XOR
 * swizzle of shared-memory tiles, and bf16 rounding. Plain C; host+device under nvcc. */
#ifndef KD_CUDA_GEMM_PLAN_H
#define KD_CUDA_GEMM_PLAN_H

#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"

#ifdef __CUDACC__
#define KD_PLAN_HD __host__ __device__ __forceinline__
#else
#define KD_PLAN_HD static inline
#endif

/* Grid of bm x bn output tiles per batch entry: x over n, y over m, z over the batch. */
KD_PLAN_HD void kd_cu_gemm_grid(int64_t m, int64_t n, int64_t batch, int bm, int bn, int64_t *gx, int64_t *gy, int64_t *gz)
{
    *gx = (n + bn - 1) / bn;
    *gy = (m + bm - 1) / bm;
    *gz = batch;
}

/* 16-byte chunks along the contiguous dim of an operand are legal when the base is 16-byte aligned and
 * every row start (ld) and batch start (stride) is a whole number of chunks. vec = elements per chunk. */
static inline int kd_cu_operand_aligned(const void *p, int64_t ld, int64_t stride, int64_t batch, int vec)
{
    if (((uintptr_t)p % 16) != 0) return 0;
    if (ld % vec != 0) return 0;
    if (batch > 1 && stride % vec != 0) return 0;
    return 1;
}

static inline int kd_cu_gemm_aligned(const kd_gemm_args *g, int elem_bytes)
{
    int vec = 16 / elem_bytes;
    return kd_cu_operand_aligned(g->a, g->lda, g->stride_a, g->batch, vec) &&
           kd_cu_operand_aligned(g->b, g->ldb, g->stride_b, g->batch, vec);
}

/* XOR swizzle of 16-byte chunk `c` in row `r` of a tile with `cpr` chunks per row (cpr a power of two,
 * >= 2). ldmatrix and cp.async touch 8 rows at one logical chunk; without the swizzle rows that are 128
 * bytes apart hit the same banks. With it, the 8 rows land on 8 distinct 16-byte bank groups:
 *   cpr >= 8: rows differ in chunk bits 0..2 by r & 7
 *   cpr == 4: rows r and r+1 are 64 bytes apart already; r>>1 & 3 spreads the pairs
 *   cpr == 2: r>>2 & 1, likewise. */
KD_PLAN_HD int kd_cu_swz(int r, int c, int cpr)
{
    if (cpr >= 8) return c ^ (r & 7);
    if (cpr == 4) return c ^ ((r >> 1) & 3);
    if (cpr == 2) return c ^ ((r >> 2) & 1);
    return c;
}

/* The Hopper wgmma GEMM (gemm_wgmma.cu) takes K-major bf16 operands only: A stored m x k (no trans_a),
 * B stored n x k (trans_b), rows and batch strides whole 16-byte units from a 16-byte aligned base (TMA),
 * batches that do not overlap, and coordinates that fit TMA's int32. */
static inline int kd_cu_wgmma_layout_ok(const kd_gemm_args *g)
{
    const int64_t lim = 0x7fffffffLL;
    if (g->trans_a || !g->trans_b || !kd_cu_gemm_aligned(g, 2)) return 0;
    if (g->lda < g->k || g->ldb < g->k) return 0;
    if (g->batch > 1 && (g->stride_a < g->lda * g->m || g->stride_b < g->ldb * g->n)) return 0;
    return g->m <= lim && g->n <= lim && g->k <= lim && (g->m + 127) / 128 <= 65535 && g->batch <= 65535;
}

/* Accumulator i (0..63) of thread tid (0..127) of a warpgroup after wgmma m64n128: row and column of the
 * 64 x 128 tile, as the PTX ISA's wgmma D-fragment figure lays them out (each warp 16 rows; per 8-column
 * block, pairs of columns at rows lane/4 and lane/4 + 8). */
KD_PLAN_HD void kd_cu_wgmma_acc_rc(int tid, int i, int *row, int *col)
{
    int warp = tid / 32, lane = tid % 32;
    *row = warp * 16 + lane / 4 + 8 * ((i >> 1) & 1);
    *col = 8 * (i >> 2) + 2 * (lane & 3) + (i & 1);
}

/* f32 -> bf16 bits, round to nearest even (NaN stays NaN), as __float2bfloat16_rn. */
static inline uint16_t kd_cu_bf16_from_f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float kd_cu_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* f32 -> tf32 (10 explicit mantissa bits), round to nearest, ties away from zero, as cvt.rna.tf32.f32. */
static inline float kd_cu_tf32_round(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
    memcpy(&f, &u, 4);
    return f;
}

#endif
