/* engine/comm_nccl.c — the NCCL backend of engine/comm.h: libnccl.so.2 loaded at run time with dlopen (no
 * build-time dependency, as bench/ loads cuBLAS), the collectives queued on kd's CUDA stream. The unique
 * id goes from rank 0 to the others over the bootstrap backend (MPI) or through a file in the rendezvous
 * directory, written under a temporary name and renamed. Built only with CUDA. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/comm_impl.h"
#include "kernels/cuda/cuda_runtime.h"

/* From nccl.h (NCCL 2.x ABI): the few types and values used here. */
typedef struct { char internal[128]; } nccl_id;
typedef void *nccl_comm;
typedef int nccl_result;   /* ncclSuccess = 0 */
enum { NCCL_FLOAT32 = 7, NCCL_FLOAT64 = 8, NCCL_UINT8 = 1 };
enum { NCCL_SUM = 0, NCCL_AVG = 4 };

typedef struct nccl_api {
    void *lib;
    nccl_result (*get_unique_id)(nccl_id *);
    nccl_result (*comm_init_rank)(nccl_comm *, int, nccl_id, int);
    nccl_result (*all_reduce)(const void *, void *, size_t, int, int, nccl_comm, void *);
    nccl_result (*broadcast)(const void *, void *, size_t, int, int, nccl_comm, void *);
    nccl_result (*comm_destroy)(nccl_comm);
    nccl_result (*comm_abort)(nccl_comm);
    const char *(*error_string)(nccl_result);
} nccl_api;

static nccl_api api;

/* POSIX: dlsym's void * becomes a function pointer through memcpy, without a pedantic warning. */
static int sym(void *fp, const char *name)
{
    void *p = dlsym(api.lib, name);
    if (!p) return 0;
    memcpy(fp, &p, sizeof p);
    return 1;
}

static int load(void)
{
    if (api.lib) return 1;
    void *lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return 0;
    api.lib = lib;
    if (sym(&api.get_unique_id, "ncclGetUniqueId") && sym(&api.comm_init_rank, "ncclCommInitRank") &&
        sym(&api.all_reduce, "ncclAllReduce") && sym(&api.broadcast, "ncclBroadcast") &&
        sym(&api.comm_destroy, "ncclCommDestroy") && sym(&api.comm_abort, "ncclCommAbort") &&
        sym(&api.error_string, "ncclGetErrorString"))
        return 1;
    dlclose(lib);
    memset(&api, 0, sizeof api);
    return 0;
}

int kd_comm_nccl_available(void) { return load(); }

typedef struct nccl_ctx {
    nccl_comm comm;
    void *scratch;          /* device memory for the staged host calls */
    size_t scratch_bytes;
} nccl_ctx;

static kd_status nccl_fail(nccl_result r, const char *what)
{
    return kd_fail(KD_ERR_DEVICE, "communicator (nccl): %s: %s", what, api.error_string ? api.error_string(r) : "error");
}

/* Wait for the stream: the collective has finished (a peer that never comes is the watchdog's). */
static kd_status finish(nccl_result r, const char *what)
{
    if (r != 0) return nccl_fail(r, what);
    return (kd_status)kd_cuda_sync();
}

static kd_status nccl_allreduce_f32(void *ctx, float *buf, size_t n, kd_comm_op op)
{
    nccl_ctx *c = ctx;
    return finish(api.all_reduce(buf, buf, n, NCCL_FLOAT32, op == KD_COMM_AVG ? NCCL_AVG : NCCL_SUM, c->comm,
                                 kd_cuda_stream()), "ncclAllReduce");
}

/* A sum queued on kd's stream without waiting for it. The stream orders it after the kernels that wrote
 * the gradients; the kernels queued after it (the rest of the backward) wait for it on this one stream. */
static kd_status nccl_iallreduce_f32(void *ctx, float *buf, size_t n, void **req)
{
    nccl_ctx *c = ctx;
    nccl_result r = api.all_reduce(buf, buf, n, NCCL_FLOAT32, NCCL_SUM, c->comm, kd_cuda_stream());
    if (r != 0) return nccl_fail(r, "ncclAllReduce");
    *req = c;   /* the stream is the request */
    return KD_OK;
}

/* Whether the stream got past it is not asked (no events here): done only once waited for. */
static kd_status nccl_test(void *ctx, void *req, int *done)
{
    (void)ctx, (void)req;
    *done = 0;
    return KD_OK;
}

static kd_status nccl_wait(void *ctx, void *req)
{
    (void)ctx, (void)req;
    return (kd_status)kd_cuda_sync();
}

static kd_status scratch(nccl_ctx *c, size_t bytes)
{
    if (bytes <= c->scratch_bytes) return KD_OK;
    if (c->scratch) kd_cuda_free(c->scratch);
    c->scratch = NULL;
    c->scratch_bytes = 0;
    kd_status st = (kd_status)kd_cuda_malloc(&c->scratch, bytes);
    if (st == KD_OK) c->scratch_bytes = bytes;
    return st;
}

/* Host calls: staged through the device. */
static kd_status nccl_allreduce_f64(void *ctx, double *buf, size_t n, kd_comm_op op)
{
    nccl_ctx *c = ctx;
    kd_status st = scratch(c, n * sizeof *buf);
    if (st == KD_OK) st = (kd_status)kd_cuda_h2d(c->scratch, buf, n * sizeof *buf);
    if (st == KD_OK)
        st = finish(api.all_reduce(c->scratch, c->scratch, n, NCCL_FLOAT64, op == KD_COMM_AVG ? NCCL_AVG : NCCL_SUM,
                                   c->comm, kd_cuda_stream()), "ncclAllReduce");
    if (st == KD_OK) st = (kd_status)kd_cuda_d2h(buf, c->scratch, n * sizeof *buf);
    return st;
}

static kd_status nccl_broadcast(void *ctx, void *buf, size_t bytes, int root)
{
    nccl_ctx *c = ctx;
    kd_status st = scratch(c, bytes ? bytes : 1);
    if (st == KD_OK) st = (kd_status)kd_cuda_h2d(c->scratch, buf, bytes);
    if (st == KD_OK)
        st = finish(api.broadcast(c->scratch, c->scratch, bytes, NCCL_UINT8, root, c->comm, kd_cuda_stream()),
                    "ncclBroadcast");
    if (st == KD_OK) st = (kd_status)kd_cuda_d2h(buf, c->scratch, bytes);
    return st;
}

static kd_status nccl_barrier(void *ctx)
{
    double one = 1.0;
    return nccl_allreduce_f64(ctx, &one, 1, KD_COMM_SUM);
}

static void nccl_abort(void *ctx, int code)
{
    nccl_ctx *c = ctx;
    if (c && c->comm) {
        api.comm_abort(c->comm);
        c->comm = NULL;
    }
    fflush(stderr);
    _exit(code);
}

static void nccl_close(void *ctx)
{
    nccl_ctx *c = ctx;
    if (!c) return;
    if (c->comm) api.comm_destroy(c->comm);
    if (c->scratch) kd_cuda_free(c->scratch);
    free(c);
}

static const kd_comm_impl nccl_impl = { .name = "nccl", .allreduce_f32 = nccl_allreduce_f32,
                                        .allreduce_f64 = nccl_allreduce_f64, .broadcast = nccl_broadcast,
                                        .barrier = nccl_barrier, .iallreduce_f32 = nccl_iallreduce_f32,
                                        .test = nccl_test, .wait = nccl_wait, .abort = nccl_abort, .close = nccl_close };

/* --- the unique id through a file: DIR/kd_nccl_id (KD_RUN_ID, when set, is appended to the name). */

static void id_path(const char *dir, char *p, size_t n)
{
    const char *run = getenv("KD_RUN_ID");
    snprintf(p, n, "%s/kd_nccl_id%s%s", dir, run ? "." : "", run ? run : "");
}

static kd_status id_write(const char *dir, const nccl_id *id)
{
    char p[4096], tmp[4200];
    id_path(dir, p, sizeof p);
    if (access(p, F_OK) == 0)
        return kd_fail(KD_ERR_STATE, "communicator (nccl): %s exists: another run's id (use an empty --rendezvous "
                                     "directory for each run, or set KD_RUN_ID)", p);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", p, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return kd_fail(KD_ERR_IO, "communicator (nccl): %s: cannot write (%s)", tmp, strerror(errno));
    int ok = fwrite(id, sizeof *id, 1, f) == 1 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, p) != 0) {
        unlink(tmp);
        return kd_fail(KD_ERR_IO, "communicator (nccl): %s: cannot write the id", p);
    }
    return KD_OK;
}

static kd_status id_read(const char *dir, double timeout_s, nccl_id *id)
{
    char p[4096];
    id_path(dir, p, sizeof p);
    const struct timespec tick = { 0, 100 * 1000 * 1000 };
    for (double waited = 0; waited < timeout_s; waited += 0.1) {
        FILE *f = fopen(p, "rb");
        if (f) {
            size_t got = fread(id, sizeof *id, 1, f);
            fclose(f);
            if (got == 1) return KD_OK;
        }
        nanosleep(&tick, NULL);
    }
    return kd_fail(KD_ERR_STATE, "communicator (nccl): rank 0's id did not appear in %s within %.0f s", p, timeout_s);
}

kd_status kd_comm_nccl_open(int rank, int size, const kd_comm_impl *boot, void *boot_ctx, const char *rendezvous,
                            double timeout_s, const kd_comm_impl **impl, void **ctx)
{
    if (!load())
        return kd_fail(KD_ERR_DEVICE, "communicator (nccl): libnccl.so.2 cannot be loaded (%s); install NCCL or use "
                                      "--comm mpi", dlerror());
    nccl_id id;
    memset(&id, 0, sizeof id);
    nccl_result r;
    if (rank == 0 && (r = api.get_unique_id(&id)) != 0) return nccl_fail(r, "ncclGetUniqueId");
    kd_status st;
    if (boot) st = boot->broadcast(boot_ctx, &id, sizeof id, 0);
    else st = rank == 0 ? id_write(rendezvous, &id) : id_read(rendezvous, timeout_s, &id);
    if (st != KD_OK) return st;
    nccl_ctx *c = calloc(1, sizeof *c);
    if (!c) return kd_fail(KD_ERR_NOMEM, "communicator (nccl): out of memory");
    if ((r = api.comm_init_rank(&c->comm, size, id, rank)) != 0) {
        free(c);
        return nccl_fail(r, "ncclCommInitRank");
    }
    /* Every rank has read the id once the communicator exists: the file can go. */
    if (!boot && rank == 0) {
        char p[4096];
        id_path(rendezvous, p, sizeof p);
        unlink(p);
    }
    *impl = &nccl_impl;
    *ctx = c;
    return KD_OK;
}
