/* engine/device_impl.h — what a device gives the engine's device layer (engine/device.c): memory, copies,
 * a wait, the id check, kernel launches and its kernel tables. The CPU's and CUDA's tables are in
 * device.c, the simulated device's in device_sim.c. Engine-internal. */
#ifndef KD_ENGINE_DEVICE_IMPL_H
#define KD_ENGINE_DEVICE_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/tensor.h"
#include "kernels/kernels.h"

enum { KD_COPY_H2D = 0, KD_COPY_D2H = 1, KD_COPY_D2D = 2 };

typedef struct kd_device_impl {
    const char *name;
    kd_status (*open)(void);                        /* NULL: this build cannot open it */
    kd_status (*alloc)(void **p, size_t n);
    void (*release)(void *p);
    kd_status (*copy)(void *dst, const void *src, size_t n, int kind);   /* KD_COPY_* */
    kd_status (*sync)(void);
    /* Range check of n ids: fails at once where the host can see them, else reported at the next sync. */
    kd_status (*check_ids)(const int32_t *ids, int64_t n, int64_t limit, const char *what);
    /* Run task(ctx, ith, nth) for ith = 0..nth-1 (nth chosen by the device from work, in FLOPs). */
    void (*launch)(void (*task)(void *ctx, int ith, int nth), void *ctx, double work);
    const kd_kernels *(*table)(kd_dtype dt);
} kd_device_impl;

extern const kd_device_impl kd_device_sim_impl;
extern const kd_device_impl kd_device_cuda_impl;   /* builds with the CUDA backend */

/* The message of the first id outside [0, limit) into msg ("<what>: id <v> at position <i> is outside
 * [0, <limit>)"); 1 when there is one. Every device's check words it so. */
static inline int kd_ids_find_bad(const int32_t *ids, int64_t n, int64_t limit, const char *what, char *msg, size_t cap)
{
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= limit) {
            snprintf(msg, cap, "%s: id %d at position %lld is outside [0, %lld)", what, (int)ids[i], (long long)i,
                     (long long)limit);
            return 1;
        }
    return 0;
}

#endif
