/* test/kernels/test_gemm_s8_vnni_emul.c — the AVX-512 VNNI int8 kernel's own code (its weight packing, the +128
 * shift undone by column sums, the 8 x 32 tiles, short rows and columns, masks, the thread splits) run on any
 * CPU: kernels/cpu/gemm_s8_avx512vnni.c is compiled here with each AVX-512 intrinsic it uses replaced by a
 * scalar function of the meaning Intel's guide gives it, and checked bit for bit against the reference at
 * awkward shapes, dynamic and static scales, 1 and 3 threads, with canaries around C. What this cannot check is
 * the hardware's instructions themselves: test_gemm_s8 runs the real kernel where the CPU has AVX-512 VNNI. */
#include <immintrin.h>   /* first: the kernel's own #include is then a no-op, and __mmask16 is defined */
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct { float f[16]; } emu_m512;
typedef struct { int32_t i[16]; } emu_m512i;
typedef struct { int8_t b[16]; } emu_m128i;

static inline emu_m512 emu_setzero_ps(void) { emu_m512 r; memset(&r, 0, sizeof r); return r; }
static inline emu_m512i emu_setzero_si512(void) { emu_m512i r; memset(&r, 0, sizeof r); return r; }
static inline emu_m512 emu_set1_ps(float x) { emu_m512 r; for (int j = 0; j < 16; j++) r.f[j] = x; return r; }
static inline emu_m512i emu_set1_epi32(int32_t x) { emu_m512i r; for (int j = 0; j < 16; j++) r.i[j] = x; return r; }
static inline emu_m512 emu_loadu_ps(const float *p) { emu_m512 r; memcpy(r.f, p, sizeof r.f); return r; }
static inline void emu_store_ps(float *p, emu_m512 v) { memcpy(p, v.f, sizeof v.f); }
static inline emu_m512i emu_loadu_si512(const void *p) { emu_m512i r; memcpy(r.i, p, sizeof r.i); return r; }
static inline void emu_storeu_si512(void *p, emu_m512i v) { memcpy(p, v.i, sizeof v.i); }
static inline void emu_storeu_si128(emu_m128i *p, emu_m128i v) { memcpy(p, v.b, sizeof v.b); }
/* max/min: the second operand when the comparison fails (NaN included), as MAXPS/MINPS */
static inline emu_m512 emu_max_ps(emu_m512 a, emu_m512 b) { for (int j = 0; j < 16; j++) a.f[j] = a.f[j] > b.f[j] ? a.f[j] : b.f[j]; return a; }
static inline emu_m512 emu_min_ps(emu_m512 a, emu_m512 b) { for (int j = 0; j < 16; j++) a.f[j] = a.f[j] < b.f[j] ? a.f[j] : b.f[j]; return a; }
static inline emu_m512 emu_abs_ps(emu_m512 a) { for (int j = 0; j < 16; j++) a.f[j] = fabsf(a.f[j]); return a; }
static inline emu_m512 emu_mul_ps(emu_m512 a, emu_m512 b) { for (int j = 0; j < 16; j++) a.f[j] *= b.f[j]; return a; }
static inline emu_m512 emu_fmadd_ps(emu_m512 a, emu_m512 b, emu_m512 c) { for (int j = 0; j < 16; j++) a.f[j] = fmaf(a.f[j], b.f[j], c.f[j]); return a; }
/* integer lanes wrap, as the instructions do */
static inline emu_m512i emu_add_epi32(emu_m512i a, emu_m512i b) { for (int j = 0; j < 16; j++) a.i[j] = (int32_t)((uint32_t)a.i[j] + (uint32_t)b.i[j]); return a; }
static inline emu_m512i emu_sub_epi32(emu_m512i a, emu_m512i b) { for (int j = 0; j < 16; j++) a.i[j] = (int32_t)((uint32_t)a.i[j] - (uint32_t)b.i[j]); return a; }
/* CVTPS2DQ under the default rounding (to nearest even); the kernel clamps to [-127, 127] first */
static inline emu_m512i emu_cvtps_epi32(emu_m512 a) { emu_m512i r; for (int j = 0; j < 16; j++) r.i[j] = (int32_t)rintf(a.f[j]); return r; }
static inline emu_m512 emu_cvtepi32_ps(emu_m512i a) { emu_m512 r; for (int j = 0; j < 16; j++) r.f[j] = (float)a.i[j]; return r; }
/* VPMOVDB: the low byte of each lane */
static inline emu_m128i emu_cvtepi32_epi8(emu_m512i a) { emu_m128i r; for (int j = 0; j < 16; j++) r.b[j] = (int8_t)(uint8_t)((uint32_t)a.i[j] & 0xFF); return r; }
/* VPDPBUSD: each lane adds the four products of a's unsigned bytes and b's signed bytes, no saturation */
static inline emu_m512i emu_dpbusd_epi32(emu_m512i src, emu_m512i a, emu_m512i b)
{
    uint8_t ua[64];
    int8_t sb[64];
    memcpy(ua, a.i, 64);
    memcpy(sb, b.i, 64);
    for (int j = 0; j < 16; j++) {
        int32_t s = 0;
        for (int t = 0; t < 4; t++) s += (int32_t)ua[4 * j + t] * (int32_t)sb[4 * j + t];
        src.i[j] = (int32_t)((uint32_t)src.i[j] + (uint32_t)s);
    }
    return src;
}
/* masked loads read only the lanes the mask selects (the others are 0); masked stores write only those */
static inline emu_m512 emu_maskz_loadu_ps(__mmask16 k, const float *p) { emu_m512 r = emu_setzero_ps(); for (int j = 0; j < 16; j++) if ((k >> j) & 1) r.f[j] = p[j]; return r; }
static inline void emu_mask_storeu_ps(float *p, __mmask16 k, emu_m512 v) { for (int j = 0; j < 16; j++) if ((k >> j) & 1) p[j] = v.f[j]; }

#define __m512 emu_m512
#define __m512i emu_m512i
#define __m128i emu_m128i
#define _mm512_setzero_ps emu_setzero_ps
#define _mm512_setzero_si512 emu_setzero_si512
#define _mm512_set1_ps emu_set1_ps
#define _mm512_set1_epi32 emu_set1_epi32
#define _mm512_loadu_ps emu_loadu_ps
#define _mm512_store_ps emu_store_ps
#define _mm512_loadu_si512 emu_loadu_si512
#define _mm512_storeu_si512 emu_storeu_si512
#define _mm_storeu_si128 emu_storeu_si128
#define _mm512_max_ps emu_max_ps
#define _mm512_min_ps emu_min_ps
#define _mm512_abs_ps emu_abs_ps
#define _mm512_mul_ps emu_mul_ps
#define _mm512_fmadd_ps emu_fmadd_ps
#define _mm512_add_epi32 emu_add_epi32
#define _mm512_sub_epi32 emu_sub_epi32
#define _mm512_cvtps_epi32 emu_cvtps_epi32
#define _mm512_cvtepi32_ps emu_cvtepi32_ps
#define _mm512_cvtepi32_epi8 emu_cvtepi32_epi8
#define _mm512_dpbusd_epi32 emu_dpbusd_epi32
#define _mm512_maskz_loadu_ps emu_maskz_loadu_ps
#define _mm512_mask_storeu_ps emu_mask_storeu_ps
/* the kernel under its own names would clash with the library's real one */
#define kd_gemm_s8_avx512vnni emu_gemm_s8_avx512vnni
#define kd_gemm_s8_pack_avx512vnni emu_gemm_s8_pack_avx512vnni
#include "kernels/cpu/gemm_s8_avx512vnni.c"

#include "test/kernels/op_case.h"

static void run_case(int64_t m, int64_t n, int64_t k, int stat, int bias_on)
{
    const int64_t lda = k + 3, ldc = n + 5;
    float *A = malloc((size_t)(m * lda + 1) * sizeof *A), *W = malloc((size_t)(n * k + 1) * sizeof *W);
    float *bias = malloc((size_t)(n + 1) * sizeof *bias), *sw = malloc((size_t)(n + 1) * sizeof *sw);
    int8_t *qw = malloc((size_t)(n * k + 1));
    float *Cref = malloc((size_t)(m * ldc + 1) * sizeof *Cref);
    if (!A || !W || !bias || !sw || !qw || !Cref) abort();
    float amax = 0.0f;
    for (int64_t i = 0; i < m * lda; i++) A[i] = NAN;
    for (int64_t i = 0; i < m; i++) {
        double r = 0.05 + 3.0 * oc_uniform(0, 1);
        for (int64_t p = 0; p < k; p++) A[i * lda + p] = i == m / 2 && m > 2 ? 0.0f : (float)oc_uniform(-r, r);
        for (int64_t p = 0; p < k; p++) amax = fmaxf(amax, fabsf(A[i * lda + p]));
    }
    /* weights up to the full range, -127 and 127 included: the +128 shift's products reach 255 x 127 */
    oc_fill_f32(W, n * k, -0.2, 0.2);
    for (int64_t j = 0; j < n && k > 0; j++) W[j * k + (j % k)] = j & 1 ? 0.4f : -0.4f;
    oc_fill_f32(bias, n, -1, 1);
    kd_quantize_s8_rows(n, k, W, k, qw, sw);
    float act_scale = stat ? (amax > 0 ? 0.6f * amax / 127.0f : 0.01f) : 0.0f;
    kd_gemm_s8_args g = { .m = m, .n = n, .k = k, .a = A, .lda = lda, .act_scale = act_scale, .w = qw,
                          .w_scale = sw, .bias = bias_on ? bias : NULL, .c = Cref, .ldc = ldc };
    for (int64_t i = 0; i < m * ldc; i++) Cref[i] = oc_canary();
    kd_gemm_s8_ref(&g, 0, 1);

    size_t bytes = emu_gemm_s8_pack_avx512vnni(n, k, qw, NULL);
    void *packed = malloc(bytes ? bytes : 1);
    if (!packed) abort();
    emu_gemm_s8_pack_avx512vnni(n, k, qw, packed);
    for (int nth = 1; nth <= 3; nth += 2) {
        oc_fbuf C = oc_falloc(m * ldc);
        kd_gemm_s8_args gf = g;
        gf.w = packed;
        gf.c = C.p;
        OC_RUN(emu_gemm_s8_avx512vnni, &gf, nth);
        int64_t bad = 0, bad_pad = 0, fi = -1, fj = -1;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                if (!(C.p[i * ldc + j] == Cref[i * ldc + j]) && bad++ == 0) { fi = i; fj = j; }
        for (int64_t e = 0; e < m * ldc; e++)
            if (e % ldc >= n && !oc_is_canary(C.p[e])) bad_pad++;
        char what[128];
        snprintf(what, sizeof what, "vnni (emulated) m=%lld n=%lld k=%lld %s bias=%d nth=%d", (long long)m, (long long)n,
                 (long long)k, stat ? "static" : "dynamic", bias_on, nth);
        CHECK(bad == 0, "%s: %lld differ from the reference, first [%lld][%lld] got %.9g want %.9g", what, (long long)bad,
              (long long)fi, (long long)fj, bad ? C.p[fi * ldc + fj] : 0.0, bad ? Cref[fi * ldc + fj] : 0.0);
        CHECK(bad_pad == 0 && oc_fguard_damage(&C) == 0, "%s: wrote outside C", what);
        printf("%-64s exact  %s\n", what, bad || bad_pad ? "FAIL" : "ok");
        oc_ffree(&C);
    }
    free(packed);
    free(A); free(W); free(bias); free(sw); free(qw); free(Cref);
}

int main(void)
{
    oc_seed(11);
    static const int64_t shapes[][3] = {
        { 1, 1, 1 },   { 1, 32, 4 },   { 8, 32, 4 },   { 7, 7, 7 },    { 9, 33, 5 },  { 1, 63, 129 }, { 129, 1, 7 },
        { 17, 65, 67 }, { 70, 48, 97 }, { 65, 129, 33 }, { 5, 9, 0 },  { 3, 100, 2 }, { 40, 17, 768 }, { 2, 200, 31 },
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int stat = 0; stat < 2; stat++)
            for (int b = 0; b < 2; b++) run_case(shapes[s][0], shapes[s][1], shapes[s][2], stat, b);
    return kd_test_finish("test_gemm_s8_vnni_emul");
}
