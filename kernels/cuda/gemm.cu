/* kernels/cuda/gemm.cu — the f32 SIMT GEMM (128x128x8 shared-memory tiles, 8x8 register blocking per
 * thread, float4 loads, double-buffered tiles), the dispatcher behind kernels/cuda/gemm_cuda.h, and the
 * bf16 conversions. */
#include <cuda_bf16.h>

#include "kernels/cuda/gemm_internal.h"
#include "kernels/cuda/gemm_plan.h"
#include "kernels/cuda/cuda_kernels.h"

namespace {

constexpr int BM = 128, BN = 128, BK = 8, PAD = 4;

struct sgemm_params {
    int64_t m, n, k;
    const float *a; int64_t lda, sa;
    const float *b; int64_t ldb, sb;
    float *c; int64_t ldc, sc;
    kd_cu_epi epi;
    int vec;      /* float4 loads legal (see kd_cu_gemm_aligned) */
};

/* Each of the 256 threads loads 4 elements of the A tile (128 x 8) and 4 of the B tile (8 x 128) per step.
 * Tiles are stored k-major (As[k][m], Bs[k][n]) so the inner product reads float4s along m and n.
 *   A not transposed (m x k, k contiguous): thread -> row m = t/2, k = 4 (t%2) .. +3, stored transposed.
 *   A transposed     (k x m, m contiguous): thread -> k = t/32, m = 4 (t%32) .. +3.
 * B likewise with the roles of contiguous and strided swapped. Out-of-range elements load as 0. */
template <bool TA>
__device__ __forceinline__ void load_a(const sgemm_params &p, const float *A, int64_t m0, int64_t k0, int t, float r[4])
{
    int64_t row, col;                  /* row along m, col along k */
    if (!TA) { row = m0 + t / 2; col = k0 + 4 * (t % 2); }
    else     { row = m0 + 4 * (t % 32); col = k0 + t / 32; }
    if (!TA) {
        const float *src = A + row * p.lda + col;
        if (p.vec && row < p.m && col + 3 < p.k) {
            float4 v = *(const float4 *)src;
            r[0] = v.x; r[1] = v.y; r[2] = v.z; r[3] = v.w;
        } else {
            for (int i = 0; i < 4; i++) r[i] = (row < p.m && col + i < p.k) ? src[i] : 0.0f;
        }
    } else {
        const float *src = A + col * p.lda + row;
        if (p.vec && col < p.k && row + 3 < p.m) {
            float4 v = *(const float4 *)src;
            r[0] = v.x; r[1] = v.y; r[2] = v.z; r[3] = v.w;
        } else {
            for (int i = 0; i < 4; i++) r[i] = (col < p.k && row + i < p.m) ? src[i] : 0.0f;
        }
    }
}

template <bool TB>
__device__ __forceinline__ void load_b(const sgemm_params &p, const float *B, int64_t n0, int64_t k0, int t, float r[4])
{
    int64_t kk, col;                   /* kk along k, col along n */
    if (!TB) { kk = k0 + t / 32; col = n0 + 4 * (t % 32); }
    else     { kk = k0 + 4 * (t % 2); col = n0 + t / 2; }
    if (!TB) {
        const float *src = B + kk * p.ldb + col;
        if (p.vec && kk < p.k && col + 3 < p.n) {
            float4 v = *(const float4 *)src;
            r[0] = v.x; r[1] = v.y; r[2] = v.z; r[3] = v.w;
        } else {
            for (int i = 0; i < 4; i++) r[i] = (kk < p.k && col + i < p.n) ? src[i] : 0.0f;
        }
    } else {
        const float *src = B + col * p.ldb + kk;
        if (p.vec && col < p.n && kk + 3 < p.k) {
            float4 v = *(const float4 *)src;
            r[0] = v.x; r[1] = v.y; r[2] = v.z; r[3] = v.w;
        } else {
            for (int i = 0; i < 4; i++) r[i] = (col < p.n && kk + i < p.k) ? src[i] : 0.0f;
        }
    }
}

template <bool TA>
__device__ __forceinline__ void store_a(float (*As)[BM + PAD], int t, const float r[4])
{
    if (!TA) { for (int i = 0; i < 4; i++) As[4 * (t % 2) + i][t / 2] = r[i]; }
    else     { *(float4 *)&As[t / 32][4 * (t % 32)] = make_float4(r[0], r[1], r[2], r[3]); }
}

template <bool TB>
__device__ __forceinline__ void store_b(float (*Bs)[BN + PAD], int t, const float r[4])
{
    if (!TB) { *(float4 *)&Bs[t / 32][4 * (t % 32)] = make_float4(r[0], r[1], r[2], r[3]); }
    else     { for (int i = 0; i < 4; i++) Bs[4 * (t % 2) + i][t / 2] = r[i]; }
}

/* Thread (ty, tx) of 16 x 16 owns rows {4ty..4ty+3, 64+4ty..} and columns {4tx.., 64+4tx..}: the two
 * halves keep the float4 shared-memory reads of a warp on distinct banks. */
template <bool TA, bool TB>
__global__ void __launch_bounds__(256) sgemm_kernel(sgemm_params p)
{
    __shared__ __align__(16) float As[2][BK][BM + PAD];
    __shared__ __align__(16) float Bs[2][BK][BN + PAD];
    const int t = threadIdx.x, tx = t % 16, ty = t / 16;
    const int64_t m0 = (int64_t)blockIdx.y * BM, n0 = (int64_t)blockIdx.x * BN, bz = blockIdx.z;
    const float *A = p.a + bz * p.sa, *B = p.b + bz * p.sb;
    float *C = p.c + bz * p.sc;

    float acc[8][8] = {};
    float ra[4], rb[4];
    load_a<TA>(p, A, m0, 0, t, ra);
    load_b<TB>(p, B, n0, 0, t, rb);
    store_a<TA>(As[0], t, ra);
    store_b<TB>(Bs[0], t, rb);
    __syncthreads();

    int buf = 0;
    for (int64_t k0 = 0; k0 < p.k; k0 += BK) {
        const bool more = k0 + BK < p.k;
        if (more) {             /* fetch the next tile into registers while this one is multiplied */
            load_a<TA>(p, A, m0, k0 + BK, t, ra);
            load_b<TB>(p, B, n0, k0 + BK, t, rb);
        }
#pragma unroll
        for (int kk = 0; kk < BK; kk++) {
            float4 a0 = *(const float4 *)&As[buf][kk][4 * ty], a1 = *(const float4 *)&As[buf][kk][64 + 4 * ty];
            float4 b0 = *(const float4 *)&Bs[buf][kk][4 * tx], b1 = *(const float4 *)&Bs[buf][kk][64 + 4 * tx];
            float av[8] = { a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w };
            float bv[8] = { b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w };
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int j = 0; j < 8; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
        if (more) {
            store_a<TA>(As[buf ^ 1], t, ra);
            store_b<TB>(Bs[buf ^ 1], t, rb);
            __syncthreads();
            buf ^= 1;
        }
    }

#pragma unroll
    for (int i = 0; i < 8; i++) {
        int64_t row = m0 + (i < 4 ? 4 * ty + i : 64 + 4 * ty + i - 4);
        if (row >= p.m) continue;
        float *crow = C + row * p.ldc;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            int64_t col = n0 + (j < 4 ? 4 * tx + j : 64 + 4 * tx + j - 4);
            if (col < p.n) crow[col] = kd_cu_epi_apply(p.epi, acc[i][j], crow + col, col);
        }
    }
}

/* alpha = 0 or k = 0: C = beta C + bias, no product. */
__global__ void scale_c_kernel(int64_t m, int64_t n, float *C, int64_t ldc, int64_t sc, kd_cu_epi e)
{
    int64_t total = m * n;
    float *Cb = C + blockIdx.z * sc;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / n, j = i % n;
        float *c = Cb + r * ldc + j;
        *c = kd_cu_epi_apply(e, 0.0f, c, j);
    }
}

__global__ void f32_to_bf16_kernel(uint16_t *dst, const float *src, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        __nv_bfloat16 h = __float2bfloat16_rn(src[i]);
        dst[i] = *(uint16_t *)&h;
    }
}

__global__ void bf16_to_f32_kernel(float *dst, const uint16_t *src, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = __uint_as_float((uint32_t)src[i] << 16);
}

kd_status sgemm(const kd_gemm_args *g, int gelu)
{
    sgemm_params p;
    p.m = g->m; p.n = g->n; p.k = g->k;
    p.a = (const float *)g->a; p.lda = g->lda; p.sa = g->stride_a;
    p.b = (const float *)g->b; p.ldb = g->ldb; p.sb = g->stride_b;
    p.c = (float *)g->c; p.ldc = g->ldc; p.sc = g->stride_c;
    p.epi.alpha = (float)g->alpha; p.epi.beta = (float)g->beta; p.epi.bias = (const float *)g->bias; p.epi.gelu = gelu;
    p.vec = kd_cu_gemm_aligned(g, 4);
    int64_t gx, gy, gz;
    kd_cu_gemm_grid(g->m, g->n, g->batch, BM, BN, &gx, &gy, &gz);
    dim3 grid((unsigned)gx, (unsigned)gy, (unsigned)gz);
    cudaStream_t st = kd_cu_stream();
    if (!g->trans_a && !g->trans_b) sgemm_kernel<false, false><<<grid, 256, 0, st>>>(p);
    else if (!g->trans_a && g->trans_b) sgemm_kernel<false, true><<<grid, 256, 0, st>>>(p);
    else if (g->trans_a && !g->trans_b) sgemm_kernel<true, false><<<grid, 256, 0, st>>>(p);
    else sgemm_kernel<true, true><<<grid, 256, 0, st>>>(p);
    KD_CU_LAUNCH();
    return KD_OK;
}

} /* namespace */

/* Shapes the kernels cannot take are bad arguments, reported rather than launched. */
static kd_status gemm_check(const kd_gemm_args *g)
{
    if (g->m < 0 || g->n < 0 || g->k < 0 || g->batch < 0)
        return kd_fail(KD_ERR_SHAPE, "%s:%d: gemm: negative size (m %lld, n %lld, k %lld, batch %lld)", __FILE__,
                       __LINE__, (long long)g->m, (long long)g->n, (long long)g->k, (long long)g->batch);
    if (g->batch > 65535 || (g->m + 15) / 16 > 65535)
        return kd_fail(KD_ERR_SHAPE, "%s:%d: gemm: batch %lld or m %lld beyond the launch grid (batch <= 65535)",
                       __FILE__, __LINE__, (long long)g->batch, (long long)g->m);
    return KD_OK;
}

extern "C" kd_status kd_cuda_gemm(const kd_gemm_args *g, kd_cuda_gemm_type type, kd_cuda_epilogue epi)
{
    kd_status st = gemm_check(g);
    if (st != KD_OK) return st;
    if (g->m == 0 || g->n == 0 || g->batch == 0) return KD_OK;
    int gelu = epi == KD_CUDA_EPI_GELU;
    if (g->k == 0 || g->alpha == 0.0) {
        kd_cu_epi e = { 0.0f, (float)g->beta, (const float *)g->bias, gelu };
        unsigned bx = kd_cu_blocks(g->m * g->n, 256);
        if (bx > 4096) bx = 4096;
        scale_c_kernel<<<dim3(bx, 1, (unsigned)g->batch), 256, 0, kd_cu_stream()>>>(g->m, g->n, (float *)g->c, g->ldc,
                                                                                  g->stride_c, e);
        KD_CU_LAUNCH();
        return KD_OK;
    }
    switch (type) {
    case KD_CUDA_GEMM_F32: return sgemm(g, gelu);
    case KD_CUDA_GEMM_TF32: return kd_cu_gemm_mma(g, 0, gelu);
    case KD_CUDA_GEMM_BF16: return kd_cu_gemm_mma(g, 1, gelu);
    case KD_CUDA_GEMM_BF16_WGMMA:
        if (kd_cuda_has_wgmma()) {
            st = kd_cu_gemm_wgmma(g, gelu);
            if (st != KD_ERR_ARG) return st;
            kd_clear_error(); /* a layout wgmma does not take: the mma.sync kernel does */
        }
        return kd_cu_gemm_mma(g, 1, gelu);
    }
    return kd_fail(KD_ERR_ARG, "%s:%d: gemm: unknown type %d", __FILE__, __LINE__, (int)type);
}

extern "C" kd_status kd_cuda_gemm_f32(const kd_gemm_args *g) { return kd_cuda_gemm(g, KD_CUDA_GEMM_F32, KD_CUDA_EPI_NONE); }
extern "C" kd_status kd_cuda_gemm_tf32(const kd_gemm_args *g) { return kd_cuda_gemm(g, KD_CUDA_GEMM_TF32, KD_CUDA_EPI_NONE); }
extern "C" kd_status kd_cuda_gemm_bf16(const kd_gemm_args *g) { return kd_cuda_gemm(g, KD_CUDA_GEMM_BF16, KD_CUDA_EPI_NONE); }

extern "C" void kd_cu_gemm_f32(const kd_gemm_args *g, int ith, int nth)
{
    (void)ith; (void)nth;
    kd_cuda_note(kd_cuda_gemm(g, KD_CUDA_GEMM_F32, KD_CUDA_EPI_NONE)); /* errors: kd_cuda_status() */
}

extern "C" kd_status kd_cuda_f32_to_bf16(uint16_t *dst, const float *src, int64_t n)
{
    if (n <= 0) return KD_OK;
    unsigned b = kd_cu_blocks(n, 256);
    f32_to_bf16_kernel<<<b > 32768u ? 32768u : b, 256, 0, kd_cu_stream()>>>(dst, src, n);
    KD_CU_LAUNCH();
    return KD_OK;
}

extern "C" kd_status kd_cuda_bf16_to_f32(float *dst, const uint16_t *src, int64_t n)
{
    if (n <= 0) return KD_OK;
    unsigned b = kd_cu_blocks(n, 256);
    bf16_to_f32_kernel<<<b > 32768u ? 32768u : b, 256, 0, kd_cu_stream()>>>(dst, src, n);
    KD_CU_LAUNCH();
    return KD_OK;
}
