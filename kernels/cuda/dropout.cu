/* kernels/cuda/dropout.cu — dropout from the Philox stream (the CPU's keep decisions, bit for bit),
 * templated on the storage type (float, or __nv_bfloat16 for the bf16 table). */
#include "kernels/cuda/bf16_cuda.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/philox.h"

typedef __nv_bfloat16 bf16;

/* ---- dropout: one Philox block (four draws) per thread ---- */

/* Block q of the stream covers counters 4q..4q+3, i.e. elements i = 4q + r - offset. */
template <typename T>
static __global__ void dropout_kernel(int64_t n, float p, float keep_scale, uint64_t seed, uint64_t offset,
                                      int accumulate, const T *__restrict__ x, T *__restrict__ out)
{
    uint64_t q0 = offset >> 2, q1 = (offset + (uint64_t)n + 3) >> 2;
    for (uint64_t q = q0 + blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; q < q1; q += (uint64_t)gridDim.x * blockDim.x) {
        kd_cu_philox4 r = kd_cu_philox(seed, q, 0);
#pragma unroll
        for (int w = 0; w < 4; w++) {
            uint64_t ctr = 4 * q + (uint64_t)w;
            if (ctr < offset || ctr >= offset + (uint64_t)n) continue;
            int64_t i = (int64_t)(ctr - offset);
            float v = kd_cu_keep_word(r.v[w], p) ? kd_cu_ld(x[i]) * keep_scale : 0.0f;
            out[i] = kd_cu_st<T>(accumulate ? kd_cu_ld(out[i]) + v : v);
        }
    }
}

template <typename T>
static void dropout_launch(const kd_dropout_args *d)
{
    if (d->n <= 0) return;
    /* The CPU computes x * (1/(1-p)) in double and rounds once; in float the product may differ by 1 ulp. */
    float keep_scale = d->p < 1.0 ? (float)(1.0 / (1.0 - d->p)) : 0.0f;
    int64_t blocks4 = (int64_t)(((d->offset + (uint64_t)d->n + 3) >> 2) - (d->offset >> 2));
    dropout_kernel<T><<<kd_cu_grid(blocks4, 256), 256, 0, kd_cu_stream()>>>(
        d->n, (float)d->p, keep_scale, d->seed, d->offset, d->accumulate, (const T *)d->x, (T *)d->out);
    KD_CU_LAUNCH_VOID();
}

extern "C" void kd_cu_dropout(const kd_dropout_args *d, int ith, int nth) { (void)ith; (void)nth; dropout_launch<float>(d); }
extern "C" void kd_cu_dropout_bf16(const kd_dropout_args *d, int ith, int nth)
{
    (void)ith; (void)nth;
    dropout_launch<bf16>(d);
}
