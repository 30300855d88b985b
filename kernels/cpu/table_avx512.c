/* kernels/cpu/table_avx512.c — the AVX-512 f32 table: AVX-512 GEMM, softmax and LayerNorm forward,
 * the GELU/exp maps, dropout, and attention on the AVX-512 GEMM and Philox; the other fast entries are
 * the AVX2 kernels (every AVX-512 CPU runs them), the rest the reference. */
#include <pthread.h>

#include "kernels/cpu/cpu_kernels.h"

/* Attention: the AVX2 row passes around the AVX-512 GEMM and the 16-wide Philox. */
static const kd_attention_impl att_avx512 = { kd_gemm_avx512_f32, kd_keep_scale_avx512 };
void kd_attention_avx512_f32(const kd_attention_args *a, int ith, int nth)
{
    kd_attention_gemm_f32(a, ith, nth, &att_avx512);
}
void kd_attention_bwd_avx512_f32(const kd_attention_args *a, int ith, int nth)
{
    kd_attention_bwd_gemm_f32(a, ith, nth, &att_avx512);
}

static kd_kernels table_avx512;
static pthread_once_t table_avx512_once = PTHREAD_ONCE_INIT;

static void table_avx512_build(void)
{
    table_avx512 = *kd_kernels_avx2_f32();
    table_avx512.name = "avx512";
    table_avx512.gemm = kd_gemm_avx512_f32;
    table_avx512.unary = kd_unary_avx512_f32;
    table_avx512.binary = kd_binary_avx512_f32;
    table_avx512.softmax = kd_softmax_avx512_f32;
    table_avx512.layernorm = kd_layernorm_avx512_f32;
    table_avx512.dropout = kd_dropout_avx512_f32;
    table_avx512.attention = kd_attention_avx512_f32;
    table_avx512.attention_bwd = kd_attention_bwd_avx512_f32;
}

const kd_kernels *kd_kernels_avx512_f32(void)
{
    pthread_once(&table_avx512_once, table_avx512_build);
    return &table_avx512;
}
