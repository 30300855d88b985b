/* kernels/rng.h — Philox4x32-10, a counter-based RNG (Salmon et al., "Parallel random numbers: as easy as
 * 1, 2, 3", SC'11). The n-th number under a seed is a pure function of (seed, n), so any thread, any
 * thread count and the GPU draw the same values for the same element. */
#ifndef KD_RNG_H
#define KD_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct kd_philox4 { uint32_t v[4]; } kd_philox4;

static inline uint32_t kd_mulhilo32(uint32_t a, uint32_t b, uint32_t *hi)
{
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

/* Ten rounds on the 128-bit counter (c0..c3) with the 64-bit key. */
static inline kd_philox4 kd_philox(uint64_t seed, uint64_t counter_lo, uint64_t counter_hi)
{
    uint32_t c0 = (uint32_t)counter_lo, c1 = (uint32_t)(counter_lo >> 32);
    uint32_t c2 = (uint32_t)counter_hi, c3 = (uint32_t)(counter_hi >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = kd_mulhilo32(0xD2511F53u, c0, &hi0);
        uint32_t lo1 = kd_mulhilo32(0xCD9E8D57u, c2, &hi1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
    kd_philox4 out = { { c0, c1, c2, c3 } };
    return out;
}

/* Uniform in [0, 1) with 24 random bits (exactly representable in float). */
static inline float kd_u32_to_unit(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

/* The i-th 32-bit draw of the stream: four draws per Philox block. */
static inline uint32_t kd_rng_u32(uint64_t seed, uint64_t i)
{
    kd_philox4 r = kd_philox(seed, i >> 2, 0);
    return r.v[i & 3];
}

static inline float kd_rng_uniform(uint64_t seed, uint64_t i) { return kd_u32_to_unit(kd_rng_u32(seed, i)); }

/* Standard normal for element i by Box-Muller on the first two words of block i (hi word 1 keeps these
 * blocks apart from the uniform stream). */
static inline double kd_rng_normal(uint64_t seed, uint64_t i, uint32_t attempt)
{
    kd_philox4 r = kd_philox(seed, i, ((uint64_t)attempt << 1) | 1u);
    double u1 = ((double)r.v[0] + 1.0) * (1.0 / 4294967296.0); /* (0, 1] */
    double u2 = (double)r.v[1] * (1.0 / 4294967296.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Dropout keep decision for element i: kept with probability 1-p. */
static inline int kd_rng_keep(uint64_t seed, uint64_t i, float p) { return kd_rng_uniform(seed, i) >= p; }

#endif
