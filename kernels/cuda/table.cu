/* kernels/cuda/table.cu — the CUDA kernel tables: every entry of kernels/kernels.h on device pointers, for
 * f32 storage and for bf16 storage. */
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

static const kd_kernels cuda_f32_table = {
    "cuda",
    kd_cu_gemm_f32,
    kd_cu_unary,
    kd_cu_binary,
    kd_cu_reduce,
    kd_cu_softmax,
    kd_cu_softmax_bwd,
    kd_cu_layernorm,
    kd_cu_layernorm_bwd,
    kd_cu_embedding,
    kd_cu_embedding_bwd,
    kd_cu_dropout,
    kd_cu_attention,
    kd_cu_attention_bwd,
    kd_cu_cross_entropy,
    kd_cu_cross_entropy_bwd,
    kd_cu_kl_div,
    kd_cu_kl_div_bwd,
    kd_cu_adamw,
    kd_cu_convert,
};

/* Embedding, losses and AdamW run in f32 on the master weights and logits (kernels.h), so they are NULL
 * here, as is convert (an f32-table entry). */
static const kd_kernels cuda_bf16_table = {
    "cuda",
    kd_cu_gemm_bf16,
    kd_cu_unary_bf16,
    kd_cu_binary_bf16,
    kd_cu_reduce_bf16,
    kd_cu_softmax_bf16,
    kd_cu_softmax_bwd_bf16,
    kd_cu_layernorm_bf16,
    kd_cu_layernorm_bwd_bf16,
    NULL,                   /* embedding */
    NULL,                   /* embedding_bwd */
    kd_cu_dropout_bf16,
    kd_cu_attention_bf16,   /* kernels/cuda/attention_bf16.cu */
    kd_cu_attention_bwd_bf16,
    NULL,                   /* cross_entropy */
    NULL,                   /* cross_entropy_bwd */
    NULL,                   /* kl_div */
    NULL,                   /* kl_div_bwd */
    NULL,                   /* adamw */
    NULL,                   /* convert */
};

extern "C" const kd_kernels *kd_kernels_cuda_f32(void)
{
    return kd_cuda_available() ? &cuda_f32_table : NULL;
}

extern "C" const kd_kernels *kd_kernels_cuda_bf16(void)
{
    return kd_cuda_available() ? &cuda_bf16_table : NULL;
}
