/* kernels/cuda/cuda_status.h — how the CUDA layer reports failure without knowing who calls it: a result
 * code and a message. C-callable.
 *
 * KD_CUDA_OK is 0; every other code has the number of the engine's kd_status of the same name, so a
 * caller may pass it on as it is. The message ("file:line: what failed: why") is kept in a thread-local
 * buffer, kd_cuda_last_error(), and handed to the error sink when one is set (as ggml_log_set does for
 * ggml's log): the layer above sets a sink to take every message into its own error record. */
#ifndef KD_CUDA_STATUS_H
#define KD_CUDA_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Unsigned, as the engine's kd_status enum is (it has no negative values): the two mix in one expression
 * without sign warnings. */
typedef unsigned kd_cuda_result;
#define KD_CUDA_OK 0u
#define KD_CUDA_ERR_SHAPE 1u     /* shapes that do not fit the kernel */
#define KD_CUDA_ERR_ARG 4u       /* a bad argument */
#define KD_CUDA_ERR_NOMEM 7u     /* out of device (or pinned host) memory */
#define KD_CUDA_ERR_DEVICE 8u    /* a device that is absent or failed */
#define KD_CUDA_ERR_STATE 9u     /* a call that makes no sense now (before kd_cuda_init) */

/* Record a failure (printf-style message) and return `r`, so `return kd_cuda_fail(KD_CUDA_ERR_ARG, ...)`
 * reads well. */
kd_cuda_result kd_cuda_fail(kd_cuda_result r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last message recorded on this thread ("" when none since the last clear). */
const char *kd_cuda_last_error(void);
/* Forget a failure the layer recovered from (and tell the sink so: it gets (KD_CUDA_OK, "")). */
void kd_cuda_clear_error(void);

/* sink(r, msg) is called on the failing thread for every recorded failure, and with (KD_CUDA_OK, "") on
 * a clear; NULL (the default) calls nothing. */
typedef void (*kd_cuda_error_sink)(kd_cuda_result r, const char *msg);
void kd_cuda_set_error_sink(kd_cuda_error_sink sink);

#ifdef __cplusplus
}
#endif

#endif
