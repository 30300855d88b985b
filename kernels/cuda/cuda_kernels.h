/* kernels/cuda/cuda_kernels.h — the CUDA kernel entries behind kd_kernels_cuda_f32() and
 * kd_kernels_cuda_bf16() (internal: the tables in table.cu name them). Same signatures as the kd_kernels
 * fields; device pointers; ith/nth ignored. */
#ifndef KD_CUDA_KERNELS_H
#define KD_CUDA_KERNELS_H

#include "kernels/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

void kd_cu_gemm_f32(const kd_gemm_args *g, int ith, int nth);
void kd_cu_unary(const kd_map_args *m, int ith, int nth);
void kd_cu_binary(const kd_map_args *m, int ith, int nth);
void kd_cu_reduce(const kd_reduce_args *m, int ith, int nth);
void kd_cu_softmax(const kd_softmax_args *s, int ith, int nth);
void kd_cu_softmax_bwd(const kd_softmax_bwd_args *s, int ith, int nth);
void kd_cu_layernorm(const kd_layernorm_args *l, int ith, int nth);
void kd_cu_layernorm_bwd(const kd_layernorm_bwd_args *l, int ith, int nth);
void kd_cu_embedding(const kd_embedding_args *e, int ith, int nth);
void kd_cu_embedding_bwd(const kd_embedding_args *e, int ith, int nth);
void kd_cu_dropout(const kd_dropout_args *d, int ith, int nth);
void kd_cu_attention(const kd_attention_args *a, int ith, int nth);
void kd_cu_attention_bwd(const kd_attention_args *a, int ith, int nth);
void kd_cu_cross_entropy(const kd_cross_entropy_args *x, int ith, int nth);
void kd_cu_cross_entropy_bwd(const kd_cross_entropy_args *x, int ith, int nth);
void kd_cu_kl_div(const kd_kl_div_args *k, int ith, int nth);
void kd_cu_kl_div_bwd(const kd_kl_div_args *k, int ith, int nth);
void kd_cu_adamw(const kd_adamw_args *o, int ith, int nth);
void kd_cu_convert(const kd_convert_args *c, int ith, int nth);

/* bf16 storage (kernels.h's bf16 tables): activations bf16, compute in f32, each output rounded once;
 * LayerNorm's gamma, beta, mean, rstd, dgamma, dbeta and attention's mask and lse stay f32. */
void kd_cu_gemm_bf16(const kd_gemm_args *g, int ith, int nth);
void kd_cu_unary_bf16(const kd_map_args *m, int ith, int nth);
void kd_cu_binary_bf16(const kd_map_args *m, int ith, int nth);
void kd_cu_reduce_bf16(const kd_reduce_args *m, int ith, int nth);
void kd_cu_softmax_bf16(const kd_softmax_args *s, int ith, int nth);
void kd_cu_softmax_bwd_bf16(const kd_softmax_bwd_args *s, int ith, int nth);
void kd_cu_layernorm_bf16(const kd_layernorm_args *l, int ith, int nth);
void kd_cu_layernorm_bwd_bf16(const kd_layernorm_bwd_args *l, int ith, int nth);
void kd_cu_dropout_bf16(const kd_dropout_args *d, int ith, int nth);
/* Attention on bf16 storage, on tensor cores for head dims 32/64/128 (kernels/cuda/attention_bf16.cu). */
void kd_cu_attention_bf16(const kd_attention_args *a, int ith, int nth);
void kd_cu_attention_bwd_bf16(const kd_attention_args *a, int ith, int nth);

#ifdef __cplusplus
}
#endif

#endif
