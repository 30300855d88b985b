/* train/svg_chart.c — loss and accuracy curves as SVG polylines (see svg_chart.h). Axes are scaled to the
 * data's range; the accuracy axis spans [min, max] of the dev points, padded, within [0, 1]. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "train/svg_chart.h"

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

enum { W = 720, H = 400, L = 70, R = 70, T = 40, B = 50 };

static double map(double v, double lo, double hi, double a, double b)
{
    return hi > lo ? a + (v - lo) / (hi - lo) * (b - a) : (a + b) / 2;
}

static void polyline(sbuf *b, const kd_series *s, double x0, double x1, double y0, double y1, const char *color)
{
    if (s->n == 0) return;
    sb_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
    for (size_t i = 0; i < s->n; i++) {
        if (!isfinite(s->y[i])) continue;
        sb_printf(b, "%.1f,%.1f ", map(s->x[i], x0, x1, L, W - R), map(s->y[i], y0, y1, H - B, T));
    }
    sb_printf(b, "\"/>\n");
    if (s->n < 40)
        for (size_t i = 0; i < s->n; i++)
            if (isfinite(s->y[i]))
                sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", map(s->x[i], x0, x1, L, W - R),
                          map(s->y[i], y0, y1, H - B, T), color);
}

kd_status kd_svg_chart_write(const char *path, const char *title, const kd_series *loss, const kd_series *dev)
{
    double x1 = 1, l0 = INFINITY, l1 = -INFINITY, a0 = INFINITY, a1 = -INFINITY;
    for (size_t i = 0; i < loss->n; i++) {
        x1 = fmax(x1, loss->x[i]);
        if (isfinite(loss->y[i])) {
            l0 = fmin(l0, loss->y[i]);
            l1 = fmax(l1, loss->y[i]);
        }
    }
    for (size_t i = 0; i < dev->n; i++) {
        x1 = fmax(x1, dev->x[i]);
        a0 = fmin(a0, dev->y[i]);
        a1 = fmax(a1, dev->y[i]);
    }
    if (!(l1 >= l0)) l0 = 0, l1 = 1;
    l0 = fmin(0.0, l0);
    if (!(a1 >= a0)) a0 = 0, a1 = 1;
    a0 = fmax(0.0, a0 - 0.05);
    a1 = fmin(1.0, a1 + 0.05);

    sbuf b = { 0 };
    sb_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
                  "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H);
    sb_printf(&b, "<text x=\"%d\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">", W / 2);
    for (const char *c = title; *c; c++) {
        if (*c == '<') sb_printf(&b, "&lt;");
        else if (*c == '&') sb_printf(&b, "&amp;");
        else sb_printf(&b, "%c", *c);
    }
    sb_printf(&b, "</text>\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#888\"/>\n", L, T,
              W - L - R, H - T - B);
    for (int k = 0; k <= 4; k++) {
        double f = k / 4.0, y = map(f, 0, 1, H - B, T);
        sb_printf(&b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", L, W - R, y, y);
        sb_printf(&b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"#1f77b4\">%.3g</text>\n", L - 6, y + 4,
                  l0 + f * (l1 - l0));
        sb_printf(&b, "<text x=\"%d\" y=\"%.1f\" fill=\"#d62728\">%.3f</text>\n", W - R + 6, y + 4, a0 + f * (a1 - a0));
        sb_printf(&b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.0f</text>\n", map(f, 0, 1, L, W - R),
                  H - B + 18, f * x1);
    }
    sb_printf(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">optimizer step</text>\n", W / 2, H - 12);
    sb_printf(&b, "<text x=\"16\" y=\"%d\" fill=\"#1f77b4\" transform=\"rotate(-90 16 %d)\" text-anchor=\"middle\">"
                  "training loss</text>\n", H / 2, H / 2);
    sb_printf(&b, "<text x=\"%d\" y=\"%d\" fill=\"#d62728\" transform=\"rotate(90 %d %d)\" text-anchor=\"middle\">"
                  "dev accuracy</text>\n", W - 14, H / 2, W - 14, H / 2);
    polyline(&b, loss, 0, x1, l0, l1, "#1f77b4");
    polyline(&b, dev, 0, x1, a0, a1, "#d62728");
    sb_printf(&b, "</svg>\n");
    kd_status st = b.failed ? kd_fail(KD_ERR_NOMEM, "%s: out of memory drawing the chart", path)
                            : kd_write_file_atomic(path, b.p, b.len);
    free(b.p);
    return st;
}
