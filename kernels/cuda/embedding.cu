/* kernels/cuda/embedding.cu — embedding lookup (forward: row gather) and its backward (atomic scatter-add
 * into the table's gradient), f32. */
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

/* One block row per id: out[i, :] = table[ids[i], :]; float4 when dim and the pointers allow. */
static __global__ void embedding_kernel(int64_t n, int64_t dim, int64_t rows, const int32_t *__restrict__ ids,
                                        const float *__restrict__ table, float *__restrict__ out, int vec)
{
    for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
        float *dst = out + i * dim;
        if (rows > 0 && (ids[i] < 0 || ids[i] >= rows)) {   /* reported by the id check; never read past */
            for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) dst[j] = 0.0f;
            continue;
        }
        const float *src = table + (int64_t)ids[i] * dim;
        if (vec) {
            for (int64_t j = threadIdx.x; j < dim / 4; j += blockDim.x)
                ((float4 *)dst)[j] = ((const float4 *)src)[j];
        } else {
            for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) dst[j] = src[j];
        }
    }
}

/* dtable[ids[i], :] += dout[i, :]; equal ids collide, hence atomics. */
static __global__ void embedding_bwd_kernel(int64_t n, int64_t dim, int64_t rows, const int32_t *__restrict__ ids,
                                            float *__restrict__ dtable, const float *__restrict__ dout)
{
    for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
        if (rows > 0 && (ids[i] < 0 || ids[i] >= rows)) continue;
        float *dst = dtable + (int64_t)ids[i] * dim;
        const float *src = dout + i * dim;
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) atomicAdd(dst + j, src[j]);
    }
}

static unsigned rows_grid(int64_t rows) { return (unsigned)(rows < 65535 * 16 ? (rows < 1 ? 1 : rows) : 65535 * 16); }

extern "C" void kd_cu_embedding(const kd_embedding_args *e, int ith, int nth)
{
    (void)ith; (void)nth;
    if (e->n <= 0 || e->dim <= 0) return;
    int vec = e->dim % 4 == 0 && ((uintptr_t)e->table % 16) == 0 && ((uintptr_t)e->out % 16) == 0;
    embedding_kernel<<<rows_grid(e->n), 128, 0, kd_cu_stream()>>>(e->n, e->dim, e->rows, e->ids, (const float *)e->table,
                                                                   (float *)e->out, vec);
    KD_CU_LAUNCH_VOID();
}

extern "C" void kd_cu_embedding_bwd(const kd_embedding_args *e, int ith, int nth)
{
    (void)ith; (void)nth;
    if (e->n <= 0 || e->dim <= 0) return;
    embedding_bwd_kernel<<<rows_grid(e->n), 128, 0, kd_cu_stream()>>>(e->n, e->dim, e->rows, e->ids, (float *)e->dtable,
                                                                       (const float *)e->dout);
    KD_CU_LAUNCH_VOID();
}
