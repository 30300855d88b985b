/* test/engine/test_comm.c — the communicator (engine/comm.h) at whatever size it is started with (alone:
 * one process, `none`; under `mpirun -np N`: MPI): rank and size, all-reduce sum and average of f32 on the
 * host and staged from the simulated device, of f64, broadcast from the last rank, barrier, the flat
 * all-reduce of gradients (one parameter without a gradient on rank 0), the same in buckets overlapped with
 * the backward (on the host and staged from the simulated device), and the broadcast of parameters.
 * Values are small integers times powers of two, so every sum is exact and compared bit for bit.
 * `test_comm hang`: the last rank never joins a barrier; the others' watchdog must end the job (run with
 * KD_COMM_TIMEOUT=2 by test/engine/test_parallel_comm.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/autograd.h"
#include "engine/comm.h"
#include "engine/device.h"
#include "engine/ops.h"
#include "test/testutil.h"

static int rank, size;

/* Rank r's value at i: (r + 1) (i mod 97); the sum over ranks is N (N + 1) / 2 (i mod 97). */
static float val(int r, int64_t i) { return (float)((r + 1) * (int)(i % 97)); }
static double sum_coef(void) { return (double)size * (size + 1) / 2.0; }

static void check_allreduce(kd_comm *c, kd_device dev, kd_comm_op op, int64_t n)
{
    float *h = malloc((size_t)n * sizeof *h);
    for (int64_t i = 0; i < n; i++) h[i] = val(rank, i);
    kd_tensor *t = kd_from_buffer_on(dev, KD_F32, 1, &n, h);
    kd_status st = t ? kd_comm_allreduce(c, t, op) : kd_last_status();
    CHECK(st == KD_OK, "all-reduce on %s: %s", kd_device_name(dev), st == KD_OK ? "" : kd_last_error());
    if (st == KD_OK) st = kd_to_host(t, h);
    int64_t bad = 0;
    double k = op == KD_COMM_AVG ? sum_coef() / size : sum_coef();
    for (int64_t i = 0; i < n && st == KD_OK; i++) bad += !((double)h[i] == k * (double)(i % 97));
    CHECK(st == KD_OK && bad == 0, "all-reduce %s of %lld floats on %s: %lld wrong", op == KD_COMM_AVG ? "avg" : "sum",
          (long long)n, kd_device_name(dev), (long long)bad);
    printf("rank %d: all-reduce %s, %lld f32 on %s: %s\n", rank, op == KD_COMM_AVG ? "avg" : "sum", (long long)n,
           kd_device_name(dev), bad ? "WRONG" : "exact");
    free(h);
    kd_arena_reset();
}

static void check_f64_broadcast_barrier(kd_comm *c)
{
    double x[3] = { rank + 1.0, 0.25 * rank, -1.0 };
    CHECK(kd_comm_allreduce_f64(c, x, 3, KD_COMM_SUM) == KD_OK, "all-reduce f64: %s", kd_last_error());
    CHECK(x[0] == sum_coef() && x[1] == 0.25 * (sum_coef() - size) && x[2] == -size, "all-reduce f64: got %g %g %g",
          x[0], x[1], x[2]);
    char msg[32];
    snprintf(msg, sizeof msg, "from rank %d", rank);
    int root = size - 1;
    CHECK(kd_comm_broadcast(c, msg, sizeof msg, root) == KD_OK, "broadcast: %s", kd_last_error());
    char want[32];
    snprintf(want, sizeof want, "from rank %d", root);
    CHECK(!strcmp(msg, want), "broadcast from rank %d: got '%s'", root, msg);
    CHECK(kd_comm_barrier(c) == KD_OK, "barrier: %s", kd_last_error());
    printf("rank %d: all-reduce f64, broadcast from rank %d ('%s'), barrier: checked\n", rank, root, msg);
}

static void check_grads_params(kd_comm *c)
{
    int64_t s0[1] = { 5 }, s1[2] = { 2, 3 }, s2[1] = { 7 };
    kd_tensor *p[3] = { kd_param(KD_F32, 1, s0, "p0"), kd_param(KD_F32, 2, s1, "p1"), kd_param(KD_F32, 1, s2, "p2") };
    /* gradients: (r + 1) (j + 1) for element j of parameter k, k * 100 added; none for p1 on rank 0 */
    for (int k = 0; k < 3; k++) {
        if (k == 1 && rank == 0) continue;
        float *g = kd_grad_buf(p[k]);
        for (int64_t j = 0; j < kd_numel(p[k]); j++) g[j] = (float)((rank + 1) * (j + 1 + 100 * k));
    }
    CHECK(kd_comm_allreduce_grads(c, p, 3) == KD_OK, "all-reduce of gradients: %s", kd_last_error());
    int bad = 0;
    for (int k = 0; k < 3; k++) {
        if (!p[k]->grad) {
            bad += size > 1 || k != 1;   /* alone, rank 0's missing gradient stays missing */
            continue;
        }
        const float *g = kd_data(p[k]->grad);
        double coef = k == 1 ? sum_coef() - 1 : sum_coef();   /* rank 0 gave nothing for p1 */
        for (int64_t j = 0; j < kd_numel(p[k]); j++) bad += !((double)g[j] == coef * (double)(j + 1 + 100 * k));
    }
    CHECK(bad == 0, "all-reduce of gradients: %d elements wrong", bad);
    for (int k = 0; k < 3; k++) {
        float *v = kd_data(p[k]);
        for (int64_t j = 0; j < kd_numel(p[k]); j++) v[j] = (float)(rank * 1000 + j);
    }
    CHECK(kd_comm_broadcast_params(c, p, 3, 0) == KD_OK, "broadcast of parameters: %s", kd_last_error());
    int pb = 0;
    for (int k = 0; k < 3; k++) {
        const float *v = kd_data(p[k]);
        for (int64_t j = 0; j < kd_numel(p[k]); j++) pb += v[j] != (float)j;
    }
    CHECK(pb == 0, "broadcast of parameters: %d elements differ from rank 0's", pb);
    printf("rank %d: gradients of 3 parameters summed (%s), parameters from rank 0 (%s)\n", rank, bad ? "WRONG" : "exact",
           pb ? "WRONG" : "exact");
    for (int k = 0; k < 3; k++) kd_tensor_free(p[k]);
}

/* Gradients in buckets overlapped with the backward (kd_comm_grad_buckets): five parameters on dev, each
 * read by mul-and-sum nodes against constants, so that its gradient is a sum of small integers; p1 is read
 * twice, and p4 only on ranks other than 0 (no gradient on rank 0: its backward reports it never, the
 * others do, and every rank must still start the buckets in the same order). Two steps: the first in the
 * parameters' order reversed, the second in the order the first showed (rank 0's). Each element must be
 * the exact sum over the ranks. */
static void check_buckets(kd_comm *c, kd_device dev)
{
    enum { NP = 5 };
    int64_t len[NP] = { 300, 40, 1000, 7, 64 };
    kd_tensor *p[NP];
    for (int k = 0; k < NP; k++) {
        char name[8];
        snprintf(name, sizeof name, "p%d", k);
        p[k] = kd_param_on(dev, KD_F32, 1, &len[k], name);
    }
    /* 0.001 MB = 1048 bytes a bucket: in the first layout (p4, p3, p2, p1, p0) p4 + p3 + p2, then p1 + p0 */
    kd_status st = kd_comm_grad_buckets(c, p, NP, 0.001);
    CHECK(st == KD_OK, "buckets on %s: %s", kd_device_name(dev), st == KD_OK ? "" : kd_last_error());
    size_t nb = kd_comm_grad_bucket_count(c);
    CHECK(size == 1 ? nb == 0 : nb >= 2, "buckets on %s: %zu buckets (%s)", kd_device_name(dev), nb, kd_comm_grad_mode(c));
    int64_t bad = 0;
    for (int step = 0; step < 2 && st == KD_OK; step++) {
        kd_zero_grad(p, NP);
        kd_tensor *loss = NULL;
        for (int k = 0; k < NP; k++) {
            if (k == 4 && rank == 0) continue;
            float *cv = malloc((size_t)len[k] * sizeof *cv);
            for (int64_t j = 0; j < len[k]; j++) cv[j] = val(rank, j + k + step);
            kd_tensor *term = kd_sum(kd_mul(p[k], kd_from_buffer_on(dev, KD_F32, 1, &len[k], cv)), 0, NULL, 0);
            if (k == 1) term = kd_add(term, kd_sum(kd_mul(kd_from_buffer_on(dev, KD_F32, 1, &len[k], cv), p[k]), 0, NULL, 0));
            loss = loss ? kd_add(loss, term) : term;
            free(cv);
        }
        double g0 = kd_comm_grad_seconds(c), w0 = kd_comm_wait_seconds(c);
        st = kd_backward_hooked(loss, NULL, kd_comm_grad_final, c);
        if (st == KD_OK) st = kd_comm_allreduce_grads(c, p, NP);
        CHECK(st == KD_OK, "buckets on %s, step %d: %s", kd_device_name(dev), step + 1, st == KD_OK ? "" : kd_last_error());
        double dg = kd_comm_grad_seconds(c) - g0, dw = kd_comm_wait_seconds(c) - w0;
        CHECK(dw >= 0 && dw <= dg, "buckets: exposed %g s within the total %g s", dw, dg);
        for (int k = 0; k < NP && st == KD_OK; k++) {
            float *h = malloc((size_t)len[k] * sizeof *h);
            if (!p[k]->grad) {
                bad += size > 1 || rank != 0 || k != 4;   /* alone, rank 0's missing gradient stays missing */
                free(h);
                continue;
            }
            st = kd_to_host(p[k]->grad, h);
            for (int64_t j = 0; j < len[k] && st == KD_OK; j++) {
                double want = (k == 1 ? 2.0 : 1.0) * (k == 4 ? sum_coef() - 1 : sum_coef()) * (double)((j + k + step) % 97);
                bad += !((double)h[j] == want);
            }
            free(h);
        }
        kd_arena_reset();
    }
    CHECK(st == KD_OK && bad == 0, "buckets on %s: %lld gradient elements wrong", kd_device_name(dev), (long long)bad);
    printf("rank %d: gradients of %d parameters in %s, 2 steps on %s: %s\n", rank, NP, kd_comm_grad_mode(c),
           kd_device_name(dev), bad || st != KD_OK ? "WRONG" : "exact");
    CHECK(kd_comm_grad_buckets(c, p, NP, 0) == KD_OK && !kd_comm_grad_bucketed(c), "bucket size 0: back to flat");
    CHECK(kd_comm_grad_buckets(c, p, NP, -1) == KD_ERR_ARG, "bucket size -1 refused: %s", kd_last_error());
    kd_clear_error();
    for (int k = 0; k < NP; k++) kd_tensor_free(p[k]);
}

int main(int argc, char **argv)
{
    int hang = argc > 1 && !strcmp(argv[1], "hang");
    kd_comm_opts o = { .backend = "auto", .device = KD_CPU };
    kd_comm *c;
    if (kd_comm_open(&o, &c) != KD_OK) {
        fprintf(stderr, "test_comm: %s\n", kd_last_error());
        return 1;
    }
    rank = kd_comm_rank(c);
    size = kd_comm_size(c);
    printf("rank %d of %d: backend %s (this build: %s)\n", rank, size, kd_comm_name(c), kd_comm_backends());
    if (hang) {
        if (rank == size - 1) sleep(60);   /* never arrives in time */
        kd_comm_barrier(c);
        printf("rank %d: the barrier returned\n", rank);
        kd_comm_close(c, 0);
        return size > 1 ? 1 : 0;   /* with peers, the watchdog should have ended this process */
    }
    CHECK(rank >= 0 && rank < size, "rank %d of %d", rank, size);
    CHECK(kd_device_open(KD_SIM) == KD_OK, "the simulated device opens: %s", kd_last_error());
    check_allreduce(c, KD_CPU, KD_COMM_SUM, 1000);
    check_allreduce(c, KD_CPU, KD_COMM_AVG, 4099);
    check_allreduce(c, KD_SIM, KD_COMM_SUM, 777);
    check_f64_broadcast_barrier(c);
    check_grads_params(c);
    check_buckets(c, KD_CPU);
    check_buckets(c, KD_SIM);
    printf("rank %d: %.4f s in collectives\n", rank, kd_comm_seconds(c));
    kd_comm_close(c, kd_test_failed != 0);
    char name[32];
    snprintf(name, sizeof name, "test_comm rank %d", rank);
    return kd_test_finish(name);
}
