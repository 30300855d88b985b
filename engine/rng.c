/* engine/rng.c — the engine's generator state (seed, counter) for dropout. */
#include "engine/rng.h"

static kd_generator G = { 0x6b64u, 0 };

void kd_manual_seed(uint64_t seed)
{
    G.seed = seed;
    G.counter = 0;
}

kd_generator kd_generator_get(void) { return G; }
void kd_generator_set(kd_generator g) { G = g; }

uint64_t kd_generator_take(uint64_t n)
{
    uint64_t first = G.counter;
    G.counter += n;
    return first;
}
