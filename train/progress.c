/* train/progress.c — progress bar on a terminal, periodic lines elsewhere (see progress.h). */
#include <time.h>
#include <unistd.h>

#include "train/progress.h"

double kd_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void kd_format_duration(double s, char *buf, size_t n)
{
    if (!(s >= 0.0) || s > 1e7) {
        snprintf(buf, n, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%lds", t);
}

void kd_progress_init(kd_progress *p, FILE *out, int tty, int quiet, int64_t start_step, int64_t total, int64_t every)
{
    p->out = out;
    p->tty = tty >= 0 ? tty : isatty(fileno(out));
    p->quiet = quiet;
    p->total = total;
    p->start_step = start_step;
    p->every = every > 0 ? every : (total / 20 > 0 ? total / 20 : 1);
    p->t0 = p->last_draw = kd_now();
    p->drawn = 0;
}

void kd_progress_update(kd_progress *p, int64_t step, double loss, double lr, double samples_per_s)
{
    if (p->quiet) return;
    double now = kd_now();
    int64_t done = step - p->start_step;
    double eta = done > 0 ? (now - p->t0) / (double)done * (double)(p->total - step) : -1.0;
    char etas[32];
    kd_format_duration(eta, etas, sizeof etas);
    if (p->tty) {
        if (now - p->last_draw < 0.1 && step != p->total) return;
        p->last_draw = now;
        enum { W = 24 };
        int fill = p->total > 0 ? (int)(W * step / p->total) : 0;
        char bar[W + 1];
        for (int i = 0; i < W; i++) bar[i] = i < fill ? '#' : '.';
        bar[W] = '\0';
        fprintf(p->out, "\r[%s] %lld/%lld  loss %.4f  lr %.2e  %.1f samples/s  ETA %s\033[K", bar, (long long)step,
                (long long)p->total, loss, lr, samples_per_s, etas);
        fflush(p->out);
        p->drawn = 1;
    } else if (step % p->every == 0 || step == p->total) {
        fprintf(p->out, "step %lld/%lld  loss %.4f  lr %.2e  %.1f samples/s  ETA %s\n", (long long)step,
                (long long)p->total, loss, lr, samples_per_s, etas);
        fflush(p->out);
    }
}

void kd_progress_break(kd_progress *p)
{
    if (p->drawn) {
        fputc('\n', p->out);
        p->drawn = 0;
    }
}
