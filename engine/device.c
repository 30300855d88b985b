/* engine/device.c — the devices behind engine/device.h: memory, copies, kernel launches, the device step
 * arena, and the simulated device.
 *
 * Each device is a small table of functions (alloc, free, copy, sync, the kernel table, the id check).
 * The CPU's entries are malloc/memcpy; CUDA's call kernels/cuda/cuda_runtime.h; the simulated device
 * keeps one reserved address range whose used part is PROT_NONE except inside kd_dev_enter()/leave(),
 * which bracket every kernel and copy. */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/device.h"
#include "engine/internal.h"

#ifdef KD_HAVE_CUDA
#include "kernels/cuda/cuda_runtime.h"
#endif

typedef struct dev_impl {
    const char *name;
    int open;
    kd_status (*do_open)(void);
    kd_status (*alloc)(void **p, size_t n);
    void (*release)(void *p);
    kd_status (*copy)(void *dst, const void *src, size_t n, int kind);   /* 0 h2d, 1 d2h, 2 d2d */
    kd_status (*sync)(void);
    kd_status (*check_ids)(const int32_t *ids, int64_t n, int64_t limit, const char *what);
    const kd_kernels *(*table)(kd_dtype dt);
    kd_device_stats st;
    void *zero;        /* 16 zero bytes on the device: the source of fills */
    void *scratch;     /* kd_dev_scratch */
    size_t scratch_size;
} dev_impl;

enum { COPY_H2D = 0, COPY_D2H = 1, COPY_D2D = 2 };

static kd_device default_dev = KD_CPU;

/* ------------------------------------------------------------------ the simulated device */

#define SIM_RESERVE ((size_t)64 << 30)   /* address space only: pages exist once touched */
#define SIM_ALIGN 256

typedef struct sim_block { size_t off, size; int used; } sim_block;

static struct {
    unsigned char *base;
    size_t high;            /* bytes from base ever handed out (the part mprotect toggles) */
    sim_block *blocks;
    size_t nblocks, cap;
    int depth;              /* nesting of enter/leave */
    char pending[256];      /* an error found by a device-side check, reported at the next sync */
} S;

/* Protection changes cover whole 2 MiB spans: with transparent huge pages (asked for with madvise) the
 * kernel then changes one entry per 2 MiB instead of 512, which is most of the simulated device's cost. */
#define SIM_SPAN ((size_t)2 << 20)
static size_t page_round(size_t n) { return (n + SIM_SPAN - 1) / SIM_SPAN * SIM_SPAN; }

static void sim_enter(void)
{
    if (S.depth++ == 0 && S.high) mprotect(S.base, page_round(S.high), PROT_READ | PROT_WRITE);
}

static void sim_leave(void)
{
    if (--S.depth == 0 && S.high) mprotect(S.base, page_round(S.high), PROT_NONE);
}

static kd_status sim_open(void)
{
    void *p = mmap(NULL, SIM_RESERVE + SIM_SPAN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return kd_fail(KD_ERR_NOMEM, "sim device: cannot reserve %zu GiB of address space", SIM_RESERVE >> 30);
    /* Start on a 2 MiB boundary, so the spans are whole huge pages. */
    p = (void *)(((uintptr_t)p + SIM_SPAN - 1) & ~(uintptr_t)(SIM_SPAN - 1));
    S.base = p;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, SIM_RESERVE, MADV_HUGEPAGE);   /* a hint; without it everything still works */
#endif
    S.cap = 64;
    S.blocks = malloc(S.cap * sizeof *S.blocks);
    if (!S.blocks) return kd_fail(KD_ERR_NOMEM, "sim device: out of memory");
    S.blocks[0] = (sim_block){ 0, SIM_RESERVE, 0 };
    S.nblocks = 1;
    return KD_OK;
}

static kd_status sim_alloc(void **p, size_t n)
{
    size_t need = (n + SIM_ALIGN - 1) / SIM_ALIGN * SIM_ALIGN;
    if (need == 0) need = SIM_ALIGN;
    for (size_t i = 0; i < S.nblocks; i++) {
        sim_block *b = &S.blocks[i];
        if (b->used || b->size < need) continue;
        if (b->size > need) {   /* split: the rest becomes a free block after this one */
            if (S.nblocks == S.cap) {
                sim_block *nb = realloc(S.blocks, 2 * S.cap * sizeof *nb);
                if (!nb) return kd_fail(KD_ERR_NOMEM, "sim device: out of memory");
                S.blocks = nb;
                S.cap *= 2;
                b = &S.blocks[i];
            }
            memmove(&S.blocks[i + 2], &S.blocks[i + 1], (S.nblocks - i - 1) * sizeof *S.blocks);
            S.blocks[i + 1] = (sim_block){ b->off + need, b->size - need, 0 };
            b->size = need;
            S.nblocks++;
        }
        b->used = 1;
        if (b->off + need > S.high) {
            size_t old = page_round(S.high);
            S.high = b->off + need;
            /* Newly reached pages take the current protection. */
            if (S.depth && page_round(S.high) > old)
                mprotect(S.base + old, page_round(S.high) - old, PROT_READ | PROT_WRITE);
        }
        *p = S.base + b->off;
        return KD_OK;
    }
    *p = NULL;
    return kd_fail(KD_ERR_NOMEM, "sim device: no free block of %zu bytes", n);
}

static void sim_release(void *p)
{
    if (!p) return;
    size_t off = (size_t)((unsigned char *)p - S.base);
    size_t lo = 0, hi = S.nblocks;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (S.blocks[mid].off < off) lo = mid + 1;
        else hi = mid;
    }
    KD_CHECK(lo < S.nblocks && S.blocks[lo].off == off && S.blocks[lo].used);
    S.blocks[lo].used = 0;
    /* Merge with the free neighbours. */
    if (lo + 1 < S.nblocks && !S.blocks[lo + 1].used) {
        S.blocks[lo].size += S.blocks[lo + 1].size;
        memmove(&S.blocks[lo + 1], &S.blocks[lo + 2], (S.nblocks - lo - 2) * sizeof *S.blocks);
        S.nblocks--;
    }
    if (lo > 0 && !S.blocks[lo - 1].used) {
        S.blocks[lo - 1].size += S.blocks[lo].size;
        memmove(&S.blocks[lo], &S.blocks[lo + 1], (S.nblocks - lo - 1) * sizeof *S.blocks);
        S.nblocks--;
    }
}

static kd_status sim_copy(void *dst, const void *src, size_t n, int kind)
{
    (void)kind;
    sim_enter();
    memcpy(dst, src, n);
    sim_leave();
    return KD_OK;
}

static kd_status sim_sync(void)
{
    if (S.pending[0]) {
        kd_status st = kd_fail(KD_ERR_ARG, "%s", S.pending);
        S.pending[0] = 0;
        return st;
    }
    return KD_OK;
}

static kd_status sim_check_ids(const int32_t *ids, int64_t n, int64_t limit, const char *what)
{
    sim_enter();
    for (int64_t i = 0; i < n && !S.pending[0]; i++)
        if (ids[i] < 0 || ids[i] >= limit)
            snprintf(S.pending, sizeof S.pending, "%s: id %d at position %lld is outside [0, %lld)", what, (int)ids[i],
                     (long long)i, (long long)limit);
    sim_leave();
    return KD_OK;
}

static const kd_kernels *sim_table(kd_dtype dt)
{
    /* The CPU's own kernels: the simulated device computes exactly what the CPU does. */
    return kd_kernels_cpu(dt);
}

/* ------------------------------------------------------------------ CUDA */

#ifdef KD_HAVE_CUDA
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
    if (kind == COPY_H2D) return kd_cuda_h2d_async(dst, src, n);   /* staged: the host does not wait */
    if (kind == COPY_D2D) return kd_cuda_d2d(dst, src, n);
    kd_status st = kd_cuda_d2h(dst, src, n);
    return st != KD_OK ? st : kd_cuda_sync();   /* errors the kernels found surface with the values */
}
static kd_status cuda_sync(void) { return kd_cuda_sync(); }
static kd_status cuda_check_ids(const int32_t *ids, int64_t n, int64_t limit, const char *what)
{
    return kd_cuda_check_ids(ids, n, limit, what);
}
static const kd_kernels *cuda_table(kd_dtype dt)
{
    static const kd_kernels *t, *tb;   /* asked once: every op asks for its table */
    if (!t) t = kd_kernels_cuda_f32();
    if (!tb) tb = kd_kernels_cuda_bf16();
    return dt == KD_F32 ? t : dt == KD_BF16 ? tb : NULL;
}
#endif

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

static dev_impl devs[3] = {
    [KD_CPU] = { .name = "cpu", .open = 1, .alloc = cpu_alloc, .release = cpu_release, .copy = cpu_copy,
                 .sync = cpu_sync },
#ifdef KD_HAVE_CUDA
    [KD_CUDA] = { .name = "cuda", .do_open = cuda_open, .alloc = cuda_alloc, .release = cuda_release,
                  .copy = cuda_copy, .sync = cuda_sync, .check_ids = cuda_check_ids, .table = cuda_table },
#else
    [KD_CUDA] = { .name = "cuda" },
#endif
    [KD_SIM] = { .name = "sim", .do_open = sim_open, .alloc = sim_alloc, .release = sim_release, .copy = sim_copy,
                 .sync = sim_sync, .check_ids = sim_check_ids, .table = sim_table },
};

static int dev_valid(kd_device d) { return (int)d >= 0 && (int)d < 3; }

const char *kd_device_name(kd_device dev) { return dev_valid(dev) ? devs[dev].name : "?"; }

kd_status kd_device_parse(const char *name, kd_device *dev)
{
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, devs[i].name) == 0) {
            *dev = (kd_device)i;
            return KD_OK;
        }
    return kd_fail(KD_ERR_ARG, "device: got '%s', expected cpu, cuda or sim", name ? name : "(null)");
}

kd_status kd_device_open(kd_device dev)
{
    if (!dev_valid(dev)) return kd_fail(KD_ERR_ARG, "device: unknown device %d", (int)dev);
    dev_impl *d = &devs[dev];
    if (d->open) return KD_OK;
    if (!d->do_open)
        return kd_fail(KD_ERR_DEVICE, "device %s: this build has no CUDA backend (configure with -Dcuda=enabled "
                       "on a machine with the CUDA toolkit); run with --device cpu", d->name);
    kd_status st = d->do_open();
    if (st != KD_OK) return st;
    static const unsigned char zeros[16];
    if ((st = d->alloc(&d->zero, sizeof zeros)) != KD_OK) return st;
    if ((st = d->copy(d->zero, zeros, sizeof zeros, COPY_H2D)) != KD_OK) return st;
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

kd_status kd_set_default_device(kd_device dev)
{
    if (!dev_valid(dev) || !devs[dev].open)
        return kd_fail(KD_ERR_STATE, "device %s: not open (kd_device_open first)", kd_device_name(dev));
    default_dev = dev;
    return KD_OK;
}

kd_device kd_default_device(void) { return default_dev; }

kd_status kd_device_sync(void) { return devs[default_dev].sync(); }

static const char *precision_of[3] = { "f32", "bf16", "f32" };   /* cpu, cuda, sim */

kd_status kd_device_set_precision(kd_device dev, const char *name)
{
    if (!dev_valid(dev)) return kd_fail(KD_ERR_ARG, "device: unknown device %d", (int)dev);
    if (name && strcmp(name, "f32") != 0 && strcmp(name, "tf32") != 0 && strcmp(name, "bf16") != 0)
        return kd_fail(KD_ERR_ARG, "precision: got '%s', expected f32, tf32 or bf16", name);
    if (dev != KD_CUDA) {
        if (name && strcmp(name, "tf32") == 0)
            return kd_fail(KD_ERR_ARG, "precision tf32: only the cuda device has tensor cores; %s offers f32 or bf16",
                           devs[dev].name);
        precision_of[dev] = name && strcmp(name, "bf16") == 0 ? "bf16" : "f32";
        return KD_OK;
    }
    precision_of[dev] = !name || strcmp(name, "bf16") == 0 ? "bf16" : strcmp(name, "tf32") == 0 ? "tf32" : "f32";
#ifdef KD_HAVE_CUDA
    kd_cuda_precision p = !name || strcmp(name, "bf16") == 0 ? KD_CUDA_PREC_BF16
                          : strcmp(name, "tf32") == 0      ? KD_CUDA_PREC_TF32
                                                           : KD_CUDA_PREC_F32;
    return kd_cuda_set_precision(p);
#else
    return kd_fail(KD_ERR_DEVICE, "device cuda: this build has no CUDA backend");
#endif
}

const char *kd_device_precision(kd_device dev) { return dev_valid(dev) ? precision_of[dev] : "f32"; }

kd_dtype kd_device_compute_dtype(kd_device dev)
{
    return strcmp(kd_device_precision(dev), "bf16") == 0 ? KD_BF16 : KD_F32;
}

kd_device_stats kd_device_get_stats(kd_device dev)
{
    kd_device_stats z = { 0 };
    return dev_valid(dev) ? devs[dev].st : z;
}

/* ------------------------------------------------------------------ engine-internal entry points */

const kd_kernels *kd_dev_table(kd_device dev, kd_dtype dt) { return devs[dev].table ? devs[dev].table(dt) : NULL; }

void *kd_dev_alloc(kd_device dev, size_t n)
{
    dev_impl *d = &devs[dev];
    void *p = NULL;
    if (!d->open) {
        kd_fail(KD_ERR_STATE, "device %s: not open", d->name);
        return NULL;
    }
    if (d->alloc(&p, n) != KD_OK) return NULL;
    d->st.mem_in_use += n;
    if (d->st.mem_in_use > d->st.mem_peak) d->st.mem_peak = d->st.mem_in_use;
    return p;
}

void kd_dev_free(kd_device dev, void *p, size_t n)
{
    if (!p) return;
    devs[dev].release(p);
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
    dev_impl *d = &devs[dev];
    int kind = src_dev == KD_CPU ? COPY_H2D : dst_dev == KD_CPU ? COPY_D2H : COPY_D2D;
    if (kind == COPY_H2D) { d->st.h2d_copies++; d->st.h2d_bytes += n; }
    if (kind == COPY_D2H) { d->st.d2h_copies++; d->st.d2h_bytes += n; }
    kd_status st = d->copy(dst, src, n, kind);
    if (st == KD_OK && kind == COPY_D2H) st = d->sync();
    return st;
}

void kd_dev_launch(kd_device dev, void (*task)(void *ctx, int ith, int nth), void *ctx, double work)
{
    devs[dev].st.kernels++;
    if (dev == KD_CUDA) {
        task(ctx, 0, 1);
    } else if (dev == KD_SIM) {
        sim_enter();
        kd_parallel(task, ctx, work);
        sim_leave();
    } else {
        kd_parallel(task, ctx, work);
    }
}

const void *kd_dev_zero(kd_device dev) { return devs[dev].zero; }

void *kd_dev_scratch(kd_device dev, size_t n)
{
    dev_impl *d = &devs[dev];
    if (d->scratch_size < n) {
        kd_dev_free(dev, d->scratch, d->scratch_size);
        d->scratch = NULL;
        d->scratch_size = 0;
        if (!(d->scratch = kd_dev_alloc(dev, n))) return NULL;
        d->scratch_size = n;
    }
    return d->scratch;
}

kd_status kd_check_ids(const kd_tensor *ids, int64_t limit, const char *what)
{
    if (ids->dtype != KD_I32 || !kd_is_contiguous(ids))
        return kd_fail(KD_ERR_ARG, "%s: ids must be a contiguous i32 tensor", what);
    if (ids->device == KD_CPU) {
        const int32_t *p = kd_data(ids);
        for (int64_t i = 0; i < kd_numel(ids); i++)
            if (p[i] < 0 || p[i] >= limit)
                return kd_fail(KD_ERR_ARG, "%s: id %d at position %lld is outside [0, %lld)", what, (int)p[i],
                               (long long)i, (long long)limit);
        return KD_OK;
    }
    return devs[ids->device].check_ids(kd_data(ids), kd_numel(ids), limit, what);
}

void kd_device_shutdown(void)
{
    for (int i = 0; i < 3; i++) {
        dev_impl *d = &devs[i];
        if (!d->open) continue;
        kd_dev_free((kd_device)i, d->scratch, d->scratch_size);
        if (d->zero) d->release(d->zero);
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
