/* kernels/cuda/table.cu — the f32 CUDA kernel table: every entry of kernels/kernels.h on device pointers. */
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
    kd_cu_xent,
    kd_cu_xent_bwd,
    kd_cu_kl,
    kd_cu_kl_bwd,
    kd_cu_adamw,
};

extern "C" const kd_kernels *kd_kernels_cuda_f32(void)
{
    return kd_cuda_available() ? &cuda_f32_table : NULL;
}
