/* bench/bench_iallreduce.c — the MPI all-reduce that the gradients' buckets use, against the blocking one:
 * MPI_Allreduce, MPI_Iallreduce + MPI_Wait, and the same buffer in 4 MPI_Iallreduce pieces + MPI_Waitall,
 * of N floats (default 11,173,000: bert-mini's gradients), in place, summed. It validates first (every
 * element the exact sum of the ranks' small integers), then warms up, then reports the median of --reps.
 * Open MPI picks the nonblocking algorithm at MPI_Init from OMPI_MCA_coll_libnbc_iallreduce_algorithm;
 * this program leaves it as the environment says (kd itself sets 1, the ring, when unset):
 *   mpirun -np 2 build/bench/bench_iallreduce [N] [--reps 9]
 *   mpirun -np 2 --mca coll_libnbc_iallreduce_algorithm 1 build/bench/bench_iallreduce */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run(int mode, float *b, int n)
{
    MPI_Request q[4];
    if (mode == 0) {
        MPI_Allreduce(MPI_IN_PLACE, b, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    } else if (mode == 1) {
        MPI_Iallreduce(MPI_IN_PLACE, b, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &q[0]);
        MPI_Wait(&q[0], MPI_STATUS_IGNORE);
    } else {
        for (int j = 0; j < 4; j++) {
            int a = (int)((long long)n * j / 4), e = (int)((long long)n * (j + 1) / 4);
            MPI_Iallreduce(MPI_IN_PLACE, b + a, e - a, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &q[j]);
        }
        MPI_Waitall(4, q, MPI_STATUSES_IGNORE);
    }
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size, n = 11173000, reps = 9;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else n = atoi(argv[i]);
    }
    if (n < 4 || reps < 1) {
        if (rank == 0) fprintf(stderr, "bench_iallreduce: N >= 4 floats and --reps >= 1\n");
        MPI_Finalize();
        return 2;
    }
    static const char *const names[3] = { "MPI_Allreduce", "MPI_Iallreduce + MPI_Wait", "4 x MPI_Iallreduce + Waitall" };
    float *b = malloc((size_t)n * sizeof *b);
    double *t = malloc((size_t)reps * sizeof *t);
    int bad = 0;
    if (!b || !t) MPI_Abort(MPI_COMM_WORLD, 1);
    for (int mode = 0; mode < 3; mode++) {
        /* validate: rank r gives (r + 1) (i mod 7); the sum is N (N + 1) / 2 (i mod 7), exact in f32 */
        for (int i = 0; i < n; i++) b[i] = (float)((rank + 1) * (i % 7));
        run(mode, b, n);
        int wrong = 0;
        for (int i = 0; i < n; i++) wrong += !(b[i] == (float)(size * (size + 1) / 2 * (i % 7)));
        bad += wrong;
        run(mode, b, n);   /* warm-up */
        for (int k = 0; k < reps; k++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            run(mode, b, n);
            t[k] = MPI_Wtime() - t0;
        }
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        /* ring bus bandwidth: 2 (N - 1) / N of the buffer through each rank */
        if (rank == 0)
            printf("%-30s %9.4f s  %6.2f GB/s (bus)  %s\n", names[mode], t[reps / 2],
                   2.0 * (size - 1) / size * (double)n * sizeof(float) / t[reps / 2] / 1e9, wrong ? "WRONG SUM" : "sum exact");
    }
    if (rank == 0) {
        const char *alg = getenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm");
        printf("%d ranks, %d floats (%.1f MB), median of %d; OMPI_MCA_coll_libnbc_iallreduce_algorithm=%s\n", size, n,
               (double)n * sizeof(float) / 1e6, reps, alg ? alg : "(unset: Open MPI's choice)");
    }
    free(b);
    free(t);
    MPI_Finalize();
    return bad ? 1 : 0;
}
