/* test/gpu/test_cuda_plan.c — the CUDA backend's host-side index math on the CPU: dimension merging for
 * strided maps (every index of every shape lands where the naive walk puts it), the shared-memory XOR
 * swizzle (a bijection per row; 8 rows at one logical chunk hit 8 distinct bank groups), GEMM grids and
 * the alignment rule for 16-byte loads, and bf16 / tf32 rounding. */
#include "kernels/cuda/gemm_plan.h"
#include "kernels/cuda/map_plan.h"
#include "test/testutil.h"

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* Naive offsets of flat index f in the original args. */
static void naive(const kd_map_args *m, int64_t f, int64_t *o, int64_t *a, int64_t *b)
{
    *o = *a = *b = 0;
    for (int d = m->ndim - 1; d >= 0; d--) {
        int64_t i = f % m->shape[d];
        f /= m->shape[d];
        *o += i * m->out_stride[d];
        *a += i * m->a_stride[d];
        *b += i * m->b_stride[d];
    }
}

static void check_map_plans(void)
{
    uint64_t s = 1;
    int merged = 0;
    for (int trial = 0; trial < 400; trial++) {
        kd_map_args m;
        memset(&m, 0, sizeof m);
        m.ndim = 1 + (int)(lcg(&s) % 5);
        for (int d = 0; d < m.ndim; d++) m.shape[d] = 1 + (int64_t)(lcg(&s) % 5);
        /* contiguous out; a either contiguous, permuted-ish or broadcast per dim; b broadcast on some dims */
        int64_t so = 1, sa = 1, sb = 1;
        for (int d = m.ndim - 1; d >= 0; d--) {
            m.out_stride[d] = so;
            so *= m.shape[d];
            int mode = (int)(lcg(&s) % 3);
            m.a_stride[d] = mode == 2 ? 0 : sa * (mode == 1 ? 2 : 1);
            sa *= m.shape[d] * (mode == 1 ? 2 : 1);
            m.b_stride[d] = lcg(&s) % 4 == 0 ? 0 : sb;
            sb *= m.shape[d];
        }
        int binary = (int)(trial & 1);
        kd_cu_map_plan p = kd_cu_map_plan_make(&m, binary);
        int64_t total = 1;
        for (int d = 0; d < m.ndim; d++) total *= m.shape[d];
        CHECK(p.total == total, "plan total %lld, want %lld", (long long)p.total, (long long)total);
        int64_t prod = 1;
        for (int d = 0; d < p.ndim; d++) prod *= p.shape[d];
        CHECK(prod == total, "plan shape product %lld, want %lld", (long long)prod, (long long)total);
        if (p.ndim < m.ndim) merged++;
        int bad = 0;
        for (int64_t f = 0; f < total; f++) {
            int64_t o, a, b, wo, wa, wb;
            kd_cu_map_offsets(&p, f, &o, &a, &b);
            naive(&m, f, &wo, &wa, &wb);
            if (o != wo || a != wa || (binary && b != wb)) bad++;
        }
        CHECK(bad == 0, "trial %d: %d of %lld indices map elsewhere than the naive walk", trial, bad, (long long)total);
    }
    CHECK(merged > 50, "dimension merging happened in %d of 400 random cases (expected many)", merged);
    /* A fully contiguous 4-d map becomes one flat dim. */
    kd_map_args c;
    memset(&c, 0, sizeof c);
    c.ndim = 4;
    int64_t sh[4] = { 2, 3, 4, 5 }, st = 1;
    for (int d = 3; d >= 0; d--) {
        c.shape[d] = sh[d];
        c.out_stride[d] = c.a_stride[d] = c.b_stride[d] = st;
        st *= sh[d];
    }
    kd_cu_map_plan p = kd_cu_map_plan_make(&c, 1);
    CHECK(p.ndim == 1 && p.shape[0] == 120 && p.so[0] == 1, "contiguous 2x3x4x5 -> one dim of 120 (got %d dims)", p.ndim);
}

static void check_swizzle(void)
{
    const int cprs[] = { 2, 4, 8, 16, 32 };
    for (size_t ci = 0; ci < sizeof cprs / sizeof *cprs; ci++) {
        int cpr = cprs[ci];
        int bij_bad = 0, bank_bad = 0;
        for (int r = 0; r < 64; r++) {
            int seen[64] = { 0 };
            for (int c = 0; c < cpr; c++) {
                int pc = kd_cu_swz(r, c, cpr);
                if (pc < 0 || pc >= cpr || seen[pc]++) bij_bad++;
            }
        }
        /* 8 consecutive rows (aligned to 8) at one logical chunk: byte address mod 128 / 16 all distinct. */
        for (int r0 = 0; r0 < 64; r0 += 8) {
            for (int c = 0; c < cpr; c++) {
                int used = 0;
                for (int r = r0; r < r0 + 8; r++) {
                    int64_t addr = (int64_t)r * cpr * 16 + kd_cu_swz(r, c, cpr) * 16;
                    int group = (int)((addr % 128) / 16);
                    if (used & (1 << group)) bank_bad++;
                    used |= 1 << group;
                }
            }
        }
        CHECK(bij_bad == 0, "swizzle with %d chunks/row is not a permutation of each row (%d bad)", cpr, bij_bad);
        if (cpr >= 8 || cpr == 4)
            CHECK(bank_bad == 0, "swizzle with %d chunks/row: %d bank-group collisions over 8 rows", cpr, bank_bad);
    }
}

static void check_gemm_plan(void)
{
    int64_t gx, gy, gz;
    kd_cu_gemm_grid(129, 257, 3, 128, 128, &gx, &gy, &gz);
    CHECK(gx == 3 && gy == 2 && gz == 3, "grid for m 129, n 257, batch 3: %lld %lld %lld", (long long)gx,
          (long long)gy, (long long)gz);
    kd_cu_gemm_grid(128, 128, 1, 128, 128, &gx, &gy, &gz);
    CHECK(gx == 1 && gy == 1 && gz == 1, "grid for an exact tile");

    _Alignas(16) static char buf[256];
    CHECK(kd_cu_operand_aligned(buf, 64, 0, 1, 8), "aligned base, ld 64 (bf16)");
    CHECK(!kd_cu_operand_aligned(buf + 2, 64, 0, 1, 8), "base off by 2 bytes is not aligned");
    CHECK(!kd_cu_operand_aligned(buf, 65, 0, 1, 8), "ld 65 bf16 is not a whole number of chunks");
    CHECK(kd_cu_operand_aligned(buf, 64, 13, 1, 8), "batch stride ignored when batch is 1");
    CHECK(!kd_cu_operand_aligned(buf, 64, 13, 2, 8), "batch stride 13 breaks alignment when batch > 1");
    CHECK(kd_cu_operand_aligned(buf, 12, 24, 4, 4), "f32 ld 12, stride 24");
}

/* The wgmma accumulator map covers the 64 x 128 tile once; the layout rule takes exactly K-major,
 * 16-byte aligned, non-overlapping batches. */
static void check_wgmma_plan(void)
{
    static int seen[64 * 128];
    int bad = 0;
    for (int t = 0; t < 128; t++)
        for (int i = 0; i < 64; i++) {
            int r, c;
            kd_cu_wgmma_acc_rc(t, i, &r, &c);
            if (r < 0 || r >= 64 || c < 0 || c >= 128) bad++;
            else seen[r * 128 + c]++;
        }
    for (int e = 0; e < 64 * 128; e++) bad += seen[e] != 1;
    CHECK(bad == 0, "wgmma accumulators: %d tile elements not owned exactly once", bad);
    int r, c;
    kd_cu_wgmma_acc_rc(37, 6, &r, &c);   /* warp 1, lane 5: rows 16 + 1 (+8), block 1, pair (lane & 3) = 1 */
    CHECK(r == 25 && c == 10, "accumulator 6 of thread 37 at (25, 10), got (%d, %d)", r, c);

    _Alignas(16) static uint16_t buf[64];
    kd_gemm_args g;
    memset(&g, 0, sizeof g);
    g.trans_a = 0; g.trans_b = 1; g.m = 300; g.n = 768; g.k = 768; g.batch = 1;
    g.a = buf; g.lda = 768; g.b = buf; g.ldb = 768;
    CHECK(kd_cu_wgmma_layout_ok(&g), "X W^T with ld 768 is a wgmma layout");
    g.trans_b = 0;
    CHECK(!kd_cu_wgmma_layout_ok(&g), "B stored k x n (MN-major) is not");
    g.trans_b = 1; g.trans_a = 1;
    CHECK(!kd_cu_wgmma_layout_ok(&g), "A stored k x m is not");
    g.trans_a = 0; g.lda = 770;
    CHECK(!kd_cu_wgmma_layout_ok(&g), "lda 770 (1540 bytes, not 16-byte rows) is not");
    g.lda = 768; g.a = buf + 1;
    CHECK(!kd_cu_wgmma_layout_ok(&g), "a base off 16-byte alignment is not");
    g.a = buf; g.batch = 12; g.stride_a = 768 * 300; g.stride_b = 768 * 768;
    CHECK(kd_cu_wgmma_layout_ok(&g), "batched with packed strides is");
    g.stride_b = 768 * 8;
    CHECK(!kd_cu_wgmma_layout_ok(&g), "batches of B that overlap are not");
    g.batch = 1; g.k = 800;
    CHECK(!kd_cu_wgmma_layout_ok(&g), "lda < k is not");
}

static void check_rounding(void)
{
    /* bf16: 1 + 2^-8 is a tie between 1 and 1 + 2^-7: even mantissa (1) wins; 1 + 3*2^-8 rounds up. */
    CHECK(kd_cu_bf16_from_f32(1.0f) == 0x3f80, "bf16(1) = 0x3f80, got %#x", kd_cu_bf16_from_f32(1.0f));
    CHECK(kd_cu_bf16_from_f32(1.0f + 1.0f / 256) == 0x3f80, "bf16(1 + 2^-8) ties to even");
    CHECK(kd_cu_bf16_from_f32(1.0f + 3.0f / 256) == 0x3f82, "bf16(1 + 3 2^-8) rounds up to 1 + 2^-6");
    CHECK(kd_cu_bf16_from_f32(-2.0f) == 0xc000, "bf16(-2) = 0xc000");
    CHECK(isnan(kd_cu_bf16_to_f32(kd_cu_bf16_from_f32(NAN))), "NaN stays NaN");
    CHECK(isinf(kd_cu_bf16_to_f32(kd_cu_bf16_from_f32(INFINITY))), "inf stays inf");
    uint64_t s = 7;
    int bad = 0;
    for (int i = 0; i < 100000; i++) {
        float x = (float)((double)lcg(&s) / 2147483648.0 * 200.0 - 100.0);
        float y = kd_cu_bf16_to_f32(kd_cu_bf16_from_f32(x));
        if (!(fabsf(y - x) <= fabsf(x) * (1.0f / 256.0f))) bad++;
        float t = kd_cu_tf32_round(x);
        if (!(fabsf(t - x) <= fabsf(x) * (1.0f / 2048.0f))) bad++;
    }
    CHECK(bad == 0, "%d values rounded beyond half an ulp of bf16 (2^-8) or tf32 (2^-11)", bad);
    /* tf32 ties away from zero: 1 + 2^-11 -> 1 + 2^-10. */
    CHECK(kd_cu_tf32_round(1.0f + 1.0f / 2048) == 1.0f + 1.0f / 1024, "tf32(1 + 2^-11) ties away");
    CHECK(kd_cu_tf32_round(-(1.0f + 1.0f / 2048)) == -(1.0f + 1.0f / 1024), "tf32(-(1 + 2^-11)) ties away");
}

int main(void)
{
    check_map_plans();
    check_swizzle();
    check_gemm_plan();
    check_wgmma_plan();
    check_rounding();
    return kd_test_finish("test_cuda_plan");
}
