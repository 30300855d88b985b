/* train/plot.h — what kd's drawings (train/svg_chart.c, train/report.c) share: a growing text buffer,
 * escaping for XML and HTML, round tick values, and the exponential moving average that smooths a noisy
 * curve. */
#ifndef KD_TRAIN_PLOT_H
#define KD_TRAIN_PLOT_H

#include <stddef.h>

/* Text appended piece by piece; failed is set (and stays) when memory ran out. */
typedef struct kd_text {
    char *p;
    size_t len, cap;
    int failed;
} kd_text;

void kd_text_printf(kd_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s with & < > " ' as character references: safe in XML/HTML text and in quoted attribute values. */
void kd_text_escape(kd_text *t, const char *s);
void kd_text_free(kd_text *t);

/* Round ticks covering [lo, hi]: a step of 1, 2 or 5 times a power of ten that cuts the range into about
 * `target` intervals (Heckbert, "Nice numbers for graph labels", Graphics Gems, 1990), the first tick the
 * largest multiple of the step <= lo, the last the smallest >= hi. An empty range (lo == hi) is widened
 * around the value. Writes at most max ticks; returns how many, and the step in *step. */
int kd_nice_ticks(double lo, double hi, int target, double *ticks, int max, double *step);
/* A tick's text with the decimals its step needs: 0.25 -> "0.25", 100 -> "100", 2e-05 -> "2e-05". */
void kd_tick_label(double v, double step, char *buf, size_t n);

/* Exponential moving average with span s (weight a = 2 / (s + 1) on the newest point), debiased as pandas'
 * ewm(span=s, adjust=True, ignore_na=True).mean():
 *     out_t = sum_i (1 - a)^(k_t - k_i) y_i / sum_i (1 - a)^(k_t - k_i)
 * over the finite y_i up to t, k counting finite points only; NaN before the first finite point. */
void kd_ema(const double *y, size_t n, double span, double *out);
/* The span kd smooths n points with: n / 20 rounded (a twentieth of the run), at least 1. */
int kd_ema_span(size_t n);

#endif
