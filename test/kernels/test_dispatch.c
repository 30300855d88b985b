/* test/kernels/test_dispatch.c — kd_kernels_cpu_f32 picks what this CPU runs: the best by default, a
 * named table only when the CPU (and the build) can run it, NULL for anything else; every entry of every
 * table is filled. */
#include "test/kernels/op_case.h"

static int table_complete(const kd_kernels *t)
{
    return t->gemm && t->unary && t->binary && t->reduce && t->softmax && t->softmax_bwd && t->layernorm &&
           t->layernorm_bwd && t->embedding && t->embedding_bwd && t->dropout && t->attention && t->attention_bwd &&
           t->cross_entropy && t->cross_entropy_bwd && t->kl_div && t->kl_div_bwd && t->adamw;
}

int main(void)
{
    kd_cpu_features f = kd_cpu_detect();
    printf("cpu: avx2 %d fma %d avx512f %d bw %d vl %d dq %d\n", f.avx2, f.fma, f.avx512f, f.avx512bw, f.avx512vl,
           f.avx512dq);
    const int can2 = f.avx2 && f.fma;
    const int can512 = can2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
    const kd_kernels *ref = kd_kernels_cpu_f32("ref"), *best = kd_kernels_cpu_f32(NULL);
    const kd_kernels *a2 = kd_kernels_cpu_f32("avx2"), *a5 = kd_kernels_cpu_f32("avx512");
    CHECK(ref == kd_kernels_ref_f32(), "\"ref\" must be the reference table");
    CHECK(best != NULL && table_complete(best), "the default table must exist and be complete");
    CHECK(kd_kernels_cpu_f32("best") == best, "\"best\" and NULL must agree");
    CHECK(kd_kernels_cpu_f32("sse9") == NULL, "an unknown name must give NULL");
#ifdef KD_HAVE_AVX2
    CHECK(can2 ? a2 != NULL && strcmp(a2->name, "avx2") == 0 && table_complete(a2) : a2 == NULL,
          "avx2 table iff the CPU runs AVX2+FMA");
    if (a2) CHECK(a2->gemm != ref->gemm && a2->softmax != ref->softmax, "avx2 table must carry its fast kernels");
#endif
#ifdef KD_HAVE_AVX512
    CHECK(can512 ? a5 != NULL && strcmp(a5->name, "avx512") == 0 && table_complete(a5) : a5 == NULL,
          "avx512 table iff the CPU runs AVX-512 F/BW/VL/DQ");
    if (can512) CHECK(best == a5, "the default on an AVX-512 CPU must be avx512, got %s", best ? best->name : "NULL");
#else
    CHECK(a5 == NULL, "no avx512 table in a build without it");
#endif
    if (!can512 && can2 && a2) CHECK(best == a2, "the default on an AVX2 CPU must be avx2");
    printf("default table: %s\n", best ? best->name : "NULL");
    (void)can512;
    (void)a5;
    return kd_test_finish("test_dispatch");
}
