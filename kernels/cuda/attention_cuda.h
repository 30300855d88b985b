/* kernels/cuda/attention_cuda.h — flash attention on CUDA (attention_flash.cu): forward and backward with
 * the kd_attention_args semantics of kernels/kernels.h, DEVICE pointers, launched on the kd stream.
 *
 * The forward tiles over keys with an online softmax and writes O and the logsumexp; the backward
 * recomputes P = exp(S - lse) tile by tile from the saved lse and uses D_i = dO_i . O_i (= rowsum(P dP),
 * dropout included), so it READS a->o and a->lse as the forward wrote them (the engine passes both).
 * dq, dk, dv accumulate. Dropout draws the same Philox counters as the CPU, so keep decisions are equal.
 *
 * _f32: every buffer f32. _bf16: q, k, v are bf16 (uint16_t bits); mask, o, lse, d_o, dq, dk, dv stay
 * f32, and all arithmetic is f32. Head dims 32, 64, 128 run tiled (kd_cuda_flash_supported); others
 * return KD_CUDA_ERR_ARG from these entries, while the table's attention entries fall back to the per-row
 * kernels of attention_rows.cu. */
#ifndef KD_CUDA_ATTENTION_H
#define KD_CUDA_ATTENTION_H

#include "kernels/cuda/cuda_runtime.h"   /* kd_cuda_result, C linkage under nvcc */
#include "kernels/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

kd_cuda_result kd_cuda_flash_attention_f32(const kd_attention_args *a);
kd_cuda_result kd_cuda_flash_attention_bwd_f32(const kd_attention_args *a);
kd_cuda_result kd_cuda_flash_attention_bf16(const kd_attention_args *a);
kd_cuda_result kd_cuda_flash_attention_bwd_bf16(const kd_attention_args *a);

/* 1 when the tiled kernels take these args (head dim 32, 64 or 128; grid within limits). */
int kd_cuda_flash_supported(const kd_attention_args *a);

/* The per-row kernels (attention_rows.cu): every head dim, tk up to 12256 (forward) / 6128 (backward). */
void kd_cu_attention_rows(const kd_attention_args *a);
void kd_cu_attention_rows_bwd(const kd_attention_args *a);

#ifdef __cplusplus
}
#endif

#endif
