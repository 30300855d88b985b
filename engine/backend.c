/* engine/backend.c — the dispatch table: which kernels run f32 and f64, and the per-kernel entry points
 * that hand a kernel to the pool. */
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"

static const kd_kernels *table_f32, *table_bf16;

/* The f32 table, and the bf16 table of the same name (the reference where there is none). */
static void use_tables(const kd_kernels *f32)
{
    table_f32 = f32;
    table_bf16 = kd_kernels_cpu_bf16(f32->name);
    if (!table_bf16) table_bf16 = kd_kernels_ref_bf16();
}

static void init_tables(void)
{
    if (table_f32) return;
    const char *env = getenv("KD_KERNELS");
    if (env && *env && strcmp(env, "best") != 0) {
        table_f32 = kd_kernels_cpu_f32(env);
        if (!table_f32) {
            fprintf(stderr, "kd: KD_KERNELS=%s cannot run on this CPU (or is unknown); using the best available\n", env);
        }
    }
    if (!table_f32) table_f32 = kd_kernels_cpu_f32(NULL);
    use_tables(table_f32 ? table_f32 : kd_kernels_ref_f32());
}

kd_status kd_backend_select(const char *name)
{
    const kd_kernels *k = kd_kernels_cpu_f32(name && strcmp(name, "best") != 0 ? name : NULL);
    if (!k) return kd_fail(KD_ERR_ARG, "kernels: '%s' is unknown or cannot run on this CPU; expected best, ref, avx2 or avx512",
                           name ? name : "(null)");
    use_tables(k);
    return KD_OK;
}

const char *kd_backend_name(void)
{
    init_tables();
    return table_f32->name;
}

const kd_kernels *kd_kernels_cpu(kd_dtype dt)
{
    init_tables();
    return dt == KD_F64 ? kd_kernels_ref_f64() : dt == KD_BF16 ? table_bf16 : table_f32;
}

const kd_kernels *kd_kernels_for(kd_dtype dt)
{
    kd_device dev = kd_default_device();
    return dev == KD_CPU ? kd_kernels_cpu(dt) : kd_dev_table(dev, dt);
}

void kd_shutdown(void)
{
    kd_pool_shutdown();
    kd_arena_release();
    kd_device_shutdown();
}

/* One trampoline per kernel: the pool calls task(ctx, ith, nth); ctx carries the table entry and args. */
#define KD_KERNEL_ENTRY(name, argtype, work_expr)                                                    \
    typedef struct { void (*fn)(const argtype *, int, int); const argtype *a; } name##_ctx;          \
    static void name##_task(void *c, int ith, int nth)                                               \
    {                                                                                                \
        name##_ctx *x = c;                                                                           \
        x->fn(x->a, ith, nth);                                                                       \
    }                                                                                                \
    void kd_k_##name(kd_dtype dt, const argtype *a)                                                  \
    {                                                                                                \
        const kd_kernels *t_ = kd_kernels_for(dt);                                                   \
        name##_ctx c = { t_ ? t_->name : NULL, a };                                                  \
        if (!c.fn) {                                                                                 \
            fprintf(stderr, "kd: internal error: no %s kernel for %s on %s\n", #name, kd_dtype_name(dt), \
                    kd_device_name(kd_default_device()));                                            \
            abort();                                                                                 \
        }                                                                                            \
        kd_device dev = kd_default_device();                                                         \
        if (dev == KD_CPU) kd_parallel(name##_task, &c, (double)(work_expr));                        \
        else kd_dev_launch(dev, name##_task, &c, (double)(work_expr));                               \
    }

static double map_work(const kd_map_args *m)
{
    double n = 1;
    for (int d = 0; d < m->ndim; d++) n *= (double)m->shape[d];
    return n * 4;
}

KD_KERNEL_ENTRY(gemm, kd_gemm_args, 2.0 * a->m * a->n * a->k * a->batch)
KD_KERNEL_ENTRY(unary, kd_map_args, map_work(a))
KD_KERNEL_ENTRY(binary, kd_map_args, map_work(a))
KD_KERNEL_ENTRY(reduce, kd_reduce_args, map_work(a))
KD_KERNEL_ENTRY(softmax, kd_softmax_args, 8.0 * a->rows * a->cols)
KD_KERNEL_ENTRY(softmax_bwd, kd_softmax_bwd_args, 8.0 * a->rows * a->cols)
KD_KERNEL_ENTRY(layernorm, kd_layernorm_args, 8.0 * a->rows * a->cols)
KD_KERNEL_ENTRY(layernorm_bwd, kd_layernorm_bwd_args, 12.0 * a->rows * a->cols)
KD_KERNEL_ENTRY(embedding, kd_embedding_args, 1.0 * a->n * a->dim)
KD_KERNEL_ENTRY(embedding_bwd, kd_embedding_args, 1.0 * a->n * a->dim)
KD_KERNEL_ENTRY(dropout, kd_dropout_args, 40.0 * a->n)
KD_KERNEL_ENTRY(attention, kd_attention_args, 4.0 * a->batch * a->heads * a->tq * a->tk * a->dim)
KD_KERNEL_ENTRY(attention_bwd, kd_attention_args, 8.0 * a->batch * a->heads * a->tq * a->tk * a->dim)
KD_KERNEL_ENTRY(cross_entropy, kd_cross_entropy_args, 8.0 * a->rows * a->cols)
KD_KERNEL_ENTRY(cross_entropy_bwd, kd_cross_entropy_args, 8.0 * a->rows * a->cols)
KD_KERNEL_ENTRY(kl_div, kd_kl_div_args, 8.0 * a->rows * a->cols)
KD_KERNEL_ENTRY(kl_div_bwd, kd_kl_div_args, 8.0 * a->rows * a->cols)
KD_KERNEL_ENTRY(adamw, kd_adamw_args, 12.0 * a->n)
KD_KERNEL_ENTRY(convert, kd_convert_args, 2.0 * a->n)
