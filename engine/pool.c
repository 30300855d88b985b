/* engine/pool.c — one pthreads pool. kd_parallel(task, ctx) runs task(ctx, ith, nth) on nth threads, the
 * caller being ith 0, and returns when all are done. Workers wait on a condition variable between jobs and
 * spin briefly first, since kernels come in quick succession during a step. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/internal.h"

#define KD_MAX_THREADS 256

static struct {
    int nthreads;              /* including the caller */
    int started;
    pthread_t tid[KD_MAX_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    /* the current job */
    void (*task)(void *, int, int);
    void *ctx;
    int nth;
    atomic_uint_fast64_t generation;
    atomic_int pending;
    uint64_t start_generation;  /* the generation new workers start from: they run only later jobs */
    int quit;
} P = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv_work = PTHREAD_COND_INITIALIZER, .cv_done = PTHREAD_COND_INITIALIZER };

static void *worker(void *arg)
{
    int ith = (int)(intptr_t)arg;
    uint64_t seen = P.start_generation;
    for (;;) {
        /* Spin a little, then sleep until the generation moves. */
        int spins = 0;
        while (atomic_load(&P.generation) == seen && spins < 20000) spins++;
        pthread_mutex_lock(&P.mu);
        while (atomic_load(&P.generation) == seen && !P.quit) pthread_cond_wait(&P.cv_work, &P.mu);
        if (P.quit) {
            pthread_mutex_unlock(&P.mu);
            return NULL;
        }
        seen = atomic_load(&P.generation);
        void (*task)(void *, int, int) = P.task;
        void *ctx = P.ctx;
        int nth = P.nth;
        pthread_mutex_unlock(&P.mu);
        if (ith < nth) task(ctx, ith, nth);
        if (atomic_fetch_sub(&P.pending, 1) == 1) {
            pthread_mutex_lock(&P.mu);
            pthread_cond_signal(&P.cv_done);
            pthread_mutex_unlock(&P.mu);
        }
    }
}

static int default_threads(void)
{
    const char *e = getenv("KD_THREADS");
    if (e && atoi(e) > 0) return atoi(e) > KD_MAX_THREADS ? KD_MAX_THREADS : atoi(e);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > KD_MAX_THREADS ? KD_MAX_THREADS : (int)n);
}

static void pool_stop(void)
{
    if (!P.started) return;
    pthread_mutex_lock(&P.mu);
    P.quit = 1;
    pthread_cond_broadcast(&P.cv_work);
    pthread_mutex_unlock(&P.mu);
    for (int i = 1; i < P.nthreads; i++) pthread_join(P.tid[i], NULL);
    P.started = 0;
    P.quit = 0;
}

static int pool_start(int n)
{
    P.nthreads = n;
    P.start_generation = atomic_load(&P.generation);
    for (int i = 1; i < n; i++) {
        if (pthread_create(&P.tid[i], NULL, worker, (void *)(intptr_t)i) != 0) {
            P.nthreads = i;   /* run with the threads we got */
            break;
        }
    }
    P.started = 1;
    return P.nthreads;
}

kd_status kd_set_threads(int n)
{
    if (n < 1 || n > KD_MAX_THREADS) return kd_fail(KD_ERR_ARG, "threads: %d requested, expected 1..%d", n, KD_MAX_THREADS);
    pool_stop();
    pool_start(n);
    return KD_OK;
}

int kd_threads(void)
{
    if (!P.started) pool_start(default_threads());
    return P.nthreads;
}

void kd_parallel(void (*task)(void *ctx, int ith, int nth), void *ctx, double work)
{
    int n = kd_threads();
    /* Below ~64k flops a second thread costs more than it saves. */
    int useful = work < 65536.0 ? 1 : n;
    if (useful <= 1) {
        task(ctx, 0, 1);
        return;
    }
    pthread_mutex_lock(&P.mu);
    P.task = task;
    P.ctx = ctx;
    P.nth = useful;
    atomic_store(&P.pending, n - 1);
    atomic_fetch_add(&P.generation, 1);
    pthread_cond_broadcast(&P.cv_work);
    pthread_mutex_unlock(&P.mu);
    task(ctx, 0, useful);
    if (atomic_load(&P.pending) > 0) {
        int spins = 0;
        while (atomic_load(&P.pending) > 0 && spins < 100000) spins++;
        pthread_mutex_lock(&P.mu);
        while (atomic_load(&P.pending) > 0) pthread_cond_wait(&P.cv_done, &P.mu);
        pthread_mutex_unlock(&P.mu);
    }
}

void kd_pool_shutdown(void) { pool_stop(); }
