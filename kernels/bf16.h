/* kernels/bf16.h — bf16 ("brain float") storage: the upper 16 bits of an IEEE-754 f32 (sign, 8-bit
 * exponent, 7-bit mantissa). f32 -> bf16 rounds to nearest, ties to even; NaN stays NaN (made quiet, sign
 * kept); finite values past bf16's largest (3.3895e38) round to Inf. bf16 -> f32 is exact. */
#ifndef KD_BF16_H
#define KD_BF16_H

#include <stdint.h>
#include <string.h>

typedef uint16_t kd_bf16;

static inline float kd_bf16_to_f32(kd_bf16 h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline kd_bf16 kd_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (kd_bf16)((u >> 16) | 0x0040u);   /* NaN: quiet */
    u += 0x7fffu + ((u >> 16) & 1u);                                                 /* nearest, ties even */
    return (kd_bf16)(u >> 16);
}

#endif
