/* engine/arena.c — the per-step arena: a bump allocator over a list of large chunks, rewound by
 * kd_arena_reset(). The chunks are kept across resets and reused in order, so once the first step has
 * grown the list, later steps (which make the same allocations) run in memory that is already mapped:
 * no new allocation, no page faults, and memory stays flat. */
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"

#define KD_ARENA_ALIGN 64
#define KD_ARENA_MIN_CHUNK ((size_t)16 << 20)

typedef struct chunk {
    struct chunk *next;
    size_t size, used;
    unsigned char *base;  /* aligned start of the usable bytes */
    void *raw;
} chunk;

static struct {
    chunk *first, *last;  /* all chunks, oldest first */
    chunk *cur;           /* the chunk allocations come from now */
    size_t used, peak, capacity, limit;
} A;

static chunk *chunk_new(size_t size)
{
    chunk *c = malloc(sizeof *c);
    if (!c) return NULL;
    c->raw = malloc(size + KD_ARENA_ALIGN);
    if (!c->raw) {
        free(c);
        return NULL;
    }
    c->base = (unsigned char *)(((uintptr_t)c->raw + KD_ARENA_ALIGN - 1) & ~(uintptr_t)(KD_ARENA_ALIGN - 1));
    c->size = size;
    c->used = 0;
    c->next = NULL;
    A.capacity += size;
    return c;
}

static void chunk_free_all(chunk *c)
{
    while (c) {
        chunk *n = c->next;
        A.capacity -= c->size;
        free(c->raw);
        free(c);
        c = n;
    }
}

void *kd_arena_alloc(size_t nbytes)
{
    size_t need = (nbytes + KD_ARENA_ALIGN - 1) & ~(size_t)(KD_ARENA_ALIGN - 1);
    if (need == 0) need = KD_ARENA_ALIGN;
    if (A.limit && A.used + need > A.limit) {
        kd_fail(KD_ERR_NOMEM, "step arena: %zu bytes requested with %zu in use would pass the limit of %zu bytes",
                nbytes, A.used, A.limit);
        return NULL;
    }
    chunk *c = A.cur;
    /* Move on through the chunks kept from earlier steps; grow the list only past its end. */
    while (c && c->size - c->used < need) c = c->next;
    if (!c) {
        /* Grow by a quarter of what is held at least, so a large step needs few chunks. */
        size_t size = need > KD_ARENA_MIN_CHUNK ? need : KD_ARENA_MIN_CHUNK;
        if (size < A.capacity / 4) size = A.capacity / 4;
        c = chunk_new(size);
        if (!c) {
            kd_fail(KD_ERR_NOMEM, "step arena: cannot allocate %zu bytes (%zu already held)", size, A.capacity);
            return NULL;
        }
        if (A.last) A.last->next = c;
        else A.first = c;
        A.last = c;
    }
    A.cur = c;
    void *p = c->base + c->used;
    c->used += need;
    A.used += need;
    if (A.used > A.peak) A.peak = A.used;
    return p;
}

void kd_arena_reset(void)
{
    for (chunk *c = A.first; c; c = c->next) c->used = 0;
    A.cur = A.first;
    A.used = 0;
}

kd_arena_mark kd_arena_mark_now(void)
{
    kd_arena_mark m = { A.cur, A.cur ? A.cur->used : 0, A.used };
    return m;
}

static void arena_rewind(kd_arena_mark m)
{
    chunk *c = m.chunk ? (chunk *)m.chunk : A.first;
    if (!c) return;
    c->used = m.chunk ? m.chunk_used : 0;
    for (chunk *n = c->next; n; n = n->next) n->used = 0;
    A.cur = c;
    A.used = m.used;
}

kd_tensor *kd_arena_keep(kd_tensor *t, kd_arena_mark mark)
{
    if (!t || t->node || t->persistent || t->requires_grad) return t;
    kd_tensor *c = kd_contiguous(t);
    if (!c) return NULL;
    /* Park the values outside the arena, rewind, and put them back at the mark. */
    size_t nbytes = (size_t)kd_numel(c) * kd_dtype_size(c->dtype);
    void *tmp = malloc(nbytes ? nbytes : 1);
    if (!tmp) {
        kd_fail(KD_ERR_NOMEM, "arena: cannot keep a tensor of %zu bytes", nbytes);
        return NULL;
    }
    memcpy(tmp, kd_data(c), nbytes);
    kd_tensor hdr = *c;
    arena_rewind(mark);
    kd_tensor *out = kd_empty(hdr.dtype, hdr.ndim, hdr.shape);
    if (out) {
        memcpy(kd_data(out), tmp, nbytes);
        memcpy(out->name, hdr.name, sizeof out->name);
    }
    free(tmp);
    return out;
}

size_t kd_arena_used(void) { return A.used; }
size_t kd_arena_peak(void) { return A.peak; }
size_t kd_arena_capacity(void) { return A.capacity; }
void kd_arena_set_limit(size_t nbytes) { A.limit = nbytes; }

void kd_arena_release(void)
{
    chunk_free_all(A.first);
    A.first = A.last = A.cur = NULL;
    A.used = 0;
}
