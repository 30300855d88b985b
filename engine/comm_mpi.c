/* engine/comm_mpi.c — the MPI backend of engine/comm.h: MPI_COMM_WORLD, host memory, errors returned (not
 * fatal) so that each reads as a kd message. Built with -Dmpi (Open MPI or MPICH through meson's
 * dependency('mpi')). */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "engine/comm_impl.h"

typedef struct mpi_ctx { int initialized_here; } mpi_ctx;

static kd_status mpi_error(int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
    return kd_fail(KD_ERR_DEVICE, "communicator (mpi): %s: %s", what, msg);
}

/* MPI counts are int: large buffers go in pieces of at most 2^30 elements. */
enum { CHUNK = 1 << 30 };

static kd_status reduce(void *buf, size_t n, MPI_Datatype t, size_t elem, kd_comm_op op)
{
    int size;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (size_t a = 0; a < n; a += CHUNK) {
        int k = (int)(n - a < CHUNK ? n - a : CHUNK);
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + a * elem, k, t, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_error(rc, "MPI_Allreduce");
    }
    if (op == KD_COMM_AVG) {
        if (t == MPI_FLOAT) {
            float *f = buf, s = 1.0f / (float)size;
            for (size_t i = 0; i < n; i++) f[i] *= s;
        } else {
            double *d = buf;
            for (size_t i = 0; i < n; i++) d[i] /= (double)size;
        }
    }
    return KD_OK;
}

static kd_status mpi_allreduce_f32(void *ctx, float *buf, size_t n, kd_comm_op op)
{
    (void)ctx;
    return reduce(buf, n, MPI_FLOAT, sizeof(float), op);
}

static kd_status mpi_allreduce_f64(void *ctx, double *buf, size_t n, kd_comm_op op)
{
    (void)ctx;
    return reduce(buf, n, MPI_DOUBLE, sizeof(double), op);
}

static kd_status mpi_broadcast(void *ctx, void *buf, size_t bytes, int root)
{
    (void)ctx;
    for (size_t a = 0; a < bytes; a += CHUNK) {
        int k = (int)(bytes - a < CHUNK ? bytes - a : CHUNK);
        int rc = MPI_Bcast((char *)buf + a, k, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_error(rc, "MPI_Bcast");
    }
    return KD_OK;
}

/* A barrier that sleeps while it waits: the ranks wait in one while rank 0 evaluates or writes, and MPI's
 * own barrier would spin on a core the working rank may need (a machine with fewer cores than ranks). */
static kd_status mpi_barrier(void *ctx)
{
    (void)ctx;
    MPI_Request req;
    int rc = MPI_Ibarrier(MPI_COMM_WORLD, &req), done = 0;
    const struct timespec nap = { 0, 500 * 1000 };
    while (rc == MPI_SUCCESS && !(rc = MPI_Test(&req, &done, MPI_STATUS_IGNORE)) && !done) nanosleep(&nap, NULL);
    return rc == MPI_SUCCESS ? KD_OK : mpi_error(rc, "MPI_Ibarrier");
}

/* A nonblocking sum: one MPI_Iallreduce per piece of at most CHUNK elements. Open MPI moves a nonblocking
 * collective on only inside MPI calls (no progress thread by default): the caller tests it between the
 * pieces of work it overlaps. */
typedef struct mpi_req { int n; MPI_Request r[]; } mpi_req;

static kd_status mpi_iallreduce_f32(void *ctx, float *buf, size_t n, void **req)
{
    (void)ctx;
    int k = (int)((n + CHUNK - 1) / CHUNK);
    mpi_req *q = malloc(sizeof *q + (size_t)(k ? k : 1) * sizeof(MPI_Request));
    if (!q) return kd_fail(KD_ERR_NOMEM, "communicator (mpi): out of memory");
    q->n = 0;
    for (size_t a = 0; a < n; a += CHUNK) {
        int m = (int)(n - a < CHUNK ? n - a : CHUNK);
        int rc = MPI_Iallreduce(MPI_IN_PLACE, buf + a, m, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &q->r[q->n]);
        if (rc != MPI_SUCCESS) {
            free(q);
            return mpi_error(rc, "MPI_Iallreduce");
        }
        q->n++;
    }
    *req = q;
    return KD_OK;
}

static kd_status mpi_test(void *ctx, void *req, int *done)
{
    (void)ctx;
    mpi_req *q = req;
    int rc = MPI_Testall(q->n, q->r, done, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) return mpi_error(rc, "MPI_Testall");
    if (*done) free(q);
    return KD_OK;
}

/* MPI_Waitall, which spins: the caller meets the other ranks in the sleeping barrier below first, so that
 * it spins only while the sums themselves run (napping between tests would slow them to the nap's pace). */
static kd_status mpi_wait(void *ctx, void *req)
{
    (void)ctx;
    mpi_req *q = req;
    int rc = MPI_Waitall(q->n, q->r, MPI_STATUSES_IGNORE);
    free(q);
    return rc == MPI_SUCCESS ? KD_OK : mpi_error(rc, "MPI_Waitall");
}

static void mpi_abort(void *ctx, int code)
{
    (void)ctx;
    MPI_Abort(MPI_COMM_WORLD, code);
}

static void mpi_close(void *ctx)
{
    mpi_ctx *m = ctx;
    int fin = 0;
    if (m && m->initialized_here && MPI_Finalized(&fin) == MPI_SUCCESS && !fin) MPI_Finalize();
    free(m);
}

static const kd_comm_impl mpi_impl = { .name = "mpi", .allreduce_f32 = mpi_allreduce_f32,
                                       .allreduce_f64 = mpi_allreduce_f64, .broadcast = mpi_broadcast,
                                       .barrier = mpi_barrier, .iallreduce_f32 = mpi_iallreduce_f32,
                                       .test = mpi_test, .wait = mpi_wait, .abort = mpi_abort, .close = mpi_close };

kd_status kd_comm_mpi_open(int *rank, int *size, const kd_comm_impl **impl, void **ctx)
{
    mpi_ctx *m = calloc(1, sizeof *m);
    if (!m) return kd_fail(KD_ERR_NOMEM, "communicator (mpi): out of memory");
    int done = 0, provided = 0;
    MPI_Initialized(&done);
    if (!done) {
#ifdef OPEN_MPI
        /* Open MPI's nonblocking all-reduce (libnbc, the gradients' buckets) picks by default an algorithm
         * that, on 2 ranks of one machine, took 1.65x the blocking all-reduce's time for 44.7 MB (0.175 s
         * against 0.106 s, bench/bench_iallreduce.c); its ring was no slower than the blocking one. A choice
         * the user made (the variable set, or mpirun's --mca) wins. */
        setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", 0);
#endif
        /* Only the thread that opened the communicator calls MPI (the pool's threads never do). */
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) {
            free(m);
            return kd_fail(KD_ERR_DEVICE, "communicator (mpi): MPI_Init_thread failed (%d)", rc);
        }
        m->initialized_here = 1;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    *impl = &mpi_impl;
    *ctx = m;
    return KD_OK;
}
