/* engine/device.h — where tensors live and kernels run: the CPU, a CUDA GPU, or the simulated device.
 *
 * A tensor says where it lives (t->device). An op runs where its inputs are (they must agree), makes its
 * output and its gradients there and takes its kernels from that device's table; creation without inputs
 * names the device (kd_empty_on, kd_from_buffer_on, kd_param_on; the plain forms are the CPU's). So a model
 * moved with kd_to_device() and a batch made on its device run a whole training step — forward, backward,
 * clipping and AdamW — without the host reading or writing device memory. Values cross only where a
 * caller asks: kd_to()/kd_from_buffer_on() (host -> device), kd_to_host() and kd_get()/kd_item() (device
 * -> host, which wait for the device).
 *
 *   KD_CPU   host memory, the CPU tables (ref/AVX2/AVX-512) on the thread pool.
 *   KD_CUDA  cudaMalloc'd memory, the CUDA table on one stream (builds with -Dcuda=enabled, on a GPU).
 *   KD_SIM   the device path on the CPU: memory of its own that is unreadable (PROT_NONE) except while a
 *            kernel or an explicit copy runs, and the CPU's kernels. Any host access to device memory in
 *            the engine, the models or the trainer faults at once, and the copies in each direction are
 *            counted, so the device path is tested on machines without a GPU.
 *
 * Device kernels report bad input they find (an id outside the embedding table, a class outside the
 * logits) at the next kd_device_sync() (or transfer back to the host): the host cannot see the values. */
#ifndef KD_DEVICE_H
#define KD_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/tensor.h"

/* "cpu", "cuda", "sim". */
const char *kd_device_name(kd_device dev);
/* Parse a device name; fails naming what was expected. */
kd_status kd_device_parse(const char *name, kd_device *dev);

/* Make `dev` usable (the CUDA runtime and stream; the simulated device's memory). Idempotent. Fails with
 * a clear message when the build has no CUDA or no GPU is visible. */
kd_status kd_device_open(kd_device dev);
/* 1 when kd_device_open(dev) would succeed (without leaving an error behind). */
int kd_device_available(kd_device dev);

/* The precision runs on a device use: f32 (f32 everywhere; exact f32 products), tf32 (cuda only: f32
 * storage, matrix products on tensor cores with inputs rounded to tf32) or bf16 (mixed precision: models
 * keep their activations in bf16 — kd_bert_set_precision with kd_device_compute_dtype(dev) — and matrix
 * products take bf16 inputs with f32 accumulation; on cuda the few f32 products left also run on bf16
 * tensor cores). Parameters, gradients of parameters, optimizer state and losses are f32 in every mode.
 * KD_PREC_DEFAULT is the device's default: bf16 on cuda, f32 elsewhere. A device's precision is set once,
 * when a command opens it. */
typedef enum kd_precision { KD_PREC_DEFAULT = 0, KD_PREC_F32, KD_PREC_TF32, KD_PREC_BF16 } kd_precision;
/* "f32", "tf32", "bf16" (NULL: KD_PREC_DEFAULT); fails naming what was expected. */
kd_status kd_precision_parse(const char *name, kd_precision *p);
const char *kd_precision_name(kd_precision p);
kd_status kd_device_set_precision(kd_device dev, kd_precision p);
/* The device's precision (never KD_PREC_DEFAULT: the default resolved). */
kd_precision kd_device_precision(kd_device dev);
/* The activation dtype of the device's precision: KD_BF16 for bf16, else KD_F32. */
kd_dtype kd_device_compute_dtype(kd_device dev);

/* Wait for all queued work on `dev`; reports errors its kernels found. */
kd_status kd_device_sync(kd_device dev);

/* A copy of t on `dev` (contiguous, in the arena, no graph). */
kd_tensor *kd_to(const kd_tensor *t, kd_device dev);
/* Move a heap tensor (a parameter, its gradient, optimizer state) to `dev` in place: same header, new
 * storage; the old storage is freed. */
kd_status kd_to_device(kd_tensor *t, kd_device dev);
/* Copy t's elements (contiguous t) into host memory `dst` of kd_numel(t) * element size bytes. */
kd_status kd_to_host(const kd_tensor *t, void *dst);
/* Copy host memory into a contiguous tensor on any device. */
kd_status kd_from_host(kd_tensor *t, const void *src);

/* Transfer counters of a device since start (for tests: a training step should copy nothing but its
 * batch in and its loss out). */
typedef struct kd_device_stats {
    uint64_t h2d_copies, h2d_bytes, d2h_copies, d2h_bytes, kernels;
    size_t mem_in_use, mem_peak;   /* device bytes: heap tensors + the device arena's chunks */
} kd_device_stats;
kd_device_stats kd_device_get_stats(kd_device dev);

/* Device-side range check of n int32 values: any value outside [0, limit) is reported at the next sync as
 * "<what>: id <value> at position <i> is outside ..." (the first one found). On the CPU it runs at once. */
kd_status kd_check_ids(const kd_tensor *ids, int64_t limit, const char *what);

#endif
