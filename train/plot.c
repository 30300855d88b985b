/* train/plot.c — text buffer, escaping, round ticks and EMA for kd's charts and reports (see plot.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/plot.h"

void kd_text_printf(kd_text *t, const char *fmt, ...)
{
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->p && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap ? t->cap * 2 : 4096) + (size_t)n;
        char *np = realloc(t->p, cap);
        if (!np) {
            t->failed = 1;
            return;
        }
        t->p = np;
        t->cap = cap;
    }
}

void kd_text_escape(kd_text *t, const char *s)
{
    for (const char *c = s; *c; c++) {
        switch (*c) {
        case '&': kd_text_printf(t, "&amp;"); break;
        case '<': kd_text_printf(t, "&lt;"); break;
        case '>': kd_text_printf(t, "&gt;"); break;
        case '"': kd_text_printf(t, "&quot;"); break;
        case '\'': kd_text_printf(t, "&#39;"); break;
        default:
            /* Control characters other than tab and newline are not allowed in XML 1.0. */
            if ((unsigned char)*c < 0x20 && *c != '\t' && *c != '\n') kd_text_printf(t, "?");
            else kd_text_printf(t, "%c", *c);
        }
    }
}

void kd_text_free(kd_text *t)
{
    free(t->p);
    memset(t, 0, sizeof *t);
}

/* 1, 2, 5 or 10 times 10^floor(log10 x): the nice number nearest x from below or above (round). */
static double nice_number(double x)
{
    double e = floor(log10(x)), f = x / pow(10.0, e), nf;
    if (f < 1.5) nf = 1;
    else if (f < 3) nf = 2;
    else if (f < 7) nf = 5;
    else nf = 10;
    return nf * pow(10.0, e);
}

int kd_nice_ticks(double lo, double hi, int target, double *ticks, int max, double *step)
{
    if (!(hi >= lo) || !isfinite(lo) || !isfinite(hi)) lo = 0, hi = 1;
    if (hi == lo) {
        double w = lo != 0.0 ? fabs(lo) * 0.1 : 1.0;
        lo -= w;
        hi += w;
    }
    if (target < 1) target = 1;
    double d = nice_number((hi - lo) / target);
    /* The epsilon keeps a bound that is a multiple of the step (up to rounding) from adding a tick. */
    double first = floor(lo / d + 1e-9) * d, last = ceil(hi / d - 1e-9) * d;
    int n = 0;
    for (double k = 0; n < max; k++) {
        double v = first + k * d;
        if (v > last + d * 0.5) break;
        if (fabs(v) < d * 1e-9) v = 0.0;   /* no "-0" */
        ticks[n++] = v;
    }
    if (step) *step = d;
    return n;
}

void kd_tick_label(double v, double step, char *buf, size_t n)
{
    if (v == 0.0) {
        snprintf(buf, n, "0");
        return;
    }
    if (step < 1e-3 || fabs(v) >= 1e7) {
        snprintf(buf, n, "%g", v);
        return;
    }
    int dec = step >= 1.0 ? 0 : (int)ceil(-log10(step) - 1e-9);
    snprintf(buf, n, "%.*f", dec, v);
}

void kd_ema(const double *y, size_t n, double span, double *out)
{
    double a = 2.0 / (span + 1.0), num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (isfinite(y[i])) {
            num = (1.0 - a) * num + y[i];
            den = (1.0 - a) * den + 1.0;
        }
        out[i] = den > 0.0 ? num / den : NAN;
    }
}

int kd_ema_span(size_t n)
{
    long s = lround((double)n / 20.0);
    return s < 1 ? 1 : (int)s;
}
