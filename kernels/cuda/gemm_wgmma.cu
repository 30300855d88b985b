/* kernels/cuda/gemm_wgmma.cu — the Hopper bf16 GEMM: wgmma.mma_async (sm_90a) fed by TMA bulk tensor copies
 * into 128-byte-swizzled shared memory through a STAGES-deep mbarrier pipeline, f32 accumulation, and the
 * alpha/beta/bias/GELU epilogue of gemm_internal.h.
 *
 * Layout taken: C = op(A) op(B) with both operands K-major, i.e. A stored m x k (no trans_a) and B stored
 * n x k (trans_b: the nn.Linear forward X W^T), bf16, 16-byte aligned rows (TMA needs every row and batch
 * stride to be a multiple of 16 bytes). Anything else returns KD_CUDA_ERR_ARG and gemm.cu runs the mma.sync
 * kernel instead.
 *
 * A block computes a 128 x 128 tile of C with three warpgroups: warpgroup 0 is the producer (one thread
 * issues the TMA copies of the 128 x 64 A and B tiles of each k-step into stage kt % STAGES, arming the
 * stage's "full" barrier with the byte count), warpgroups 1 and 2 are consumers, each multiplying its
 * 64-row half of A by the whole B tile with four m64n128k16 wgmmas per k-step, then arriving on the
 * stage's "empty" barrier so the producer may refill it. Edges need no code: TMA fills out-of-range
 * elements with zeros, and the epilogue writes only rows < m, columns < n.
 *
 * Shared-memory operand descriptors (PTX ISA, "matrix descriptor"): K-major with the 128-byte swizzle,
 * rows of 64 bf16 = 128 bytes, 8-row groups 1024 bytes apart (stride byte offset), the leading byte
 * offset unused; stepping k by 16 inside the 64-wide row advances the start address by 32 bytes (the
 * hardware applies the swizzle to the final address, which is why tiles are 1024-byte aligned). */
#include <cuda.h>            /* CUtensorMap and its enums only: the driver is reached through the runtime */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/gemm_internal.h"
#include "kernels/cuda/gemm_plan.h"

#ifndef KD_CUDA_SM90A
#define KD_CUDA_SM90A 0
#endif

namespace {

constexpr int BM = 128, BN = 128, BK = 64, STAGES = 6, THREADS = 384;
constexpr int A_BYTES = BM * BK * 2, B_BYTES = BN * BK * 2, STAGE_BYTES = A_BYTES + B_BYTES;
constexpr int SMEM = STAGES * STAGE_BYTES + 2 * STAGES * 8 + 1024;   /* + barriers + alignment slack */

struct wg_params {
    int64_t m, n, k;
    void *c; int64_t ldc, sc;   /* float, or __nv_bfloat16 when epi.bf16 */
    kd_cu_epi epi;
};

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define KD_WGMMA_DEVICE 1
#else
#define KD_WGMMA_DEVICE 0
#endif

#if KD_WGMMA_DEVICE
__device__ __forceinline__ void mbar_init(uint32_t bar, int count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count));
}

/* Wait until the phase with parity `phase` of the barrier has completed. try_wait may give up after a
 * time limit of its own and return false in one thread while another sees the phase complete (PTX ISA,
 * mbarrier.try_wait), so the loop branches per thread: plain `bra`, not `bra.uni`, which would promise
 * the assembler that every thread of the warp goes the same way (as CUTLASS's ClusterBarrier::wait). */
__device__ __forceinline__ void mbar_wait(uint32_t bar, int phase)
{
    asm volatile("{\n"
                 ".reg .pred P1;\n"
                 "WAIT:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 P1, [%0], %1;\n"
                 "@P1 bra DONE;\n"
                 "bra WAIT;\n"
                 "DONE:\n"
                 "}\n" ::"r"(bar), "r"(phase) : "memory");
}

__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, int bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}

__device__ __forceinline__ void mbar_arrive(uint32_t bar)
{
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}

/* Box at (c0 = k, c1 = row, c2 = batch) of the tensor map into shared memory; completion counts bytes on bar. */
__device__ __forceinline__ void tma_load(uint32_t dst, const CUtensorMap *map, int c0, int c1, int c2, uint32_t bar)
{
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%3, %4, %5}], [%2];\n"
                 ::"r"(dst), "l"((uint64_t)map), "r"(bar), "r"(c0), "r"(c1), "r"(c2) : "memory");
}

__device__ __forceinline__ uint64_t sw128_desc(uint32_t saddr)
{
    uint64_t d = (uint64_t)((saddr & 0x3FFFF) >> 4);   /* start address, 16-byte units */
    d |= (uint64_t)(16 >> 4) << 16;                     /* leading byte offset (unused when swizzled K-major) */
    d |= (uint64_t)(1024 >> 4) << 32;                   /* stride byte offset: 8 rows of 128 bytes */
    d |= 1ull << 62;                                    /* 128-byte swizzle */
    return d;
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
/* Keep the compiler from moving accumulator reads or writes across the asynchronous wgmma. */
__device__ __forceinline__ void reg_fence(float &r) { asm volatile("" : "+f"(r)::"memory"); }

/* D(64 x 128, f32) += A(64 x 16) B(16 x 128)^T, both from shared memory by descriptor, K-major (no
 * transpose), scale-d = 1. Accumulator i of a thread: row 16 warp + lane/4 + 8 ((i >> 1) & 1),
 * column 8 (i >> 2) + 2 (lane & 3) + (i & 1). */
__device__ __forceinline__ void wgmma_m64n128k16(float d[64], uint64_t da, uint64_t db)
{
    asm volatile("{\n"
                 ".reg .pred p;\n"
                 "setp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
                 "%64, %65, p, 1, 1, 0, 0;\n"
                 "}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                   "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
                   "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                   "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                   "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "l"(da), "l"(db), "r"(1));
}
#endif /* KD_WGMMA_DEVICE */

__global__ void __launch_bounds__(THREADS, 1)
    wgmma_gemm_kernel(const __grid_constant__ CUtensorMap tma_a, const __grid_constant__ CUtensorMap tma_b, wg_params p)
{
#if KD_WGMMA_DEVICE
    extern __shared__ char smem_raw[];
    const uint32_t raw = (uint32_t)__cvta_generic_to_shared(smem_raw);
    const uint32_t base = (raw + 1023u) & ~1023u;          /* the 128-byte swizzle repeats every 1024 bytes */
    const uint32_t bars = base + STAGES * STAGE_BYTES;     /* full[s] at bars + 8 s, empty[s] at bars + 8 (STAGES + s) */
    const int wg = threadIdx.x / 128, tid = threadIdx.x % 128;
    const int m0 = (int)blockIdx.y * BM, n0 = (int)blockIdx.x * BN, bz = (int)blockIdx.z;
    const int ktiles = (int)((p.k + BK - 1) / BK);

    if (threadIdx.x == 0) {
        for (int s = 0; s < STAGES; s++) {
            mbar_init(bars + 8 * s, 1);                 /* the producer's expect_tx arrival (+ TMA bytes) */
            mbar_init(bars + 8 * (STAGES + s), 2);      /* one arrival per consumer warpgroup */
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    if (wg == 0) {
        if (tid == 0) {
            for (int kt = 0; kt < ktiles; kt++) {
                const int s = kt % STAGES;
                /* stage s last held k-step kt - STAGES: wait until both consumers released it */
                if (kt >= STAGES) mbar_wait(bars + 8 * (STAGES + s), ((kt / STAGES) - 1) & 1);
                const uint32_t sa = base + s * STAGE_BYTES, full = bars + 8 * s;
                mbar_expect_tx(full, STAGE_BYTES);
                tma_load(sa, &tma_a, kt * BK, m0, bz, full);
                tma_load(sa + A_BYTES, &tma_b, kt * BK, n0, bz, full);
            }
        }
        return;
    }

    const int cw = wg - 1;   /* consumer: rows 64 cw .. 64 cw + 63 of the tile */
    float d[64];
#pragma unroll
    for (int i = 0; i < 64; i++) d[i] = 0.0f;

    for (int kt = 0; kt < ktiles; kt++) {
        const int s = kt % STAGES;
        mbar_wait(bars + 8 * s, (kt / STAGES) & 1);
        const uint32_t sa = base + s * STAGE_BYTES + cw * 64 * (BK * 2), sb = base + s * STAGE_BYTES + A_BYTES;
#pragma unroll
        for (int i = 0; i < 64; i++) reg_fence(d[i]);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) wgmma_m64n128k16(d, sw128_desc(sa + kk * 32), sw128_desc(sb + kk * 32));
        wgmma_commit();
        wgmma_wait0();
#pragma unroll
        for (int i = 0; i < 64; i++) reg_fence(d[i]);
        if (tid == 0) mbar_arrive(bars + 8 * (STAGES + s));
    }

    const int64_t c_base = (int64_t)bz * p.sc;
#pragma unroll
    for (int i = 0; i < 64; i++) {
        int r, cc;
        kd_cu_wgmma_acc_rc(tid, i, &r, &cc);
        const int64_t row = m0 + cw * 64 + r, col = n0 + cc;
        if (row < p.m && col < p.n) kd_cu_epi_store(p.epi, d[i], p.c, c_base + row * p.ldc + col, col);
    }
#else
    (void)tma_a; (void)tma_b; (void)p;
    __trap();   /* no sm_90a code in this image: kd_cuda_has_wgmma() keeps callers away */
#endif
}

/* Why the wgmma kernel cannot run, for kd_cuda_wgmma_unavailable() (the last reason found). */
char g_why[256];

/* cuTensorMapEncodeTiled, from the driver through the runtime (no link against libcuda). */
typedef CUresult (*encode_tiled_fn)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *, const cuuint64_t *,
                                    const cuuint64_t *, const cuuint32_t *, const cuuint32_t *, CUtensorMapInterleave,
                                    CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

encode_tiled_fn encode_tiled(void)
{
    static encode_tiled_fn fn;
    static int tried;
    static char why[160];
    if (!tried) {
        tried = 1;
        void *p = NULL;
        cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
        cudaError_t e = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q);
        if (e == cudaSuccess && q == cudaDriverEntryPointSuccess && p) {
            fn = (encode_tiled_fn)p;
        } else {
            snprintf(why, sizeof why, "the driver gives no cuTensorMapEncodeTiled (cudaGetDriverEntryPointByVersion: %s, "
                     "query result %d)", cudaGetErrorName(e), (int)q);
            (void)cudaGetLastError();
        }
    }
    if (!fn) snprintf(g_why, sizeof g_why, "%s", why);
    return fn;
}

/* A K-major bf16 operand of `rows` x k (row stride ld, batch stride bs, elements) as a 3-d tensor map
 * (k, rows, batch) with a 64 x 128 x 1 box and the 128-byte swizzle. The driver's result: CUDA_SUCCESS, or
 * why it refused (CUDA_ERROR_NOT_FOUND: no encoder). */
CUresult make_map(CUtensorMap *map, const void *ptr, int64_t k, int64_t rows, int64_t ld, int64_t batch, int64_t bs)
{
    encode_tiled_fn enc = encode_tiled();
    if (!enc) return CUDA_ERROR_NOT_FOUND;
    if (batch <= 1) bs = ld * rows;   /* never stepped; any legal stride */
    cuuint64_t dims[3] = { (cuuint64_t)k, (cuuint64_t)rows, (cuuint64_t)batch };
    cuuint64_t strides[2] = { (cuuint64_t)ld * 2, (cuuint64_t)bs * 2 };
    cuuint32_t box[3] = { BK, 128, 1 };
    cuuint32_t estr[3] = { 1, 1, 1 };
    return enc(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, (void *)ptr, dims, strides, box, estr,
               CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
               CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
}

} /* namespace */

extern "C" int kd_cuda_wgmma_built(void) { return KD_CUDA_SM90A; }

kd_cuda_result kd_cu_gemm_wgmma(const kd_gemm_args *g, int gelu, int c_bf16)
{
    if (!KD_CUDA_SM90A)
        return kd_cuda_fail(KD_CUDA_ERR_ARG, "%s:%d: wgmma gemm: this build has no sm_90a code", __FILE__, __LINE__);
    if (!kd_cu_wgmma_layout_ok(g))
        return kd_cuda_fail(KD_CUDA_ERR_ARG, "%s:%d: wgmma gemm takes K-major bf16 operands (A m x k, B n x k) with 16-byte "
                       "aligned rows; got trans_a %d trans_b %d lda %lld ldb %lld", __FILE__, __LINE__, g->trans_a,
                       g->trans_b, (long long)g->lda, (long long)g->ldb);
    CUtensorMap ma, mb;
    CUresult ra = make_map(&ma, g->a, g->k, g->m, g->lda, g->batch, g->stride_a);
    CUresult rb = ra == CUDA_SUCCESS ? make_map(&mb, g->b, g->k, g->n, g->ldb, g->batch, g->stride_b) : CUDA_SUCCESS;
    if (ra != CUDA_SUCCESS || rb != CUDA_SUCCESS)
        return kd_cuda_fail(KD_CUDA_ERR_ARG, "%s:%d: wgmma gemm: cuTensorMapEncodeTiled refused %s (CUresult %d; m %lld n %lld "
                       "k %lld batch %lld, lda %lld ldb %lld, strides %lld %lld)", __FILE__, __LINE__,
                       ra != CUDA_SUCCESS ? "A" : "B", (int)(ra != CUDA_SUCCESS ? ra : rb), (long long)g->m,
                       (long long)g->n, (long long)g->k, (long long)g->batch, (long long)g->lda, (long long)g->ldb,
                       (long long)g->stride_a, (long long)g->stride_b);
    static bool attr_set = false;
    if (!attr_set) {
        KD_CU(cudaFuncSetAttribute(wgmma_gemm_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM));
        attr_set = true;
    }
    wg_params p;
    p.m = g->m; p.n = g->n; p.k = g->k;
    p.c = g->c; p.ldc = g->ldc; p.sc = g->stride_c;
    p.epi.alpha = (float)g->alpha; p.epi.beta = (float)g->beta; p.epi.bias = g->bias; p.epi.gelu = gelu;
    p.epi.bf16 = c_bf16;
    int64_t gx, gy, gz;
    kd_cu_gemm_grid(g->m, g->n, g->batch, BM, BN, &gx, &gy, &gz);
    wgmma_gemm_kernel<<<dim3((unsigned)gx, (unsigned)gy, (unsigned)gz), THREADS, SMEM, kd_cu_stream()>>>(ma, mb, p);
    KD_CU_LAUNCH();
    return KD_CUDA_OK;
}

/* Built for sm_90a, not switched off by KD_CUDA_WGMMA=0, on an sm_90 device, the kernel image loads there
 * and the driver encodes tensor maps. Asked once per device; the reason for a 0 is kept for
 * kd_cuda_wgmma_unavailable(). */
extern "C" int kd_cuda_has_wgmma(void)
{
    static int cached_dev = -1, cached = 0, env = -1;
    if (env < 0) {
        const char *e = getenv("KD_CUDA_WGMMA");
        env = !(e && strcmp(e, "0") == 0);
    }
    if (!KD_CUDA_SM90A) {
        snprintf(g_why, sizeof g_why, "this build has no sm_90a code (the gpu_arch option lacks 90)");
        return 0;
    }
    if (!env) {
        snprintf(g_why, sizeof g_why, "switched off by KD_CUDA_WGMMA=0");
        return 0;
    }
    int dev = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e != cudaSuccess) {
        snprintf(g_why, sizeof g_why, "no current CUDA device (cudaGetDevice: %s)", cudaGetErrorName(e));
        (void)cudaGetLastError();
        return 0;
    }
    if (dev == cached_dev) return cached;
    int major = 0, minor = 0;
    cudaFuncAttributes fa;
    cached = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
        snprintf(g_why, sizeof g_why, "device %d: its compute capability could not be read", dev);
    } else if (major != 9 || minor != 0) {
        snprintf(g_why, sizeof g_why, "device %d is sm_%d%d; the wgmma kernel is sm_90a code", dev, major, minor);
    } else if ((e = cudaFuncGetAttributes(&fa, wgmma_gemm_kernel)) != cudaSuccess) {
        snprintf(g_why, sizeof g_why, "the sm_90a kernel image does not load on device %d (%s: %s)", dev,
                 cudaGetErrorName(e), cudaGetErrorString(e));
    } else if (encode_tiled() != NULL) {   /* else encode_tiled() wrote the reason */
        cached = 1;
        g_why[0] = '\0';
    }
    (void)cudaGetLastError();
    cached_dev = dev;
    return cached;
}

extern "C" const char *kd_cuda_wgmma_unavailable(void)
{
    (void)kd_cuda_has_wgmma();
    return g_why;
}
