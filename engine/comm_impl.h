/* engine/comm_impl.h — what a communication backend provides to engine/comm.c: a table of collectives
 * over a context of its own. Host calls take host memory; device calls (NCCL) take device memory. */
#ifndef KD_ENGINE_COMM_IMPL_H
#define KD_ENGINE_COMM_IMPL_H

#include <stddef.h>

#include "engine/comm.h"

typedef struct kd_comm_impl {
    const char *name;
    kd_status (*allreduce_f32)(void *ctx, float *buf, size_t n, kd_comm_op op);
    kd_status (*allreduce_f64)(void *ctx, double *buf, size_t n, kd_comm_op op);
    kd_status (*broadcast)(void *ctx, void *buf, size_t bytes, int root);
    kd_status (*barrier)(void *ctx);
    /* A sum in place that does not wait: start it (*req names it), ask whether it is done (never blocks;
     * moves the backend's pending work on; done releases req), or wait for it (releases req). Device
     * backends take device memory, as allreduce_f32 does. */
    kd_status (*iallreduce_f32)(void *ctx, float *buf, size_t n, void **req);
    kd_status (*test)(void *ctx, void *req, int *done);
    kd_status (*wait)(void *ctx, void *req);
    void (*abort)(void *ctx, int code);   /* end every rank now */
    void (*close)(void *ctx);
} kd_comm_impl;

/* MPI (engine/comm_mpi.c, with -Dmpi): MPI_COMM_WORLD; host memory only. */
kd_status kd_comm_mpi_open(int *rank, int *size, const kd_comm_impl **impl, void **ctx);

/* NCCL (engine/comm_nccl.c, CUDA builds): its calls take device memory, except broadcast and barrier,
 * which stage host memory through the device. The unique id reaches every rank through `boot` (rank 0's
 * 128 bytes broadcast: MPI's table) or, when boot is NULL, through a file in `rendezvous`. */
kd_status kd_comm_nccl_open(int rank, int size, const kd_comm_impl *boot, void *boot_ctx, const char *rendezvous,
                            double timeout_s, const kd_comm_impl **impl, void **ctx);
/* 1 when libnccl.so.2 loads. */
int kd_comm_nccl_available(void);

#endif
