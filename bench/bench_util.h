/* bench/bench_util.h — what every benchmark needs: a monotonic clock, the median of repeats, and a
 * small runner that executes a (ctx, ith, nth) task on nth threads (thread 0 is the caller). */
#ifndef KD_BENCH_UTIL_H
#define KD_BENCH_UTIL_H

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of t[0..n) (sorts t). */
static inline double bench_median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, bench_cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

typedef void (*bench_task)(void *ctx, int ith, int nth);

typedef struct bench_thread_arg {
    bench_task task;
    void *ctx;
    int ith, nth;
} bench_thread_arg;

static void *bench_thread_main(void *p)
{
    bench_thread_arg *a = p;
    a->task(a->ctx, a->ith, a->nth);
    return NULL;
}

/* Run task on nth threads and wait for all (threads are created per call: ~tens of microseconds, small
 * against the millisecond kernels timed here). */
static inline void bench_run(bench_task task, void *ctx, int nth)
{
    enum { BENCH_MAX_THREADS = 64 };
    pthread_t th[BENCH_MAX_THREADS];
    bench_thread_arg args[BENCH_MAX_THREADS];
    if (nth > BENCH_MAX_THREADS) nth = BENCH_MAX_THREADS;
    int started = 1;
    for (int i = 1; i < nth; i++) {
        args[i] = (bench_thread_arg){ task, ctx, i, nth };
        if (pthread_create(&th[i], NULL, bench_thread_main, &args[i]) != 0) break;
        started++;
    }
    /* If a thread could not start, the caller does its share too: the result stays complete. */
    task(ctx, 0, nth);
    for (int i = started; i < nth; i++) task(ctx, i, nth);
    for (int i = 1; i < started; i++) pthread_join(th[i], NULL);
}

#endif
