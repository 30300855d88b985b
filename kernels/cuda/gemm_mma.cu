/* kernels/cuda/gemm_mma.cu — GEMM on tensor cores with mma.sync: bf16 (m16n8k16, fragments by ldmatrix,
 * .trans for the transposed layouts) and tf32 (m16n8k8, f32 inputs rounded with cvt.rna), f32 accumulate.
 *
 * A 256-thread block computes a 128 x 128 tile of C; its 8 warps are 2 (m) x 4 (n), 64 x 32 each. Tiles
 * of A and B (BK = 32 along k) stream global -> shared with cp.async (16-byte chunks, L2 only) through a
 * STAGES-deep ring, so loads of tile t + STAGES-1 overlap the math on tile t. Shared-memory tiles keep
 * the operand's global layout (k-contiguous or m/n-contiguous: no transposition on the way in) with an
 * XOR swizzle of 16-byte chunks (kernels/cuda/gemm_plan.h) so ldmatrix and cp.async are bank-conflict
 * free. Edges and unaligned operands fall back to element loads with zero fill; C (f32, or bf16 for the
 * bf16 table) is written with the alpha/beta/bias/GELU epilogue. */
#include <cuda_bf16.h>

#include "kernels/cuda/gemm_internal.h"
#include "kernels/cuda/gemm_plan.h"

namespace {

constexpr int BM = 128, BN = 128, BK = 32, THREADS = 256;

struct mma_params {
    int64_t m, n, k;
    const void *a; int64_t lda, sa;
    const void *b; int64_t ldb, sb;
    void *c; int64_t ldc, sc;   /* float, or __nv_bfloat16 when epi.bf16 */
    kd_cu_epi epi;
    int vec;
};

template <bool BF16> struct elem;
template <> struct elem<true> { using T = uint16_t; static constexpr int STAGES = 4; };
template <> struct elem<false> { using T = float; static constexpr int STAGES = 3; };

/* Geometry of one operand tile in shared memory: ROWS rows of COLS elements (the contiguous dim). */
template <int ROWS, int COLS, int ESIZE>
struct tile_geom {
    static constexpr int ROW_BYTES = COLS * ESIZE;
    static constexpr int CPR = ROW_BYTES / 16;           /* 16-byte chunks per row */
    static constexpr int VEC = 16 / ESIZE;               /* elements per chunk */
    static constexpr int BYTES = ROWS * ROW_BYTES;
    static constexpr int CHUNKS = ROWS * CPR;
    /* Byte offset of element (r, c). */
    static __device__ __forceinline__ uint32_t off(int r, int c)
    {
        return (uint32_t)(r * ROW_BYTES + kd_cu_swz(r, c / VEC, CPR) * 16 + (c % VEC) * ESIZE);
    }
};

__device__ __forceinline__ void cp_async16(uint32_t saddr, const void *g)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(saddr), "l"(g));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

/* Copy one operand tile: ROWS x COLS of the stored layout starting at global (r0, c0) of a matrix with
 * `rows` x `cols` valid elements and leading dimension ld. */
template <typename T, typename G>
__device__ __forceinline__ void load_tile(uint32_t sbase, char *sptr, const T *src, int64_t ld, int64_t r0, int64_t c0,
                                          int64_t rows, int64_t cols, int vec)
{
#pragma unroll
    for (int q = threadIdx.x; q < G::CHUNKS; q += THREADS) {
        int r = q / G::CPR, cc = (q % G::CPR) * G::VEC;
        uint32_t o = G::off(r, cc);
        int64_t gr = r0 + r, gc = c0 + cc;
        const T *g = src + gr * ld + gc;
        if (vec && gr < rows && gc + G::VEC <= cols) {
            cp_async16(sbase + o, g);
        } else {
            alignas(16) T v[G::VEC];
#pragma unroll
            for (int e = 0; e < G::VEC; e++) v[e] = (gr < rows && gc + e < cols) ? g[e] : (T)0;
            *(uint4 *)(sptr + o) = *(const uint4 *)v;
        }
    }
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], uint32_t addr)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], uint32_t addr)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}

__device__ __forceinline__ void mma_bf16(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void mma_tf32(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t to_tf32(float f)
{
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(f));
    return r;
}

/* Shared tiles: A is BM x BK (k contiguous) or BK x BM (TA: m contiguous); B is BK x BN (n contiguous)
 * or BN x BK (TB: k contiguous). */
template <bool BF16, bool TA, bool TB>
struct layout {
    static constexpr int E = BF16 ? 2 : 4;
    using GA = tile_geom<TA ? BK : BM, TA ? BM : BK, E>;
    using GB = tile_geom<TB ? BN : BK, TB ? BK : BN, E>;
    static constexpr int STAGE_BYTES = GA::BYTES + GB::BYTES;
    static constexpr int SMEM = STAGE_BYTES * elem<BF16>::STAGES;
};

template <bool BF16, bool TA, bool TB>
__global__ void __launch_bounds__(THREADS, 1) mma_gemm_kernel(mma_params p)
{
    using T = typename elem<BF16>::T;
    using L = layout<BF16, TA, TB>;
    using GA = typename L::GA;
    using GB = typename L::GB;
    constexpr int STAGES = elem<BF16>::STAGES;
    extern __shared__ __align__(128) char smem[];
    const uint32_t sbase = (uint32_t)__cvta_generic_to_shared(smem);

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wm = warp / 4, wn = warp % 4;                 /* warp tile: rows wm*64.., cols wn*32.. */
    const int g = lane >> 2, t4 = lane & 3;
    const int64_t m0 = (int64_t)blockIdx.y * BM, n0 = (int64_t)blockIdx.x * BN, bz = blockIdx.z;
    const T *A = (const T *)p.a + bz * p.sa;
    const T *B = (const T *)p.b + bz * p.sb;
    const int64_t c_base = bz * p.sc;
    const int64_t ktiles = (p.k + BK - 1) / BK;

    auto issue = [&](int64_t kt, int stage) {
        uint32_t sa = sbase + stage * L::STAGE_BYTES, sb = sa + GA::BYTES;
        char *pa = smem + stage * L::STAGE_BYTES, *pb = pa + GA::BYTES;
        int64_t k0 = kt * BK;
        if (!TA) load_tile<T, GA>(sa, pa, A, p.lda, m0, k0, p.m, p.k, p.vec);
        else     load_tile<T, GA>(sa, pa, A, p.lda, k0, m0, p.k, p.m, p.vec);
        if (!TB) load_tile<T, GB>(sb, pb, B, p.ldb, k0, n0, p.k, p.n, p.vec);
        else     load_tile<T, GB>(sb, pb, B, p.ldb, n0, k0, p.n, p.k, p.vec);
    };

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < ktiles) issue(s, s);
        cp_async_commit();
    }

    for (int64_t kt = 0; kt < ktiles; kt++) {
        cp_async_wait<STAGES - 2>();
        __syncthreads();   /* tile kt landed for everyone; stage (kt-1) % STAGES is free to refill */
        if (kt + STAGES - 1 < ktiles) issue(kt + STAGES - 1, (int)((kt + STAGES - 1) % STAGES));
        cp_async_commit();

        const int stage = (int)(kt % STAGES);
        const uint32_t sa = sbase + stage * L::STAGE_BYTES, sb = sa + GA::BYTES;
        const char *pa = smem + stage * L::STAGE_BYTES, *pb = pa + GA::BYTES;

        if constexpr (BF16) {
#pragma unroll
            for (int ks = 0; ks < BK; ks += 16) {
                uint32_t af[4][4], bfr[4][2];
                const int j8 = lane >> 3, r8 = lane & 7;
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    int R = wm * 64 + i * 16;
                    if (!TA) ldmatrix_x4(af[i], sa + GA::off(R + r8 + 8 * (j8 & 1), ks + 8 * (j8 >> 1)));
                    else     ldmatrix_x4_trans(af[i], sa + GA::off(ks + r8 + 8 * (j8 >> 1), R + 8 * (j8 & 1)));
                }
#pragma unroll
                for (int pr = 0; pr < 2; pr++) {
                    int N = wn * 32 + pr * 16;
                    uint32_t r[4];
                    if (TB) ldmatrix_x4(r, sb + GB::off(N + r8 + 8 * (j8 >> 1), ks + 8 * (j8 & 1)));
                    else    ldmatrix_x4_trans(r, sb + GB::off(ks + r8 + 8 * (j8 & 1), N + 8 * (j8 >> 1)));
                    bfr[2 * pr][0] = r[0]; bfr[2 * pr][1] = r[1];
                    bfr[2 * pr + 1][0] = r[2]; bfr[2 * pr + 1][1] = r[3];
                }
#pragma unroll
                for (int i = 0; i < 4; i++)
#pragma unroll
                    for (int j = 0; j < 4; j++) mma_bf16(acc[i][j], af[i], bfr[j][0], bfr[j][1]);
            }
        } else {
            /* tf32: fragments by 32-bit shared loads (ldmatrix's .trans works on 16-bit elements only).
             * a0 (g, t) a1 (g+8, t) a2 (g, t+4) a3 (g+8, t+4);  b0 (k t, n g) b1 (k t+4, n g). */
            auto ea = [&](int mr, int kc) -> float {
                return *(const float *)(pa + (TA ? GA::off(kc, mr) : GA::off(mr, kc)));
            };
            auto eb = [&](int kr, int nc) -> float {
                return *(const float *)(pb + (TB ? GB::off(nc, kr) : GB::off(kr, nc)));
            };
#pragma unroll
            for (int ks = 0; ks < BK; ks += 8) {
                uint32_t af[4][4], bfr[4][2];
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    int R = wm * 64 + i * 16 + g;
                    af[i][0] = to_tf32(ea(R, ks + t4));
                    af[i][1] = to_tf32(ea(R + 8, ks + t4));
                    af[i][2] = to_tf32(ea(R, ks + t4 + 4));
                    af[i][3] = to_tf32(ea(R + 8, ks + t4 + 4));
                }
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    int N = wn * 32 + j * 8 + g;
                    bfr[j][0] = to_tf32(eb(ks + t4, N));
                    bfr[j][1] = to_tf32(eb(ks + t4 + 4, N));
                }
#pragma unroll
                for (int i = 0; i < 4; i++)
#pragma unroll
                    for (int j = 0; j < 4; j++) mma_tf32(acc[i][j], af[i], bfr[j][0], bfr[j][1]);
            }
        }
    }
    cp_async_wait<0>();

    /* c0, c1 at (g, 2t), (g, 2t+1); c2, c3 at (g+8, 2t), (g+8, 2t+1) of each 16 x 8 tile. */
#pragma unroll
    for (int i = 0; i < 4; i++) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int64_t row = m0 + wm * 64 + i * 16 + g + 8 * h;
            if (row >= p.m) continue;
            const int64_t crow = c_base + row * p.ldc;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int64_t col = n0 + wn * 32 + j * 8 + 2 * t4;
                if (col < p.n) kd_cu_epi_store(p.epi, acc[i][j][2 * h], p.c, crow + col, col);
                if (col + 1 < p.n) kd_cu_epi_store(p.epi, acc[i][j][2 * h + 1], p.c, crow + col + 1, col + 1);
            }
        }
    }
}

template <bool BF16, bool TA, bool TB>
kd_cuda_result launch(const mma_params &p, dim3 grid)
{
    constexpr int smem = layout<BF16, TA, TB>::SMEM;
    static bool attr_set = false;   /* the opt-in above 48 KiB, once per instantiation */
    if (!attr_set) {
        KD_CU(cudaFuncSetAttribute(mma_gemm_kernel<BF16, TA, TB>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        attr_set = true;
    }
    mma_gemm_kernel<BF16, TA, TB><<<grid, THREADS, smem, kd_cu_stream()>>>(p);
    KD_CU_LAUNCH();
    return KD_CUDA_OK;
}

template <bool BF16>
kd_cuda_result dispatch(const kd_gemm_args *g, const mma_params &p, dim3 grid)
{
    if (!g->trans_a && !g->trans_b) return launch<BF16, false, false>(p, grid);
    if (!g->trans_a && g->trans_b) return launch<BF16, false, true>(p, grid);
    if (g->trans_a && !g->trans_b) return launch<BF16, true, false>(p, grid);
    return launch<BF16, true, true>(p, grid);
}

} /* namespace */

kd_cuda_result kd_cu_gemm_mma(const kd_gemm_args *g, int bf16, int gelu, int c_bf16)
{
    mma_params p;
    p.m = g->m; p.n = g->n; p.k = g->k;
    p.a = g->a; p.lda = g->lda; p.sa = g->stride_a;
    p.b = g->b; p.ldb = g->ldb; p.sb = g->stride_b;
    p.c = g->c; p.ldc = g->ldc; p.sc = g->stride_c;
    p.epi.alpha = (float)g->alpha; p.epi.beta = (float)g->beta; p.epi.bias = g->bias; p.epi.gelu = gelu;
    p.epi.bf16 = c_bf16;
    p.vec = kd_cu_gemm_aligned(g, bf16 ? 2 : 4);
    int64_t gx, gy, gz;
    kd_cu_gemm_grid(g->m, g->n, g->batch, BM, BN, &gx, &gy, &gz);
    dim3 grid((unsigned)gx, (unsigned)gy, (unsigned)gz);
    return bf16 ? dispatch<true>(g, p, grid) : dispatch<false>(g, p, grid);
}
