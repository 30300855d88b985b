/* kernels/cpu/gemm_avx512.c — f32 GEMM with a 6x64 AVX-512 FMA micro-kernel (24 zmm accumulators,
 * four B vectors and one broadcast of A per row per step of the reduction) inside the blocked driver.
 * A 12x32 tile (two B vectors, twelve broadcasts per step) is kept behind GEMM_TILE_12X32: on Zen 5 it
 * measured ~160 GFLOP/s/core against ~195 for 6x64 (BERT shapes, 1 thread), the extra broadcasts
 * competing with the FMAs. */
#include <immintrin.h>

#include "kernels/cpu/cpu_kernels.h"

/* Blocks for a Zen 5 core (48 KiB L1d, 1 MiB L2, shared 32 MiB L3). The micro-tile loop runs rows
 * outside, columns inside (GEMM_IR_OUTER): one 6 x kc A micro-panel (6 KiB) stays in L1 while the
 * kc x 64 B micro-panels stream from the packed kc x nc B block, sized for L2 (768 KiB); the mc x kc A
 * block (480 KiB) is read once per block from L2/L3. With the 64-wide tile a B micro-panel is too large
 * to sit in L1 the classic way (48 KiB at kc = 192); this order measured ~3% faster (BERT shapes,
 * 1 thread, thread CPU time: ~207 vs ~201 GFLOP/s), and kc/mc/nc within a few per cent of each other
 * over kc 128..512, mc 240..960, nc 256..3072. */
#define GEMM_IR_OUTER
#ifdef GEMM_TILE_12X32
#define GEMM_MR 12
#define GEMM_NR 32
#else
#define GEMM_MR 6
#define GEMM_NR 64
#endif
#ifndef GEMM_MC
#define GEMM_MC 480
#endif
#ifndef GEMM_KC
#define GEMM_KC 256
#endif
#ifndef GEMM_NC
#define GEMM_NC 768
#endif

/* c[0..MR) x [0..NR) = alpha * sum_p a[p*MR + i] b[p*NR + j] + beta c (unread if beta == 0) + bias[j]. */
#ifdef GEMM_TILE_12X32
static inline void ukr_avx512(int64_t kc, const float *restrict a, const float *restrict b, float *restrict c,
                              int64_t ldc, float alpha, float beta, const float *restrict bias)
{
#define KD_ACC(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps();
    KD_ACC(0) KD_ACC(1) KD_ACC(2) KD_ACC(3) KD_ACC(4) KD_ACC(5)
    KD_ACC(6) KD_ACC(7) KD_ACC(8) KD_ACC(9) KD_ACC(10) KD_ACC(11)
#undef KD_ACC
    for (int64_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#define KD_STEP(i)                                                                                   \
    {                                                                                                \
        __m512 ai = _mm512_set1_ps(a[i]);                                                            \
        c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0);                                                  \
        c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1);                                                  \
    }
        KD_STEP(0) KD_STEP(1) KD_STEP(2) KD_STEP(3) KD_STEP(4) KD_STEP(5)
        KD_STEP(6) KD_STEP(7) KD_STEP(8) KD_STEP(9) KD_STEP(10) KD_STEP(11)
#undef KD_STEP
        a += GEMM_MR;
        b += GEMM_NR;
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    const __m512 bias0 = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
    const __m512 bias1 = bias ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
#define KD_OUT(i)                                                                                    \
    {                                                                                                \
        float *r = c + (i) * ldc;                                                                    \
        __m512 v0 = _mm512_mul_ps(va, c##i##0), v1 = _mm512_mul_ps(va, c##i##1);                     \
        if (beta != 0.0f) {                                                                          \
            v0 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(r), v0);                                        \
            v1 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(r + 16), v1);                                   \
        }                                                                                            \
        if (bias) {                                                                                  \
            v0 = _mm512_add_ps(v0, bias0);                                                           \
            v1 = _mm512_add_ps(v1, bias1);                                                           \
        }                                                                                            \
        _mm512_storeu_ps(r, v0);                                                                     \
        _mm512_storeu_ps(r + 16, v1);                                                                \
    }
    KD_OUT(0) KD_OUT(1) KD_OUT(2) KD_OUT(3) KD_OUT(4) KD_OUT(5)
    KD_OUT(6) KD_OUT(7) KD_OUT(8) KD_OUT(9) KD_OUT(10) KD_OUT(11)
#undef KD_OUT
}
#else
static inline void ukr_avx512(int64_t kc, const float *restrict a, const float *restrict b, float *restrict c,
                              int64_t ldc, float alpha, float beta, const float *restrict bias)
{
#define KD_ACC(i)                                                                                    \
    __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps(), c##i##2 = _mm512_setzero_ps(), \
           c##i##3 = _mm512_setzero_ps();
    KD_ACC(0) KD_ACC(1) KD_ACC(2) KD_ACC(3) KD_ACC(4) KD_ACC(5)
#undef KD_ACC
    for (int64_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        __m512 b2 = _mm512_load_ps(b + 32), b3 = _mm512_load_ps(b + 48);
#define KD_STEP(i)                                                                                   \
    {                                                                                                \
        __m512 ai = _mm512_set1_ps(a[i]);                                                            \
        c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0);                                                  \
        c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1);                                                  \
        c##i##2 = _mm512_fmadd_ps(ai, b2, c##i##2);                                                  \
        c##i##3 = _mm512_fmadd_ps(ai, b3, c##i##3);                                                  \
    }
        KD_STEP(0) KD_STEP(1) KD_STEP(2) KD_STEP(3) KD_STEP(4) KD_STEP(5)
#undef KD_STEP
        a += GEMM_MR;
        b += GEMM_NR;
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#define KD_OUT1(i, q)                                                                                \
    {                                                                                                \
        float *r = c + (i) * ldc + 16 * (q);                                                         \
        __m512 v = _mm512_mul_ps(va, c##i##q);                                                       \
        if (beta != 0.0f) v = _mm512_fmadd_ps(vb, _mm512_loadu_ps(r), v);                            \
        if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias + 16 * (q)));                            \
        _mm512_storeu_ps(r, v);                                                                      \
    }
#define KD_OUT(i) KD_OUT1(i, 0) KD_OUT1(i, 1) KD_OUT1(i, 2) KD_OUT1(i, 3)
    KD_OUT(0) KD_OUT(1) KD_OUT(2) KD_OUT(3) KD_OUT(4) KD_OUT(5)
#undef KD_OUT
#undef KD_OUT1
}
#endif

#define GEMM_UKR ukr_avx512
#define GEMM_ENTRY kd_gemm_avx512_f32
#define GEMM_PACKED_SIZE_ENTRY kd_gemm_packed_b_size_avx512
#define GEMM_PACK_B_ENTRY kd_gemm_pack_b_avx512_f32
#include "gemm_driver.inc"

#define GEMM_ENTRY_BF16 kd_gemm_avx512_bf16
#define GEMM_PACKED_SIZE_ENTRY_BF16 kd_gemm_packed_b_size_avx512_bf16
#define GEMM_PACK_B_ENTRY_BF16 kd_gemm_pack_b_avx512_bf16
#include "gemm_bf16_driver.inc"
