/* kernels/cuda/gemm_cuda.h — the CUDA GEMM entry points beyond the f32 table: TF32 and BF16 on tensor
 * cores, and the fused GELU epilogue. Same kd_gemm_args semantics as kernels/kernels.h (strides in
 * elements, beta == 0 does not read C, bias of n values added to every row), DEVICE pointers, launched on
 * the kd stream. C and bias are always f32, accumulation is f32. */
#ifndef KD_CUDA_GEMM_H
#define KD_CUDA_GEMM_H

#include <stdint.h>

#include "kernels/cuda/cuda_runtime.h"   /* kd_cuda_result, C linkage under nvcc */
#include "kernels/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kd_cuda_gemm_type {
    KD_CUDA_GEMM_F32,          /* a, b f32; CUDA cores (SIMT), exact f32 products */
    KD_CUDA_GEMM_TF32,         /* a, b f32, rounded to tf32 (10-bit mantissa) for mma.sync m16n8k8 */
    KD_CUDA_GEMM_BF16,         /* a, b bf16 (uint16_t bits); mma.sync m16n8k16, ldmatrix, cp.async */
    KD_CUDA_GEMM_BF16_WGMMA    /* as BF16, on Hopper's wgmma fed by TMA; other layouts/devices fall back */
} kd_cuda_gemm_type;

typedef enum kd_cuda_epilogue {
    KD_CUDA_EPI_NONE = 0,
    KD_CUDA_EPI_GELU = 1       /* C = gelu(alpha op(A) op(B) + beta C + bias), erf form */
} kd_cuda_epilogue;

kd_cuda_result kd_cuda_gemm(const kd_gemm_args *g, kd_cuda_gemm_type type, kd_cuda_epilogue epi);
kd_cuda_result kd_cuda_gemm_f32(const kd_gemm_args *g);
kd_cuda_result kd_cuda_gemm_tf32(const kd_gemm_args *g);
kd_cuda_result kd_cuda_gemm_bf16(const kd_gemm_args *g);

/* Device conversions (round to nearest even), n elements, on the kd stream. */
kd_cuda_result kd_cuda_f32_to_bf16(uint16_t *dst, const float *src, int64_t n);
kd_cuda_result kd_cuda_bf16_to_f32(float *dst, const uint16_t *src, int64_t n);

/* 1 when the current device runs the Hopper wgmma/TMA kernel (sm_90 and a build with sm_90a), unless the
 * environment says KD_CUDA_WGMMA=0 (every bf16 GEMM then runs mma.sync). */
int kd_cuda_has_wgmma(void);
/* 1 when this build holds the wgmma kernel's sm_90a code. */
int kd_cuda_wgmma_built(void);
/* Why kd_cuda_has_wgmma() says 0 on the current device, as a sentence ("" when it says 1). */
const char *kd_cuda_wgmma_unavailable(void);

/* Which GEMM kernels ran: launches counted on the host since the last reset (every device, every caller:
 * kd_cuda_gemm and both tables' GEMM entries), so that a test can prove that a path ran. A "wgmma
 * fallback" is a bf16 GEMM that was meant for the wgmma kernel (type KD_CUDA_GEMM_BF16_WGMMA, or a table
 * GEMM on a device that has it) and ran another kernel; `fallback_reason` says why, for the last one. */
typedef struct kd_cuda_gemm_counts {
    uint64_t simt;             /* f32 SIMT kernel */
    uint64_t mma_tf32;         /* mma.sync on tf32 */
    uint64_t mma_bf16;         /* mma.sync on bf16 */
    uint64_t wgmma;            /* the Hopper wgmma/TMA kernel */
    uint64_t wgmma_fallbacks;
    char fallback_reason[256]; /* "" when none since the reset */
} kd_cuda_gemm_counts;
void kd_cuda_gemm_counts_get(kd_cuda_gemm_counts *c);
void kd_cuda_gemm_counts_reset(void);

#ifdef __cplusplus
}
#endif

#endif
