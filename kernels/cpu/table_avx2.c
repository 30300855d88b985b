/* kernels/cpu/table_avx2.c — the AVX2+FMA tables, f32 and bf16 storage: the reference table of the dtype
 * with the fast entries swapped in. */
#include <pthread.h>

#include "kernels/cpu/cpu_kernels.h"

static kd_kernels table_avx2;
static pthread_once_t table_avx2_once = PTHREAD_ONCE_INIT;

static void table_avx2_build(void)
{
    table_avx2 = *kd_kernels_ref_f32();
    table_avx2.name = "avx2";
    table_avx2.gemm = kd_gemm_avx2_f32;
    table_avx2.unary = kd_unary_avx2_f32;
    table_avx2.binary = kd_binary_avx2_f32;
    table_avx2.softmax = kd_softmax_avx2_f32;
    table_avx2.softmax_bwd = kd_softmax_bwd_avx2_f32;
    table_avx2.layernorm = kd_layernorm_avx2_f32;
    table_avx2.layernorm_bwd = kd_layernorm_bwd_avx2_f32;
    table_avx2.cross_entropy = kd_cross_entropy_avx2_f32;
    table_avx2.cross_entropy_bwd = kd_cross_entropy_bwd_avx2_f32;
    table_avx2.kl_div = kd_kl_div_avx2_f32;
    table_avx2.kl_div_bwd = kd_kl_div_bwd_avx2_f32;
    table_avx2.adamw = kd_adamw_avx2_f32;
    table_avx2.attention = kd_attention_avx2_f32;
    table_avx2.attention_bwd = kd_attention_bwd_avx2_f32;
    table_avx2.dropout = kd_dropout_avx2_f32;
    table_avx2.embedding = kd_embedding_avx2_f32;
    table_avx2.embedding_bwd = kd_embedding_bwd_avx2_f32;
    table_avx2.reduce = kd_reduce_avx2_f32;
    table_avx2.convert = kd_convert_avx2;
    table_avx2.gemm_s8 = kd_gemm_s8_avx2;
    table_avx2.gemm_s8_pack = kd_gemm_s8_pack_avx2;
    table_avx2.gemm_packed_b_size = kd_gemm_packed_b_size_avx2;
    table_avx2.gemm_pack_b = kd_gemm_pack_b_avx2_f32;
}

const kd_kernels *kd_kernels_avx2_f32(void)
{
    pthread_once(&table_avx2_once, table_avx2_build);
    return &table_avx2;
}

/* bf16: the entries run the AVX2 f32 kernels on f32 blocks (kernels/cpu/bf16_kernels.c). */
static const kd_attention_impl att_avx2_bf16 = { kd_gemm_avx2_f32, kd_keep_scale_avx2 };
#define BF16_F32 kd_kernels_avx2_f32()
#define BF16_ATT (&att_avx2_bf16)
#include "kernels/cpu/bf16_table.inc"

static kd_kernels table_avx2_bf16;
static pthread_once_t table_avx2_bf16_once = PTHREAD_ONCE_INIT;

static void table_avx2_bf16_build(void)
{
    table_avx2_bf16 = *kd_kernels_ref_bf16();
    table_avx2_bf16.name = "avx2";
    table_avx2_bf16.gemm = kd_gemm_avx2_bf16;
    table_avx2_bf16.gemm_packed_b_size = kd_gemm_packed_b_size_avx2_bf16;
    table_avx2_bf16.gemm_pack_b = kd_gemm_pack_b_avx2_bf16;
    table_avx2_bf16.reduce = kd_reduce_bf16;
    bf16_set_entries(&table_avx2_bf16);
}

const kd_kernels *kd_kernels_avx2_bf16(void)
{
    pthread_once(&table_avx2_bf16_once, table_avx2_bf16_build);
    return &table_avx2_bf16;
}
