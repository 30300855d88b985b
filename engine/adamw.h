/* engine/adamw.h — the optimizer: AdamW with decoupled weight decay (Loshchilov & Hutter 2019), gradient-norm clipping,
 * and the optimizer state a resumed run needs.
 *
 *   m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2,
 *   w = w (1 - lr wd) - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * as PyTorch's torch.optim.AdamW. No decay on biases and LayerNorm weights (chosen by parameter name). */
#ifndef KD_ENGINE_ADAMW_H
#define KD_ENGINE_ADAMW_H

#include <stddef.h>
#include <stdint.h>

#include "engine/tensor.h"

typedef struct kd_adamw_config {
    double beta1, beta2, eps, weight_decay;
} kd_adamw_config;

/* PyTorch's AdamW defaults with the seed notebooks' weight decay: 0.9, 0.999, 1e-8, 0.01. */
kd_adamw_config kd_adamw_defaults(void);

typedef struct kd_adamw {
    kd_adamw_config cfg;
    size_t n;
    kd_tensor **params;        /* borrowed */
    kd_tensor **m, **v;        /* per parameter: heap tensors of its dtype and shape, on its device */
    unsigned char *decay;      /* 1: weight decay applies */
    int64_t step;              /* optimizer steps taken */
} kd_adamw;

/* Does a parameter of this name get weight decay? Not biases (".bias") nor LayerNorm weights. */
int kd_adamw_decays(const char *name);

/* State for params[0..n) (zeroed), allocated once. NULL with the error set on failure. */
kd_adamw *kd_adamw_new(kd_tensor *const *params, size_t n, const kd_adamw_config *cfg);
void kd_adamw_free(kd_adamw *o);

/* One step at learning rate lr from the parameters' .grad (a parameter without one is skipped). */
kd_status kd_adamw_step(kd_adamw *o, double lr);

/* The global L2 norm of the gradients; when max_norm > 0 and the norm is above it, every gradient is
 * scaled by max_norm / (norm + 1e-6) (torch.nn.utils.clip_grad_norm_'s coefficient). It runs where the
 * gradients are and nothing waits for it: *norm_out (when not NULL) is a scalar tensor of the step arena on
 * their device, for the caller to read once per step with whatever else it reads. A NaN or Inf norm makes
 * the coefficient 0; the caller then stops: kd_check_grad_norm says so. The sum of squares is carried in
 * double per gradient (the reduce kernel) and in the gradients' dtype across them. */
kd_status kd_clip_grad_norm(kd_tensor *const *params, size_t n, double max_norm, kd_tensor **norm_out);
/* The one policy for a norm read back: KD_OK when finite; else KD_ERR_STATE naming the first parameter
 * whose gradient holds NaN or Inf (read back for the message: the run is stopping). */
kd_status kd_check_grad_norm(kd_tensor *const *params, size_t n, double norm);

/* Write/read m, v and the step count: a small binary file (magic "KDADAMW1", then per parameter its name,
 * element count, m and v as raw little-endian values), written to path.tmp and renamed. Loading checks
 * every name and size against the parameters and names the first that differs. */
kd_status kd_adamw_save(const kd_adamw *o, const char *path);
kd_status kd_adamw_load(kd_adamw *o, const char *path);

#endif
