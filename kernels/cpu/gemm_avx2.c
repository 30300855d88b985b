/* kernels/cpu/gemm_avx2.c — f32 GEMM with a 6x16 AVX2+FMA micro-kernel (12 ymm accumulators, two B
 * vectors and one broadcast of A per step of the reduction) inside the blocked driver. */
#include <immintrin.h>

#include "kernels/cpu/cpu_kernels.h"

/* Blocks for a Zen 5 core (48 KiB L1d, 1 MiB L2, shared 32 MiB L3): a kc x 16 B micro-panel (24 KiB at
 * kc = 384) stays in L1, the mc x kc A block (180 KiB) in L2, the kc x nc B block (4.5 MiB) in L3.
 * kc = 384 and mc = 120 measured best (thread CPU time, 1 thread, BERT shapes) in a sweep of kc
 * 128..768 and mc 48..504, by a few per cent: the 6x16 tile is not sensitive to them. */
#define GEMM_MR 6
#define GEMM_NR 16
#ifndef GEMM_MC
#define GEMM_MC 120
#endif
#ifndef GEMM_KC
#define GEMM_KC 384
#endif
#ifndef GEMM_NC
#define GEMM_NC 3072
#endif

/* c[0..6) x [0..16) = alpha * sum_p a[p*6 + i] b[p*16 + j] + beta c (unread if beta == 0) + bias[j]. */
static inline void ukr_6x16(int64_t kc, const float *restrict a, const float *restrict b, float *restrict c,
                            int64_t ldc, float alpha, float beta, const float *restrict bias)
{
#define KD_ACC(i) __m256 c##i##0 = _mm256_setzero_ps(), c##i##1 = _mm256_setzero_ps();
    KD_ACC(0) KD_ACC(1) KD_ACC(2) KD_ACC(3) KD_ACC(4) KD_ACC(5)
#undef KD_ACC
    for (int64_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#define KD_STEP(i)                                                                                   \
    {                                                                                                \
        __m256 ai = _mm256_broadcast_ss(a + (i));                                                    \
        c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);                                                  \
        c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);                                                  \
    }
        KD_STEP(0) KD_STEP(1) KD_STEP(2) KD_STEP(3) KD_STEP(4) KD_STEP(5)
#undef KD_STEP
        a += GEMM_MR;
        b += GEMM_NR;
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    const __m256 bias0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    const __m256 bias1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
#define KD_OUT(i)                                                                                    \
    {                                                                                                \
        float *r = c + (i) * ldc;                                                                    \
        __m256 v0 = _mm256_mul_ps(va, c##i##0), v1 = _mm256_mul_ps(va, c##i##1);                     \
        if (beta != 0.0f) {                                                                          \
            v0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(r), v0);                                        \
            v1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(r + 8), v1);                                    \
        }                                                                                            \
        if (bias) {                                                                                  \
            v0 = _mm256_add_ps(v0, bias0);                                                           \
            v1 = _mm256_add_ps(v1, bias1);                                                           \
        }                                                                                            \
        _mm256_storeu_ps(r, v0);                                                                     \
        _mm256_storeu_ps(r + 8, v1);                                                                 \
    }
    KD_OUT(0) KD_OUT(1) KD_OUT(2) KD_OUT(3) KD_OUT(4) KD_OUT(5)
#undef KD_OUT
}

#define GEMM_UKR ukr_6x16
#define GEMM_ENTRY kd_gemm_avx2_f32
#define GEMM_PACKED_SIZE_ENTRY kd_gemm_packed_b_size_avx2
#define GEMM_PACK_B_ENTRY kd_gemm_pack_b_avx2_f32
#include "gemm_driver.inc"

#define GEMM_ENTRY_BF16 kd_gemm_avx2_bf16
#define GEMM_PACKED_SIZE_ENTRY_BF16 kd_gemm_packed_b_size_avx2_bf16
#define GEMM_PACK_B_ENTRY_BF16 kd_gemm_pack_b_avx2_bf16
#include "gemm_bf16_driver.inc"
