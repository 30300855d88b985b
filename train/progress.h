/* train/progress.h — what a long run shows while it works: on a terminal one redrawn bar, otherwise plain
 * lines for logs; nothing when quiet. One line format for everything long: training (step/total, loss, lr,
 * samples/s, ETA) and a pass over a data set (the teacher's logits, an evaluation, tokenizing: done/total,
 * rate, ETA). */
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
    /* A pass (kd_progress_pass): what it does, the unit it counts, how far it is. */
    const char *what, *unit;
    int64_t done, next_line;
    double last_line, every_s;
    int keep, lines;
} kd_progress;

/* Seconds on a monotonic clock. */
double kd_now(void);

/* Training. tty: 1, 0, or -1 to ask isatty(out). every: steps between plain lines (0: about 20 lines a run). */
void kd_progress_init(kd_progress *p, FILE *out, int tty, int quiet, int64_t start_step, int64_t total, int64_t every);
void kd_progress_update(kd_progress *p, int64_t step, double loss, double lr, double samples_per_s);
/* End the bar's line (before other output, and at the end). */
void kd_progress_break(kd_progress *p);

/* A pass over `total` units (examples, lines) named `what` ("teacher logits"). On a terminal the bar
 * "[####....] what done/total  rate unit/s  ETA"; otherwise a plain line at each 5% of the pass, at most one
 * every p->every_s seconds (10), and a last one with the pass's time. keep: 1 prints that last line (on a
 * terminal the bar stays) always; 0 only when the pass printed a plain line before (on a terminal the bar is
 * cleared): for passes that are short as a rule, like a dev evaluation. */
void kd_progress_pass(kd_progress *p, FILE *out, int tty, int quiet, const char *what, const char *unit, int64_t total,
                      int keep);
/* n more units done; p may be NULL (no progress). */
void kd_progress_add(kd_progress *p, int64_t n);
/* The pass is over; p may be NULL. */
void kd_progress_end(kd_progress *p);
/* The same as a callback for code below train/ (data/batch.h): ctx is a kd_progress begun with the total. */
void kd_progress_callback(void *ctx, size_t done, size_t total);

/* "1h02m", "3m07s", "12s" */
void kd_format_duration(double seconds, char *buf, size_t n);

#endif
