/* engine/backend.h — the dispatch table and the thread pool that kernels run on.
 *
 * Ops never test #ifdef, CPU flags or devices: they call kd_k_<kernel>(device, dtype, &args) with the
 * device of their tensors, which takes the kernel from that device's table (on the CPU: the table chosen
 * once at start-up, the fastest the CPU runs or the one named by kd_backend_select or the KD_KERNELS
 * environment variable) and launches it there, as (ith, nth) on the pool. f64 always runs the reference. */
#ifndef KD_BACKEND_H
#define KD_BACKEND_H

#include "engine/tensor.h"
#include "kernels/kernels.h"

/* Choose the f32 CPU table: "best" (or NULL), "ref", "avx2", "avx512". Fails if the CPU cannot run it. */
kd_status kd_backend_select(const char *name);
const char *kd_backend_name(void);
/* The kernel table of (device, dtype): the CPU tables above, or the device's own. */
const kd_kernels *kd_kernels_for(kd_device dev, kd_dtype dt);

/* Threads in the pool (the caller included). Default: KD_THREADS or the number of online CPUs. */
kd_status kd_set_threads(int n);
int kd_threads(void);

/* Prepacked weights. A no-grad kd_linear on a heap weight on the CPU can read the weight packed once in the
 * GEMM's panel layout (engine/derived.c), kept until the weight changes (kd_mark_modified); the product is
 * bit-identical either way. OFF: never; AUTO (the default): for products of at most 512 rows (batch-1
 * inference, where packing every weight every call costs most), and whenever a packed form already exists;
 * ON: every no-grad product (a packed f32 or widened-bf16 copy of each weight: its memory once more).
 * The environment variable KD_PREPACK=0|auto|1 sets the mode at start-up. kd_derived_bytes: the bytes
 * of t's kept forms (bf16 copy, packed panels). */
typedef enum kd_prepack_mode { KD_PREPACK_OFF = 0, KD_PREPACK_AUTO = 1, KD_PREPACK_ON = 2 } kd_prepack_mode;
#define KD_PREPACK_AUTO_ROWS 512   /* AUTO packs for products of at most this many rows */
void kd_set_prepack(kd_prepack_mode mode);
kd_prepack_mode kd_prepack(void);
size_t kd_derived_bytes(const kd_tensor *t);

/* Run task(ctx, ith, nth) on min(threads, useful) threads and wait; `work` is a rough count of
 * floating-point operations, used to keep tiny calls on one thread. */
void kd_parallel(void (*task)(void *ctx, int ith, int nth), void *ctx, double work);

/* Release the pool and the arena (end of program; leak checkers stay quiet). */
void kd_shutdown(void);

/* One call per kernel of the table. */
void kd_k_gemm(kd_device dev, kd_dtype dt, const kd_gemm_args *a);
void kd_k_unary(kd_device dev, kd_dtype dt, const kd_map_args *a);
void kd_k_binary(kd_device dev, kd_dtype dt, const kd_map_args *a);
void kd_k_reduce(kd_device dev, kd_dtype dt, const kd_reduce_args *a);
void kd_k_softmax(kd_device dev, kd_dtype dt, const kd_softmax_args *a);
void kd_k_softmax_bwd(kd_device dev, kd_dtype dt, const kd_softmax_bwd_args *a);
void kd_k_layernorm(kd_device dev, kd_dtype dt, const kd_layernorm_args *a);
void kd_k_layernorm_bwd(kd_device dev, kd_dtype dt, const kd_layernorm_bwd_args *a);
void kd_k_embedding(kd_device dev, kd_dtype dt, const kd_embedding_args *a);
void kd_k_embedding_bwd(kd_device dev, kd_dtype dt, const kd_embedding_args *a);
void kd_k_dropout(kd_device dev, kd_dtype dt, const kd_dropout_args *a);
void kd_k_attention(kd_device dev, kd_dtype dt, const kd_attention_args *a);
void kd_k_attention_bwd(kd_device dev, kd_dtype dt, const kd_attention_args *a);
void kd_k_cross_entropy(kd_device dev, kd_dtype dt, const kd_cross_entropy_args *a);
void kd_k_cross_entropy_bwd(kd_device dev, kd_dtype dt, const kd_cross_entropy_args *a);
void kd_k_kl_div(kd_device dev, kd_dtype dt, const kd_kl_div_args *a);
void kd_k_kl_div_bwd(kd_device dev, kd_dtype dt, const kd_kl_div_args *a);
void kd_k_adamw(kd_device dev, kd_dtype dt, const kd_adamw_args *a);
void kd_k_convert(kd_device dev, kd_dtype dt, const kd_convert_args *a);
void kd_k_gemm_s8(kd_device dev, kd_dtype dt, const kd_gemm_s8_args *a);   /* dt: KD_F32 (the f32 table's entry) */   /* dt: KD_F32 (the f32 table's entry) */

#endif
