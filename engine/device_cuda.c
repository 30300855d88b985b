/* engine/device_cuda.c — the CUDA device: memory, copies and the stream of kernels/cuda/cuda_runtime.h,
 * the CUDA kernel tables. Built only with the CUDA backend. */
#include "engine/device_impl.h"
#include "engine/internal.h"
#include "kernels/cuda/cuda_runtime.h"

/* The CUDA layer's messages land in the engine's error record; its codes are kd_status numbers. */
_Static_assert(KD_CUDA_ERR_SHAPE == KD_ERR_SHAPE && KD_CUDA_ERR_ARG == KD_ERR_ARG && KD_CUDA_ERR_NOMEM == KD_ERR_NOMEM &&
               KD_CUDA_ERR_DEVICE == KD_ERR_DEVICE && KD_CUDA_ERR_STATE == KD_ERR_STATE, "cuda_status.h codes");
static void cuda_error(kd_cuda_result r, const char *msg)
{
    if (r == KD_CUDA_OK) kd_clear_error();
    else kd_fail((kd_status)r, "%s", msg);
}
static kd_status cuda_open(void)
{
    kd_cuda_set_error_sink(cuda_error);
    if (!kd_cuda_available())
        return kd_fail(KD_ERR_DEVICE, "device cuda: no usable CUDA GPU is visible (driver, device or "
                       "CUDA_VISIBLE_DEVICES); run with --device cpu");
    return kd_cuda_init(0);
}
static kd_status cuda_alloc(void **p, size_t n) { return kd_cuda_malloc(p, n ? n : 1); }
static void cuda_release(void *p) { kd_cuda_free(p); }
static kd_status cuda_copy(void *dst, const void *src, size_t n, int kind)
{
    if (kind == KD_COPY_H2D) return kd_cuda_h2d_async(dst, src, n);   /* staged: the host does not wait */
    if (kind == KD_COPY_D2D) return kd_cuda_d2d(dst, src, n);
    kd_status st = kd_cuda_d2h(dst, src, n);
    return st != KD_OK ? st : kd_cuda_sync();   /* errors the kernels found surface with the values */
}
static kd_status cuda_sync(void) { return kd_cuda_sync(); }
static kd_status cuda_check_ids(const int32_t *ids, int64_t n, int64_t limit, const char *what)
{
    return kd_cuda_check_ids(ids, n, limit, what);
}
/* One stream: a kernel's host function queues its launches and returns. */
static void cuda_launch(void (*task)(void *ctx, int ith, int nth), void *ctx, double work)
{
    (void)work;
    task(ctx, 0, 1);
}
static const kd_kernels *cuda_table(kd_dtype dt)
{
    static const kd_kernels *t, *tb;   /* asked once: every op asks for its table */
    if (!t) t = kd_kernels_cuda_f32();
    if (!tb) tb = kd_kernels_cuda_bf16();
    return dt == KD_F32 ? t : dt == KD_BF16 ? tb : NULL;
}
const kd_device_impl kd_device_cuda_impl = { .name = "cuda", .open = cuda_open, .alloc = cuda_alloc,
                                          .release = cuda_release, .copy = cuda_copy, .sync = cuda_sync,
                                          .check_ids = cuda_check_ids, .launch = cuda_launch, .table = cuda_table };
