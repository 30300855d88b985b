/* engine/backend.c — one entry point per kernel (kd_k_<kernel>): the kernel of the (device, dtype) table
 * (the CPU's tables are chosen in kernel_tables.c), launched on that device. */
#include <stdio.h>
#include <stdlib.h>

#include "engine/internal.h"

const kd_kernels *kd_kernels_for(kd_device dev, kd_dtype dt) { return kd_dev_table(dev, dt); }

/* The kernel entry points. Each takes its kernel from the table of (device, dtype) and launches it on the
 * device: the CPU's pool, the simulated device's (the pool between protection changes), CUDA's stream.
 * The pool calls task(ctx, ith, nth); the typed task of each argument type below unpacks ctx. */
static const kd_kernels *table(kd_device dev, kd_dtype dt)
{
    static const kd_kernels none = { .name = "none" };
    const kd_kernels *t = kd_kernels_for(dev, dt);
    return t ? t : &none;
}

/* A missing entry is a bug of the engine (ops check dtypes and devices first). */
static void need_kernel(int present, kd_device dev, kd_dtype dt, const char *name)
{
    if (present) return;
    fprintf(stderr, "kd: internal error: no %s kernel for %s on %s\n", name, kd_dtype_name(dt), kd_device_name(dev));
    abort();
}

static double map_work(const kd_map_args *m)
{
    double n = 1;
    for (int d = 0; d < m->ndim; d++) n *= (double)m->shape[d];
    return n * 4;
}

#define KD_TASK(argtype)                                                                             \
    typedef struct { void (*fn)(const argtype *, int, int); const argtype *a; } argtype##_ctx;       \
    static void argtype##_task(void *c, int ith, int nth)                                            \
    {                                                                                                \
        argtype##_ctx *x = c;                                                                        \
        x->fn(x->a, ith, nth);                                                                       \
    }
KD_TASK(kd_gemm_args)
KD_TASK(kd_map_args)
KD_TASK(kd_softmax_args)
KD_TASK(kd_softmax_bwd_args)
KD_TASK(kd_layernorm_args)
KD_TASK(kd_layernorm_bwd_args)
KD_TASK(kd_embedding_args)
KD_TASK(kd_dropout_args)
KD_TASK(kd_attention_args)
KD_TASK(kd_cross_entropy_args)
KD_TASK(kd_kl_div_args)
KD_TASK(kd_adamw_args)
KD_TASK(kd_convert_args)
KD_TASK(kd_gemm_s8_args)

/* Take the entry of the (dev, dt) table and launch it on dev with the arguments `a`; work is a rough count
 * of floating-point operations (the pool keeps tiny calls on one thread). */
#define KD_LAUNCH(argtype, entry, work)                                                              \
    do {                                                                                             \
        argtype##_ctx c_ = { table(dev, dt)->entry, a };                                             \
        need_kernel(c_.fn != NULL, dev, dt, #entry);                                                 \
        kd_dev_launch(dev, argtype##_task, &c_, (work));                                             \
    } while (0)

void kd_k_gemm(kd_device dev, kd_dtype dt, const kd_gemm_args *a)
{ KD_LAUNCH(kd_gemm_args, gemm, 2.0 * a->m * a->n * a->k * a->batch); }
void kd_k_unary(kd_device dev, kd_dtype dt, const kd_map_args *a)
{ KD_LAUNCH(kd_map_args, unary, map_work(a)); }
void kd_k_binary(kd_device dev, kd_dtype dt, const kd_map_args *a)
{ KD_LAUNCH(kd_map_args, binary, map_work(a)); }
void kd_k_reduce(kd_device dev, kd_dtype dt, const kd_reduce_args *a)
{ KD_LAUNCH(kd_map_args, reduce, map_work(a)); }
void kd_k_softmax(kd_device dev, kd_dtype dt, const kd_softmax_args *a)
{ KD_LAUNCH(kd_softmax_args, softmax, 8.0 * a->rows * a->cols); }
void kd_k_softmax_bwd(kd_device dev, kd_dtype dt, const kd_softmax_bwd_args *a)
{ KD_LAUNCH(kd_softmax_bwd_args, softmax_bwd, 8.0 * a->rows * a->cols); }
void kd_k_layernorm(kd_device dev, kd_dtype dt, const kd_layernorm_args *a)
{ KD_LAUNCH(kd_layernorm_args, layernorm, 8.0 * a->rows * a->cols); }
void kd_k_layernorm_bwd(kd_device dev, kd_dtype dt, const kd_layernorm_bwd_args *a)
{ KD_LAUNCH(kd_layernorm_bwd_args, layernorm_bwd, 12.0 * a->rows * a->cols); }
void kd_k_embedding(kd_device dev, kd_dtype dt, const kd_embedding_args *a)
{ KD_LAUNCH(kd_embedding_args, embedding, 1.0 * a->n * a->dim); }
void kd_k_embedding_bwd(kd_device dev, kd_dtype dt, const kd_embedding_args *a)
{ KD_LAUNCH(kd_embedding_args, embedding_bwd, 1.0 * a->n * a->dim); }
void kd_k_dropout(kd_device dev, kd_dtype dt, const kd_dropout_args *a)
{ KD_LAUNCH(kd_dropout_args, dropout, 40.0 * a->n); }
void kd_k_attention(kd_device dev, kd_dtype dt, const kd_attention_args *a)
{ KD_LAUNCH(kd_attention_args, attention, 4.0 * a->batch * a->heads * a->tq * a->tk * a->dim); }
void kd_k_attention_bwd(kd_device dev, kd_dtype dt, const kd_attention_args *a)
{ KD_LAUNCH(kd_attention_args, attention_bwd, 8.0 * a->batch * a->heads * a->tq * a->tk * a->dim); }
void kd_k_cross_entropy(kd_device dev, kd_dtype dt, const kd_cross_entropy_args *a)
{ KD_LAUNCH(kd_cross_entropy_args, cross_entropy, 8.0 * a->rows * a->cols); }
void kd_k_cross_entropy_bwd(kd_device dev, kd_dtype dt, const kd_cross_entropy_args *a)
{ KD_LAUNCH(kd_cross_entropy_args, cross_entropy_bwd, 8.0 * a->rows * a->cols); }
void kd_k_kl_div(kd_device dev, kd_dtype dt, const kd_kl_div_args *a)
{ KD_LAUNCH(kd_kl_div_args, kl_div, 8.0 * a->rows * a->cols); }
void kd_k_kl_div_bwd(kd_device dev, kd_dtype dt, const kd_kl_div_args *a)
{ KD_LAUNCH(kd_kl_div_args, kl_div_bwd, 8.0 * a->rows * a->cols); }
void kd_k_adamw(kd_device dev, kd_dtype dt, const kd_adamw_args *a)
{ KD_LAUNCH(kd_adamw_args, adamw, 12.0 * a->n); }
void kd_k_convert(kd_device dev, kd_dtype dt, const kd_convert_args *a)
{ KD_LAUNCH(kd_convert_args, convert, 2.0 * a->n); }
void kd_k_gemm_s8(kd_device dev, kd_dtype dt, const kd_gemm_s8_args *a)
{ KD_LAUNCH(kd_gemm_s8_args, gemm_s8, 2.0 * a->m * a->n * a->k); }
