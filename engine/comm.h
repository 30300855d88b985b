/* engine/comm.h — a communicator for data-parallel training: rank and world size, all-reduce (sum or
 * average) of one flat f32 buffer, a model's gradients all-reduced flat or in buckets overlapped with the
 * backward, broadcast, barrier. kd writes no communication layer of its own: the
 * processes talk through MPI (engine/comm_mpi.c, CPU clusters, `-Dmpi`) or NCCL (engine/comm_nccl.c, GPUs,
 * libnccl.so.2 loaded at run time; built only with CUDA). One process needs neither: the `none` backend
 * (rank 0 of 1) makes every call a no-op, and a NULL kd_comm * means the same.
 *
 * Backends, chosen by kd_comm_opts.backend:
 *   none   one process (today's behaviour; what `auto` picks when nothing launched several).
 *   mpi    started by `mpirun -np N`: MPI_COMM_WORLD. Tensors on a device are staged through the host.
 *   nccl   the gradients' all-reduce on the GPUs through NCCL; its unique id travels over MPI when started
 *          by mpirun, else through a file in a directory every rank sees (`rendezvous`) with the ranks
 *          numbered by KD_RANK / KD_WORLD_SIZE (KD_LOCAL_RANK picks the GPU).
 *   auto   mpi when mpirun started more than one process (nccl instead when the device is cuda and
 *          libnccl.so.2 loads), nccl when KD_WORLD_SIZE > 1, else none. Launched by mpirun in a build
 *          without MPI it refuses, rather than run N copies that would write over each other.
 *
 * Every collective waits at most `timeout_s` seconds: past that, a watchdog thread prints which rank
 * waited in which call and ends the process (exit 3), so a dead or hung peer stops the job instead of
 * hanging it (mpirun then ends the other ranks). */
#ifndef KD_ENGINE_COMM_H
#define KD_ENGINE_COMM_H

#include <stddef.h>

#include "engine/tensor.h"

typedef struct kd_comm kd_comm;
typedef enum kd_comm_op { KD_COMM_SUM = 0, KD_COMM_AVG = 1 } kd_comm_op;

typedef struct kd_comm_opts {
    const char *backend;      /* "auto" (NULL), "none", "mpi", "nccl" */
    const char *rendezvous;   /* nccl without MPI: a directory every rank sees, empty for each run */
    kd_device device;         /* where the gradients live */
    double timeout_s;         /* > 0: a collective's longest wait; 0: KD_COMM_TIMEOUT's, else 1800 s */
} kd_comm_opts;

/* Which backends this build has: "none mpi nccl" (nccl: a CUDA build; whether libnccl.so.2 loads is
 * known only at kd_comm_open). */
const char *kd_comm_backends(void);

/* The CUDA device this process should use, from the launcher's local rank (OMPI_COMM_WORLD_LOCAL_RANK,
 * KD_LOCAL_RANK): call before the device is opened. It sets CUDA_VISIBLE_DEVICES to that one GPU when
 * the variable is unset and several ranks share a machine; otherwise it does nothing. */
void kd_comm_pick_gpu(kd_device dev);

/* How many ranks the launcher started on this machine (OMPI_COMM_WORLD_LOCAL_SIZE, MPI_LOCALNRANKS,
 * KD_LOCAL_SIZE); 1 when none says. The command shares the cores among them by default. */
int kd_comm_local_size(void);

/* Open the communicator (MPI_Init, NCCL's communicator, ...). The device must be open already. */
kd_status kd_comm_open(const kd_comm_opts *o, kd_comm **out);
/* Close it. failed != 0 after an error on this rank: with several ranks the whole job is ended
 * (MPI_Abort), since the others would wait for this one forever. NULL-safe. */
void kd_comm_close(kd_comm *c, int failed);

int kd_comm_rank(const kd_comm *c);          /* 0 for NULL */
int kd_comm_size(const kd_comm *c);          /* 1 for NULL */
const char *kd_comm_name(const kd_comm *c);  /* "none", "mpi", "nccl" */

/* In place over the ranks: t contiguous f32, on the host or the communicator's device; every rank passes
 * the same shape. AVG divides the sum by the world size. */
kd_status kd_comm_allreduce(kd_comm *c, kd_tensor *t, kd_comm_op op);
/* n host doubles, in place (losses and counts for the logs). */
kd_status kd_comm_allreduce_f64(kd_comm *c, double *x, size_t n, kd_comm_op op);
/* bytes of host memory from rank root to every rank. */
kd_status kd_comm_broadcast(kd_comm *c, void *buf, size_t bytes, int root);
/* A contiguous tensor's elements from rank root to every rank (host or device). */
kd_status kd_comm_broadcast_tensor(kd_comm *c, kd_tensor *t, int root);
/* Every rank waits for all (MPI: sleeping, not spinning, so that a rank still working keeps its core). */
kd_status kd_comm_barrier(kd_comm *c);

/* The gradients of params (f32; a missing gradient counts as zeros) summed over the ranks: packed into a
 * buffer the communicator keeps (allocated once, on their device), reduced, unpacked into every parameter's
 * gradient. With one rank it does nothing. Without kd_comm_grad_buckets (or with bucket_mb 0) it is one
 * flat all-reduce; with buckets for these params it finishes what the backward's hook began (below). */
kd_status kd_comm_allreduce_grads(kd_comm *c, kd_tensor *const *params, size_t n);

/* Buckets overlapped with the backward. bucket_mb > 0 cuts the gradients of params into buckets of about
 * bucket_mb MB (2^20 bytes, as PyTorch DDP's bucket_cap_mb: a bucket closes once it holds that much, so a
 * larger parameter has one to itself), in the order the backward finishes them: the parameters' order
 * reversed until a first step has shown the order, then rank 0's order on every rank (broadcast once).
 * Give kd_comm_grad_final, with the communicator as ctx, as the hook of kd_backward_hooked (engine/
 * autograd.h) for the last backward before kd_comm_allreduce_grads (the last micro-batch's): it copies each
 * final gradient into its bucket, and a bucket's sum starts without waiting once all its gradients are in
 * and every bucket before it has started: every rank starts them in the same order, as MPI requires of
 * collectives, whatever order its backward reports them in. Between, the hook moves the started sums on
 * (MPI progresses only inside MPI calls). kd_comm_allreduce_grads then packs what the backward never
 * reached, starts the remaining buckets, waits for all and unpacks. Each element is summed as in the flat
 * all-reduce. bucket_mb 0: the flat all-reduce. With one rank, nothing. */
kd_status kd_comm_grad_buckets(kd_comm *c, kd_tensor *const *params, size_t n, double bucket_mb);
kd_status kd_comm_grad_final(kd_tensor *param, void *comm);
/* 1 when kd_comm_allreduce_grads works in buckets: give the backward the hook. */
int kd_comm_grad_bucketed(const kd_comm *c);
size_t kd_comm_grad_bucket_count(const kd_comm *c);   /* 0: flat */
/* "flat" or "N buckets of about M MB, overlapped with the backward", for the logs. */
const char *kd_comm_grad_mode(const kd_comm *c);
/* Every parameter's values from rank root (the ranks start from the same weights). */
kd_status kd_comm_broadcast_params(kd_comm *c, kd_tensor *const *params, size_t n, int root);

/* Wall seconds since open. kd_comm_seconds: in every blocking collective. kd_comm_grad_seconds: the
 * gradients' communication, per step from the first gradient handed over (flat: the end of the backward;
 * in buckets: the hook's first call) to the last unpacked, the wait for the slowest rank included.
 * kd_comm_wait_seconds: the part of it the step stood still for (exposed): flat, all of it; in buckets,
 * the time in the hook (packing, starting, testing) and in kd_comm_allreduce_grads, not what ran under
 * the backward. */
double kd_comm_seconds(const kd_comm *c);
double kd_comm_grad_seconds(const kd_comm *c);
double kd_comm_wait_seconds(const kd_comm *c);

#endif
