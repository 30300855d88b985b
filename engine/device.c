/* engine/device.c — the devices behind engine/device.h: memory, copies, kernel launches, precision, the id
 * check. Each device is a table of functions (engine/device_impl.h); the CPU's entries are malloc/memcpy and
 * the thread pool; CUDA's are in device_cuda.c, the simulated device's in device_sim.c.
 * Nothing here knows tensors: transfers of tensors are in device_transfer.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/device.h"
#include "engine/device_impl.h"
#include "engine/internal.h"

#ifdef KD_HAVE_CUDA
#include "kernels/cuda/cuda_runtime.h"   /* kd_cuda_available, kd_cuda_set_precision, kd_cuda_shutdown */
#endif

/* A device: its functions and what the engine keeps about it. */
typedef struct dev_state {
    const kd_device_impl *fn;
    int open;
    kd_precision precision;
    kd_device_stats st;
    void *zero;        /* 16 zero bytes on the device: the source of fills */
    void *scratch;     /* kd_dev_scratch */
    size_t scratch_size;
} dev_state;

/* ------------------------------------------------------------------ the CPU */

static kd_status cpu_alloc(void **p, size_t n)
{
    *p = malloc(n ? n : 1);
    return *p ? KD_OK : kd_fail(KD_ERR_NOMEM, "cannot allocate %zu bytes", n);
}
static void cpu_release(void *p) { free(p); }
static kd_status cpu_copy(void *dst, const void *src, size_t n, int kind)
{
    (void)kind;
    memcpy(dst, src, n);
    return KD_OK;
}
static kd_status cpu_sync(void) { return KD_OK; }
/* The host sees the ids: a bad one fails at once. */
static kd_status cpu_check_ids(const int32_t *ids, int64_t n, int64_t limit, const char *what)
{
    char msg[256];
    if (!kd_ids_find_bad(ids, n, limit, what, msg, sizeof msg)) return KD_OK;
    return kd_fail(KD_ERR_INDEX, "%s", msg);
}
static const kd_device_impl cpu_impl = { .name = "cpu", .alloc = cpu_alloc, .release = cpu_release,
                                         .copy = cpu_copy, .sync = cpu_sync, .check_ids = cpu_check_ids,
                                         .launch = kd_parallel, .table = kd_kernels_cpu };

#ifndef KD_HAVE_CUDA
/* A device this build lacks: only its name. */
static const kd_device_impl cuda_absent = { .name = "cuda" };
#endif

static dev_state devs[3] = {
    [KD_CPU] = { .fn = &cpu_impl, .open = 1, .precision = KD_PREC_F32 },
#ifdef KD_HAVE_CUDA
    [KD_CUDA] = { .fn = &kd_device_cuda_impl, .precision = KD_PREC_BF16 },
#else
    [KD_CUDA] = { .fn = &cuda_absent, .precision = KD_PREC_BF16 },
#endif
    [KD_SIM] = { .fn = &kd_device_sim_impl, .precision = KD_PREC_F32 },
};

static int dev_valid(kd_device d) { return (int)d >= 0 && (int)d < 3; }

const char *kd_device_name(kd_device dev) { return dev_valid(dev) ? devs[dev].fn->name : "?"; }

kd_status kd_device_parse(const char *name, kd_device *dev)
{
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, devs[i].fn->name) == 0) {
            *dev = (kd_device)i;
            return KD_OK;
        }
    return kd_fail(KD_ERR_ARG, "device: got '%s', expected cpu, cuda or sim", name ? name : "(null)");
}

kd_status kd_device_open(kd_device dev)
{
    if (!dev_valid(dev)) return kd_fail(KD_ERR_ARG, "device: unknown device %d", (int)dev);
    dev_state *d = &devs[dev];
    if (d->open) return KD_OK;
    if (!d->fn->open)
        return kd_fail(KD_ERR_DEVICE, "device %s: this build has no CUDA backend (configure with -Dcuda=enabled "
                       "on a machine with the CUDA toolkit); run with --device cpu", d->fn->name);
    kd_status st = d->fn->open();
    if (st != KD_OK) return st;
    static const unsigned char zeros[16];
    if ((st = d->fn->alloc(&d->zero, sizeof zeros)) != KD_OK) return st;
    if ((st = d->fn->copy(d->zero, zeros, sizeof zeros, KD_COPY_H2D)) != KD_OK) return st;
    d->open = 1;
    return KD_OK;
}

int kd_device_available(kd_device dev)
{
    if (!dev_valid(dev)) return 0;
    if (dev == KD_CPU || dev == KD_SIM) return 1;
#ifdef KD_HAVE_CUDA
    return kd_cuda_available();
#else
    return 0;
#endif
}

kd_status kd_device_sync(kd_device dev)
{
    if (!dev_valid(dev) || !devs[dev].open)
        return kd_fail(KD_ERR_STATE, "device %s: not open (kd_device_open first)", kd_device_name(dev));
    return devs[dev].fn->sync();
}

static const char *const precision_names[] = { "default", "f32", "tf32", "bf16" };

kd_status kd_precision_parse(const char *name, kd_precision *p)
{
    *p = KD_PREC_DEFAULT;
    if (!name) return KD_OK;
    for (int i = KD_PREC_F32; i <= KD_PREC_BF16; i++)
        if (strcmp(name, precision_names[i]) == 0) {
            *p = (kd_precision)i;
            return KD_OK;
        }
    return kd_fail(KD_ERR_ARG, "precision: got '%s', expected f32, tf32 or bf16", name);
}

const char *kd_precision_name(kd_precision p)
{
    return (int)p >= 0 && (int)p <= KD_PREC_BF16 ? precision_names[p] : "?";
}

kd_status kd_device_set_precision(kd_device dev, kd_precision p)
{
    if (!dev_valid(dev)) return kd_fail(KD_ERR_ARG, "device: unknown device %d", (int)dev);
    if (dev != KD_CUDA) {
        if (p == KD_PREC_TF32)
            return kd_fail(KD_ERR_ARG, "precision tf32: only the cuda device has tensor cores; %s offers f32 or bf16",
                           kd_device_name(dev));
        devs[dev].precision = p == KD_PREC_BF16 ? KD_PREC_BF16 : KD_PREC_F32;
        return KD_OK;
    }
    devs[dev].precision = p == KD_PREC_DEFAULT ? KD_PREC_BF16 : p;
#ifdef KD_HAVE_CUDA
    kd_cuda_precision cp = devs[dev].precision == KD_PREC_BF16   ? KD_CUDA_PREC_BF16
                           : devs[dev].precision == KD_PREC_TF32 ? KD_CUDA_PREC_TF32
                                                                 : KD_CUDA_PREC_F32;
    return kd_cuda_set_precision(cp);
#else
    return kd_fail(KD_ERR_DEVICE, "device cuda: this build has no CUDA backend");
#endif
}

kd_precision kd_device_precision(kd_device dev) { return dev_valid(dev) ? devs[dev].precision : KD_PREC_F32; }

kd_dtype kd_device_compute_dtype(kd_device dev) { return kd_device_precision(dev) == KD_PREC_BF16 ? KD_BF16 : KD_F32; }

kd_device_stats kd_device_get_stats(kd_device dev)
{
    kd_device_stats z = { 0 };
    return dev_valid(dev) ? devs[dev].st : z;
}

/* ------------------------------------------------------------------ engine-internal entry points */

const kd_kernels *kd_dev_table(kd_device dev, kd_dtype dt) { return devs[dev].fn->table ? devs[dev].fn->table(dt) : NULL; }

void *kd_dev_alloc(kd_device dev, size_t n)
{
    dev_state *d = &devs[dev];
    void *p = NULL;
    if (!d->open) {
        kd_fail(KD_ERR_STATE, "device %s: not open", d->fn->name);
        return NULL;
    }
    if (d->fn->alloc(&p, n) != KD_OK) return NULL;
    d->st.mem_in_use += n;
    if (d->st.mem_in_use > d->st.mem_peak) d->st.mem_peak = d->st.mem_in_use;
    return p;
}

void kd_dev_free(kd_device dev, void *p, size_t n)
{
    if (!p) return;
    devs[dev].fn->release(p);
    devs[dev].st.mem_in_use -= n;
}

kd_status kd_dev_copy(kd_device dst_dev, void *dst, kd_device src_dev, const void *src, size_t n)
{
    if (n == 0) return KD_OK;
    if (dst_dev == KD_CPU && src_dev == KD_CPU) {
        memcpy(dst, src, n);
        return KD_OK;
    }
    if (dst_dev != KD_CPU && src_dev != KD_CPU && dst_dev != src_dev)
        return kd_fail(KD_ERR_ARG, "copy: from %s to %s directly is not supported; go through the host",
                       kd_device_name(src_dev), kd_device_name(dst_dev));
    kd_device dev = dst_dev != KD_CPU ? dst_dev : src_dev;
    dev_state *d = &devs[dev];
    int kind = src_dev == KD_CPU ? KD_COPY_H2D : dst_dev == KD_CPU ? KD_COPY_D2H : KD_COPY_D2D;
    if (kind == KD_COPY_H2D) { d->st.h2d_copies++; d->st.h2d_bytes += n; }
    if (kind == KD_COPY_D2H) { d->st.d2h_copies++; d->st.d2h_bytes += n; }
    kd_status st = d->fn->copy(dst, src, n, kind);
    if (st == KD_OK && kind == KD_COPY_D2H) st = d->fn->sync();
    return st;
}

void kd_dev_launch(kd_device dev, void (*task)(void *ctx, int ith, int nth), void *ctx, double work)
{
    if (dev != KD_CPU) devs[dev].st.kernels++;
    devs[dev].fn->launch(task, ctx, work);
}

const void *kd_dev_zero(kd_device dev) { return devs[dev].zero; }

void *kd_dev_scratch(kd_device dev, size_t n)
{
    dev_state *d = &devs[dev];
    if (d->scratch_size < n) {
        kd_dev_free(dev, d->scratch, d->scratch_size);
        d->scratch = NULL;
        d->scratch_size = 0;
        if (!(d->scratch = kd_dev_alloc(dev, n))) return NULL;
        d->scratch_size = n;
    }
    return d->scratch;
}

kd_status kd_dev_check_ids(kd_device dev, const int32_t *ids, int64_t n, int64_t limit, const char *what)
{
    return devs[dev].fn->check_ids(ids, n, limit, what);
}

void kd_device_shutdown(void)
{
    for (int i = 0; i < 3; i++) {
        dev_state *d = &devs[i];
        if (!d->open) continue;
        kd_dev_free((kd_device)i, d->scratch, d->scratch_size);
        if (d->zero) d->fn->release(d->zero);
        d->scratch = d->zero = NULL;
        d->scratch_size = 0;
    }
#ifdef KD_HAVE_CUDA
    /* The stream, workspaces and staging memory; heap tensors still on the GPU stay valid to free. */
    if (devs[KD_CUDA].open) {
        kd_cuda_shutdown();
        devs[KD_CUDA].open = 0;
    }
#endif
}
