/* engine/rng.h — the engine's generator for dropout: a seed and a counter. Each dropout call takes the
 * next block of counters, so a run is a pure function of the seed; saving (seed, counter) in a checkpoint
 * and restoring it resumes the exact stream. The numbers themselves come from kernels/rng.h (Philox). */
#ifndef KD_ENGINE_RNG_H
#define KD_ENGINE_RNG_H

#include <stdint.h>

typedef struct kd_generator { uint64_t seed, counter; } kd_generator;

void kd_manual_seed(uint64_t seed);            /* seed, counter 0 */
kd_generator kd_generator_get(void);
void kd_generator_set(kd_generator g);
/* Reserve n consecutive counters; returns the first. */
uint64_t kd_generator_take(uint64_t n);

/* SplitMix64 (Steele, Lea and Flood 2014): the next 64 bits of a small sequential stream, for data order,
 * subsets, augmentation and initialisation (dropout uses the counter-based generator above). */
static inline uint64_t kd_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#endif
