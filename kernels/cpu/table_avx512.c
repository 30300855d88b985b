/* kernels/cpu/table_avx512.c — the AVX-512 f32 table: AVX-512 GEMM, softmax and LayerNorm forward,
 * the GELU/exp maps, dropout, and attention on the AVX-512 GEMM and Philox; the other fast entries are
 * the AVX2 kernels (every AVX-512 CPU runs them), the rest the reference. The bf16 table: the VDPBF16PS
 * GEMM where the CPU has AVX-512 BF16, else the AVX-512 GEMM on bf16 widened to f32; the other entries running the AVX-512 f32 table's kernels on f32 blocks. */
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
    table_avx512.convert = kd_convert_avx512;
#ifdef KD_HAVE_AVX512VNNI
    /* VPDPBUSD: 64 int8 products per instruction where the AVX2 kernel's VPMADDWD does 16. */
    if (kd_cpu_detect().avx512vnni) {
        table_avx512.gemm_s8 = kd_gemm_s8_avx512vnni;
        table_avx512.gemm_s8_pack = kd_gemm_s8_pack_avx512vnni;
    }
#endif
    table_avx512.gemm_packed_b_size = kd_gemm_packed_b_size_avx512;
    table_avx512.gemm_pack_b = kd_gemm_pack_b_avx512_f32;
}

const kd_kernels *kd_kernels_avx512_f32(void)
{
    pthread_once(&table_avx512_once, table_avx512_build);
    return &table_avx512;
}

#define BF16_F32 kd_kernels_avx512_f32()
#define BF16_ATT (&att_avx512)
#include "kernels/cpu/bf16_table.inc"

static kd_kernels table_avx512_bf16;
static pthread_once_t table_avx512_bf16_once = PTHREAD_ONCE_INIT;

static void table_avx512_bf16_build(void)
{
    table_avx512_bf16 = *kd_kernels_avx2_bf16();
    table_avx512_bf16.name = "avx512";
    table_avx512_bf16.gemm = kd_gemm_avx512_bf16;
    table_avx512_bf16.gemm_packed_b_size = kd_gemm_packed_b_size_avx512_bf16;
    table_avx512_bf16.gemm_pack_b = kd_gemm_pack_b_avx512_bf16;
#ifdef KD_HAVE_AVX512BF16
    /* VDPBF16PS does two multiply-adds per lane where the widened f32 path does one. Its prepacked B is
     * bf16 pairs, half the bytes of the widened f32 panels. */
    if (kd_cpu_detect().avx512bf16) {
        table_avx512_bf16.gemm = kd_gemm_avx512bf16_bf16;
        table_avx512_bf16.gemm_packed_b_size = kd_gemm_packed_b_size_avx512bf16;
        table_avx512_bf16.gemm_pack_b = kd_gemm_pack_b_avx512bf16;
    }
#endif
    bf16_set_entries(&table_avx512_bf16);
}

const kd_kernels *kd_kernels_avx512_bf16(void)
{
    pthread_once(&table_avx512_bf16_once, table_avx512_bf16_build);
    return &table_avx512_bf16;
}
