/* train/progress.c — progress bar on a terminal, periodic lines elsewhere (see progress.h). Training and
 * passes draw the same bar and the same ETA: the time so far per unit times the units left. */
#include <string.h>
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

static void common_init(kd_progress *p, FILE *out, int tty, int quiet, int64_t total)
{
    memset(p, 0, sizeof *p);
    p->out = out;
    p->tty = quiet ? 0 : tty >= 0 ? tty : isatty(fileno(out));
    p->quiet = quiet;
    p->total = total;
    p->t0 = p->last_draw = p->last_line = kd_now();
}

void kd_progress_init(kd_progress *p, FILE *out, int tty, int quiet, int64_t start_step, int64_t total, int64_t every)
{
    common_init(p, out, tty, quiet, total);
    p->start_step = start_step;
    p->every = every > 0 ? every : (total / 20 > 0 ? total / 20 : 1);
}

/* ETA from the units done since the start (done - start of `count`) and those left. */
static void eta_text(const kd_progress *p, double now, int64_t done, int64_t from, char *buf, size_t n)
{
    int64_t did = done - from;
    double eta = did > 0 ? (now - p->t0) / (double)did * (double)(p->total - done) : -1.0;
    kd_format_duration(eta, buf, n);
}

/* "\r[####....] " on the current line. */
static void draw_bar(kd_progress *p, int64_t done)
{
    enum { W = 24 };
    int fill = p->total > 0 ? (int)(W * (done < p->total ? done : p->total) / p->total) : 0;
    char bar[W + 1];
    for (int i = 0; i < W; i++) bar[i] = i < fill ? '#' : '.';
    bar[W] = '\0';
    fprintf(p->out, "\r[%s] ", bar);
}

void kd_progress_update(kd_progress *p, int64_t step, double loss, double lr, double samples_per_s)
{
    if (p->quiet) return;
    double now = kd_now();
    char etas[32];
    eta_text(p, now, step, p->start_step, etas, sizeof etas);
    if (p->tty) {
        if (now - p->last_draw < 0.1 && step != p->total) return;
        p->last_draw = now;
        draw_bar(p, step);
        fprintf(p->out, "%lld/%lld  loss %.4f  lr %.2e  %.1f samples/s  ETA %s\033[K", (long long)step,
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

void kd_progress_pass(kd_progress *p, FILE *out, int tty, int quiet, const char *what, const char *unit, int64_t total,
                      int keep)
{
    common_init(p, out, tty, quiet, total);
    p->what = what;
    p->unit = unit;
    p->keep = keep;
    p->every = total / 20 > 0 ? total / 20 : 1;
    p->next_line = p->every;
    p->every_s = 10.0;
}

/* "what done/total  rate unit/s" then the tail (ETA or the time taken). */
static void pass_line(kd_progress *p, double now, const char *tail)
{
    double dt = now - p->t0;
    fprintf(p->out, "%s %lld/%lld  %.1f %s/s  %s", p->what, (long long)p->done, (long long)p->total,
            dt > 0 ? (double)p->done / dt : 0.0, p->unit, tail);
}

void kd_progress_add(kd_progress *p, int64_t n)
{
    if (!p || p->quiet) return;
    p->done += n;
    double now = kd_now();
    char etas[32], tail[48];
    eta_text(p, now, p->done, 0, etas, sizeof etas);
    snprintf(tail, sizeof tail, "ETA %s", etas);
    if (p->tty) {
        if (now - p->last_draw < 0.1) return;
        p->last_draw = now;
        draw_bar(p, p->done);
        pass_line(p, now, tail);
        fputs("\033[K", p->out);
        fflush(p->out);
        p->drawn = 1;
    } else if (p->done >= p->next_line) {
        /* The next 5% mark past this point; a line only once every_s has gone by since the last. */
        p->next_line = (p->done / p->every + 1) * p->every;
        if (now - p->last_line < p->every_s || p->done >= p->total) return;
        p->last_line = now;
        p->lines++;
        pass_line(p, now, tail);
        fputc('\n', p->out);
        fflush(p->out);
    }
}

void kd_progress_end(kd_progress *p)
{
    if (!p || p->quiet) return;
    double now = kd_now();
    char took[32], tail[48];
    kd_format_duration(now - p->t0, took, sizeof took);
    snprintf(tail, sizeof tail, "in %s", took);
    if (p->tty) {
        if (p->keep) {
            draw_bar(p, p->done);
            pass_line(p, now, tail);
            fputs("\033[K\n", p->out);
        } else if (p->drawn) {
            fputs("\r\033[K", p->out);
        }
        fflush(p->out);
        p->drawn = 0;
    } else if (p->keep || p->lines) {
        pass_line(p, now, tail);
        fputc('\n', p->out);
        fflush(p->out);
    }
}

void kd_progress_callback(void *ctx, size_t done, size_t total)
{
    kd_progress *p = ctx;
    (void)total;
    kd_progress_add(p, (int64_t)done - p->done);
}
