/* kernels/cuda/map_plan.h — host-side index math for the element-wise maps: drop size-1 dims and merge
 * neighbours that are contiguous in every operand, so most maps become one flat loop on the device.
 * Plain C (tested on the CPU by test/gpu/test_cuda_plan.c). */
#ifndef KD_CUDA_MAP_PLAN_H
#define KD_CUDA_MAP_PLAN_H

#include <stdint.h>

#include "kernels/kernels.h"

typedef struct kd_cu_map_plan {
    int ndim;                                   /* >= 1 */
    int64_t total;                              /* product of shape; 0 = nothing to do */
    int64_t shape[KD_KMAX_DIMS];
    int64_t so[KD_KMAX_DIMS], sa[KD_KMAX_DIMS], sb[KD_KMAX_DIMS];   /* out, a, b strides */
} kd_cu_map_plan;

/* Dim d (outer) merges into d+1 (inner) when stride[d] == stride[d+1] * shape[d+1] for out, a and (if
 * `binary`) b: the pair then walks memory as one dim of shape[d] * shape[d+1] with stride[d+1]. */
static inline kd_cu_map_plan kd_cu_map_plan_make(const kd_map_args *m, int binary)
{
    kd_cu_map_plan p;
    p.ndim = 0;
    p.total = 1;
    for (int d = 0; d < m->ndim; d++) p.total *= m->shape[d];
    for (int d = 0; d < m->ndim; d++) {
        if (m->shape[d] == 1) continue;
        int64_t sb = binary ? m->b_stride[d] : 0;
        if (p.ndim > 0) {
            int q = p.ndim - 1;
            int64_t n = m->shape[d];
            if (p.so[q] == m->out_stride[d] * n && p.sa[q] == m->a_stride[d] * n && p.sb[q] == sb * n) {
                p.shape[q] *= n;
                p.so[q] = m->out_stride[d];
                p.sa[q] = m->a_stride[d];
                p.sb[q] = sb;
                continue;
            }
        }
        p.shape[p.ndim] = m->shape[d];
        p.so[p.ndim] = m->out_stride[d];
        p.sa[p.ndim] = m->a_stride[d];
        p.sb[p.ndim] = sb;
        p.ndim++;
    }
    if (p.ndim == 0) {
        p.ndim = 1;
        p.shape[0] = 1;
        p.so[0] = p.sa[0] = p.sb[0] = 1;
    }
    return p;
}

/* Offsets of flat index `flat` (row-major over p->shape) in out, a and b. */
#ifdef __CUDACC__
__host__ __device__
#endif
static inline void kd_cu_map_offsets(const kd_cu_map_plan *p, int64_t flat, int64_t *oo, int64_t *oa, int64_t *ob)
{
    int64_t o = 0, a = 0, b = 0;
    for (int d = p->ndim - 1; d >= 0; d--) {
        int64_t n = p->shape[d];
        int64_t i = d ? flat % n : flat;
        flat = d ? flat / n : 0;
        o += i * p->so[d];
        a += i * p->sa[d];
        b += i * p->sb[d];
    }
    *oo = o;
    *oa = a;
    *ob = b;
}

#endif
