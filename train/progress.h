/* train/progress.h — what a long run shows while it works: on a terminal one redrawn bar
 * (step/total, loss, lr, samples/s, ETA); otherwise a plain line every `every` steps, for logs. */
#ifndef KD_TRAIN_PROGRESS_H
#define KD_TRAIN_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct kd_progress {
    FILE *out;
    int tty;               /* redraw in place */
    int quiet;             /* print nothing */
    int64_t total, every, start_step;
    double t0, last_draw;
    int drawn;             /* a bar is on the current line */
} kd_progress;

/* Seconds on a monotonic clock. */
double kd_now(void);

/* tty: 1, 0, or -1 to ask isatty(out). every: steps between plain lines (0: about 20 lines a run). */
void kd_progress_init(kd_progress *p, FILE *out, int tty, int quiet, int64_t start_step, int64_t total, int64_t every);
void kd_progress_update(kd_progress *p, int64_t step, double loss, double lr, double samples_per_s);
/* End the bar's line (before other output, and at the end). */
void kd_progress_break(kd_progress *p);
/* "1h02m", "3m07s", "12s" */
void kd_format_duration(double seconds, char *buf, size_t n);

#endif
