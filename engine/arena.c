/* engine/arena.c — the per-step arena: a bump allocator over a list of large chunks, rewound by
 * kd_arena_reset(). The chunks are kept across resets and reused in order, so once the first step has
 * grown the list, later steps (which make the same allocations) run in memory that is already mapped:
 * no new allocation, no page faults, and memory stays flat. */
#include <stdlib.h>

#include "engine/internal.h"

#define KD_ARENA_ALIGN 64
#define KD_ARENA_MIN_CHUNK ((size_t)16 << 20)

typedef struct chunk {
    struct chunk *next;
    size_t size, used;
    unsigned char *base;  /* aligned start of the usable bytes */
    void *raw;
} chunk;

/* One arena per memory: the host's (headers, nodes, CPU data) and the device's in use (data of tensors
 * made there; its chunks are device memory, only the chunk records live on the host). */
typedef struct arena {
    chunk *first, *last;  /* all chunks, oldest first */
    chunk *cur;           /* the chunk allocations come from now */
    size_t used, peak, capacity;
    kd_device dev;
} arena;

static arena A = { .dev = KD_CPU }, D = { .dev = KD_CPU };

static chunk *chunk_new(arena *ar, size_t size)
{
    chunk *c = malloc(sizeof *c);
    if (!c) return NULL;
    c->raw = kd_dev_alloc(ar->dev, size + KD_ARENA_ALIGN);
    if (!c->raw) {
        free(c);
        return NULL;
    }
    c->base = (unsigned char *)(((uintptr_t)c->raw + KD_ARENA_ALIGN - 1) & ~(uintptr_t)(KD_ARENA_ALIGN - 1));
    c->size = size;
    c->used = 0;
    c->next = NULL;
    ar->capacity += size;
    return c;
}

static void chunk_free_all(arena *ar)
{
    chunk *c = ar->first;
    while (c) {
        chunk *n = c->next;
        ar->capacity -= c->size;
        kd_dev_free(ar->dev, c->raw, c->size + KD_ARENA_ALIGN);
        free(c);
        c = n;
    }
    ar->first = ar->last = ar->cur = NULL;
    ar->used = 0;
}

static void *arena_alloc(arena *ar, size_t nbytes)
{
    size_t need = (nbytes + KD_ARENA_ALIGN - 1) & ~(size_t)(KD_ARENA_ALIGN - 1);
    if (need == 0) need = KD_ARENA_ALIGN;
    chunk *c = ar->cur;
    /* Move on through the chunks kept from earlier steps; grow the list only past its end. */
    while (c && c->size - c->used < need) c = c->next;
    if (!c) {
        /* Grow by a quarter of what is held at least, so a large step needs few chunks. */
        size_t size = need > KD_ARENA_MIN_CHUNK ? need : KD_ARENA_MIN_CHUNK;
        if (size < ar->capacity / 4) size = ar->capacity / 4;
        c = chunk_new(ar, size);
        if (!c) {
            kd_fail(KD_ERR_NOMEM, "step arena (%s): cannot allocate %zu bytes (%zu already held)",
                    kd_device_name(ar->dev), size, ar->capacity);
            return NULL;
        }
        if (ar->last) ar->last->next = c;
        else ar->first = c;
        ar->last = c;
    }
    ar->cur = c;
    void *p = c->base + c->used;
    c->used += need;
    ar->used += need;
    if (ar->used > ar->peak) ar->peak = ar->used;
    return p;
}

void *kd_arena_alloc(size_t nbytes) { return arena_alloc(&A, nbytes); }

void *kd_dev_arena_alloc(kd_device dev, size_t nbytes)
{
    if (D.dev != dev) {
        /* Work moved to another device: the old device's chunks go back to it. */
        chunk_free_all(&D);
        D.dev = dev;
    }
    return arena_alloc(&D, nbytes);
}

static void arena_reset(arena *ar)
{
    for (chunk *c = ar->first; c; c = c->next) c->used = 0;
    ar->cur = ar->first;
    ar->used = 0;
}

void kd_arena_reset(void)
{
    arena_reset(&A);
    arena_reset(&D);
}

kd_arena_mark kd_arena_mark_now(void)
{
    kd_arena_mark m = { A.cur, A.cur ? A.cur->used : 0, A.used, D.cur, D.cur ? D.cur->used : 0, D.used };
    return m;
}

static void arena_rewind(arena *ar, void *chunk_at, size_t chunk_used, size_t used)
{
    chunk *c = chunk_at ? (chunk *)chunk_at : ar->first;
    if (!c) return;
    c->used = chunk_at ? chunk_used : 0;
    for (chunk *n = c->next; n; n = n->next) n->used = 0;
    ar->cur = c;
    ar->used = used;
}

void kd_arena_rewind(kd_arena_mark mark, kd_device dev)
{
    arena_rewind(&A, mark.chunk, mark.chunk_used, mark.used);
    if (D.dev == dev && dev != KD_CPU) arena_rewind(&D, mark.dchunk, mark.dchunk_used, mark.dused);
}

size_t kd_arena_used(void) { return A.used + D.used; }
size_t kd_arena_peak(void) { return A.peak; }
size_t kd_arena_capacity(void) { return A.capacity; }
size_t kd_device_arena_peak(void) { return D.peak; }

void kd_arena_release(void)
{
    chunk_free_all(&A);
    chunk_free_all(&D);
}
