/* kernels/cpu/cpu_kernels.h — the SIMD CPU kernels (f32) and the tables that collect them.
 *
 * Each kernel follows kernels/kernels.h: fn(args, ith, nth), no barriers, same semantics as kernels/ref.
 * The functions exist only when the build could compile them (KD_HAVE_AVX2 / KD_HAVE_AVX512); callers
 * must also check kd_cpu_detect() before running one. */
#ifndef KD_CPU_KERNELS_H
#define KD_CPU_KERNELS_H

#include "kernels/kernels.h"

/* Tables: the reference table with every entry that has a fast variant replaced. */
const kd_kernels *kd_kernels_avx2_f32(void);
const kd_kernels *kd_kernels_avx512_f32(void);

/* GEMM: packed, cache-blocked, register-tiled (6x16 on AVX2, 6x64 on AVX-512). */
void kd_gemm_avx2_f32(const kd_gemm_args *g, int ith, int nth);
void kd_gemm_avx512_f32(const kd_gemm_args *g, int ith, int nth);
/* Prepacked B for them (kernels.h: gemm_packed_b_size, gemm_pack_b; NR-column panels over all of k). */
size_t kd_gemm_packed_b_size_avx2(int64_t k, int64_t n);
size_t kd_gemm_packed_b_size_avx512(int64_t k, int64_t n);
void kd_gemm_pack_b_avx2_f32(const kd_gemm_pack_args *p, int ith, int nth);
void kd_gemm_pack_b_avx512_f32(const kd_gemm_pack_args *p, int ith, int nth);

/* The int8 linear (kernels.h, kd_gemm_s8_args) and each one's weight layout: VPMADDWD on s16-widened values
 * (AVX2), VPDPBUSD (AVX-512 VNNI; built when KD_HAVE_AVX512VNNI, run where the CPU has it). */
void kd_gemm_s8_avx2(const kd_gemm_s8_args *g, int ith, int nth);
size_t kd_gemm_s8_pack_avx2(int64_t n, int64_t k, const int8_t *w, void *dst);
void kd_gemm_s8_avx512vnni(const kd_gemm_s8_args *g, int ith, int nth);
size_t kd_gemm_s8_pack_avx512vnni(int64_t n, int64_t k, const int8_t *w, void *dst);
/* Each int8 GEMM by name, for tests and benchmarks: "ref", "avx2", "avx512vnni"; 0 (and nothing set) when
 * not built or this CPU cannot run it. */
int kd_gemm_s8_cpu(const char *name, void (**fn)(const kd_gemm_s8_args *, int, int), kd_gemm_s8_pack_fn *pack);

/* Row, element-wise, loss, optimizer and attention kernels (AVX2+FMA; the AVX-512 table uses them too). */
void kd_unary_avx2_f32(const kd_map_args *m, int ith, int nth);
void kd_binary_avx2_f32(const kd_map_args *m, int ith, int nth);
void kd_softmax_avx2_f32(const kd_softmax_args *s, int ith, int nth);
void kd_softmax_bwd_avx2_f32(const kd_softmax_bwd_args *s, int ith, int nth);
void kd_layernorm_avx2_f32(const kd_layernorm_args *l, int ith, int nth);
void kd_layernorm_bwd_avx2_f32(const kd_layernorm_bwd_args *l, int ith, int nth);
void kd_cross_entropy_avx2_f32(const kd_cross_entropy_args *x, int ith, int nth);
void kd_cross_entropy_bwd_avx2_f32(const kd_cross_entropy_args *x, int ith, int nth);
void kd_kl_div_avx2_f32(const kd_kl_div_args *k, int ith, int nth);
void kd_kl_div_bwd_avx2_f32(const kd_kl_div_args *k, int ith, int nth);
void kd_adamw_avx2_f32(const kd_adamw_args *o, int ith, int nth);
void kd_attention_avx2_f32(const kd_attention_args *a, int ith, int nth);
void kd_attention_bwd_avx2_f32(const kd_attention_args *a, int ith, int nth);
/* keep[i] = dropout keep-scale (0 or 1/(1-p)) of counter c0 + i under seed, i < n: the reference's
 * kd_rng_keep decisions, 32 (AVX2) or 64 (AVX-512) counters per Philox pass. */
void kd_keep_scale_avx2(uint64_t seed, uint64_t c0, int64_t n, float p, float *keep);
void kd_keep_scale_avx512(uint64_t seed, uint64_t c0, int64_t n, float p, float *keep);

/* Attention on given GEMM and keep-scale kernels (the GEMM runs on one thread inside each attention
 * thread); the AVX2 table passes its AVX2 ones, the AVX-512 table its AVX-512 ones. AVX2 code: needs an
 * AVX2+FMA CPU. */
typedef struct kd_attention_impl {
    void (*gemm)(const kd_gemm_args *, int, int);
    void (*keep)(uint64_t seed, uint64_t c0, int64_t n, float p, float *keep);
} kd_attention_impl;
void kd_attention_gemm_f32(const kd_attention_args *a, int ith, int nth, const kd_attention_impl *impl);
void kd_attention_bwd_gemm_f32(const kd_attention_args *a, int ith, int nth, const kd_attention_impl *impl);
void kd_dropout_avx2_f32(const kd_dropout_args *d, int ith, int nth);
void kd_embedding_avx2_f32(const kd_embedding_args *e, int ith, int nth);
void kd_embedding_bwd_avx2_f32(const kd_embedding_args *e, int ith, int nth);
/* Contiguous row, column, whole and element-wise sums; other layouts run the reference. */
void kd_reduce_avx2_f32(const kd_reduce_args *m, int ith, int nth);

/* AVX-512 forms of the compute-bound row kernels (others fall through to the AVX2 ones). */
void kd_unary_avx512_f32(const kd_map_args *m, int ith, int nth);
void kd_binary_avx512_f32(const kd_map_args *m, int ith, int nth);
void kd_softmax_avx512_f32(const kd_softmax_args *s, int ith, int nth);
void kd_layernorm_avx512_f32(const kd_layernorm_args *l, int ith, int nth);
void kd_attention_avx512_f32(const kd_attention_args *a, int ith, int nth);
void kd_attention_bwd_avx512_f32(const kd_attention_args *a, int ith, int nth);
void kd_dropout_avx512_f32(const kd_dropout_args *d, int ith, int nth);


/* f32 <-> bf16 conversion (the f32 tables' convert entry), bit-identical to the reference. */
void kd_convert_avx2(const kd_convert_args *c, int ith, int nth);
void kd_convert_avx512(const kd_convert_args *c, int ith, int nth);

/* bf16 storage (kernels.h). Tables: the reference bf16 table with the fast entries swapped in. */
const kd_kernels *kd_kernels_avx2_bf16(void);
const kd_kernels *kd_kernels_avx512_bf16(void);
/* GEMM: bf16 widened to f32 while packing, the f32 micro-kernels, f32 sums rounded once. */
void kd_gemm_avx2_bf16(const kd_gemm_args *g, int ith, int nth);
void kd_gemm_avx512_bf16(const kd_gemm_args *g, int ith, int nth);
/* Their prepacked B: bf16 widened to the f32 panels of the f32 GEMM of the same ISA. */
size_t kd_gemm_packed_b_size_avx2_bf16(int64_t k, int64_t n);
size_t kd_gemm_packed_b_size_avx512_bf16(int64_t k, int64_t n);
void kd_gemm_pack_b_avx2_bf16(const kd_gemm_pack_args *p, int ith, int nth);
void kd_gemm_pack_b_avx512_bf16(const kd_gemm_pack_args *p, int ith, int nth);
/* GEMM on VDPBF16PS: bf16 pairs along k packed as they are, f32 sums rounded once (needs avx512bf16;
 * built when KD_HAVE_AVX512BF16). The AVX-512 bf16 table uses it where the CPU has it. */
void kd_gemm_avx512bf16_bf16(const kd_gemm_args *g, int ith, int nth);
/* Its prepacked B: bf16 pairs along k, NR-column panels over all of k (kernels.h: gemm_pack_b). */
size_t kd_gemm_packed_b_size_avx512bf16(int64_t k, int64_t n);
void kd_gemm_pack_b_avx512bf16(const kd_gemm_pack_args *p, int ith, int nth);
/* Each bf16 GEMM by name, for tests and benchmarks: "avx2", "avx512" (widened to f32 while packing),
 * "avx512bf16" (VDPBF16PS); NULL when not built or this CPU cannot run it. */
typedef void (*kd_gemm_fn)(const kd_gemm_args *g, int ith, int nth);
kd_gemm_fn kd_gemm_cpu_bf16(const char *name);
/* Row, element-wise, dropout and attention kernels: blocks widened to f32, the f32 kernels of table f
 * (or of impl) run on them with one thread, outputs rounded once (kernels/cpu/bf16_kernels.c; AVX2 code). */
void kd_unary_bf16(const kd_map_args *m, int ith, int nth, const kd_kernels *f);
void kd_binary_bf16(const kd_map_args *m, int ith, int nth, const kd_kernels *f);
void kd_reduce_bf16(const kd_reduce_args *m, int ith, int nth);
void kd_softmax_bf16(const kd_softmax_args *s, int ith, int nth, const kd_kernels *f);
void kd_softmax_bwd_bf16(const kd_softmax_bwd_args *s, int ith, int nth, const kd_kernels *f);
void kd_layernorm_bf16(const kd_layernorm_args *l, int ith, int nth, const kd_kernels *f);
void kd_layernorm_bwd_bf16(const kd_layernorm_bwd_args *l, int ith, int nth, const kd_kernels *f);
void kd_dropout_bf16(const kd_dropout_args *d, int ith, int nth, const kd_kernels *f);
void kd_attention_bf16(const kd_attention_args *a, int ith, int nth, const kd_attention_impl *impl);
void kd_attention_bwd_bf16(const kd_attention_args *a, int ith, int nth, const kd_attention_impl *impl);

#endif
