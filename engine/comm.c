/* engine/comm.c — the communicator (see comm.h): backend choice, the watchdog on every collective,
 * staging of device tensors for host backends, and the all-reduce of a model's gradients: flat after the
 * backward, or in buckets started while the backward runs. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/autograd.h"
#include "engine/comm.h"
#include "engine/comm_impl.h"
#include "engine/device.h"

/* The gradients in buckets (kd_comm_grad_buckets). Slot s is the s-th parameter in bucket order: the
 * order the backward finishes them, so each bucket is a contiguous range of the flat buffer. */
typedef struct grad_bucket {
    int64_t off, len;                 /* elements of the flat buffer */
    size_t slots, ready;              /* parameters in it; of them, packed this step */
    void *req;                        /* its sum in flight; NULL: not started, or done */
} grad_bucket;

typedef struct slot_key { const kd_tensor *t; size_t slot; } slot_key;

typedef struct grad_buckets {
    double mb;
    size_t n, nb, next;               /* parameters; buckets; the next bucket to start */
    kd_tensor **param;                /* as given */
    size_t *slot_param;               /* slot -> index into param */
    int64_t *slot_off;                /* slot -> offset in the flat buffer */
    size_t *slot_bucket;
    unsigned char *packed;            /* slot: its gradient is in the flat buffer this step */
    slot_key *keys;                   /* sorted by address: a reported leaf's slot */
    grad_bucket *b;
    int64_t total;
    int learned;                      /* the layout follows an order the backward showed */
    size_t *seen, nseen;              /* the order this step's hook reported (parameter indices) */
    long long t_first;                /* ns: the first gradient handed over this step; 0: none yet */
    double exposed;                   /* s this step spent in the hook */
    char mode[96];
} grad_buckets;

struct kd_comm {
    const kd_comm_impl *host, *dev;   /* host memory; device memory (NULL: staged through host) */
    void *host_ctx, *dev_ctx;
    int rank, size;
    double timeout;
    atomic_llong busy_since;          /* ns of CLOCK_MONOTONIC when the current collective began; 0: none */
    _Atomic(const char *) busy_what;
    atomic_int stop;
    pthread_t dog;
    int dog_on;
    double seconds, grad_seconds, wait_seconds;
    kd_tensor *flat;                  /* the gradients, packed (on their device) */
    void *stage;                      /* host copy of a device tensor for a host backend */
    size_t stage_bytes;
    grad_buckets *gb;                 /* the gradients in buckets; NULL: flat */
};

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

const char *kd_comm_backends(void)
{
#if defined(KD_HAVE_MPI) && defined(KD_HAVE_NCCL)
    return "none mpi nccl";
#elif defined(KD_HAVE_MPI)
    return "none mpi";
#elif defined(KD_HAVE_NCCL)
    return "none nccl";
#else
    return "none";
#endif
}

static int env_int(const char *const *names, int fallback)
{
    for (; *names; names++) {
        const char *v = getenv(*names);
        if (v && *v) return atoi(v);
    }
    return fallback;
}

/* What mpirun (Open MPI, MPICH/PMI, PMIx) tells each process it started. */
static const char *const mpi_size_vars[] = { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", NULL };
static const char *const kd_size_vars[] = { "KD_WORLD_SIZE", NULL };
#ifdef KD_HAVE_NCCL
static const char *const kd_rank_vars[] = { "KD_RANK", NULL };
#endif
static const char *const local_rank_vars[] = { "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "KD_LOCAL_RANK", NULL };
static const char *const local_size_vars[] = { "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "KD_LOCAL_SIZE", NULL };

int kd_comm_local_size(void)
{
    int n = env_int(local_size_vars, 1);
    return n > 0 ? n : 1;
}

void kd_comm_pick_gpu(kd_device dev)
{
    if (dev != KD_CUDA || getenv("CUDA_VISIBLE_DEVICES")) return;
    int lr = env_int(local_rank_vars, -1), ls = env_int(local_size_vars, 1);
    if (lr < 0 || ls < 2) return;
    char v[16];
    snprintf(v, sizeof v, "%d", lr);
    setenv("CUDA_VISIBLE_DEVICES", v, 1);
}

/* --- the watchdog: a collective that waits past the timeout ends the process with a message. */

static void *watchdog(void *arg)
{
    kd_comm *c = arg;
    const struct timespec tick = { 0, 200 * 1000 * 1000 };
    while (!atomic_load(&c->stop)) {
        nanosleep(&tick, NULL);
        long long t0 = atomic_load(&c->busy_since);
        if (t0 && (double)(now_ns() - t0) * 1e-9 > c->timeout) {
            fprintf(stderr,
                    "kd: rank %d of %d: %s waited %.0f s for the other processes (the limit: --comm-timeout or "
                    "KD_COMM_TIMEOUT); another rank has died or hangs; stopping\n",
                    c->rank, c->size, atomic_load(&c->busy_what), c->timeout);
            fflush(stderr);
            _exit(3);
        }
    }
    return NULL;
}

static void busy(kd_comm *c, const char *what)
{
    atomic_store(&c->busy_what, what);
    atomic_store(&c->busy_since, now_ns());
}

static double idle(kd_comm *c)
{
    long long t0 = atomic_exchange(&c->busy_since, 0);
    double s = (double)(now_ns() - t0) * 1e-9;
    c->seconds += s;
    return s;
}

static kd_status buckets_finish(kd_comm *c);

static void buckets_free(grad_buckets *g)
{
    if (!g) return;
    free(g->param), free(g->slot_param), free(g->slot_off), free(g->slot_bucket), free(g->packed);
    free(g->keys), free(g->b), free(g->seen);
    free(g);
}

/* --- open and close */

static kd_status open_backends(kd_comm *c, const kd_comm_opts *o)
{
    (void)c;   /* unused in a build with neither MPI nor NCCL */
    const char *b = o->backend ? o->backend : "auto";
    int mpi_n = env_int(mpi_size_vars, 1), kd_n = env_int(kd_size_vars, 1);
    int want_mpi = 0, want_nccl = 0;
    if (!strcmp(b, "none")) return KD_OK;
    if (!strcmp(b, "mpi")) want_mpi = 1;
    else if (!strcmp(b, "nccl")) want_nccl = 1, want_mpi = mpi_n > 1;
    else if (!strcmp(b, "auto")) {
        if (mpi_n > 1) {
            want_mpi = 1;
#ifdef KD_HAVE_NCCL
            want_nccl = o->device == KD_CUDA && kd_comm_nccl_available();
#endif
        } else if (kd_n > 1) {
            want_nccl = 1;
        } else {
            return KD_OK;
        }
    } else {
        return kd_fail(KD_ERR_ARG, "communicator: backend '%s', expected auto, none, mpi or nccl", b);
    }
    if (want_mpi) {
#ifdef KD_HAVE_MPI
        kd_status st = kd_comm_mpi_open(&c->rank, &c->size, &c->host, &c->host_ctx);
        if (st != KD_OK) return st;
#else
        return kd_fail(KD_ERR_ARG, "communicator: %s%d processes were started by mpirun, but this kd was built without "
                                   "MPI (install Open MPI's libopenmpi-dev and configure with -Dmpi=enabled)",
                       strcmp(b, "auto") ? "backend mpi: " : "", mpi_n);
#endif
    }
    if (want_nccl) {
#ifdef KD_HAVE_NCCL
        if (o->device != KD_CUDA)
            return kd_fail(KD_ERR_ARG, "communicator: NCCL reduces gradients on GPUs; run with --device cuda (or use mpi)");
        if (!c->host) {
            c->size = kd_n;
            c->rank = env_int(kd_rank_vars, -1);
            if (c->size < 1 || c->rank < 0 || c->rank >= c->size)
                return kd_fail(KD_ERR_ARG, "communicator: nccl without mpirun needs KD_RANK in [0, KD_WORLD_SIZE) and "
                                           "KD_WORLD_SIZE >= 1 (got KD_RANK %d, KD_WORLD_SIZE %d)", c->rank, c->size);
            if (!o->rendezvous)
                return kd_fail(KD_ERR_ARG, "communicator: nccl without mpirun needs --rendezvous DIR (a directory "
                                           "every rank sees, empty for each run)");
        }
        kd_status st = kd_comm_nccl_open(c->rank, c->size, c->host, c->host_ctx, o->rendezvous, c->timeout, &c->dev,
                                         &c->dev_ctx);
        if (st != KD_OK) return st;
#else
        return kd_fail(KD_ERR_ARG, "communicator: nccl needs a CUDA build (-Dcuda=enabled); this kd has %s",
                       kd_comm_backends());
#endif
    }
    return KD_OK;
}

kd_status kd_comm_open(const kd_comm_opts *o, kd_comm **out)
{
    *out = NULL;
    kd_comm *c = calloc(1, sizeof *c);
    if (!c) return kd_fail(KD_ERR_NOMEM, "communicator: out of memory");
    c->size = 1;
    c->timeout = o->timeout_s > 0 ? o->timeout_s : 0;
    if (!(c->timeout > 0)) {
        const char *t = getenv("KD_COMM_TIMEOUT");
        c->timeout = t && atof(t) > 0 ? atof(t) : 1800.0;
    }
    kd_status st = open_backends(c, o);
    if (st == KD_OK && c->size > 1) {
        if (pthread_create(&c->dog, NULL, watchdog, c) != 0) st = kd_fail(KD_ERR_STATE, "communicator: no watchdog thread");
        else c->dog_on = 1;
    }
    if (st != KD_OK) {
        kd_comm_close(c, 1);
        return st;
    }
    *out = c;
    return KD_OK;
}

void kd_comm_close(kd_comm *c, int failed)
{
    if (!c) return;
    if (failed && c->size > 1) {
        fflush(stdout);
        fflush(stderr);
        const kd_comm_impl *i = c->host ? c->host : c->dev;
        if (i && i->abort) i->abort(c->host ? c->host_ctx : c->dev_ctx, 1);
    }
    if (c->dog_on) {
        atomic_store(&c->stop, 1);
        pthread_join(c->dog, NULL);
    }
    buckets_free(c->gb);
    kd_tensor_free(c->flat);
    free(c->stage);
    if (c->dev) c->dev->close(c->dev_ctx);
    if (c->host) c->host->close(c->host_ctx);
    free(c);
}

int kd_comm_rank(const kd_comm *c) { return c ? c->rank : 0; }
int kd_comm_size(const kd_comm *c) { return c ? c->size : 1; }
const char *kd_comm_name(const kd_comm *c)
{
    return !c || c->size == 1 ? "none" : c->dev ? c->dev->name : c->host ? c->host->name : "none";
}
double kd_comm_seconds(const kd_comm *c) { return c ? c->seconds : 0.0; }
double kd_comm_grad_seconds(const kd_comm *c) { return c ? c->grad_seconds : 0.0; }
double kd_comm_wait_seconds(const kd_comm *c) { return c ? c->wait_seconds : 0.0; }

/* --- collectives */

static int single(const kd_comm *c) { return !c || c->size == 1; }

/* The host backend, or the device backend's staged host calls. */
static const kd_comm_impl *host_impl(kd_comm *c, void **ctx)
{
    *ctx = c->host ? c->host_ctx : c->dev_ctx;
    return c->host ? c->host : c->dev;
}

static kd_status stage_grow(kd_comm *c, size_t bytes)
{
    if (bytes <= c->stage_bytes) return KD_OK;
    void *p = realloc(c->stage, bytes);
    if (!p) return kd_fail(KD_ERR_NOMEM, "communicator: out of memory staging %zu bytes", bytes);
    c->stage = p;
    c->stage_bytes = bytes;
    return KD_OK;
}

kd_status kd_comm_allreduce(kd_comm *c, kd_tensor *t, kd_comm_op op)
{
    if (t->dtype != KD_F32 || !kd_is_contiguous(t))
        return kd_fail(KD_ERR_DTYPE, "communicator: all-reduce takes a contiguous f32 tensor, got %s", kd_dtype_name(t->dtype));
    if (single(c)) return KD_OK;
    size_t n = (size_t)kd_numel(t);
    kd_status st;
    busy(c, "all-reduce");
    if (t->device == KD_CUDA && c->dev) {
        st = c->dev->allreduce_f32(c->dev_ctx, kd_data(t), n, op);
    } else if (t->device == KD_CPU) {
        void *ctx;
        st = host_impl(c, &ctx)->allreduce_f32(ctx, kd_data(t), n, op);
        kd_mark_modified(t);
    } else {
        void *ctx;
        const kd_comm_impl *h = host_impl(c, &ctx);
        st = stage_grow(c, n * sizeof(float));
        if (st == KD_OK) st = kd_to_host(t, c->stage);
        if (st == KD_OK) st = h->allreduce_f32(ctx, c->stage, n, op);
        if (st == KD_OK) st = kd_from_host(t, c->stage);
    }
    idle(c);
    return st;
}

kd_status kd_comm_allreduce_f64(kd_comm *c, double *x, size_t n, kd_comm_op op)
{
    if (single(c)) return KD_OK;
    void *ctx;
    const kd_comm_impl *h = host_impl(c, &ctx);
    busy(c, "all-reduce");
    kd_status st = h->allreduce_f64(ctx, x, n, op);
    idle(c);
    return st;
}

kd_status kd_comm_broadcast(kd_comm *c, void *buf, size_t bytes, int root)
{
    if (single(c)) return KD_OK;
    if (root < 0 || root >= c->size) return kd_fail(KD_ERR_ARG, "communicator: broadcast from rank %d of %d", root, c->size);
    void *ctx;
    const kd_comm_impl *h = host_impl(c, &ctx);
    busy(c, "broadcast");
    kd_status st = h->broadcast(ctx, buf, bytes, root);
    idle(c);
    return st;
}

kd_status kd_comm_broadcast_tensor(kd_comm *c, kd_tensor *t, int root)
{
    if (!kd_is_contiguous(t)) return kd_fail(KD_ERR_ARG, "communicator: broadcast takes a contiguous tensor");
    if (single(c)) return KD_OK;
    size_t bytes = (size_t)kd_numel(t) * kd_dtype_size(t->dtype);
    if (t->device == KD_CPU) {
        kd_status st = kd_comm_broadcast(c, kd_data(t), bytes, root);
        kd_mark_modified(t);   /* the values changed under any kept form of them (prepacked, bf16) */
        return st;
    }
    kd_status st = stage_grow(c, bytes);
    if (st == KD_OK) st = kd_to_host(t, c->stage);
    if (st == KD_OK) st = kd_comm_broadcast(c, c->stage, bytes, root);
    if (st == KD_OK) st = kd_from_host(t, c->stage);
    return st;
}

kd_status kd_comm_barrier(kd_comm *c)
{
    if (single(c)) return KD_OK;
    void *ctx;
    const kd_comm_impl *h = host_impl(c, &ctx);
    busy(c, "barrier");
    kd_status st = h->barrier(ctx);
    idle(c);
    return st;
}

/* --- a model's gradients, packed in one buffer */

static kd_status check_grads(kd_tensor *const *params, size_t n, int64_t *total)
{
    *total = 0;
    for (size_t i = 0; i < n; i++) {
        if (params[i]->dtype != KD_F32 || params[i]->device != params[0]->device)
            return kd_fail(KD_ERR_DTYPE, "communicator: parameter %s: gradients all-reduced are f32 on one device",
                           params[i]->name);
        *total += kd_numel(params[i]);
    }
    return KD_OK;
}

/* The flat buffer of `total` elements on dev, kept across steps. */
static kd_status flat_for(kd_comm *c, int64_t total, kd_device dev)
{
    if (c->flat && (kd_numel(c->flat) != total || c->flat->device != dev)) {
        kd_tensor_free(c->flat);
        c->flat = NULL;
    }
    if (!c->flat) {
        if (!(c->flat = kd_param_on(dev, KD_F32, 1, &total, "flat gradients"))) return kd_last_status();
        c->flat->requires_grad = 0;
    }
    return KD_OK;
}

/* p's gradient into the flat buffer at off (zeros where backward left none), or back (unpack). */
static kd_status pack(kd_comm *c, kd_tensor *p, int64_t off, int unpack)
{
    int64_t k = kd_numel(p);
    if (unpack && !kd_grad_buf(p)) return kd_last_status();
    if (c->flat->device == KD_CPU) {
        float *flat = (float *)kd_data(c->flat) + off;
        if (unpack) memcpy(kd_data(p->grad), flat, (size_t)k * sizeof(float));
        else if (p->grad) memcpy(flat, kd_data(p->grad), (size_t)k * sizeof(float));
        else memset(flat, 0, (size_t)k * sizeof(float));
        return KD_OK;
    }
    kd_tensor *v = kd_view_of(c->flat, 1, &k, &(int64_t){ 1 }, c->flat->offset + off);
    if (!v) return kd_last_status();
    if (!p->grad) {
        kd_fill(v, 0.0);
        return KD_OK;
    }
    kd_tensor *g = kd_view_of(p->grad, 1, &k, &(int64_t){ 1 }, p->grad->offset);
    if (!g) return kd_last_status();
    return unpack ? kd_copy_into(g, v) : kd_copy_into(v, g);
}

kd_status kd_comm_allreduce_grads(kd_comm *c, kd_tensor *const *params, size_t n)
{
    if (single(c) || n == 0) return KD_OK;
    grad_buckets *gb = c->gb;
    if (gb && gb->n == n && !memcmp(gb->param, params, n * sizeof *params)) return buckets_finish(c);
    /* Host backends first wait for every rank in a sleeping barrier: a rank done early would otherwise spin
     * in the all-reduce on a core a slower rank may need. The whole of it is exposed. */
    long long t0 = now_ns();
    int64_t total;
    kd_status st = check_grads(params, n, &total);
    if (st == KD_OK && !c->dev) st = kd_comm_barrier(c);
    if (st == KD_OK) st = flat_for(c, total, params[0]->device);
    int64_t off = 0;
    for (size_t i = 0; i < n && st == KD_OK; off += kd_numel(params[i]), i++) st = pack(c, params[i], off, 0);
    if (st == KD_OK) st = kd_comm_allreduce(c, c->flat, KD_COMM_SUM);
    off = 0;
    for (size_t i = 0; i < n && st == KD_OK; off += kd_numel(params[i]), i++) st = pack(c, params[i], off, 1);
    double s = (double)(now_ns() - t0) * 1e-9;
    c->grad_seconds += s;
    c->wait_seconds += s;
    return st;
}

/* --- the gradients in buckets, overlapped with the backward */

static int key_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const slot_key *)a)->t, y = (uintptr_t)((const slot_key *)b)->t;
    return x < y ? -1 : x > y;
}

/* Slots in `order` (indices into gb->param), cut into buckets of gb->mb MB. */
static void buckets_layout(grad_buckets *gb, const size_t *order)
{
    double cap = gb->mb * 1048576.0, bytes = 0;
    int64_t off = 0;
    gb->nb = 0;
    for (size_t s = 0; s < gb->n; s++) {
        kd_tensor *p = gb->param[order[s]];
        if (bytes == 0) gb->b[gb->nb] = (grad_bucket){ .off = off };
        gb->slot_param[s] = order[s];
        gb->slot_off[s] = off;
        gb->slot_bucket[s] = gb->nb;
        gb->keys[s] = (slot_key){ p, s };
        gb->b[gb->nb].slots++;
        off += kd_numel(p);
        bytes += (double)kd_numel(p) * sizeof(float);
        if (bytes >= cap || s + 1 == gb->n) {
            gb->b[gb->nb].len = off - gb->b[gb->nb].off;
            gb->nb++;
            bytes = 0;
        }
    }
    qsort(gb->keys, gb->n, sizeof *gb->keys, key_cmp);
    snprintf(gb->mode, sizeof gb->mode, "%zu bucket%s of %.3g MB (%.3g MB on average), overlapped with the backward",
             gb->nb, gb->nb == 1 ? "" : "s", gb->mb, (double)gb->total * sizeof(float) / 1048576.0 / (double)gb->nb);
}

kd_status kd_comm_grad_buckets(kd_comm *c, kd_tensor *const *params, size_t n, double bucket_mb)
{
    if (!(bucket_mb >= 0) || !isfinite(bucket_mb))
        return kd_fail(KD_ERR_ARG, "communicator: bucket size %g MB, expected a number >= 0 (0: one flat all-reduce)",
                       bucket_mb);
    if (!c) return KD_OK;
    buckets_free(c->gb);
    c->gb = NULL;
    if (single(c) || n == 0 || bucket_mb == 0) return KD_OK;
    const kd_comm_impl *i = c->dev ? c->dev : c->host;
    if (!i || !i->iallreduce_f32) return KD_OK;   /* the backend cannot overlap: flat */
    grad_buckets *gb = calloc(1, sizeof *gb);
    if (!gb) return kd_fail(KD_ERR_NOMEM, "communicator: out of memory");
    c->gb = gb;
    gb->mb = bucket_mb;
    gb->n = n;
    gb->param = malloc(n * sizeof *gb->param);
    gb->slot_param = malloc(n * sizeof *gb->slot_param);
    gb->slot_off = malloc(n * sizeof *gb->slot_off);
    gb->slot_bucket = malloc(n * sizeof *gb->slot_bucket);
    gb->packed = calloc(n, 1);
    gb->keys = malloc(n * sizeof *gb->keys);
    gb->b = calloc(n, sizeof *gb->b);
    gb->seen = malloc(n * sizeof *gb->seen);
    if (!gb->param || !gb->slot_param || !gb->slot_off || !gb->slot_bucket || !gb->packed || !gb->keys || !gb->b ||
        !gb->seen) {
        buckets_free(gb);
        c->gb = NULL;
        return kd_fail(KD_ERR_NOMEM, "communicator: out of memory for %zu parameters' buckets", n);
    }
    memcpy(gb->param, params, n * sizeof *params);
    kd_status st = check_grads(params, n, &gb->total);
    if (st == KD_OK && c->dev && params[0]->device != KD_CUDA)
        st = kd_fail(KD_ERR_DEVICE, "communicator: %s reduces gradients on the GPU; these are on the %s", c->dev->name,
                     kd_device_name(params[0]->device));
    if (st == KD_OK) st = flat_for(c, gb->total, params[0]->device);
    /* A device the host backend cannot read is staged through host memory, a bucket at a time. */
    if (st == KD_OK && !c->dev && params[0]->device != KD_CPU) st = stage_grow(c, (size_t)gb->total * sizeof(float));
    if (st != KD_OK) {
        buckets_free(gb);
        c->gb = NULL;
        return st;
    }
    /* Until a step has shown the order: the parameters' own, reversed (models list them from the input up,
     * and the backward finishes them from the output down). */
    for (size_t k = 0; k < n; k++) gb->seen[k] = n - 1 - k;
    buckets_layout(gb, gb->seen);
    return KD_OK;
}

int kd_comm_grad_bucketed(const kd_comm *c) { return c && c->gb; }
size_t kd_comm_grad_bucket_count(const kd_comm *c) { return c && c->gb ? c->gb->nb : 0; }

const char *kd_comm_grad_mode(const kd_comm *c)
{
    return c && c->gb ? c->gb->mode : "flat";
}

/* The backend a bucket's sum goes through, and its memory: the device's own, the host's, or the stage. */
static const kd_comm_impl *bucket_impl(kd_comm *c, void **ctx, float **buf, const grad_bucket *b)
{
    const kd_comm_impl *i;
    if (c->dev) {
        *ctx = c->dev_ctx;
        i = c->dev;
    } else {
        *ctx = c->host_ctx;
        i = c->host;
    }
    *buf = (c->dev || c->flat->device == KD_CPU ? (float *)kd_data(c->flat) : (float *)c->stage) + b->off;
    return i;
}

/* Start bucket k's sum: on a device a host backend cannot read, through the stage. */
static kd_status bucket_start(kd_comm *c, grad_bucket *b)
{
    void *ctx;
    float *buf;
    const kd_comm_impl *i = bucket_impl(c, &ctx, &buf, b);
    if (!c->dev && c->flat->device != KD_CPU) {
        kd_tensor *v = kd_view_of(c->flat, 1, &b->len, &(int64_t){ 1 }, c->flat->offset + b->off);
        kd_status st = v ? kd_to_host(v, buf) : kd_last_status();
        if (st != KD_OK) return st;
    }
    return i->iallreduce_f32(ctx, buf, (size_t)b->len, &b->req);
}

/* Start every bucket, in order, whose gradients are all in. */
static kd_status buckets_start_ready(kd_comm *c)
{
    grad_buckets *gb = c->gb;
    kd_status st = KD_OK;
    while (st == KD_OK && gb->next < gb->nb && gb->b[gb->next].ready == gb->b[gb->next].slots)
        st = bucket_start(c, &gb->b[gb->next++]);
    return st;
}

/* Move the started sums on: the backend's test, which never blocks. */
static kd_status buckets_progress(kd_comm *c)
{
    grad_buckets *gb = c->gb;
    kd_status st = KD_OK;
    for (size_t k = 0; k < gb->next && st == KD_OK; k++) {
        grad_bucket *b = &gb->b[k];
        if (!b->req) continue;
        void *ctx;
        float *buf;
        const kd_comm_impl *i = bucket_impl(c, &ctx, &buf, b);
        int done = 0;
        st = i->test(ctx, b->req, &done);
        if (done) b->req = NULL;
    }
    return st;
}

static kd_status slot_pack(kd_comm *c, size_t s)
{
    grad_buckets *gb = c->gb;
    kd_status st = pack(c, gb->param[gb->slot_param[s]], gb->slot_off[s], 0);
    gb->packed[s] = 1;
    gb->b[gb->slot_bucket[s]].ready++;
    return st;
}

kd_status kd_comm_grad_final(kd_tensor *param, void *comm)
{
    kd_comm *c = comm;
    if (single(c) || !c->gb) return KD_OK;
    grad_buckets *gb = c->gb;
    long long t0 = now_ns();
    if (!gb->t_first) gb->t_first = t0;
    slot_key want = { param, 0 }, *k = bsearch(&want, gb->keys, gb->n, sizeof *gb->keys, key_cmp);
    if (!k || gb->packed[k->slot]) return KD_OK;   /* not one of ours (a frozen input), or already in */
    gb->seen[gb->nseen++] = gb->slot_param[k->slot];
    kd_status st = slot_pack(c, k->slot);
    if (st == KD_OK) st = buckets_start_ready(c);
    if (st == KD_OK) st = buckets_progress(c);
    gb->exposed += (double)(now_ns() - t0) * 1e-9;
    return st;
}

/* After the first step: every rank takes rank 0's order (the parameters the backward never reached
 * after it, in the layout's order), so the buckets hold the same parameters on every rank. */
static kd_status buckets_learn(kd_comm *c)
{
    grad_buckets *gb = c->gb;
    unsigned char *in = calloc(gb->n, 1);
    int64_t *order = malloc(gb->n * sizeof *order);
    if (!in || !order) {
        free(in), free(order);
        return kd_fail(KD_ERR_NOMEM, "communicator: out of memory");
    }
    size_t m = 0;
    for (size_t k = 0; k < gb->nseen; k++) in[gb->seen[k]] = 1, order[m++] = (int64_t)gb->seen[k];
    for (size_t s = 0; s < gb->n; s++)
        if (!in[gb->slot_param[s]]) order[m++] = (int64_t)gb->slot_param[s];
    kd_status st = kd_comm_broadcast(c, order, gb->n * sizeof *order, 0);
    for (size_t k = 0; k < gb->n && st == KD_OK; k++) gb->seen[k] = (size_t)order[k];
    if (st == KD_OK) buckets_layout(gb, gb->seen);
    gb->learned = 1;
    free(in), free(order);
    return st;
}

/* Pack what the backward did not reach, start what has not started, wait for all, unpack. */
static kd_status buckets_finish(kd_comm *c)
{
    grad_buckets *gb = c->gb;
    long long t0 = now_ns();
    if (!gb->t_first) gb->t_first = t0;
    kd_status st = KD_OK;
    for (size_t s = 0; s < gb->n && st == KD_OK; s++)
        if (!gb->packed[s]) st = slot_pack(c, s);
    if (st == KD_OK) st = buckets_start_ready(c);
    /* Host backends meet in the sleeping barrier first, as the flat path does (its tests move the sums on
     * too), so that the wait below spins only while every rank is there. */
    if (st == KD_OK && !c->dev) st = kd_comm_barrier(c);
    busy(c, "all-reduce of gradient buckets");
    for (size_t k = 0; k < gb->nb && st == KD_OK; k++) {
        grad_bucket *b = &gb->b[k];
        void *ctx;
        float *buf;
        const kd_comm_impl *i = bucket_impl(c, &ctx, &buf, b);
        if (b->req) st = i->wait(ctx, b->req);
        b->req = NULL;
        if (st == KD_OK && !c->dev && c->flat->device != KD_CPU) {
            kd_tensor *v = kd_view_of(c->flat, 1, &b->len, &(int64_t){ 1 }, c->flat->offset + b->off);
            st = v ? kd_from_host(v, buf) : kd_last_status();
        }
    }
    idle(c);
    if (st == KD_OK && c->flat->device == KD_CPU) kd_mark_modified(c->flat);
    for (size_t s = 0; s < gb->n && st == KD_OK; s++) st = pack(c, gb->param[gb->slot_param[s]], gb->slot_off[s], 1);
    long long t1 = now_ns();
    c->grad_seconds += (double)(t1 - gb->t_first) * 1e-9;
    c->wait_seconds += gb->exposed + (double)(t1 - t0) * 1e-9;
    /* the next step starts empty */
    memset(gb->packed, 0, gb->n);
    for (size_t k = 0; k < gb->nb; k++) gb->b[k].ready = 0;
    gb->next = 0;
    gb->t_first = 0;
    gb->exposed = 0;
    if (st == KD_OK && !gb->learned) st = buckets_learn(c);
    gb->nseen = 0;
    return st;
}

kd_status kd_comm_broadcast_params(kd_comm *c, kd_tensor *const *params, size_t n, int root)
{
    kd_status st = KD_OK;
    for (size_t i = 0; i < n && st == KD_OK && !single(c); i++) st = kd_comm_broadcast_tensor(c, params[i], root);
    return st;
}
