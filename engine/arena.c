/* engine/arena.c — the per-step arena: a bump allocator over large chunks, rewound by kd_arena_reset().
 * After a step that needed more than one chunk, the reset replaces them with a single chunk of the total,
 * so from the second step on every step fits in one block and memory stays flat. */
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
    chunk *head;          /* current chunk first */
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
    chunk *c = A.head;
    if (!c || c->size - c->used < need) {
        size_t size = need > KD_ARENA_MIN_CHUNK ? need : KD_ARENA_MIN_CHUNK;
        if (c && size < c->size) size = c->size;   /* grow geometrically-ish: never smaller than the last */
        chunk *n = chunk_new(size);
        if (!n) {
            kd_fail(KD_ERR_NOMEM, "step arena: cannot allocate %zu bytes (%zu already held)", size, A.capacity);
            return NULL;
        }
        n->next = c;
        A.head = c = n;
    }
    void *p = c->base + c->used;
    c->used += need;
    A.used += need;
    if (A.used > A.peak) A.peak = A.used;
    return p;
}

void kd_arena_reset(void)
{
    if (A.head && A.head->next) {
        /* Several chunks: merge into one big enough for all of this step. */
        size_t total = A.capacity;
        chunk_free_all(A.head);
        A.head = chunk_new(total);   /* on failure the next alloc starts over */
    } else if (A.head) {
        A.head->used = 0;
    }
    A.used = 0;
}

size_t kd_arena_used(void) { return A.used; }
size_t kd_arena_peak(void) { return A.peak; }
size_t kd_arena_capacity(void) { return A.capacity; }
void kd_arena_set_limit(size_t nbytes) { A.limit = nbytes; }


void kd_arena_release(void)
{
    chunk_free_all(A.head);
    A.head = NULL;
    A.used = 0;
}
