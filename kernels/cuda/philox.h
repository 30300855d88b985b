/* kernels/cuda/philox.h — kernels/rng.h's Philox4x32-10 and dropout keep decision as host+device functions,
 * so CUDA kernels draw exactly the numbers the CPU draws for the same (seed, counter). Plain C when not
 * compiled by nvcc: test/gpu/test_philox_port.c checks it against kernels/rng.h on the CPU. */
#ifndef KD_CUDA_PHILOX_H
#define KD_CUDA_PHILOX_H

#include <stdint.h>

#ifdef __CUDACC__
#define KD_HD __host__ __device__ __forceinline__
#else
#define KD_HD static inline
#endif

typedef struct kd_cu_philox4 { uint32_t v[4]; } kd_cu_philox4;

/* Same rounds, constants and word order as kd_philox(): counter (c0..c3) = (lo, lo>>32, hi, hi>>32),
 * key (k0, k1) = (seed, seed>>32). The 32x32->64 product is written the same way in both worlds. */
KD_HD kd_cu_philox4 kd_cu_philox(uint64_t seed, uint64_t counter_lo, uint64_t counter_hi)
{
    uint32_t c0 = (uint32_t)counter_lo, c1 = (uint32_t)(counter_lo >> 32);
    uint32_t c2 = (uint32_t)counter_hi, c3 = (uint32_t)(counter_hi >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
    kd_cu_philox4 out = { { c0, c1, c2, c3 } };
    return out;
}

/* 24 random bits as a float in [0, 1): exact in float, so the comparison with p matches the CPU's. */
KD_HD float kd_cu_u32_to_unit(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

/* Draw i of the stream is word (i & 3) of block (i >> 2), as kd_rng_u32(). */
KD_HD uint32_t kd_cu_rng_u32(uint64_t seed, uint64_t i)
{
    kd_cu_philox4 r = kd_cu_philox(seed, i >> 2, 0);
    return r.v[i & 3];
}

/* Kept with probability 1 - p, as kd_rng_keep(). */
KD_HD int kd_cu_keep_word(uint32_t word, float p) { return kd_cu_u32_to_unit(word) >= p; }
KD_HD int kd_cu_rng_keep(uint64_t seed, uint64_t i, float p) { return kd_cu_keep_word(kd_cu_rng_u32(seed, i), p); }

#ifdef __CUDACC__
/* Dropout keep-scales along a thread's counters: keep(ctr) is 0 or 1 / (1 - p). The Philox block of the
 * previous call is reused while the counter stays in it (neighbouring keys often share one); the word is
 * picked with selects, not an indexed array, so the block stays in registers. */
struct kd_cu_keeper {
    uint64_t seed;
    float p, kscale;
    uint64_t blk;
    kd_cu_philox4 r;
    __device__ __forceinline__ float keep(uint64_t ctr)
    {
        if (ctr >> 2 != blk) {
            blk = ctr >> 2;
            r = kd_cu_philox(seed, blk, 0);
        }
        const uint32_t i = (uint32_t)ctr & 3u;
        const uint32_t word = i == 0 ? r.v[0] : i == 1 ? r.v[1] : i == 2 ? r.v[2] : r.v[3];
        return kd_cu_keep_word(word, p) ? kscale : 0.0f;
    }
};

__device__ __forceinline__ kd_cu_keeper kd_cu_make_keeper(uint64_t seed, double p)
{
    kd_cu_keeper k = { seed, (float)p, p > 0.0 ? (float)(1.0 / (1.0 - p)) : 1.0f, ~0ull, {} };
    return k;
}
#endif

#endif
