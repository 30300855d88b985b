/* test/gpu/test_philox_port.c — the CUDA Philox port (kernels/cuda/philox.h) compiled as host code draws
 * exactly the numbers of kernels/rng.h: raw blocks, stream words, and dropout keep decisions. Runs on the
 * CPU in every build; the device side of the same header is checked in test_cuda_kernels (dropout). */
#include "kernels/cuda/philox.h"
#include "kernels/rng.h"
#include "test/testutil.h"

int main(void)
{
    const uint64_t seeds[] = { 0, 1, 42, 0xdeadbeefcafef00dull, 0xffffffffffffffffull, 1ull << 32 };
    const uint64_t bases[] = { 0, 1, 4095, 1ull << 32, (1ull << 62) + 3, 0xfffffffffffffff0ull };
    int64_t blocks = 0, words = 0, keeps = 0, mismatches = 0;
    for (size_t s = 0; s < sizeof seeds / sizeof *seeds; s++) {
        for (size_t b = 0; b < sizeof bases / sizeof *bases; b++) {
            for (uint64_t i = 0; i < 257; i++) {
                uint64_t ctr = bases[b] + i;
                kd_philox4 want = kd_philox(seeds[s], ctr, i & 1 ? ctr ^ 0x9e3779b97f4a7c15ull : 0);
                kd_cu_philox4 got = kd_cu_philox(seeds[s], ctr, i & 1 ? ctr ^ 0x9e3779b97f4a7c15ull : 0);
                for (int w = 0; w < 4; w++) mismatches += got.v[w] != want.v[w];
                blocks++;
                if (kd_cu_rng_u32(seeds[s], ctr) != kd_rng_u32(seeds[s], ctr)) mismatches++;
                words++;
                const float ps[] = { 0.0f, 0.1f, 0.5f, 0.9f, 1.0f };
                for (size_t p = 0; p < sizeof ps / sizeof *ps; p++) {
                    if (kd_cu_rng_keep(seeds[s], ctr, ps[p]) != kd_rng_keep(seeds[s], ctr, ps[p])) mismatches++;
                    keeps++;
                }
            }
        }
    }
    CHECK(mismatches == 0, "%lld mismatches between the CUDA port and kernels/rng.h", (long long)mismatches);
    /* The port is not trivially equal to something constant: different counters give different words. */
    CHECK(kd_cu_rng_u32(7, 0) != kd_cu_rng_u32(7, 1) && kd_cu_rng_u32(7, 0) != kd_cu_rng_u32(8, 0),
          "distinct counters and seeds draw distinct words");
    /* Keep rate near 1 - p over many draws. */
    int64_t kept = 0, n = 200000;
    for (int64_t i = 0; i < n; i++) kept += kd_cu_rng_keep(123, (uint64_t)i, 0.3f);
    double rate = (double)kept / (double)n;
    CHECK(fabs(rate - 0.7) < 0.005, "keep rate %.4f for p = 0.3 (want 0.7 +- 0.005)", rate);
    printf("checked %lld blocks, %lld words, %lld keep decisions\n", (long long)blocks, (long long)words,
           (long long)keeps);
    return kd_test_finish("test_philox_port");
}
