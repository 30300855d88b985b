/* kernels/cuda/attention_plan.h — the tiling of the flash-attention kernels (attention_flash.cu), as plain
 * host+device functions so test/gpu/test_attention_plan.c can check them on the CPU: tile sizes per head
 * dim, which score / output element each of the 256 threads owns, shared-memory sizes, launch grids and
 * the dropout counter of kernels/kernels.h.
 *
 * A block has 256 threads seen as a 16 x 16 grid, tx = thread % 16 (the fast index, so the 16 threads of
 * one row group are one half-warp and reduce with shuffles), ty = thread / 16. In a BQ x BK score tile
 * thread (ty, tx) owns rows ty + 16 a (a < BQ / 16) and keys tx + 16 b (b < BK / 16); in a BQ x D output
 * tile the same rows and dims tx + 16 e (e < D / 16); in the backward's BK x D dK / dV tile keys ty + 16 b
 * and dims tx + 16 e. Owning the same rows in the score and the output tile keeps each row's running max
 * and sum in the registers of the threads that rescale that row's output. */
#ifndef KD_CUDA_ATTENTION_PLAN_H
#define KD_CUDA_ATTENTION_PLAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define KD_FA_HD __host__ __device__ __forceinline__
#else
#define KD_FA_HD static inline
#endif

#define KD_FA_THREADS 256
#define KD_FA_BK 64      /* keys per tile */

/* Head dims with a tiled kernel; the others take the per-row kernels of attention_rows.cu. */
KD_FA_HD int kd_fa_supported_dim(int64_t d) { return d == 32 || d == 64 || d == 128; }

/* Query rows per tile: 64, or 32 at D = 128 so the f32 tiles fit in shared memory on sm_80 too. */
KD_FA_HD int kd_fa_bq(int d) { return d > 64 ? 32 : 64; }

/* Floats per shared row of a D-wide tile: D + 1, odd, so 16 threads reading 16 rows at one column hit 16
 * distinct banks. */
KD_FA_HD int kd_fa_pitch(int d) { return d + 1; }

/* Forward shared memory: Q (BQ rows), K and V (BK rows) of pitch D + 1, P' (BQ x BK, pitch BK + 1). */
KD_FA_HD size_t kd_fa_fwd_smem(int d)
{
    size_t bq = (size_t)kd_fa_bq(d), p = (size_t)kd_fa_pitch(d);
    return (bq * p + 2 * (size_t)KD_FA_BK * p + bq * (KD_FA_BK + 1)) * sizeof(float);
}

/* Backward shared memory: Q and dO (BQ rows), K and V (BK rows), P' and dS (BQ x BK each). */
KD_FA_HD size_t kd_fa_bwd_smem(int d)
{
    size_t bq = (size_t)kd_fa_bq(d), p = (size_t)kd_fa_pitch(d);
    return (2 * bq * p + 2 * (size_t)KD_FA_BK * p + 2 * bq * (KD_FA_BK + 1)) * sizeof(float);
}

/* Ownership (see the header comment): element `slot` of thread t's registers in each tile. */
KD_FA_HD int kd_fa_tx(int t) { return t & 15; }
KD_FA_HD int kd_fa_ty(int t) { return t >> 4; }
KD_FA_HD int kd_fa_row(int t, int a) { return kd_fa_ty(t) + 16 * a; }     /* query row in a BQ tile */
KD_FA_HD int kd_fa_key(int t, int b) { return kd_fa_tx(t) + 16 * b; }     /* key column of a score tile */
KD_FA_HD int kd_fa_dim(int t, int e) { return kd_fa_tx(t) + 16 * e; }     /* head dim of an output tile */
KD_FA_HD int kd_fa_krow(int t, int b) { return kd_fa_ty(t) + 16 * b; }    /* key row of a dK / dV tile */

/* Grids: x runs over batch * heads (up to 2^31 - 1), y over the query tiles (forward) or key tiles
 * (backward). 0 when the shape is beyond the launch limits. */
KD_FA_HD int kd_fa_grid(int64_t bh, int64_t len, int tile, int64_t *gx, int64_t *gy)
{
    *gx = bh;
    *gy = (len + tile - 1) / tile;
    return bh >= 1 && bh <= 0x7fffffffLL && *gy >= 1 && *gy <= 65535;
}

/* The dropout counter of kernels/kernels.h: offset + ((b * heads + h) * tq + i) * tk + j. */
KD_FA_HD uint64_t kd_fa_counter(uint64_t offset, int64_t b, int64_t h, int64_t heads, int64_t tq, int64_t tk,
                                int64_t i, int64_t j)
{
    return offset + (uint64_t)(((b * heads + h) * tq + i) * tk + j);
}

#endif
