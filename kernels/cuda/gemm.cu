/* kernels/cuda/gemm.cu — the f32 SIMT GEMM (128x128x8 shared-memory tiles, 8x8 register blocking per
 * thread, float4 loads, double-buffered tiles), the dispatcher behind kernels/cuda/gemm_cuda.h, the bf16
 * conversions, the f32 table's GEMM entry in its three precisions (kd_cuda_set_precision), the bf16
 * table's GEMM entry (bf16 storage), and the count of which kernels ran (kd_cuda_gemm_counts). */
#include <cuda_bf16.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
    kd_cu_epi epi;   /* f32 C and bias: epi.bf16 = 0 */
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
    const int64_t c_base = bz * p.sc;

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
        const int64_t crow = c_base + row * p.ldc;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            int64_t col = n0 + (j < 4 ? 4 * tx + j : 64 + 4 * tx + j - 4);
            if (col < p.n) kd_cu_epi_store_t(p.epi, acc[i][j], p.c + crow + col, col);
        }
    }
}

/* alpha = 0 or k = 0: C = beta C + bias, no product (C f32, or bf16 when e.bf16). */
__global__ void scale_c_kernel(int64_t m, int64_t n, void *C, int64_t ldc, int64_t sc, kd_cu_epi e)
{
    int64_t total = m * n;
    const int64_t base = blockIdx.z * sc;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / n, j = i % n;
        kd_cu_epi_store(e, 0.0f, C, base + r * ldc + j, j);
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

/* Strided packing of one GEMM operand into bf16 (from f32, rounded to nearest even; or from bf16, copied):
 * dst[z][r][c] = src(z, r, c) for r < rows, c < cols,
 * where src(z, r, c) = src[z sstride + r ld + c], or src[z sstride + c ld + r] when T (the operand is stored
 * transposed). dst rows are ldd apart, batches dstride. A 32 x 8 block moves 32 x 32 tiles; the transposed
 * case goes through shared memory so reads and writes both run along contiguous addresses. */
template <typename S, bool T>
__global__ void __launch_bounds__(256) pack_bf16_kernel(const S *__restrict__ src, int64_t ld, int64_t sstride,
                                                        int64_t rows, int64_t cols, __nv_bfloat16 *__restrict__ dst,
                                                        int64_t ldd, int64_t dstride)
{
    __shared__ float tile[32][33];   /* bf16 values are exact in f32 */
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t c0 = (int64_t)blockIdx.x * 32, ytiles = (rows + 31) / 32;
    src += blockIdx.z * sstride;
    dst += blockIdx.z * dstride;
    for (int64_t by = blockIdx.y; by < ytiles; by += gridDim.y) {
        const int64_t r0 = by * 32;
        if (!T) {
            for (int i = ty; i < 32; i += 8) {
                int64_t r = r0 + i, c = c0 + tx;
                if (r < rows && c < cols) dst[r * ldd + c] = kd_cu_st<__nv_bfloat16>(kd_cu_ld(src[r * ld + c]));
            }
        } else {
            /* tile[i][tx] = element (r0 + tx, c0 + i): a warp reads 32 consecutive r of one stored row */
            for (int i = ty; i < 32; i += 8) {
                int64_t r = r0 + tx, c = c0 + i;
                if (r < rows && c < cols) tile[i][tx] = kd_cu_ld(src[c * ld + r]);
            }
            __syncthreads();
            for (int i = ty; i < 32; i += 8) {
                int64_t r = r0 + i, c = c0 + tx;
                if (r < rows && c < cols) dst[r * ldd + c] = kd_cu_st<__nv_bfloat16>(tile[tx][i]);
            }
            __syncthreads(); /* the tile is refilled by the next step of the loop */
        }
    }
}

template <typename S>
kd_cuda_result pack_bf16(uint16_t *dst, int64_t ldd, int64_t dstride, const S *src, int trans, int64_t rows,
                    int64_t cols, int64_t ld, int64_t sstride, int64_t nbatch)
{
    int64_t yt = (rows + 31) / 32;
    dim3 grid((unsigned)((cols + 31) / 32), (unsigned)(yt > 65535 ? 65535 : yt), (unsigned)nbatch);
    dim3 block(32, 8);
    __nv_bfloat16 *d = (__nv_bfloat16 *)dst;
    if (trans) pack_bf16_kernel<S, true><<<grid, block, 0, kd_cu_stream()>>>(src, ld, sstride, rows, cols, d, ldd, dstride);
    else pack_bf16_kernel<S, false><<<grid, block, 0, kd_cu_stream()>>>(src, ld, sstride, rows, cols, d, ldd, dstride);
    KD_CU_LAUNCH();
    return KD_CUDA_OK;
}

kd_cuda_result sgemm(const kd_gemm_args *g, int gelu)
{
    sgemm_params p;
    p.m = g->m; p.n = g->n; p.k = g->k;
    p.a = (const float *)g->a; p.lda = g->lda; p.sa = g->stride_a;
    p.b = (const float *)g->b; p.ldb = g->ldb; p.sb = g->stride_b;
    p.c = (float *)g->c; p.ldc = g->ldc; p.sc = g->stride_c;
    p.epi.alpha = (float)g->alpha; p.epi.beta = (float)g->beta; p.epi.bias = g->bias; p.epi.gelu = gelu;
    p.epi.bf16 = 0;
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
    return KD_CUDA_OK;
}

} /* namespace */

/* Shapes the kernels cannot take are bad arguments, reported rather than launched. */
static kd_cuda_result gemm_check(const kd_gemm_args *g)
{
    if (g->m < 0 || g->n < 0 || g->k < 0 || g->batch < 0)
        return kd_cuda_fail(KD_CUDA_ERR_SHAPE, "%s:%d: gemm: negative size (m %lld, n %lld, k %lld, batch %lld)", __FILE__,
                       __LINE__, (long long)g->m, (long long)g->n, (long long)g->k, (long long)g->batch);
    if (g->batch > 65535 || (g->m + 15) / 16 > 65535)
        return kd_cuda_fail(KD_CUDA_ERR_SHAPE, "%s:%d: gemm: batch %lld or m %lld beyond the launch grid (batch <= 65535)",
                       __FILE__, __LINE__, (long long)g->batch, (long long)g->m);
    return KD_CUDA_OK;
}

/* ---- which kernels ran (kd_cuda_gemm_counts; the CUDA layer is driven from one host thread) ---- */

static kd_cuda_gemm_counts g_counts;

extern "C" void kd_cuda_gemm_counts_get(kd_cuda_gemm_counts *c) { *c = g_counts; }
extern "C" void kd_cuda_gemm_counts_reset(void) { memset(&g_counts, 0, sizeof g_counts); }

/* A bf16 GEMM ran a slower kernel than the one meant for it: count it and keep the reason. */
static void note_fallback(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note_fallback(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_counts.fallback_reason, sizeof g_counts.fallback_reason, fmt, ap);
    va_end(ap);
    g_counts.wgmma_fallbacks++;
}

/* Count a launch that went through. */
static kd_cuda_result counted(kd_cuda_result st, uint64_t *counter)
{
    if (st == KD_CUDA_OK) (*counter)++;
    return st;
}

/* The dispatcher; c_bf16: C and bias are bf16 (bf16-input types only). KD_CUDA_GEMM_BF16_WGMMA runs the
 * mma.sync kernel where the wgmma kernel cannot (device, layout, or the driver refusing the tensor maps),
 * and records why (kd_cuda_gemm_counts). */
static kd_cuda_result gemm_run(const kd_gemm_args *g, kd_cuda_gemm_type type, int gelu, int c_bf16)
{
    kd_cuda_result st = gemm_check(g);
    if (st != KD_CUDA_OK) return st;
    if (g->m == 0 || g->n == 0 || g->batch == 0) return KD_CUDA_OK;
    if (g->k == 0 || g->alpha == 0.0) {
        kd_cu_epi e = { 0.0f, (float)g->beta, g->bias, gelu, c_bf16 };
        unsigned bx = kd_cu_blocks(g->m * g->n, 256);
        if (bx > 4096) bx = 4096;
        scale_c_kernel<<<dim3(bx, 1, (unsigned)g->batch), 256, 0, kd_cu_stream()>>>(g->m, g->n, g->c, g->ldc,
                                                                                  g->stride_c, e);
        KD_CU_LAUNCH();
        return KD_CUDA_OK;
    }
    switch (type) {
    case KD_CUDA_GEMM_F32: return counted(sgemm(g, gelu), &g_counts.simt);
    case KD_CUDA_GEMM_TF32: return counted(kd_cu_gemm_mma(g, 0, gelu, 0), &g_counts.mma_tf32);
    case KD_CUDA_GEMM_BF16: return counted(kd_cu_gemm_mma(g, 1, gelu, c_bf16), &g_counts.mma_bf16);
    case KD_CUDA_GEMM_BF16_WGMMA:
        if (!kd_cuda_has_wgmma()) {
            note_fallback("%s", kd_cuda_wgmma_unavailable());
        } else if (!kd_cu_wgmma_layout_ok(g)) {
            note_fallback("layout: the wgmma kernel takes K-major bf16 operands with 16-byte rows; got trans_a %d "
                          "trans_b %d m %lld n %lld k %lld lda %lld ldb %lld batch %lld", g->trans_a, g->trans_b,
                          (long long)g->m, (long long)g->n, (long long)g->k, (long long)g->lda, (long long)g->ldb,
                          (long long)g->batch);
        } else {
            st = kd_cu_gemm_wgmma(g, gelu, c_bf16);
            if (st != KD_CUDA_ERR_ARG) return counted(st, &g_counts.wgmma);
            note_fallback("%s", kd_cuda_last_error());   /* the driver would not encode the tensor maps */
            kd_cuda_clear_error();
        }
        return counted(kd_cu_gemm_mma(g, 1, gelu, c_bf16), &g_counts.mma_bf16);
    }
    return kd_cuda_fail(KD_CUDA_ERR_ARG, "%s:%d: gemm: unknown type %d", __FILE__, __LINE__, (int)type);
}

extern "C" kd_cuda_result kd_cuda_gemm(const kd_gemm_args *g, kd_cuda_gemm_type type, kd_cuda_epilogue epi)
{
    return gemm_run(g, type, epi == KD_CUDA_EPI_GELU, 0);
}

extern "C" kd_cuda_result kd_cuda_gemm_f32(const kd_gemm_args *g) { return kd_cuda_gemm(g, KD_CUDA_GEMM_F32, KD_CUDA_EPI_NONE); }
extern "C" kd_cuda_result kd_cuda_gemm_tf32(const kd_gemm_args *g) { return kd_cuda_gemm(g, KD_CUDA_GEMM_TF32, KD_CUDA_EPI_NONE); }
extern "C" kd_cuda_result kd_cuda_gemm_bf16(const kd_gemm_args *g) { return kd_cuda_gemm(g, KD_CUDA_GEMM_BF16, KD_CUDA_EPI_NONE); }

/* ---- the table's GEMM entry ---- */

static kd_cuda_precision g_precision = KD_CUDA_PREC_F32;

extern "C" kd_cuda_result kd_cuda_set_precision(kd_cuda_precision p)
{
    if (p != KD_CUDA_PREC_F32 && p != KD_CUDA_PREC_TF32 && p != KD_CUDA_PREC_BF16)
        return kd_cuda_fail(KD_CUDA_ERR_ARG, "%s:%d: kd_cuda_set_precision: %d is not a precision (f32 %d, tf32 %d, bf16 %d)",
                       __FILE__, __LINE__, (int)p, (int)KD_CUDA_PREC_F32, (int)KD_CUDA_PREC_TF32, (int)KD_CUDA_PREC_BF16);
    g_precision = p;
    return KD_CUDA_OK;
}

extern "C" kd_cuda_precision kd_cuda_get_precision(void) { return g_precision; }

extern "C" const char *kd_cuda_precision_name(kd_cuda_precision p)
{
    switch (p) {
    case KD_CUDA_PREC_F32: return "f32";
    case KD_CUDA_PREC_TF32: return "tf32";
    case KD_CUDA_PREC_BF16: return "bf16";
    }
    return "?";
}

static size_t round_up_256(size_t b) { return (b + 255) & ~(size_t)255; }

/* Mixed precision: C = alpha op(A) op(B) + beta C + bias with op(A), op(B) rounded to bf16 (nearest even)
 * and f32 accumulation. Both operands are packed K-major into the workspace, op(A) as m x kp and op(B) as
 * n x kp (kp = k rounded up to 8, so every row starts on 16 bytes), which is the layout of the wgmma
 * kernel (A m x k, B n x k) and a layout the mma.sync kernel takes with full 16-byte loads, whatever the
 * caller's leading dimensions, strides and transposes were. A batch-shared operand (stride 0) is
 * converted once and stays shared; a shared B over a batch of A whose C matrices follow one another is
 * run as one GEMM of batch m rows. beta, bias and alpha go to the GEMM unchanged (C is f32 throughout).
 * Since the operands are repacked, the bf16 kernels take every shape gemm_check accepts; the one case
 * that falls back to the f32 SIMT GEMM is a workspace the device has no memory for (counted and
 * explained in kd_cuda_gemm_counts, as is any bf16 GEMM that misses the wgmma kernel on a device with it). */
static kd_cuda_result table_gemm_bf16(const kd_gemm_args *g)
{
    const int64_t m = g->m, n = g->n, k = g->k, batch = g->batch;
    if (gemm_check(g) != KD_CUDA_OK || m == 0 || n == 0 || batch == 0 || k == 0 || g->alpha == 0.0)
        return kd_cuda_gemm(g, KD_CUDA_GEMM_F32, KD_CUDA_EPI_NONE); /* errors, or no product to round */
    const int64_t kp = (k + 7) / 8 * 8;
    const int shared_a = batch > 1 && g->stride_a == 0, shared_b = batch > 1 && g->stride_b == 0;
    const int64_t na = shared_a ? 1 : batch, nb = shared_b ? 1 : batch;
    const size_t bytes_a = round_up_256((size_t)(na * m * kp) * 2), bytes_b = (size_t)(nb * n * kp) * 2;
    void *wsp = NULL;
    kd_cuda_result st = kd_cu_workspace(bytes_a + bytes_b, &wsp);
    if (st == KD_CUDA_ERR_NOMEM) {   /* no room for the bf16 copies */
        note_fallback("no device memory for %zu bytes of bf16 operand copies: the f32 SIMT kernel ran", bytes_a + bytes_b);
        return kd_cuda_gemm(g, KD_CUDA_GEMM_F32, KD_CUDA_EPI_NONE);
    }
    if (st != KD_CUDA_OK) return st;
    uint16_t *ws = (uint16_t *)wsp, *pa = ws, *pb = (uint16_t *)((char *)ws + bytes_a);

    /* op(A)[i][p] is A[i lda + p], or A[p lda + i] with trans_a; op(B)^T[j][p] is B[j ldb + p] with
     * trans_b, else B[p ldb + j] (stored transposed relative to the packed n x k). */
    st = pack_bf16(pa, kp, m * kp, (const float *)g->a, g->trans_a, m, k, g->lda, g->stride_a, na);
    if (st == KD_CUDA_OK) st = pack_bf16(pb, kp, n * kp, (const float *)g->b, !g->trans_b, n, k, g->ldb, g->stride_b, nb);
    if (st != KD_CUDA_OK) return st;

    kd_gemm_args p = *g;
    p.trans_a = 0; p.a = pa; p.lda = kp; p.stride_a = shared_a ? 0 : m * kp;
    p.trans_b = 1; p.b = pb; p.ldb = kp; p.stride_b = shared_b ? 0 : n * kp;
    if (shared_b && !shared_a && g->stride_c == m * g->ldc && (batch * m + 15) / 16 <= 65535) {
        p.m = batch * m;   /* packed A batches are contiguous rows, and so are C's */
        p.batch = 1;
        p.stride_a = p.stride_b = p.stride_c = 0;
    }
    /* the packed operands are a wgmma layout: on a device with wgmma, anything else is a recorded fallback */
    return kd_cuda_gemm(&p, kd_cuda_has_wgmma() ? KD_CUDA_GEMM_BF16_WGMMA : KD_CUDA_GEMM_BF16, KD_CUDA_EPI_NONE);
}

/* The bf16 table's GEMM: A, B, C and bias bf16 in memory, f32 accumulation, C rounded once in the
 * epilogue. The operands go to the tensor-core kernels as they are where their layout allows: on sm_90
 * the wgmma kernel wants both K-major (A m x k, B n x k) with 16-byte rows; elsewhere the mma.sync kernel
 * takes any transpose and wants only 16-byte rows for its cp.async loads. An operand that does not fit is
 * copied (bf16 to bf16, transposed as needed) into the workspace K-major with rows of kp = k rounded up
 * to 8, as table_gemm_bf16 does; batch-shared operands stay shared, and a shared B over a batch of
 * contiguous A and C rows runs as one GEMM of batch m rows. Without workspace memory the mma.sync kernel
 * runs on the caller's layout (element loads where 16-byte loads are not legal). On a device with wgmma,
 * every GEMM that does not run it is counted with its reason in kd_cuda_gemm_counts. */
static kd_cuda_result table_gemm_bf16_storage(const kd_gemm_args *g)
{
    const int64_t m = g->m, n = g->n, k = g->k, batch = g->batch;
    if (gemm_check(g) != KD_CUDA_OK || m == 0 || n == 0 || batch == 0 || k == 0 || g->alpha == 0.0)
        return gemm_run(g, KD_CUDA_GEMM_BF16, 0, 1); /* errors, or C = beta C + bias */
    const int wg = kd_cuda_has_wgmma();
    const int al_a = kd_cu_operand_aligned(g->a, g->lda, g->stride_a, batch, 8);
    const int al_b = kd_cu_operand_aligned(g->b, g->ldb, g->stride_b, batch, 8);
    int need_a, need_b;
    if (wg) {
        need_a = !(al_a && !g->trans_a && g->lda >= k);
        need_b = !(al_b && g->trans_b && g->ldb >= k);
    } else {
        need_a = !al_a;
        need_b = !al_b;
    }
    kd_gemm_args p = *g;
    if (need_a || need_b) {
        const int64_t kp = (k + 7) / 8 * 8;
        const int shared_a = batch > 1 && g->stride_a == 0, shared_b = batch > 1 && g->stride_b == 0;
        const int64_t na = shared_a ? 1 : batch, nb = shared_b ? 1 : batch;
        const size_t bytes_a = need_a ? round_up_256((size_t)(na * m * kp) * 2) : 0;
        const size_t bytes_b = need_b ? (size_t)(nb * n * kp) * 2 : 0;
        void *wsp = NULL;
        kd_cuda_result st = kd_cu_workspace(bytes_a + bytes_b, &wsp);
        if (st == KD_CUDA_ERR_NOMEM) {   /* no room for the copies: mma.sync on the caller's layout */
            if (wg) note_fallback("no device memory for %zu bytes of K-major operand copies: mma.sync ran", bytes_a + bytes_b);
            return gemm_run(g, KD_CUDA_GEMM_BF16, 0, 1);
        }
        if (st != KD_CUDA_OK) return st;
        uint16_t *ws = (uint16_t *)wsp, *pa = ws, *pb = (uint16_t *)((char *)ws + bytes_a);
        const __nv_bfloat16 *A = (const __nv_bfloat16 *)g->a, *B = (const __nv_bfloat16 *)g->b;
        if (need_a) {
            st = pack_bf16(pa, kp, m * kp, A, g->trans_a, m, k, g->lda, g->stride_a, na);
            p.trans_a = 0; p.a = pa; p.lda = kp; p.stride_a = shared_a ? 0 : m * kp;
        }
        if (need_b && st == KD_CUDA_OK) {
            st = pack_bf16(pb, kp, n * kp, B, !g->trans_b, n, k, g->ldb, g->stride_b, nb);
            p.trans_b = 1; p.b = pb; p.ldb = kp; p.stride_b = shared_b ? 0 : n * kp;
        }
        if (st != KD_CUDA_OK) return st;
    }
    /* A shared B and A's batches as consecutive rows (stride m lda, not transposed), C's likewise. */
    if (batch > 1 && p.stride_b == 0 && !p.trans_a && p.stride_a == m * p.lda && p.stride_c == m * p.ldc &&
        (batch * m + 15) / 16 <= 65535) {
        p.m = batch * m;
        p.batch = 1;
        p.stride_a = p.stride_b = p.stride_c = 0;
    }
    return gemm_run(&p, wg ? KD_CUDA_GEMM_BF16_WGMMA : KD_CUDA_GEMM_BF16, 0, 1);
}

extern "C" void kd_cu_gemm_bf16(const kd_gemm_args *g, int ith, int nth)
{
    (void)ith; (void)nth;
    kd_cuda_note(table_gemm_bf16_storage(g)); /* errors: kd_cuda_status() */
}

extern "C" void kd_cu_gemm_f32(const kd_gemm_args *g, int ith, int nth)
{
    (void)ith; (void)nth;
    kd_cuda_result st;
    switch (g_precision) {
    case KD_CUDA_PREC_TF32: st = kd_cuda_gemm(g, KD_CUDA_GEMM_TF32, KD_CUDA_EPI_NONE); break;
    case KD_CUDA_PREC_BF16: st = table_gemm_bf16(g); break;
    default: st = kd_cuda_gemm(g, KD_CUDA_GEMM_F32, KD_CUDA_EPI_NONE); break;
    }
    kd_cuda_note(st); /* errors: kd_cuda_status() */
}

extern "C" kd_cuda_result kd_cuda_f32_to_bf16(uint16_t *dst, const float *src, int64_t n)
{
    if (n <= 0) return KD_CUDA_OK;
    unsigned b = kd_cu_blocks(n, 256);
    f32_to_bf16_kernel<<<b > 32768u ? 32768u : b, 256, 0, kd_cu_stream()>>>(dst, src, n);
    KD_CU_LAUNCH();
    return KD_CUDA_OK;
}

extern "C" kd_cuda_result kd_cuda_bf16_to_f32(float *dst, const uint16_t *src, int64_t n)
{
    if (n <= 0) return KD_CUDA_OK;
    unsigned b = kd_cu_blocks(n, 256);
    bf16_to_f32_kernel<<<b > 32768u ? 32768u : b, 256, 0, kd_cu_stream()>>>(dst, src, n);
    KD_CU_LAUNCH();
    return KD_CUDA_OK;
}
