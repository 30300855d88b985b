/* engine/derived.c — forms made from a heap tensor's values and kept with it, for no-grad forwards: a copy
 * in another dtype (a frozen model's bf16 weights in mixed precision, made once instead of every forward)
 * and op(B) = W^T prepacked in the panel layout of the CPU table's GEMM (kernels.h: gemm_pack_b).
 *
 * Each form records the storage version (kd_storage.version) and the data address it was made from; a
 * lookup that finds either changed drops it and makes it again. kd_mark_modified on the tensor itself frees
 * its forms at once (a trained model's copies do not outlive the optimizer step that changed it); a write
 * through a view bumps the shared storage's version, found stale at the next lookup. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"

typedef enum derived_kind { DERIVED_CAST, DERIVED_PACKED_B } derived_kind;

typedef struct kd_derived kd_derived;
struct kd_derived {
    struct kd_derived *next;
    derived_kind kind;
    uint64_t version;         /* the storage version the form was made from */
    const void *src;          /* and the data address */
    kd_tensor *copy;          /* DERIVED_CAST: a heap tensor of another dtype */
    void (*key)(const kd_gemm_pack_args *, int, int);   /* DERIVED_PACKED_B: the table's pack (its layout) */
    int trans;
    int64_t ld, k, n;
    void *packed;
    size_t bytes;
};

/* Only a heap tensor that owns its whole storage keeps forms (a view's header is an arena object). */
static int can_derive(const kd_tensor *t)
{
    return t && t->persistent && t->storage->persistent && t->offset == 0 && kd_is_contiguous(t);
}

static void entry_free(kd_derived *d)
{
    if (d->copy) kd_tensor_free(d->copy);
    if (d->packed) {
        free(d->packed);
        kd_heap_adjust(-(int64_t)d->bytes);
    }
    free(d);
}

void kd_derived_free_all(kd_tensor *t)
{
    kd_derived *d = t->derived;
    t->derived = NULL;
    while (d) {
        kd_derived *next = d->next;
        entry_free(d);
        d = next;
    }
}

void kd_mark_modified(kd_tensor *t)
{
    if (!t) return;
    t->storage->version++;
    if (t->derived) kd_derived_free_all(t);
}

size_t kd_derived_bytes(const kd_tensor *t)
{
    size_t n = 0;
    for (const kd_derived *d = t ? t->derived : NULL; d; d = d->next)
        n += d->copy ? d->copy->storage->nbytes + kd_derived_bytes(d->copy) : d->bytes;
    return n;
}

/* Drop t's forms made from other values; return the first that `match` accepts. */
typedef int (*derived_match)(const kd_derived *d, const void *ctx);
static kd_derived *lookup(kd_tensor *t, derived_match match, const void *ctx)
{
    kd_derived **pp = &t->derived, *found = NULL;
    while (*pp) {
        kd_derived *d = *pp;
        if (d->version != t->storage->version || d->src != kd_data(t)) {
            *pp = d->next;
            entry_free(d);
            continue;
        }
        if (!found && match(d, ctx)) found = d;
        pp = &d->next;
    }
    return found;
}

static void attach(kd_tensor *t, kd_derived *d)
{
    d->version = t->storage->version;
    d->src = kd_data(t);
    d->next = t->derived;
    t->derived = d;
}

/* --- the copy in another dtype */

static int match_cast(const kd_derived *d, const void *ctx)
{
    return d->kind == DERIVED_CAST && d->copy->dtype == *(const kd_dtype *)ctx;
}

kd_tensor *kd_derived_cast(kd_tensor *t, kd_dtype dt, kd_tensor *(*convert)(kd_tensor *, kd_dtype))
{
    if (!can_derive(t)) return NULL;
    kd_derived *d = lookup(t, match_cast, &dt);
    if (d) return d->copy;
    kd_tensor *y = convert(t, dt);   /* in the arena: copied to the heap below */
    kd_tensor *copy = y ? kd_persist(y) : NULL;
    d = copy ? calloc(1, sizeof *d) : NULL;
    if (!d) {
        kd_tensor_free(copy);
        return y;   /* no room to keep it: this forward uses the arena copy, as without the cache */
    }
    copy->requires_grad = 0;
    snprintf(copy->name, sizeof copy->name, "%.80s (%s)", t->name, kd_dtype_name(dt));
    d->kind = DERIVED_CAST;
    d->copy = copy;
    attach(t, d);
    return copy;
}

/* --- prepacked GEMM operands */

static int prepack_mode = -1;   /* kd_prepack_mode; -1 until KD_PREPACK is read */

kd_prepack_mode kd_prepack(void)
{
    if (prepack_mode < 0) {
        const char *e = getenv("KD_PREPACK");
        prepack_mode = !e || !*e || strcmp(e, "auto") == 0 ? KD_PREPACK_AUTO
                       : strcmp(e, "0") == 0 || strcmp(e, "off") == 0 ? KD_PREPACK_OFF
                                                                     : KD_PREPACK_ON;
    }
    return (kd_prepack_mode)prepack_mode;
}

void kd_set_prepack(kd_prepack_mode mode) { prepack_mode = mode; }

typedef struct pack_want { void (*key)(const kd_gemm_pack_args *, int, int); int trans; int64_t ld, k, n; } pack_want;

static int match_pack(const kd_derived *d, const void *ctx)
{
    const pack_want *w = ctx;
    return d->kind == DERIVED_PACKED_B && d->key == w->key && d->trans == w->trans && d->ld == w->ld &&
           d->k == w->k && d->n == w->n;
}

typedef struct pack_ctx { void (*fn)(const kd_gemm_pack_args *, int, int); const kd_gemm_pack_args *a; } pack_ctx;
static void pack_task(void *c, int ith, int nth)
{
    const pack_ctx *p = c;
    p->fn(p->a, ith, nth);
}

const void *kd_derived_packed_b(kd_tensor *w, kd_dtype dt, int64_t rows, int trans_b, int64_t ldb, int64_t k, int64_t n)
{
    kd_prepack_mode mode = kd_prepack();
    if (mode == KD_PREPACK_OFF || !can_derive(w) || w->device != KD_CPU || w->dtype != dt) return NULL;
    const kd_kernels *tab = kd_kernels_for(KD_CPU, dt);
    if (!tab || !tab->gemm_pack_b || !tab->gemm_packed_b_size) return NULL;
    pack_want want = { tab->gemm_pack_b, trans_b, ldb, k, n };
    kd_derived *d = lookup(w, match_pack, &want);
    if (d) return d->packed;
    /* AUTO packs where repacking costs: a product of few rows (a batch-1 sequence) packs all of B for little
     * work; with many rows the GEMM's own packing is a small part of it, and a packed copy of every weight
     * would double their memory (a bert-large teacher's: 1.3 GB) for little. */
    if (mode == KD_PREPACK_AUTO && rows > KD_PREPACK_AUTO_ROWS) return NULL;
    size_t bytes = tab->gemm_packed_b_size(k, n);
    void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    d = p ? calloc(1, sizeof *d) : NULL;
    if (!d) {
        free(p);
        return NULL;   /* no room: the GEMM packs as it goes */
    }
    kd_gemm_pack_args a = { .trans_b = trans_b, .k = k, .n = n, .b = kd_data(w), .ldb = ldb, .dst = p };
    pack_ctx c = { tab->gemm_pack_b, &a };
    kd_parallel(pack_task, &c, 8.0 * (double)k * (double)n);
    kd_heap_adjust((int64_t)bytes);
    d->kind = DERIVED_PACKED_B;
    d->key = want.key;
    d->trans = trans_b;
    d->ld = ldb;
    d->k = k;
    d->n = n;
    d->packed = p;
    d->bytes = bytes;
    attach(w, d);
    return p;
}
