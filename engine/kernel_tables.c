/* engine/kernel_tables.c — which kernel tables the CPU runs: the fastest f32 table it supports (or the one
 * kd_backend_select or KD_KERNELS names), the bf16 table of the same ISA, the f64 reference. */
#include <stdio.h>
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
