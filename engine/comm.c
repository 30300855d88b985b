/* engine/comm.c — the communicator (see comm.h): backend choice, the watchdog on every collective,
 * staging of device tensors for host backends, and the flat all-reduce of a model's gradients. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/autograd.h"
#include "engine/comm.h"
#include "engine/comm_impl.h"
#include "engine/device.h"

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

/* --- a model's gradients, in one flat buffer */

kd_status kd_comm_allreduce_grads(kd_comm *c, kd_tensor *const *params, size_t n)
{
    if (single(c) || n == 0) return KD_OK;
    /* Host backends first wait for every rank in a sleeping barrier: a rank done early would otherwise spin
     * in the all-reduce on a core a slower rank may need. The wait is counted apart from the reduction. */
    long long t0 = now_ns();
    if (!c->dev) {
        kd_status st = kd_comm_barrier(c);
        if (st != KD_OK) return st;
        long long t1 = now_ns();
        c->wait_seconds += (double)(t1 - t0) * 1e-9;
        t0 = t1;
    }
    int64_t total = 0;
    kd_device dev = params[0]->device;
    for (size_t i = 0; i < n; i++) {
        if (params[i]->dtype != KD_F32 || params[i]->device != dev)
            return kd_fail(KD_ERR_DTYPE, "communicator: parameter %s: gradients all-reduced are f32 on one device",
                           params[i]->name);
        total += kd_numel(params[i]);
    }
    if (c->flat && (kd_numel(c->flat) != total || c->flat->device != dev)) {
        kd_tensor_free(c->flat);
        c->flat = NULL;
    }
    if (!c->flat) {
        if (!(c->flat = kd_param_on(dev, KD_F32, 1, &total, "flat gradients"))) return kd_last_status();
        c->flat->requires_grad = 0;
    }
    /* Pack: parameter i's gradient at its offset (zeros where backward left none). */
    kd_status st = KD_OK;
    int64_t off = 0;
    float *flat = dev == KD_CPU ? kd_data(c->flat) : NULL;
    for (size_t i = 0; i < n && st == KD_OK; i++) {
        kd_tensor *p = params[i];
        int64_t k = kd_numel(p);
        if (flat) {
            if (p->grad) memcpy(flat + off, kd_data(p->grad), (size_t)k * sizeof(float));
            else memset(flat + off, 0, (size_t)k * sizeof(float));
        } else {
            kd_tensor *v = kd_view_of(c->flat, 1, &k, &(int64_t){ 1 }, c->flat->offset + off);
            if (!v) return kd_last_status();
            if (p->grad) {
                kd_tensor *g = kd_view_of(p->grad, 1, &k, &(int64_t){ 1 }, p->grad->offset);
                st = g ? kd_copy_into(v, g) : kd_last_status();
            } else {
                kd_fill(v, 0.0);
            }
        }
        off += k;
    }
    if (st == KD_OK) st = kd_comm_allreduce(c, c->flat, KD_COMM_SUM);
    off = 0;
    for (size_t i = 0; i < n && st == KD_OK; i++) {
        kd_tensor *p = params[i];
        int64_t k = kd_numel(p);
        if (!kd_grad_buf(p)) return kd_last_status();
        if (flat) {
            memcpy(kd_data(p->grad), flat + off, (size_t)k * sizeof(float));
        } else {
            kd_tensor *v = kd_view_of(c->flat, 1, &k, &(int64_t){ 1 }, c->flat->offset + off);
            kd_tensor *g = kd_view_of(p->grad, 1, &k, &(int64_t){ 1 }, p->grad->offset);
            st = v && g ? kd_copy_into(g, v) : kd_last_status();
        }
        off += k;
    }
    c->grad_seconds += (double)(now_ns() - t0) * 1e-9;
    return st;
}

kd_status kd_comm_broadcast_params(kd_comm *c, kd_tensor *const *params, size_t n, int root)
{
    kd_status st = KD_OK;
    for (size_t i = 0; i < n && st == KD_OK && !single(c); i++) st = kd_comm_broadcast_tensor(c, params[i], root);
    return st;
}
