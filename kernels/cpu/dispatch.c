/* kernels/cpu/dispatch.c — read the CPU's features once and pick the fastest f32 or bf16 kernel table it runs. */
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/cpu/cpu_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long xgetbv0(void)
{
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif

kd_cpu_features kd_cpu_detect(void)
{
    kd_cpu_features f;
    memset(&f, 0, sizeof f);
#if defined(__x86_64__) || defined(__i386__)
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx) return f;
    unsigned long long xcr0 = xgetbv0();
    int ymm_ok = (xcr0 & 0x6) == 0x6;          /* SSE and AVX state saved by the OS */
    int zmm_ok = (xcr0 & 0xE6) == 0xE6;        /* plus opmask and the upper ZMM state */
    if (!ymm_ok) return f;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
    f.fma = fma;
    f.avx2 = (b >> 5) & 1;
    if (zmm_ok) {
        f.avx512f = (b >> 16) & 1;
        f.avx512dq = (b >> 17) & 1;
        f.avx512bw = (b >> 30) & 1;
        f.avx512vl = (b >> 31) & 1;
        f.avx512vnni = (c >> 11) & 1;
        unsigned int a1, b1, c1, d1;
        if (a >= 1 && __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) f.avx512bf16 = (a1 >> 5) & 1;
    }
#endif
    return f;
}

#ifdef KD_HAVE_AVX2
static int cpu_runs_avx2(kd_cpu_features f) { return f.avx2 && f.fma; }
#endif
#ifdef KD_HAVE_AVX512
/* The AVX-512 table also runs AVX2 code (its row kernels), which every AVX-512 CPU has. */
static int cpu_runs_avx512(kd_cpu_features f)
{
    return f.avx2 && f.fma && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
}
#endif

/* The SIMD tables exist only when the compiler could build them (KD_HAVE_AVX2 / KD_HAVE_AVX512, set by
 * kernels/meson.build), and are returned only when the CPU (and the OS) can run them. */
const kd_kernels *kd_kernels_cpu_f32(const char *prefer)
{
    kd_cpu_features f = kd_cpu_detect();
    int best = !prefer || strcmp(prefer, "best") == 0;
    (void)f;
    if (!best && strcmp(prefer, "ref") == 0) return kd_kernels_ref_f32();
#ifdef KD_HAVE_AVX512
    if ((best || strcmp(prefer, "avx512") == 0) && cpu_runs_avx512(f)) return kd_kernels_avx512_f32();
#endif
#ifdef KD_HAVE_AVX2
    if ((best || strcmp(prefer, "avx2") == 0) && cpu_runs_avx2(f)) return kd_kernels_avx2_f32();
#endif
    return best ? kd_kernels_ref_f32() : NULL;
}

/* bf16 storage: the same choice among the bf16 tables. */
const kd_kernels *kd_kernels_cpu_bf16(const char *prefer)
{
    kd_cpu_features f = kd_cpu_detect();
    int best = !prefer || strcmp(prefer, "best") == 0;
    (void)f;
    if (!best && strcmp(prefer, "ref") == 0) return kd_kernels_ref_bf16();
#ifdef KD_HAVE_AVX512
    if ((best || strcmp(prefer, "avx512") == 0) && cpu_runs_avx512(f)) return kd_kernels_avx512_bf16();
#endif
#ifdef KD_HAVE_AVX2
    if ((best || strcmp(prefer, "avx2") == 0) && cpu_runs_avx2(f)) return kd_kernels_avx2_bf16();
#endif
    return best ? kd_kernels_ref_bf16() : NULL;
}

kd_gemm_fn kd_gemm_cpu_bf16(const char *name)
{
    kd_cpu_features f = kd_cpu_detect();
    (void)f;
    (void)name;
#ifdef KD_HAVE_AVX512BF16
    if (strcmp(name, "avx512bf16") == 0) return cpu_runs_avx512(f) && f.avx512bf16 ? kd_gemm_avx512bf16_bf16 : NULL;
#endif
#ifdef KD_HAVE_AVX512
    if (strcmp(name, "avx512") == 0) return cpu_runs_avx512(f) ? kd_gemm_avx512_bf16 : NULL;
#endif
#ifdef KD_HAVE_AVX2
    if (strcmp(name, "avx2") == 0) return cpu_runs_avx2(f) ? kd_gemm_avx2_bf16 : NULL;
#endif
    return NULL;
}

int kd_gemm_s8_cpu(const char *name, void (**fn)(const kd_gemm_s8_args *, int, int), kd_gemm_s8_pack_fn *pack)
{
    kd_cpu_features f = kd_cpu_detect();
    (void)f;
    if (strcmp(name, "ref") == 0) {
        *fn = kd_gemm_s8_ref;
        *pack = kd_gemm_s8_pack_ref;
        return 1;
    }
#ifdef KD_HAVE_AVX512VNNI
    if (strcmp(name, "avx512vnni") == 0 && cpu_runs_avx512(f) && f.avx512vnni) {
        *fn = kd_gemm_s8_avx512vnni;
        *pack = kd_gemm_s8_pack_avx512vnni;
        return 1;
    }
#endif
#ifdef KD_HAVE_AVX2
    if (strcmp(name, "avx2") == 0 && cpu_runs_avx2(f)) {
        *fn = kd_gemm_s8_avx2;
        *pack = kd_gemm_s8_pack_avx2;
        return 1;
    }
#endif
    return 0;
}
