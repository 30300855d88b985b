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

void kd_k_gemm(kd_device dev, kd_dtype dt, const kd_gemm_args *a)
{
    kd_gemm_args_ctx c = { table(dev, dt)->gemm, a };
    need_kernel(c.fn != NULL, dev, dt, "gemm");
    kd_dev_launch(dev, kd_gemm_args_task, &c, 2.0 * a->m * a->n * a->k * a->batch);
}

void kd_k_unary(kd_device dev, kd_dtype dt, const kd_map_args *a)
{
    kd_map_args_ctx c = { table(dev, dt)->unary, a };
    need_kernel(c.fn != NULL, dev, dt, "unary");
    kd_dev_launch(dev, kd_map_args_task, &c, map_work(a));
}

void kd_k_binary(kd_device dev, kd_dtype dt, const kd_map_args *a)
{
    kd_map_args_ctx c = { table(dev, dt)->binary, a };
    need_kernel(c.fn != NULL, dev, dt, "binary");
    kd_dev_launch(dev, kd_map_args_task, &c, map_work(a));
}

void kd_k_reduce(kd_device dev, kd_dtype dt, const kd_reduce_args *a)
{
    kd_map_args_ctx c = { table(dev, dt)->reduce, a };
    need_kernel(c.fn != NULL, dev, dt, "reduce");
    kd_dev_launch(dev, kd_map_args_task, &c, map_work(a));
}

void kd_k_softmax(kd_device dev, kd_dtype dt, const kd_softmax_args *a)
{
    kd_softmax_args_ctx c = { table(dev, dt)->softmax, a };
    need_kernel(c.fn != NULL, dev, dt, "softmax");
    kd_dev_launch(dev, kd_softmax_args_task, &c, 8.0 * a->rows * a->cols);
}

void kd_k_softmax_bwd(kd_device dev, kd_dtype dt, const kd_softmax_bwd_args *a)
{
    kd_softmax_bwd_args_ctx c = { table(dev, dt)->softmax_bwd, a };
    need_kernel(c.fn != NULL, dev, dt, "softmax_bwd");
    kd_dev_launch(dev, kd_softmax_bwd_args_task, &c, 8.0 * a->rows * a->cols);
}

void kd_k_layernorm(kd_device dev, kd_dtype dt, const kd_layernorm_args *a)
{
    kd_layernorm_args_ctx c = { table(dev, dt)->layernorm, a };
    need_kernel(c.fn != NULL, dev, dt, "layernorm");
    kd_dev_launch(dev, kd_layernorm_args_task, &c, 8.0 * a->rows * a->cols);
}

void kd_k_layernorm_bwd(kd_device dev, kd_dtype dt, const kd_layernorm_bwd_args *a)
{
    kd_layernorm_bwd_args_ctx c = { table(dev, dt)->layernorm_bwd, a };
    need_kernel(c.fn != NULL, dev, dt, "layernorm_bwd");
    kd_dev_launch(dev, kd_layernorm_bwd_args_task, &c, 12.0 * a->rows * a->cols);
}

void kd_k_embedding(kd_device dev, kd_dtype dt, const kd_embedding_args *a)
{
    kd_embedding_args_ctx c = { table(dev, dt)->embedding, a };
    need_kernel(c.fn != NULL, dev, dt, "embedding");
    kd_dev_launch(dev, kd_embedding_args_task, &c, 1.0 * a->n * a->dim);
}

void kd_k_embedding_bwd(kd_device dev, kd_dtype dt, const kd_embedding_args *a)
{
    kd_embedding_args_ctx c = { table(dev, dt)->embedding_bwd, a };
    need_kernel(c.fn != NULL, dev, dt, "embedding_bwd");
    kd_dev_launch(dev, kd_embedding_args_task, &c, 1.0 * a->n * a->dim);
}

void kd_k_dropout(kd_device dev, kd_dtype dt, const kd_dropout_args *a)
{
    kd_dropout_args_ctx c = { table(dev, dt)->dropout, a };
    need_kernel(c.fn != NULL, dev, dt, "dropout");
    kd_dev_launch(dev, kd_dropout_args_task, &c, 40.0 * a->n);
}

void kd_k_attention(kd_device dev, kd_dtype dt, const kd_attention_args *a)
{
    kd_attention_args_ctx c = { table(dev, dt)->attention, a };
    need_kernel(c.fn != NULL, dev, dt, "attention");
    kd_dev_launch(dev, kd_attention_args_task, &c, 4.0 * a->batch * a->heads * a->tq * a->tk * a->dim);
}

void kd_k_attention_bwd(kd_device dev, kd_dtype dt, const kd_attention_args *a)
{
    kd_attention_args_ctx c = { table(dev, dt)->attention_bwd, a };
    need_kernel(c.fn != NULL, dev, dt, "attention_bwd");
    kd_dev_launch(dev, kd_attention_args_task, &c, 8.0 * a->batch * a->heads * a->tq * a->tk * a->dim);
}

void kd_k_cross_entropy(kd_device dev, kd_dtype dt, const kd_cross_entropy_args *a)
{
    kd_cross_entropy_args_ctx c = { table(dev, dt)->cross_entropy, a };
    need_kernel(c.fn != NULL, dev, dt, "cross_entropy");
    kd_dev_launch(dev, kd_cross_entropy_args_task, &c, 8.0 * a->rows * a->cols);
}

void kd_k_cross_entropy_bwd(kd_device dev, kd_dtype dt, const kd_cross_entropy_args *a)
{
    kd_cross_entropy_args_ctx c = { table(dev, dt)->cross_entropy_bwd, a };
    need_kernel(c.fn != NULL, dev, dt, "cross_entropy_bwd");
    kd_dev_launch(dev, kd_cross_entropy_args_task, &c, 8.0 * a->rows * a->cols);
}

void kd_k_kl_div(kd_device dev, kd_dtype dt, const kd_kl_div_args *a)
{
    kd_kl_div_args_ctx c = { table(dev, dt)->kl_div, a };
    need_kernel(c.fn != NULL, dev, dt, "kl_div");
    kd_dev_launch(dev, kd_kl_div_args_task, &c, 8.0 * a->rows * a->cols);
}

void kd_k_kl_div_bwd(kd_device dev, kd_dtype dt, const kd_kl_div_args *a)
{
    kd_kl_div_args_ctx c = { table(dev, dt)->kl_div_bwd, a };
    need_kernel(c.fn != NULL, dev, dt, "kl_div_bwd");
    kd_dev_launch(dev, kd_kl_div_args_task, &c, 8.0 * a->rows * a->cols);
}

void kd_k_adamw(kd_device dev, kd_dtype dt, const kd_adamw_args *a)
{
    kd_adamw_args_ctx c = { table(dev, dt)->adamw, a };
    need_kernel(c.fn != NULL, dev, dt, "adamw");
    kd_dev_launch(dev, kd_adamw_args_task, &c, 12.0 * a->n);
}

void kd_k_convert(kd_device dev, kd_dtype dt, const kd_convert_args *a)
{
    kd_convert_args_ctx c = { table(dev, dt)->convert, a };
    need_kernel(c.fn != NULL, dev, dt, "convert");
    kd_dev_launch(dev, kd_convert_args_task, &c, 2.0 * a->n);
}
