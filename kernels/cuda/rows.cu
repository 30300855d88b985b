/* kernels/cuda/rows.cu — row kernels, one thread block per row: softmax and log-softmax (forward,
 * backward), LayerNorm (forward, backward with column sums for dgamma/dbeta), cross-entropy and KL
 * divergence (forward, backward). Sums are kept in float; rows are re-read from L1/L2, not DRAM. The loss
 * backwards read their upstream gradient from device memory (kd_cross_entropy_args.upstream, kd_kl_div_args.upstream).
 * Softmax and LayerNorm are templated on the storage type of their rows (float, or __nv_bfloat16 for the
 * bf16 table: computed in f32, each output rounded once; LayerNorm's parameters and statistics stay f32). */
#include <math.h>

#include "kernels/cuda/bf16_cuda.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_error.h"

#define KD_NEG_INF (-__int_as_float(0x7f800000))

/* Threads per row block: a multiple of 32, at most 256, no more than the row needs. */
static int row_threads(int64_t cols)
{
    int64_t t = (cols + 31) / 32 * 32;
    return (int)(t > 256 ? 256 : t < 32 ? 32 : t);
}

static unsigned row_blocks(int64_t rows) { return (unsigned)(rows > 65535 * 32 ? 65535 * 32 : rows); }

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sum over the block; every thread gets the result. `sh` holds 32 floats. */
__device__ float block_sum(float v, float *sh)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* sh may still be read from a previous call */
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    float t = lane < nw ? sh[lane] : 0.0f;
    return warp_sum(t);
}

/* Online (max, sum of exp(x - max)) pairs, merged as in Milakov & Gimelshein 2018. -inf entries add
 * nothing; a NaN anywhere makes the max NaN, as the reference's max does. */
struct ms { float m, s; };

__device__ __forceinline__ ms ms_push(ms a, float x)
{
    if (x == KD_NEG_INF) return a;
    if (isnan(x) || isnan(a.m)) { a.m = __int_as_float(0x7fc00000); return a; }
    if (x > a.m) { a.s = a.s * expf(a.m - x) + 1.0f; a.m = x; }
    else a.s += expf(x - a.m);
    return a;
}

__device__ __forceinline__ ms ms_merge(ms a, ms b)
{
    if (isnan(a.m) || isnan(b.m)) { a.m = __int_as_float(0x7fc00000); return a; }
    if (b.m == KD_NEG_INF) return a;
    if (a.m == KD_NEG_INF) return b;
    float m = fmaxf(a.m, b.m);
    ms r = { m, a.s * expf(a.m - m) + b.s * expf(b.m - m) };
    return r;
}

/* logsumexp of x[0..n) over the block; every thread gets it. -inf for an all -inf row. */
template <typename T>
__device__ float block_lse(const T *__restrict__ x, int64_t n, float *sh)
{
    ms a = { KD_NEG_INF, 0.0f };
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) a = ms_push(a, kd_cu_ld(x[j]));
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        ms b = { __shfl_xor_sync(0xffffffffu, a.m, o), __shfl_xor_sync(0xffffffffu, a.s, o) };
        a = ms_merge(a, b);
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) { sh[warp] = a.m; sh[32 + warp] = a.s; }
    __syncthreads();
    ms t = { KD_NEG_INF, 0.0f };
    if (lane < nw) { t.m = sh[lane]; t.s = sh[32 + lane]; }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        ms b = { __shfl_xor_sync(0xffffffffu, t.m, o), __shfl_xor_sync(0xffffffffu, t.s, o) };
        t = ms_merge(t, b);
    }
    return t.m + logf(t.s);
}

/* ---- softmax ---- */

template <typename T>
static __global__ void softmax_kernel(int64_t rows, int64_t cols, int log_, const T *__restrict__ X, T *__restrict__ Y)
{
    __shared__ float sh[64];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *x = X + r * cols;
        T *y = Y + r * cols;
        float lse = block_lse(x, cols, sh);
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
            float xj = kd_cu_ld(x[j]);
            y[j] = kd_cu_st<T>(log_ ? xj - lse : expf(xj - lse));
        }
    }
}

template <typename T>
static void softmax_launch(const kd_softmax_args *s)
{
    if (s->rows <= 0 || s->cols <= 0) return;
    softmax_kernel<T><<<row_blocks(s->rows), row_threads(s->cols), 0, kd_cu_stream()>>>(
        s->rows, s->cols, s->log, (const T *)s->x, (T *)s->y);
    KD_CU_LAUNCH_VOID();
}

typedef __nv_bfloat16 bf16;

extern "C" void kd_cu_softmax(const kd_softmax_args *s, int ith, int nth) { (void)ith; (void)nth; softmax_launch<float>(s); }
extern "C" void kd_cu_softmax_bf16(const kd_softmax_args *s, int ith, int nth)
{
    (void)ith; (void)nth;
    softmax_launch<bf16>(s);
}

/* dx += y (dy - sum(dy y))  |  log-softmax: dx += dy - exp(y) sum(dy). */
template <typename T>
static __global__ void softmax_bwd_kernel(int64_t rows, int64_t cols, int log_, const T *__restrict__ Y,
                                          const T *__restrict__ DY, T *__restrict__ DX)
{
    __shared__ float sh[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *y = Y + r * cols, *dy = DY + r * cols;
        T *dx = DX + r * cols;
        float dot = 0.0f;
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
            dot += log_ ? kd_cu_ld(dy[j]) : kd_cu_ld(dy[j]) * kd_cu_ld(y[j]);
        dot = block_sum(dot, sh);
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
            float yj = kd_cu_ld(y[j]), dyj = kd_cu_ld(dy[j]);
            dx[j] = kd_cu_st<T>(kd_cu_ld(dx[j]) + (log_ ? dyj - expf(yj) * dot : yj * (dyj - dot)));
        }
    }
}

template <typename T>
static void softmax_bwd_launch(const kd_softmax_bwd_args *s)
{
    if (s->rows <= 0 || s->cols <= 0) return;
    softmax_bwd_kernel<T><<<row_blocks(s->rows), row_threads(s->cols), 0, kd_cu_stream()>>>(
        s->rows, s->cols, s->log, (const T *)s->y, (const T *)s->dy, (T *)s->dx);
    KD_CU_LAUNCH_VOID();
}

extern "C" void kd_cu_softmax_bwd(const kd_softmax_bwd_args *s, int ith, int nth)
{
    (void)ith; (void)nth;
    softmax_bwd_launch<float>(s);
}
extern "C" void kd_cu_softmax_bwd_bf16(const kd_softmax_bwd_args *s, int ith, int nth)
{
    (void)ith; (void)nth;
    softmax_bwd_launch<bf16>(s);
}

/* ---- LayerNorm ---- */

/* Two-pass mean and variance (no E[x^2] - E[x]^2 cancellation), then the affine write. */
template <typename T>
static __global__ void layernorm_kernel(int64_t rows, int64_t cols, float eps, const T *__restrict__ X,
                                        const float *__restrict__ gamma, const float *__restrict__ beta,
                                        T *__restrict__ Y, float *__restrict__ MEAN, float *__restrict__ RSTD)
{
    __shared__ float sh[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *x = X + r * cols;
        T *y = Y + r * cols;
        float s = 0.0f;
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += kd_cu_ld(x[j]);
        float mean = block_sum(s, sh) / (float)cols;
        float v = 0.0f;
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
            float d = kd_cu_ld(x[j]) - mean;
            v += d * d;
        }
        float rstd = rsqrtf(block_sum(v, sh) / (float)cols + eps);
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
            float o = (kd_cu_ld(x[j]) - mean) * rstd;
            if (gamma) o *= gamma[j];
            if (beta) o += beta[j];
            y[j] = kd_cu_st<T>(o);
        }
        if (threadIdx.x == 0) {
            MEAN[r] = mean;
            RSTD[r] = rstd;
        }
    }
}

template <typename T>
static void layernorm_launch(const kd_layernorm_args *l)
{
    if (l->rows <= 0 || l->cols <= 0) return;
    layernorm_kernel<T><<<row_blocks(l->rows), row_threads(l->cols), 0, kd_cu_stream()>>>(
        l->rows, l->cols, (float)l->eps, (const T *)l->x, (const float *)l->gamma, (const float *)l->beta,
        (T *)l->y, (float *)l->mean, (float *)l->rstd);
    KD_CU_LAUNCH_VOID();
}

extern "C" void kd_cu_layernorm(const kd_layernorm_args *l, int ith, int nth) { (void)ith; (void)nth; layernorm_launch<float>(l); }
extern "C" void kd_cu_layernorm_bf16(const kd_layernorm_args *l, int ith, int nth)
{
    (void)ith; (void)nth;
    layernorm_launch<bf16>(l);
}

/* dx += rstd (g - mean(g) - xhat mean(g xhat)), g = dy gamma. */
template <typename T>
static __global__ void layernorm_dx_kernel(int64_t rows, int64_t cols, const T *__restrict__ X,
                                           const float *__restrict__ MEAN, const float *__restrict__ RSTD,
                                           const float *__restrict__ gamma, const T *__restrict__ DY,
                                           T *__restrict__ DX)
{
    __shared__ float sh[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *x = X + r * cols, *dy = DY + r * cols;
        T *dx = DX + r * cols;
        float mean = MEAN[r], rstd = RSTD[r];
        float sg = 0.0f, sgx = 0.0f;
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
            float g = kd_cu_ld(dy[j]) * (gamma ? gamma[j] : 1.0f);
            sg += g;
            sgx += g * (kd_cu_ld(x[j]) - mean) * rstd;
        }
        float mg = block_sum(sg, sh) / (float)cols;
        float mgx = block_sum(sgx, sh) / (float)cols;
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
            float g = kd_cu_ld(dy[j]) * (gamma ? gamma[j] : 1.0f);
            float xh = (kd_cu_ld(x[j]) - mean) * rstd;
            dx[j] = kd_cu_st<T>(kd_cu_ld(dx[j]) + rstd * (g - mg - xh * mgx));
        }
    }
}

/* Column sums dgamma += sum_r dy xhat, dbeta += sum_r dy: a 32 x 8 block owns 32 columns and a slice of
 * rows; the 8 partial sums meet in shared memory and one atomic per column per block lands the result. */
template <typename T>
static __global__ void layernorm_dgb_kernel(int64_t rows, int64_t cols, const T *__restrict__ X,
                                            const float *__restrict__ MEAN, const float *__restrict__ RSTD,
                                            const T *__restrict__ DY, float *__restrict__ dgamma,
                                            float *__restrict__ dbeta)
{
    __shared__ float sg[8][33], sb[8][33];
    int64_t j = blockIdx.x * 32 + threadIdx.x;
    float ag = 0.0f, ab = 0.0f;
    if (j < cols) {
        for (int64_t r = blockIdx.y * 8 + threadIdx.y; r < rows; r += (int64_t)gridDim.y * 8) {
            float dy = kd_cu_ld(DY[r * cols + j]);
            ag += dy * (kd_cu_ld(X[r * cols + j]) - MEAN[r]) * RSTD[r];
            ab += dy;
        }
    }
    sg[threadIdx.y][threadIdx.x] = ag;
    sb[threadIdx.y][threadIdx.x] = ab;
    __syncthreads();
    if (threadIdx.y == 0 && j < cols) {
        for (int t = 1; t < 8; t++) {
            ag += sg[t][threadIdx.x];
            ab += sb[t][threadIdx.x];
        }
        if (dgamma) atomicAdd(dgamma + j, ag);
        if (dbeta) atomicAdd(dbeta + j, ab);
    }
}

template <typename T>
static void layernorm_bwd_launch(const kd_layernorm_bwd_args *l)
{
    if (l->rows <= 0 || l->cols <= 0) return;
    cudaStream_t st = kd_cu_stream();
    if (l->dx) {
        layernorm_dx_kernel<T><<<row_blocks(l->rows), row_threads(l->cols), 0, st>>>(
            l->rows, l->cols, (const T *)l->x, (const float *)l->mean, (const float *)l->rstd,
            (const float *)l->gamma, (const T *)l->dy, (T *)l->dx);
        KD_CU_LAUNCH_VOID();
    }
    if (l->dgamma || l->dbeta) {
        /* Enough row slices to fill the machine (~1k blocks), each at least 64 rows long. */
        int64_t cb = (l->cols + 31) / 32;
        int64_t ry = 1024 / cb;
        int64_t max_ry = (l->rows + 63) / 64;
        if (ry > max_ry) ry = max_ry;
        if (ry < 1) ry = 1;
        if (ry > 65535) ry = 65535;
        dim3 grid((unsigned)cb, (unsigned)ry);
        layernorm_dgb_kernel<T><<<grid, dim3(32, 8), 0, st>>>(l->rows, l->cols, (const T *)l->x,
                                                              (const float *)l->mean, (const float *)l->rstd,
                                                              (const T *)l->dy, (float *)l->dgamma,
                                                              (float *)l->dbeta);
        KD_CU_LAUNCH_VOID();
    }
}

extern "C" void kd_cu_layernorm_bwd(const kd_layernorm_bwd_args *l, int ith, int nth)
{
    (void)ith; (void)nth;
    layernorm_bwd_launch<float>(l);
}
extern "C" void kd_cu_layernorm_bwd_bf16(const kd_layernorm_bwd_args *l, int ith, int nth)
{
    (void)ith; (void)nth;
    layernorm_bwd_launch<bf16>(l);
}

/* ---- cross-entropy with its softmax fused: the probabilities are never stored ----
 * Targets are checked here, not on the host: a target outside [0, cols) is recorded in the device error
 * word (reported by kd_cuda_sync) and its row is skipped: loss 0, lse still written, and the backward adds
 * nothing for it. */

static __global__ void cross_entropy_kernel(int64_t rows, int64_t cols, const float *__restrict__ Z, const int32_t *__restrict__ T,
                                   float *__restrict__ loss, float *__restrict__ LSE, kd_cu_dev_error *err)
{
    __shared__ float sh[64];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *z = Z + r * cols;
        float lse = block_lse(z, cols, sh);
        if (threadIdx.x == 0) {
            int64_t t = T[r];
            LSE[r] = lse;
            if (t < 0 || t >= cols) {
                kd_cu_report_index(err, KD_CU_ERR_TARGET, (long long)r, (long long)t, (long long)cols);
                loss[r] = 0.0f;
            } else {
                loss[r] = lse - z[t];
            }
        }
    }
}

extern "C" void kd_cu_cross_entropy(const kd_cross_entropy_args *x, int ith, int nth)
{
    (void)ith; (void)nth;
    if (x->rows <= 0 || x->cols <= 0) return;
    cross_entropy_kernel<<<row_blocks(x->rows), row_threads(x->cols), 0, kd_cu_stream()>>>(
        x->rows, x->cols, (const float *)x->logits, x->targets, (float *)x->loss, (float *)x->lse, kd_cu_error_word());
    KD_CU_LAUNCH_VOID();
}

/* dz += scale u (exp(z - lse) - [j == t]), u = *up (the gradient arriving at the loss, read on the device)
 * or 1. A row with a bad target was reported by the forward and gets no gradient. */
static __global__ void cross_entropy_bwd_kernel(int64_t rows, int64_t cols, const float *__restrict__ Z, const int32_t *__restrict__ T,
                                       const float *__restrict__ LSE, float scale, const float *__restrict__ up,
                                       float *__restrict__ DZ)
{
    const float s = up ? scale * *up : scale;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *z = Z + r * cols;
        float *dz = DZ + r * cols;
        float lse = LSE[r];
        int64_t t = T[r];
        if (t < 0 || t >= cols) continue;
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
            dz[j] += s * (expf(z[j] - lse) - (j == t ? 1.0f : 0.0f));
    }
}

extern "C" void kd_cu_cross_entropy_bwd(const kd_cross_entropy_args *x, int ith, int nth)
{
    (void)ith; (void)nth;
    if (x->rows <= 0 || x->cols <= 0) return;
    cross_entropy_bwd_kernel<<<row_blocks(x->rows), row_threads(x->cols), 0, kd_cu_stream()>>>(
        x->rows, x->cols, (const float *)x->logits, x->targets, (const float *)x->lse, (float)x->scale,
        (const float *)x->upstream, (float *)x->dlogits);
    KD_CU_LAUNCH_VOID();
}

/* ---- KL(p || q) as kl_div(log q, p) ---- */

static __global__ void kl_div_kernel(int64_t rows, int64_t cols, const float *__restrict__ LQ, const float *__restrict__ P,
                                 float *__restrict__ out)
{
    __shared__ float sh[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *lq = LQ + r * cols, *p = P + r * cols;
        float s = 0.0f;
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
            if (p[j] != 0.0f || isnan(p[j])) s += p[j] * (logf(p[j]) - lq[j]);
        s = block_sum(s, sh);
        if (threadIdx.x == 0) out[r] = s;
    }
}

extern "C" void kd_cu_kl_div(const kd_kl_div_args *k, int ith, int nth)
{
    (void)ith; (void)nth;
    if (k->rows <= 0 || k->cols <= 0) return;
    kl_div_kernel<<<row_blocks(k->rows), row_threads(k->cols), 0, kd_cu_stream()>>>(
        k->rows, k->cols, (const float *)k->logq, (const float *)k->p, (float *)k->out);
    KD_CU_LAUNCH_VOID();
}

/* dlogq += -s p;  dp += s (log p + 1 - log q) where p > 0;  s = scale u, u = *up (on the device) or 1. */
static __global__ void kl_div_bwd_kernel(int64_t n, const float *__restrict__ LQ, const float *__restrict__ P, float scale,
                                     const float *__restrict__ up, float *__restrict__ dlq, float *__restrict__ dp)
{
    const float s = up ? scale * *up : scale;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float p = P[i];
        if (dlq) dlq[i] -= s * p;
        if (dp && p > 0.0f) dp[i] += s * (logf(p) + 1.0f - LQ[i]);
    }
}

extern "C" void kd_cu_kl_div_bwd(const kd_kl_div_args *k, int ith, int nth)
{
    (void)ith; (void)nth;
    int64_t n = k->rows * k->cols;
    if (n <= 0) return;
    unsigned blocks = kd_cu_blocks(n, 256);
    if (blocks > 32768u) blocks = 32768u;
    kl_div_bwd_kernel<<<blocks, 256, 0, kd_cu_stream()>>>(n, (const float *)k->logq, (const float *)k->p, (float)k->scale,
                                                      (const float *)k->upstream, (float *)k->dlogq, (float *)k->dp);
    KD_CU_LAUNCH_VOID();
}
