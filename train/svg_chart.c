/* train/svg_chart.c — the run's chart as SVG paths (see svg_chart.h). Two panels share the step axis: the
 * losses (left axis) and dev accuracies (right axis) above, the learning rate below. A curve with more
 * points than three per pixel column is drawn per column: the raw loss as each column's min-max stroke,
 * the smooth curves as each column's last point. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/svg_chart.h"

enum { W = 780, L = 66, R = 66, MAIN_H = 270, LR_H = 60, GAP = 14, LEGEND_ROW = 17 };

static const char *const PART_COLOR[KD_CHART_PARTS] = { "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b" };
#define LOSS_COLOR "#1f77b4"
#define ACC_COLOR "#d62728"

/* A panel: the data box [x0, x1] x [y0, y1] drawn in pixels [px0, px1] x [py_bottom, py_top]. */
typedef struct frame {
    double x0, x1, y0, y1, px0, px1, pyb, pyt;
} frame;

static double fx(const frame *f, double x) { return f->px0 + (x - f->x0) / (f->x1 - f->x0) * (f->px1 - f->px0); }
static double fy(const frame *f, double y)
{
    double v = f->pyb + (y - f->y0) / (f->y1 - f->y0) * (f->pyt - f->pyb);
    return fmin(f->pyb, fmax(f->pyt, v));
}

/* A path through (x[i], y[i]), broken at non-finite y; thinned to a point per pixel column when long. */
static void curve(kd_text *t, const frame *f, const double *x, const double *y, size_t n, const char *attrs)
{
    size_t cols = (size_t)(f->px1 - f->px0);
    int thin = n > 3 * cols;
    int pen = 0;
    kd_text_printf(t, "<path fill=\"none\" %s d=\"", attrs);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(y[i])) {
            pen = 0;
            continue;
        }
        double px = fx(f, x[i]);
        /* thinned: a column's last point only */
        if (thin && i + 1 < n && isfinite(y[i + 1]) && (long)fx(f, x[i + 1]) == (long)px) continue;
        kd_text_printf(t, "%c%.1f %.1f", pen ? 'L' : 'M', px, fy(f, y[i]));
        pen = 1;
    }
    kd_text_printf(t, "\"/>\n");
}

/* The raw curve: a polyline, or per pixel column a stroke from its lowest to its highest value. */
static void raw_curve(kd_text *t, const frame *f, const kd_series *s, const char *attrs)
{
    size_t cols = (size_t)(f->px1 - f->px0);
    if (s->n <= 3 * cols) {
        curve(t, f, s->x, s->y, s->n, attrs);
        return;
    }
    kd_text_printf(t, "<path fill=\"none\" %s d=\"", attrs);
    size_t i = 0;
    while (i < s->n) {
        long col = (long)fx(f, s->x[i]);
        double lo = INFINITY, hi = -INFINITY;
        for (; i < s->n && (long)fx(f, s->x[i]) == col; i++)
            if (isfinite(s->y[i])) lo = fmin(lo, s->y[i]), hi = fmax(hi, s->y[i]);
        if (hi >= lo) kd_text_printf(t, "M%ld.5 %.1fV%.1f", col, fy(f, lo), fy(f, hi) - 0.5);
    }
    kd_text_printf(t, "\"/>\n");
}

static void series_range(const double *y, size_t n, double *lo, double *hi)
{
    for (size_t i = 0; i < n; i++)
        if (isfinite(y[i])) *lo = fmin(*lo, y[i]), *hi = fmax(*hi, y[i]);
}

static int has_finite(const kd_series *s)
{
    if (!s) return 0;
    for (size_t i = 0; i < s->n; i++)
        if (isfinite(s->y[i])) return 1;
    return 0;
}

typedef struct legend_item {
    char label[96];
    const char *attrs;   /* the swatch's stroke */
    int marker;
} legend_item;

/* Legend rows from y: swatch and label, left to right, wrapping; returns the y below them. */
static int legend(kd_text *t, const legend_item *it, int n, int y)
{
    int x = L;
    for (int i = 0; i < n; i++) {
        int w = 34 + (int)(6.6 * (double)strlen(it[i].label));
        if (x + w > W - 10 && x > L) x = L, y += LEGEND_ROW;
        kd_text_printf(t, "<path fill=\"none\" %s d=\"M%d %dH%d\"/>", it[i].attrs, x, y - 4, x + 24);
        if (it[i].marker) kd_text_printf(t, "<circle cx=\"%d\" cy=\"%d\" r=\"3\" fill=\"%s\"/>", x + 12, y - 4, ACC_COLOR);
        kd_text_printf(t, "<text x=\"%d\" y=\"%d\">", x + 29, y);
        kd_text_escape(t, it[i].label);
        kd_text_printf(t, "</text>\n");
        x += w;
    }
    return y + LEGEND_ROW;
}

void kd_svg_chart_render(const kd_chart_data *d, kd_text *t)
{
    size_t n = d->loss ? d->loss->n : 0;
    int span = kd_ema_span(n);
    /* The smoothed loss and parts. */
    double *sm[1 + KD_CHART_PARTS] = { NULL };
    const kd_series *src[1 + KD_CHART_PARTS] = { d->loss };
    for (int k = 0; k < KD_CHART_PARTS; k++) src[1 + k] = has_finite(d->parts[k]) ? d->parts[k] : NULL;
    for (int k = 0; k < 1 + KD_CHART_PARTS; k++) {
        if (!src[k] || !src[k]->n) continue;
        sm[k] = malloc(src[k]->n * sizeof(double));
        if (!sm[k]) {
            t->failed = 1;
            goto done;
        }
        kd_ema(src[k]->y, src[k]->n, span, sm[k]);
    }

    /* Ranges: steps over the whole run; losses from 0 to the highest raw or smoothed value. */
    double xmax = d->total_steps > 0 ? (double)d->total_steps : 1.0;
    if (n) xmax = fmax(xmax, d->loss->x[n - 1]);
    double llo = 0.0, lhi = -INFINITY;
    if (n) series_range(d->loss->y, n, &llo, &lhi);
    for (int k = 1; k < 1 + KD_CHART_PARTS; k++)
        if (sm[k]) series_range(sm[k], src[k]->n, &llo, &lhi);
    if (!(lhi > llo)) lhi = llo + 1.0;
    double alo = INFINITY, ahi = -INFINITY;
    if (d->dev) series_range(d->dev->y, d->dev->n, &alo, &ahi);
    if (d->teacher_accuracy >= 0) alo = fmin(alo, d->teacher_accuracy), ahi = fmax(ahi, d->teacher_accuracy);
    int has_acc = ahi >= alo;

    /* Legend first: its height places the panels. */
    legend_item it[2 + KD_CHART_PARTS + 2];
    int ni = 0;
    char tmp[96];
    if (n) {
        it[ni++] = (legend_item){ "loss per step", "stroke=\"" LOSS_COLOR "\" stroke-opacity=\"0.3\" stroke-width=\"1\"", 0 };
        snprintf(tmp, sizeof tmp, "loss, moving average (EMA, span %d step%s)", span, span == 1 ? "" : "s");
        legend_item e = { "", "stroke=\"" LOSS_COLOR "\" stroke-width=\"2\"", 0 };
        snprintf(e.label, sizeof e.label, "%s", tmp);
        it[ni++] = e;
    }
    char part_attrs[KD_CHART_PARTS][80];
    for (int k = 0; k < KD_CHART_PARTS; k++) {
        if (!sm[1 + k]) continue;
        snprintf(part_attrs[k], sizeof part_attrs[k], "stroke=\"%s\" stroke-width=\"1.5\"", PART_COLOR[k]);
        legend_item e = { "", part_attrs[k], 0 };
        snprintf(e.label, sizeof e.label, "%s, EMA", d->part_names[k] ? d->part_names[k] : "part");
        it[ni++] = e;
    }
    if (d->dev && d->dev->n) it[ni++] = (legend_item){ "student dev accuracy", "stroke=\"" ACC_COLOR "\" stroke-width=\"2\"", 1 };
    if (d->teacher_accuracy >= 0)
        it[ni++] = (legend_item){ "teacher dev accuracy", "stroke=\"" ACC_COLOR "\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"", 0 };

    kd_text body = { 0 };
    int top = legend(&body, it, ni, 44) + 4;
    frame m = { 0, xmax, 0, 1, L, W - R, top + MAIN_H, top };
    frame lr = { 0, xmax, 0, 1, L, W - R, top + MAIN_H + GAP + LR_H, top + MAIN_H + GAP };
    int H = (int)lr.pyb + 46;
    if (!d->sched) H = (int)m.pyb + 46;

    double tk[32], step;
    char lab[48];
    /* Loss axis (left), with horizontal grid lines. */
    int nt = kd_nice_ticks(llo, lhi, 5, tk, 32, &step);
    m.y0 = tk[0];
    m.y1 = tk[nt - 1];
    for (int i = 0; i < nt; i++) {
        double y = fy(&m, tk[i]);
        kd_tick_label(tk[i], step, lab, sizeof lab);
        kd_text_printf(&body, "<path stroke=\"#e6e6e6\" d=\"M%d %.1fH%d\"/><text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" "
                              "fill=\"" LOSS_COLOR "\">%s</text>\n", L, y, W - R, L - 6, y + 4, lab);
    }
    /* Step axis: vertical grid lines through both panels, labels under the lowest. */
    double xs;
    int nx = kd_nice_ticks(0, xmax, 6, tk, 32, &xs);
    double ybot = d->sched ? lr.pyb : m.pyb;
    for (int i = 0; i < nx; i++) {
        if (tk[i] > xmax * (1 + 1e-9)) break;
        double x = fx(&m, tk[i]);
        kd_tick_label(tk[i], xs, lab, sizeof lab);
        kd_text_printf(&body, "<path stroke=\"#e6e6e6\" d=\"M%.1f %.1fV%.1f\"/>", x, m.pyt, m.pyb);
        if (d->sched) kd_text_printf(&body, "<path stroke=\"#e6e6e6\" d=\"M%.1f %.1fV%.1f\"/>", x, lr.pyt, lr.pyb);
        kd_text_printf(&body, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x, ybot + 16, lab);
    }
    kd_text_printf(&body, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"middle\">optimizer step</text>\n", (L + W - R) / 2,
                   ybot + 34);
    kd_text_printf(&body, "<text transform=\"translate(16 %.1f) rotate(-90)\" text-anchor=\"middle\" fill=\"" LOSS_COLOR
                          "\">training loss</text>\n", (m.pyt + m.pyb) / 2);

    /* Epoch boundaries, through both panels, and each epoch's name at its start. */
    if (d->epochs > 1 && d->total_steps > 0) {
        double spe = (double)d->total_steps / d->epochs;
        for (int e = 0; e < d->epochs; e++) {
            double x = fx(&m, e * spe);
            if (e > 0)
                kd_text_printf(&body, "<path stroke=\"#888\" stroke-dasharray=\"4 3\" d=\"M%.1f %.1fV%.1f\"/>\n", x, m.pyt, ybot);
            if (d->epochs <= 12)
                kd_text_printf(&body, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#666\" font-size=\"11\">epoch %d</text>\n", x + 4,
                               m.pyt + 13, e + 1);
        }
    }

    /* Losses: the raw curve faint, then the moving averages. */
    if (n) {
        raw_curve(&body, &m, d->loss, "stroke=\"" LOSS_COLOR "\" stroke-opacity=\"0.3\" stroke-width=\"1\"");
        for (int k = 1; k < 1 + KD_CHART_PARTS; k++)
            if (sm[k]) curve(&body, &m, src[k]->x, sm[k], src[k]->n, part_attrs[k - 1]);
        curve(&body, &m, d->loss->x, sm[0], n, "stroke=\"" LOSS_COLOR "\" stroke-width=\"2\"");
    }

    /* Accuracy axis (right), the student's points and the teacher's line. */
    if (has_acc) {
        double a0 = fmax(0.0, alo - 0.01), a1 = fmin(1.0, ahi + 0.01), as;
        int na = kd_nice_ticks(a0, a1, 4, tk, 32, &as);
        frame a = m;
        a.y0 = fmax(0.0, tk[0]);
        a.y1 = fmin(1.0, tk[na - 1]);
        if (!(a.y1 > a.y0)) a.y0 = 0, a.y1 = 1;
        for (int i = 0; i < na; i++) {
            if (tk[i] < a.y0 - 1e-12 || tk[i] > a.y1 + 1e-12) continue;
            kd_tick_label(tk[i], as, lab, sizeof lab);
            kd_text_printf(&body, "<text x=\"%d\" y=\"%.1f\" fill=\"" ACC_COLOR "\">%s</text>\n", W - R + 6, fy(&a, tk[i]) + 4, lab);
        }
        kd_text_printf(&body, "<text transform=\"translate(%d %.1f) rotate(90)\" text-anchor=\"middle\" fill=\"" ACC_COLOR
                              "\">dev accuracy</text>\n", W - 14, (m.pyt + m.pyb) / 2);
        if (d->teacher_accuracy >= 0) {
            double y = fy(&a, d->teacher_accuracy);
            kd_text_printf(&body, "<path stroke=\"" ACC_COLOR "\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\" "
                                  "d=\"M%d %.1fH%d\"/><text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"" ACC_COLOR
                                  "\" font-size=\"11\">teacher %.4f</text>\n", L, y, W - R, W - R - 4, y - 4, d->teacher_accuracy);
        }
        if (d->dev && d->dev->n) {
            curve(&body, &a, d->dev->x, d->dev->y, d->dev->n, "stroke=\"" ACC_COLOR "\" stroke-width=\"2\"");
            for (size_t i = 0; i < d->dev->n; i++)
                if (isfinite(d->dev->y[i]))
                    kd_text_printf(&body, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"" ACC_COLOR "\"/>\n",
                                   fx(&a, d->dev->x[i]), fy(&a, d->dev->y[i]));
        }
    }
    kd_text_printf(&body, "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#888\"/>\n", L, m.pyt,
                   W - L - R, MAIN_H);

    /* The learning-rate panel: the schedule over every step of the run. */
    if (d->sched) {
        int64_t total = d->total_steps > 0 ? d->total_steps : 1;
        size_t cols = (size_t)(W - L - R), np = (size_t)total <= 2 * cols ? (size_t)total : 2 * cols;
        double *x = malloc(np * sizeof *x), *y = malloc(np * sizeof *y), hi = 0;
        if (!x || !y) {
            t->failed = 1;
        } else {
            for (size_t i = 0; i < np; i++) {
                /* the optimizer step s + 1 runs at kd_schedule_lr(s) */
                int64_t s = np == (size_t)total ? (int64_t)i : (int64_t)((double)i * (double)(total - 1) / (double)(np - 1));
                x[i] = (double)(s + 1);
                y[i] = kd_schedule_lr(d->sched, s);
                hi = fmax(hi, y[i]);
            }
            int nl = kd_nice_ticks(0, hi > 0 ? hi : 1, 2, tk, 32, &step);
            lr.y1 = tk[nl - 1];
            for (int i = 0; i < nl; i++) {
                kd_tick_label(tk[i], step, lab, sizeof lab);
                kd_text_printf(&body, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"#555\" font-size=\"11\">%s</text>\n",
                               L - 6, fy(&lr, tk[i]) + 4, lab);
            }
            curve(&body, &lr, x, y, np, "stroke=\"#555\" stroke-width=\"1.5\"");
            kd_text_printf(&body, "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#888\"/>\n"
                                  "<text x=\"%d\" y=\"%.1f\" fill=\"#555\" font-size=\"11\">learning rate</text>\n",
                           L, lr.pyt, W - L - R, LR_H, L + 6, lr.pyt + 13);
        }
        free(x);
        free(y);
    }

    kd_text_printf(t, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                      "<text x=\"%d\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">", W, H, W, H, W / 2);
    kd_text_escape(t, d->title ? d->title : "");
    kd_text_printf(t, "</text>\n");
    if (body.failed) t->failed = 1;
    else if (body.len) kd_text_printf(t, "%s", body.p);
    kd_text_free(&body);
    kd_text_printf(t, "</svg>\n");
done:
    for (int k = 0; k < 1 + KD_CHART_PARTS; k++) free(sm[k]);
}

kd_status kd_svg_chart_write(const char *path, const kd_chart_data *d)
{
    kd_text t = { 0 };
    kd_svg_chart_render(d, &t);
    kd_status st = t.failed ? kd_fail(KD_ERR_NOMEM, "%s: out of memory drawing the chart", path)
                            : kd_write_file_atomic(path, t.p, t.len);
    kd_text_free(&t);
    return st;
}
