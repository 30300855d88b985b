/* kernels/cpu/table_avx512.c — the AVX-512 f32 table: AVX-512 GEMM; the bandwidth-bound row kernels are
 * the AVX2 ones (every AVX-512 CPU runs them); the rest is the reference. */
#include <pthread.h>

#include "kernels/cpu/cpu_kernels.h"

static kd_kernels table_avx512;
static pthread_once_t table_avx512_once = PTHREAD_ONCE_INIT;

static void table_avx512_build(void)
{
    table_avx512 = *kd_kernels_avx2_f32();
    table_avx512.name = "avx512";
    table_avx512.gemm = kd_gemm_avx512_f32;
}

const kd_kernels *kd_kernels_avx512_f32(void)
{
    pthread_once(&table_avx512_once, table_avx512_build);
    return &table_avx512;
}
