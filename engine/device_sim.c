/* engine/device_sim.c — the simulated device: the device path on the CPU. Its memory is one reserved
 * address range whose used part is PROT_NONE except while a kernel or a copy runs (sim_enter/leave), so
 * any host access to device memory faults at once; it runs the CPU's kernels, so it computes what the CPU
 * computes. */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/device_impl.h"
#include "engine/internal.h"

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

/* As a GPU would: the check runs on the device and its finding waits for the next sync (the first kept). */
static kd_status sim_check_ids(const int32_t *ids, int64_t n, int64_t limit, const char *what)
{
    sim_enter();
    if (!S.pending[0]) kd_ids_find_bad(ids, n, limit, what, S.pending, sizeof S.pending);
    sim_leave();
    return KD_OK;
}

static void sim_launch(void (*task)(void *ctx, int ith, int nth), void *ctx, double work)
{
    sim_enter();
    kd_parallel(task, ctx, work);
    sim_leave();
}

/* The CPU's own kernels: the simulated device computes exactly what the CPU does. */
const kd_device_impl kd_device_sim_impl = { .name = "sim", .open = sim_open, .alloc = sim_alloc,
                                            .release = sim_release, .copy = sim_copy, .sync = sim_sync,
                                            .check_ids = sim_check_ids, .launch = sim_launch,
                                            .table = kd_kernels_cpu };

