/* train/report.c — the HTML report pages (see report.h). The page is built in memory, then written with
 * kd_write_file_atomic. Layout: a summary at a glance first, then the chart, the per-epoch table, the dev
 * confusion matrix as a heat map (cells shaded by the share of their true class) with per-class precision,
 * recall and F1, the data, the models, time and throughput, the command and every flag, the files. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "train/metrics.h"
#include "train/plot.h"
#include "train/progress.h"
#include "train/report.h"

void kd_run_info_free(kd_run_info *info)
{
    if (!info) return;
    free(info->command_line);
    for (int i = 0; i < info->nflags; i++) {
        free(info->flags[i].name);
        free(info->flags[i].value);
    }
    free(info->flags);
    memset(info, 0, sizeof *info);
}

static const char CSS[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1040px;padding:0 16px;"
    "color:#222;line-height:1.4}\n"
    "h1{font-size:1.5em;margin-bottom:4px}h2{font-size:1.2em;margin-top:32px;border-bottom:1px solid #ddd;"
    "padding-bottom:4px}\n"
    ".sub{color:#666;margin-top:0}.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}\n"
    ".card{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:180px;background:#fafafa}\n"
    ".card .k{color:#666;font-size:.85em}.card .v{font-size:1.35em;font-weight:600}.card .n{color:#666;font-size:.85em}\n"
    "table{border-collapse:collapse;margin:8px 0;font-size:.92em}th,td{border:1px solid #ddd;padding:4px 8px;"
    "text-align:left}\n"
    "th{background:#f3f3f3}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}\n"
    "table.heat td.num{min-width:64px;text-align:center}td.best{font-weight:600}\n"
    "pre{background:#f6f6f6;padding:8px;overflow-x:auto;white-space:pre-wrap;word-break:break-all}\n"
    ".row{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}.muted{color:#888}\n"
    "svg{max-width:100%;height:auto}code{background:#f3f3f3;padding:0 3px}\n";

static void page_begin(kd_text *t, const char *title)
{
    /* The policy makes the browser refuse to fetch anything: the page stands alone, and says so if not. */
    kd_text_printf(t, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src &#39;none&#39;; "
                      "style-src &#39;unsafe-inline&#39;\">\n"
                      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>");
    kd_text_escape(t, title);
    kd_text_printf(t, "</title>\n<style>\n%s</style>\n</head>\n<body>\n", CSS);
}

static kd_status page_write(const char *path, kd_text *t)
{
    kd_text_printf(t, "</body>\n</html>\n");
    kd_status st = t->failed ? kd_fail(KD_ERR_NOMEM, "%s: out of memory writing the report", path)
                             : kd_write_file_atomic(path, t->p, t->len);
    kd_text_free(t);
    return st;
}

/* 22713218 -> "22,713,218" */
static void group_int(int64_t v, char *buf, size_t n)
{
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", (long long)(v < 0 ? -v : v));
    size_t len = strlen(raw), o = 0;
    if (v < 0 && o + 1 < n) buf[o++] = '-';
    for (size_t i = 0; i < len && o + 2 < n; i++) {
        buf[o++] = raw[i];
        if ((len - 1 - i) % 3 == 0 && i + 1 < len) buf[o++] = ',';
    }
    buf[o] = '\0';
}

static void card(kd_text *t, const char *key, const char *value, const char *note)
{
    kd_text_printf(t, "<div class=\"card\"><div class=\"k\">");
    kd_text_escape(t, key);
    kd_text_printf(t, "</div><div class=\"v\">");
    kd_text_escape(t, value);
    kd_text_printf(t, "</div><div class=\"n\">");
    kd_text_escape(t, note ? note : "");
    kd_text_printf(t, "</div></div>\n");
}

static const char *label_name(const char *const *names, int c, char *buf, size_t n)
{
    if (names && names[c]) return names[c];
    snprintf(buf, n, "%d", c);
    return buf;
}

/* The confusion matrix as a heat map: a cell's shade is its share of the true class's examples (the row),
 * so the diagonal reads as per-class recall; then precision, recall, F1 and support per class. */
static void confusion_section(kd_text *t, const int64_t *conf, int k, const char *const *names)
{
    kd_metrics m;
    if (kd_metrics_init(&m, k) != KD_OK) {
        t->failed = 1;
        return;
    }
    memcpy(m.confusion, conf, (size_t)k * (size_t)k * sizeof *conf);
    for (size_t i = 0; i < (size_t)k * (size_t)k; i++) m.count += conf[i];
    kd_metrics_finish(&m);
    char id[16];
    kd_text_printf(t, "<div class=\"row\"><table class=\"heat\">\n<tr><th>true \\ predicted</th>");
    for (int c = 0; c < k; c++) {
        kd_text_printf(t, "<th class=\"num\">");
        kd_text_escape(t, label_name(names, c, id, sizeof id));
        kd_text_printf(t, "</th>");
    }
    kd_text_printf(t, "<th class=\"num\">total</th></tr>\n");
    for (int a = 0; a < k; a++) {
        kd_text_printf(t, "<tr><th>");
        kd_text_escape(t, label_name(names, a, id, sizeof id));
        kd_text_printf(t, "</th>");
        int64_t row = m.support[a];
        for (int b = 0; b < k; b++) {
            int64_t v = conf[(size_t)a * (size_t)k + (size_t)b];
            double f = row > 0 ? (double)v / (double)row : 0.0;
            /* diagonal blue, off-diagonal red: right and wrong at a glance */
            const char *rgb = a == b ? "31,119,180" : "214,39,40";
            kd_text_printf(t, "<td class=\"num\" style=\"background:rgba(%s,%.3f);color:%s\">%lld<br><small>%.1f%%</small></td>",
                           rgb, 0.08 + 0.85 * f, f > 0.55 ? "#fff" : "#222", (long long)v, 100.0 * f);
        }
        kd_text_printf(t, "<td class=\"num\">%lld</td></tr>\n", (long long)row);
    }
    kd_text_printf(t, "</table>\n<table>\n<tr><th>label</th><th class=\"num\">precision</th><th class=\"num\">recall</th>"
                      "<th class=\"num\">F1</th><th class=\"num\">support</th></tr>\n");
    for (int c = 0; c < k; c++) {
        kd_text_printf(t, "<tr><td>");
        kd_text_escape(t, label_name(names, c, id, sizeof id));
        kd_text_printf(t, "</td><td class=\"num\">%.4f</td><td class=\"num\">%.4f</td><td class=\"num\">%.4f</td>"
                          "<td class=\"num\">%lld</td></tr>\n", m.precision[c], m.recall[c], m.f1[c], (long long)m.support[c]);
    }
    kd_text_printf(t, "<tr><th>accuracy %.4f</th><th class=\"num\" colspan=\"2\">macro-recall %.4f</th>"
                      "<th class=\"num\">macro-F1 %.4f</th><th class=\"num\">%lld</th></tr>\n</table></div>\n",
                   m.accuracy, m.macro_recall, m.macro_f1, (long long)m.count);
    kd_metrics_free(&m);
}

/* Shapes and sizes of models, a row each. */
static void models_table(kd_text *t, const char *const *roles, const kd_bert_config *const *cfg, const int64_t *params,
                         const char *const *dirs, int n)
{
    char p[32];
    kd_text_printf(t, "<table>\n<tr><th>model</th><th class=\"num\">layers</th><th class=\"num\">hidden</th>"
                      "<th class=\"num\">heads</th><th class=\"num\">FFN</th><th class=\"num\">vocabulary</th>"
                      "<th class=\"num\">positions</th><th class=\"num\">labels</th><th class=\"num\">parameters</th>"
                      "<th>directory</th></tr>\n");
    for (int i = 0; i < n; i++) {
        if (!cfg[i]) continue;
        group_int(params[i], p, sizeof p);
        kd_text_printf(t, "<tr><td>");
        kd_text_escape(t, roles[i]);
        kd_text_printf(t, "</td><td class=\"num\">%d</td><td class=\"num\">%d</td><td class=\"num\">%d</td>"
                          "<td class=\"num\">%d</td><td class=\"num\">%d</td><td class=\"num\">%d</td><td class=\"num\">%d</td>"
                          "<td class=\"num\">%s</td><td>", cfg[i]->num_layers, cfg[i]->hidden_size, cfg[i]->num_heads,
                       cfg[i]->intermediate_size, cfg[i]->vocab_size, cfg[i]->max_position, cfg[i]->num_labels, p);
        if (dirs && dirs[i]) {
            kd_text_printf(t, "<code>");
            kd_text_escape(t, dirs[i]);
            kd_text_printf(t, "</code>");
        }
        kd_text_printf(t, "</td></tr>\n");
    }
    kd_text_printf(t, "</table>\n");
}

static void command_section(kd_text *t, const kd_run_info *info)
{
    kd_text_printf(t, "<h2>Command</h2>\n");
    if (!info) {
        kd_text_printf(t, "<p class=\"muted\">Run through the library (no command line).</p>\n");
        return;
    }
    kd_text_printf(t, "<pre>");
    kd_text_escape(t, info->command_line ? info->command_line : "");
    kd_text_printf(t, "</pre>\n<table>\n<tr><th>flag</th><th>value</th><th>from</th></tr>\n");
    for (int i = 0; i < info->nflags; i++) {
        kd_text_printf(t, "<tr><td><code>");
        kd_text_escape(t, info->flags[i].name);
        kd_text_printf(t, "</code></td><td%s>", info->flags[i].given ? " class=\"best\"" : "");
        kd_text_escape(t, info->flags[i].value);
        kd_text_printf(t, "</td><td>%s</td></tr>\n", info->flags[i].given ? "given" : "default");
    }
    kd_text_printf(t, "</table>\n");
}

/* A flag's value as the command had it, or NULL. */
static const char *flag_value(const kd_run_info *info, const char *name)
{
    for (int i = 0; info && i < info->nflags; i++)
        if (!strcmp(info->flags[i].name, name)) return info->flags[i].value;
    return NULL;
}

/* One file or directory of the output, linked relative to the report, when it exists. */
static void file_row(kd_text *t, const char *dir, const char *name, const char *what)
{
    char p[2 * PATH_MAX];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (stat(p, &sb) != 0) return;
    kd_text_printf(t, "<tr><td><a href=\"");
    kd_text_escape(t, name);
    kd_text_printf(t, "\"><code>");
    kd_text_escape(t, p);
    kd_text_printf(t, "</code></a></td><td>");
    kd_text_escape(t, what);
    kd_text_printf(t, "</td></tr>\n");
}

kd_status kd_report_write_run(const char *path, const kd_run_report *r)
{
    const kd_train_state *s = r->state;
    kd_text t = { 0 };
    char title[PATH_MAX + 64], a[64], b[160], c[64], d[64];
    snprintf(title, sizeof title, "kd %s: %s", r->command, r->out_dir);
    page_begin(&t, title);
    kd_text_printf(&t, "<h1>");
    kd_text_escape(&t, title);
    kd_text_printf(&t, "</h1>\n<p class=\"sub\">");
    if (r->finished)
        kd_text_printf(&t, "Finished: %lld optimizer steps, %d epoch(s).", (long long)s->global_step, s->epoch);
    else
        kd_text_printf(&t, "Not finished: %lld of %lld optimizer steps, %zu epoch(s) evaluated (this page is rewritten "
                           "after every epoch).", (long long)s->global_step, (long long)s->total_steps, s->n_epochs);
    kd_text_printf(&t, "</p>\n");

    /* At a glance. */
    const kd_epoch_record *best = NULL, *last = s->n_epochs ? &s->epochs[s->n_epochs - 1] : NULL;
    for (size_t i = 0; i < s->n_epochs; i++)
        if (!best || s->epochs[i].accuracy > best->accuracy) best = &s->epochs[i];
    kd_text_printf(&t, "<div class=\"cards\">\n");
    const char *who = r->teacher ? "student" : "model";
    if (best) {
        snprintf(a, sizeof a, "%.4f", best->accuracy);
        snprintf(b, sizeof b, "best, epoch %d (shipped); last %.4f; macro-F1 %.4f", best->epoch, last->accuracy,
                 best->macro_f1);
        snprintf(c, sizeof c, "%s dev accuracy", who);
        card(&t, c, a, b);
    }
    if (r->teacher && s->teacher_accuracy >= 0) {
        snprintf(a, sizeof a, "%.4f", s->teacher_accuracy);
        if (best && s->teacher_accuracy > 0)
            snprintf(b, sizeof b, "the student keeps %.1f%% of it (%+.2f points)", 100.0 * best->accuracy / s->teacher_accuracy,
                     100.0 * (best->accuracy - s->teacher_accuracy));
        else b[0] = '\0';
        card(&t, "teacher dev accuracy", a, b);
    }
    group_int(r->student_params, a, sizeof a);
    if (r->teacher) {
        group_int(r->teacher_params, d, sizeof d);
        snprintf(b, sizeof b, "teacher %s: %.2fx fewer", d, (double)r->teacher_params / (double)(r->student_params ? r->student_params : 1));
    } else {
        b[0] = '\0';
    }
    snprintf(c, sizeof c, "%s parameters", who);
    card(&t, c, a, b);
    kd_format_duration(s->train_seconds, a, sizeof a);
    snprintf(b, sizeof b, "%lld examples trained, %.1f examples/s (training and evaluation)", (long long)s->samples,
             s->train_seconds > 0 ? (double)s->samples / s->train_seconds : 0.0);
    card(&t, "wall time", a, b);
    kd_text_printf(&t, "</div>\n");

    if (r->chart) {
        kd_text_printf(&t, "<h2>Training</h2>\n");
        kd_svg_chart_render(r->chart, &t);
        kd_text_printf(&t, "<p class=\"muted\">The faint curve is the loss of each optimizer step, the bold one its "
                           "exponential moving average; dashed verticals are epoch boundaries. Also in "
                           "<a href=\"chart.svg\">chart.svg</a>; every step in <a href=\"metrics.jsonl\">metrics.jsonl</a>.%s</p>\n",
                       r->chart->parts[0] ? " The parts are drawn before their weights: the loss is alpha times the soft part "
                                    "plus (1 - alpha) times the hard part, plus the weighted intermediate parts." : "");
    }

    kd_text_printf(&t, "<h2>Per epoch</h2>\n");
    if (!s->n_epochs) {
        kd_text_printf(&t, "<p class=\"muted\">No epoch finished yet.</p>\n");
    } else {
        kd_text_printf(&t, "<table>\n<tr><th class=\"num\">epoch</th><th class=\"num\">step</th><th class=\"num\">train loss</th>"
                           "<th class=\"num\">dev loss</th><th class=\"num\">dev accuracy</th><th class=\"num\">macro-F1</th>"
                           "<th class=\"num\">macro-recall</th><th class=\"num\">elapsed</th></tr>\n");
        for (size_t i = 0; i < s->n_epochs; i++) {
            const kd_epoch_record *e = &s->epochs[i];
            kd_format_duration(e->seconds, a, sizeof a);
            kd_text_printf(&t, "<tr><td class=\"num\">%d</td><td class=\"num\">%lld</td><td class=\"num\">%.4f</td>"
                               "<td class=\"num\">%.4f</td><td class=\"num%s\">%.4f</td><td class=\"num\">%.4f</td>"
                               "<td class=\"num\">%.4f</td><td class=\"num\">%s</td></tr>\n", e->epoch, (long long)e->step,
                           e->train_loss, e->dev_loss, e == best ? " best" : "", e->accuracy, e->macro_f1, e->macro_recall, a);
        }
        kd_text_printf(&t, "</table>\n");
        if (r->teacher && s->teacher_accuracy >= 0)
            kd_text_printf(&t, "<p>The teacher on the same dev set: accuracy %.4f, macro-F1 %.4f.</p>\n", s->teacher_accuracy,
                           s->teacher_macro_f1);
    }

    if (s->best_confusion && s->num_labels > 0 && best) {
        kd_text_printf(&t, "<h2>Dev confusion matrix (epoch %d, the shipped model)</h2>\n", best->epoch);
        confusion_section(&t, s->best_confusion, s->num_labels, r->label_names);
    }

    kd_text_printf(&t, "<h2>Data</h2>\n<table>\n<tr><th>set</th><th class=\"num\">examples</th></tr>\n"
                       "<tr><td>training (labelled)</td><td class=\"num\">%zu</td></tr>\n", r->n_train);
    if (r->n_transfer) kd_text_printf(&t, "<tr><td>transfer set and augmentation (unlabelled, the teacher labels them)</td>"
                                          "<td class=\"num\">%zu</td></tr>\n", r->n_transfer);
    kd_text_printf(&t, "<tr><td>dev</td><td class=\"num\">%zu</td></tr>\n</table>\n<p>Labels (%d): ", r->n_dev, r->num_labels);
    for (int i = 0; i < r->num_labels; i++) {
        kd_text_printf(&t, "%s<code>", i ? ", " : "");
        kd_text_escape(&t, label_name(r->label_names, i, a, sizeof a));
        kd_text_printf(&t, "</code>");
    }
    kd_text_printf(&t, "</p>\n");

    kd_text_printf(&t, "<h2>Models</h2>\n");
    const char *roles[2] = { r->teacher ? "student" : "model", "teacher" };
    const kd_bert_config *cfgs[2] = { r->student, r->teacher };
    int64_t params[2] = { r->student_params, r->teacher_params };
    const char *dirs[2] = { r->out_dir, flag_value(r->info, "--teacher") };
    models_table(&t, roles, cfgs, params, dirs, r->teacher ? 2 : 1);

    command_section(&t, r->info);

    kd_text_printf(&t, "<h2>Files</h2>\n<table>\n<tr><th>path</th><th>what</th></tr>\n");
    file_row(&t, r->out_dir, "model.safetensors", "the shipped model (best dev accuracy), with config.json and vocab.txt");
    file_row(&t, r->out_dir, "best", "checkpoint: the best epoch so far");
    file_row(&t, r->out_dir, "last", "checkpoint: the last epoch, with optimizer and trainer state (--resume)");
    file_row(&t, r->out_dir, "init", "the model before step 1 (--write-init)");
    file_row(&t, r->out_dir, "metrics.jsonl", "one JSON record per logging step and per evaluation");
    file_row(&t, r->out_dir, "chart.svg", "the chart above");
    file_row(&t, r->out_dir, "teacher_logits.bin", "the teacher's cached logits (--cache-teacher)");
    file_row(&t, r->out_dir, "train_subset.txt", "the rows of the training file the run used");
    file_row(&t, r->out_dir, "batch_order.txt", "the rows of every batch, in order");
    file_row(&t, r->out_dir, "augmented.txt", "the augmented sentences (--augment)");
    file_row(&t, r->out_dir, "pruned_vocab.txt", "the pruned vocabulary (--prune-vocab)");
    kd_text_printf(&t, "</table>\n");
    return page_write(path, &t);
}

/* A scatter plot of accuracy (y) against x for every model, each point named; the teacher in red. */
static void scatter(kd_text *t, const char *title, const char *xlabel, const double *x, const kd_report_model *m, int n)
{
    enum { SW = 480, SH = 320, SL = 62, SR = 24, ST = 34, SB = 48 };
    double xhi = 0, ylo = INFINITY, yhi = -INFINITY, tk[32], xs, ys;
    for (int i = 0; i < n; i++) {
        xhi = fmax(xhi, x[i]);
        ylo = fmin(ylo, m[i].accuracy);
        yhi = fmax(yhi, m[i].accuracy);
    }
    kd_text_printf(t, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                      "<text x=\"%d\" y=\"20\" text-anchor=\"middle\" font-size=\"13\">", SW, SH, SW, SH, SW / 2);
    kd_text_escape(t, title);
    kd_text_printf(t, "</text>\n");
    int nx = kd_nice_ticks(0, xhi > 0 ? xhi * 1.08 : 1, 5, tk, 32, &xs);
    double x1 = tk[nx - 1];
    char lab[48];
    for (int i = 0; i < nx; i++) {
        double px = SL + tk[i] / x1 * (SW - SL - SR);
        kd_tick_label(tk[i], xs, lab, sizeof lab);
        kd_text_printf(t, "<path stroke=\"#e6e6e6\" d=\"M%.1f %dV%d\"/><text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
                       px, ST, SH - SB, px, SH - SB + 16, lab);
    }
    int ny = kd_nice_ticks(fmax(0, ylo - 0.01), fmin(1, yhi + 0.01), 4, tk, 32, &ys);
    double y0 = tk[0], y1 = tk[ny - 1];
    for (int i = 0; i < ny; i++) {
        double py = SH - SB - (tk[i] - y0) / (y1 - y0) * (SH - SB - ST);
        kd_tick_label(tk[i], ys, lab, sizeof lab);
        kd_text_printf(t, "<path stroke=\"#e6e6e6\" d=\"M%d %.1fH%d\"/><text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                       SL, py, SW - SR, SL - 6, py + 4, lab);
    }
    kd_text_printf(t, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#888\"/>\n"
                      "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", SL, ST, SW - SL - SR, SH - SB - ST,
                   (SL + SW - SR) / 2, SH - 10);
    kd_text_escape(t, xlabel);
    kd_text_printf(t, "</text>\n<text transform=\"translate(16 %d) rotate(-90)\" text-anchor=\"middle\">accuracy</text>\n",
                   (ST + SH - SB) / 2);
    for (int i = 0; i < n; i++) {
        double px = SL + x[i] / x1 * (SW - SL - SR), py = SH - SB - (m[i].accuracy - y0) / (y1 - y0) * (SH - SB - ST);
        const char *col = i == 0 ? "#d62728" : "#1f77b4";
        /* names right of the point, left of it near the right edge */
        int left = px > SW - SR - 90;
        kd_text_printf(t, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"/><text x=\"%.1f\" y=\"%.1f\" fill=\"%s\"%s>",
                       px, py, col, left ? px - 8 : px + 8, py - 6, col, left ? " text-anchor=\"end\"" : "");
        kd_text_escape(t, m[i].name);
        kd_text_printf(t, "</text>\n");
    }
    kd_text_printf(t, "</svg>\n");
}

kd_status kd_report_write_compare(const char *path, const kd_compare_report *r)
{
    enum { MAX_MODELS = 64 };   /* rows of the models table (kd compare takes at most 17) */
    kd_text t = { 0 };
    char title[PATH_MAX + 64], a[64], b[64];
    snprintf(title, sizeof title, "kd compare: %s", r->data);
    page_begin(&t, title);
    kd_text_printf(&t, "<h1>");
    kd_text_escape(&t, title);
    kd_text_printf(&t, "</h1>\n<p class=\"sub\">%zu examples, %d thread(s), texts up to %d tokens; latency is one text "
                       "at a time (tokenization included) over %d texts, throughput at batch 32.</p>\n",
                   r->n_examples, r->threads, r->max_len, r->latency_samples);
    const kd_report_model *m = r->models, *tm = &m[0];

    kd_text_printf(&t, "<table>\n<tr><th>model</th><th class=\"num\">accuracy</th><th class=\"num\">macro-F1</th>"
                       "<th class=\"num\">parameters</th><th class=\"num\">file MB</th><th class=\"num\">p50 ms</th>"
                       "<th class=\"num\">p95 ms</th><th class=\"num\">examples/s</th><th class=\"num\">speed-up</th>"
                       "<th class=\"num\">share of the teacher's accuracy</th><th>directory</th></tr>\n");
    for (int i = 0; i < r->n; i++) {
        group_int(m[i].params, a, sizeof a);
        if (m[i].file_bytes >= 0) snprintf(b, sizeof b, "%.1f", (double)m[i].file_bytes / 1e6);
        else snprintf(b, sizeof b, "-");
        kd_text_printf(&t, "<tr><td>");
        kd_text_escape(&t, m[i].name);
        kd_text_printf(&t, "</td><td class=\"num\">%.4f</td><td class=\"num\">%.4f</td><td class=\"num\">%s</td>"
                           "<td class=\"num\">%s</td><td class=\"num\">%.2f</td><td class=\"num\">%.2f</td><td class=\"num\">%.1f</td>"
                           "<td class=\"num\">%.2fx</td><td class=\"num\">%.1f%%</td><td><code>",
                       m[i].accuracy, m[i].macro_f1, a, b, m[i].p50_ms, m[i].p95_ms, m[i].throughput,
                       m[i].p50_ms > 0 ? tm->p50_ms / m[i].p50_ms : 0.0,
                       100.0 * m[i].accuracy / (tm->accuracy > 0 ? tm->accuracy : 1));
        kd_text_escape(&t, m[i].dir);
        kd_text_printf(&t, "</code></td></tr>\n");
    }
    kd_text_printf(&t, "</table>\n");

    kd_text_printf(&t, "<h2>The trade-off</h2>\n<div class=\"row\">\n");
    double *x = malloc((size_t)r->n * sizeof *x);
    if (!x) {
        kd_text_free(&t);
        return kd_fail(KD_ERR_NOMEM, "%s: out of memory writing the report", path);
    }
    for (int i = 0; i < r->n; i++) x[i] = m[i].p50_ms;
    scatter(&t, "accuracy against latency", "latency p50, ms (batch 1)", x, m, r->n);
    for (int i = 0; i < r->n; i++) x[i] = (double)m[i].params / 1e6;
    scatter(&t, "accuracy against size", "parameters, millions", x, m, r->n);
    free(x);
    kd_text_printf(&t, "</div>\n<p class=\"muted\">Up and to the left is better: the teacher in red, the students in blue.</p>\n");

    kd_text_printf(&t, "<h2>Models</h2>\n");
    const char *roles[MAX_MODELS];
    const kd_bert_config *cfgs[MAX_MODELS];
    int64_t params[MAX_MODELS];
    const char *dirs[MAX_MODELS];
    int nm = r->n < MAX_MODELS ? r->n : MAX_MODELS;
    for (int i = 0; i < nm; i++) roles[i] = m[i].name, cfgs[i] = m[i].cfg, params[i] = m[i].params, dirs[i] = m[i].dir;
    models_table(&t, roles, cfgs, params, dirs, nm);

    for (int i = 0; i < r->n; i++) {
        if (!m[i].confusion) continue;
        kd_text_printf(&t, "<h2>Confusion matrix: ");
        kd_text_escape(&t, m[i].name);
        kd_text_printf(&t, "</h2>\n");
        confusion_section(&t, m[i].confusion, r->num_labels, r->label_names);
    }
    command_section(&t, r->info);
    return page_write(path, &t);
}
