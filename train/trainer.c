/* train/trainer.c — the training loop (see trainer.h). Everything a step makes lives in the engine's
 * arena and is dropped by kd_arena_reset() after each micro-batch's backward: the parameters' gradients
 * are heap buffers, so they accumulate across the micro-batches of one optimizer step. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/batch.h"
#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/fileio.h"
#include "engine/json.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/intermediate.h"
#include "train/loss.h"
#include "train/progress.h"
#include "train/report.h"
#include "train/schedule.h"
#include "train/subset.h"
#include "train/svg_chart.h"
#include "train/teacher_cache.h"
#include "train/trainer.h"

kd_train_config kd_train_config_default(void)
{
    kd_train_config c = { .epochs = 3, .batch_size = 16, .eval_batch_size = 64, .grad_accum = 1, .max_len = 128,
                          .lr = 5e-5, .warmup_ratio = 0.1, .max_grad_norm = 1.0, .warmup_steps = -1,
                          .alpha = 0.5, .temperature = 2.0, .adamw = kd_adamw_defaults(), .seed = 42,
                          .progress_tty = -1, .log_every = 10, .dropout = -1.0, .bucket_mb = 25.0 };
    return c;
}

#define NSTAT_MAX 5

/* Everything one run holds, so that one cleanup path frees it. */
typedef struct run {
    const kd_train_config *c;
    const kd_train_data *d;
    kd_bert *student;
    kd_device dev;                 /* where the student is: the whole step runs there */
    kd_tensor **params;            /* the student's, then the intermediate losses' projections */
    size_t np;
    kd_tensor **own_params;        /* params when it is not the student's own table */
    kd_intermediate im;
    int nl;                        /* labels */
    int64_t nb, total;             /* micro-batches per epoch, optimizer steps in the run */
    kd_schedule sched;
    kd_dataset all;                /* the labelled rows, then the transfer set's */
    kd_batcher *sb, *tb;
    kd_batch sbatch, tbatch;
    kd_adamw *opt;
    kd_train_state state;
    kd_metrics metrics;
    float *teacher_logits, *dev_logits;
    /* The teacher's cached logits of a batch on their way to the device; each micro-batch's loss, soft and
     * hard parts (slots 3k, 3k+1, 3k+2) and the step's gradient norm (slot 3 grad_accum), kept where the step
     * runs until it is queued, then read back in one copy. */
    float *zt_host, *stats_host;
    int32_t *y_host, *rows_host;   /* a batch's labels and the rows that have them */
    kd_tensor *stats;
    int64_t mb;                    /* micro-batches stashed in this step */
    /* The logging window (since the last metrics line) and the step's loss. */
    double win_loss, win[NSTAT_MAX], grp_loss, norm, last_loss;   /* win[i]: sums of part i (1..4) */
    int64_t win_n, win_count[NSTAT_MAX], samples;
    double grp[NSTAT_MAX];         /* the step's sums of part i (1..4) over its micro-batches, and their counts */
    int64_t grp_count[NSTAT_MAX];
    kd_progress prog;
    double t0, base_seconds;
    /* Data-parallel (trainer.h): this process's rank, the world size (1: one process), the global batches
     * (sbatch/tbatch then hold this rank's shard), the epoch being trained (the dropout stream's key), the
     * step's stats with their presence summed over the ranks, tokens trained, all-reduce seconds. */
    int rank, world, epoch_now;
    kd_batch gsbatch, gtbatch;
    double *red, *present;
    int64_t tokens;
    double comm_win, comm_total, wait_win, wait_total;
    int64_t comm_win_n, comm_steps;
    FILE *jsonl, *order;           /* metrics.jsonl, batch_order.txt */
    char dir_last[PATH_MAX], dir_best[PATH_MAX];
    char path_metrics[PATH_MAX + 32], path_chart[PATH_MAX + 32], path_cache[PATH_MAX + 32];
    char path_order[PATH_MAX + 32], dir_init[PATH_MAX + 32], path_report[PATH_MAX + 32];
    char chart_title[PATH_MAX + 32];
    char recipe[1024];             /* kd_train_state.recipe of this run */
    kd_checkpoint_tokenizer tok;   /* the student's tokenizer files, beside every checkpoint */
    const kd_checkpoint_tokenizer *ptok;   /* &tok, or NULL without a vocabulary to copy */
} run;

static kd_status check_config(const kd_train_config *c, const kd_train_data *d, kd_bert *student)
{
    if (c->epochs < 1) return kd_fail(KD_ERR_ARG, "train: epochs %d, expected >= 1", c->epochs);
    if (c->batch_size < 1 || c->eval_batch_size < 1)
        return kd_fail(KD_ERR_ARG, "train: batch size %d, expected >= 1", c->batch_size);
    if (c->grad_accum < 1) return kd_fail(KD_ERR_ARG, "train: gradient accumulation %d, expected >= 1", c->grad_accum);
    if (!(c->bucket_mb >= 0.0) || !isfinite(c->bucket_mb))
        return kd_fail(KD_ERR_ARG, "train: gradient bucket size %g MB, expected >= 0 (0: one flat all-reduce)", c->bucket_mb);
    if (!(c->lr >= 0.0) || !isfinite(c->lr)) return kd_fail(KD_ERR_ARG, "train: learning rate %g, expected >= 0", c->lr);
    if (!(c->alpha >= 0.0 && c->alpha <= 1.0)) return kd_fail(KD_ERR_ARG, "train: alpha %g, expected a value in [0, 1]", c->alpha);
    if (!(c->temperature > 0.0) || !isfinite(c->temperature))
        return kd_fail(KD_ERR_ARG, "train: temperature %g, expected > 0", c->temperature);
    if (d->transfer && d->transfer->n && !(c->alpha > 0.0 && d->teacher))
        return kd_fail(KD_ERR_ARG, "train: a transfer set is labelled only by a teacher: it needs one, with alpha > 0");
    if (c->alpha > 0.0 && !d->teacher)
        return kd_fail(KD_ERR_ARG, "train: alpha %g weights a teacher's soft targets, but there is no teacher", c->alpha);
    if (!d->train || d->train->n == 0) return kd_fail(KD_ERR_ARG, "train: the training set is empty");
    if (!d->dev || d->dev->n == 0) return kd_fail(KD_ERR_ARG, "train: the dev set is empty");
    int sc = kd_bert_get_config(student)->num_labels;
    if (d->teacher && kd_bert_get_config(d->teacher)->num_labels != sc)
        return kd_fail(KD_ERR_SHAPE, "label-set mismatch: the teacher has %d labels, the student %d",
                       kd_bert_get_config(d->teacher)->num_labels, sc);
    if (d->train->labels.n > sc)
        return kd_fail(KD_ERR_SHAPE, "label-set mismatch: the data has %d labels, the model %d", d->train->labels.n, sc);
    if (!c->out_dir) return kd_fail(KD_ERR_ARG, "train: no output directory");
    return KD_OK;
}

/* A metrics.jsonl record: {"type", "step", "epoch", ...fields...}, one line. */
static void line_begin(kd_jw *w, run *r, const char *type, int epoch)
{
    kd_jw_init(w, 0);
    kd_jw_object_begin(w);
    kd_jw_field_string(w, "type", type);
    kd_jw_field_int(w, "step", r->state.global_step);
    kd_jw_field_int(w, "epoch", epoch + 1);
}

static void line_end(kd_jw *w, run *r)
{
    kd_jw_object_end(w);
    if (kd_jw_text(w)) fprintf(r->jsonl, "%s\n", kd_jw_text(w));
    fflush(r->jsonl);
    kd_jw_free(w);
}

/* part[1..4]: the window's means of soft, hard, hidden and attention (NaN: none). */
static void write_train_line(run *r, int epoch, double loss, const double *part, double lr, double norm, double sps,
                             double tps)
{
    kd_jw w;
    line_begin(&w, r, "train", epoch);
    kd_jw_field_number(&w, "loss", loss);
    kd_jw_field_number(&w, "soft", part[1]);
    kd_jw_field_number(&w, "hard", part[2]);
    if (r->c->hidden_weight > 0) kd_jw_field_number(&w, "hidden", part[3]);
    if (r->c->attention_weight > 0) kd_jw_field_number(&w, "attention", part[4]);
    kd_jw_field_number(&w, "lr", lr);
    kd_jw_field_number(&w, "grad_norm", norm);
    kd_jw_field_number(&w, "samples_per_s", sps);
    kd_jw_field_number(&w, "tokens_per_s", tps);
    if (r->world > 1) {
        kd_jw_field_int(&w, "world_size", r->world);
        kd_jw_field_number(&w, "allreduce_s", r->comm_win_n ? r->comm_win / (double)r->comm_win_n : 0.0);
        kd_jw_field_number(&w, "allreduce_wait_s", r->comm_win_n ? r->wait_win / (double)r->comm_win_n : 0.0);
        kd_jw_field_int(&w, "allreduce_buckets", (int64_t)kd_comm_grad_bucket_count(r->c->comm));
    }
    line_end(&w, r);
}

static void write_eval_line(run *r, int epoch)
{
    const kd_metrics *m = &r->metrics;
    kd_jw w;
    line_begin(&w, r, "eval", epoch);
    kd_jw_field_number(&w, "accuracy", m->accuracy);
    kd_jw_field_number(&w, "macro_f1", m->macro_f1);
    kd_jw_field_number(&w, "macro_recall", m->macro_recall);
    kd_jw_field_number(&w, "loss", m->loss);
    kd_jw_key(&w, "per_class");
    kd_jw_array_begin(&w);
    for (int c = 0; c < m->num_labels; c++) {
        kd_jw_object_begin(&w);
        kd_jw_key(&w, "label");
        const char *name = kd_labels_name(&r->d->train->labels, c);
        if (name) kd_jw_string(&w, name);
        else kd_jw_int(&w, c);
        kd_jw_field_number(&w, "precision", m->precision[c]);
        kd_jw_field_number(&w, "recall", m->recall[c]);
        kd_jw_field_number(&w, "f1", m->f1[c]);
        kd_jw_field_int(&w, "support", m->support[c]);
        kd_jw_object_end(&w);
    }
    kd_jw_array_end(&w);
    line_end(&w, r);
}

/* slot i of the step's stats (a scalar view of a heap tensor). */
enum { NSTAT = 5 };   /* per micro-batch: total, soft, hard, hidden, attention */
static kd_tensor *stat_slot(run *r, int64_t i) { return kd_view_of(r->stats, 0, NULL, NULL, i); }

/* A part that is absent: 0 without a teacher, NaN (left out of the averages) without a labelled row or an
 * intermediate loss. */
static const double absent_part[NSTAT] = { NAN, 0.0, NAN, NAN, NAN };

/* Keep micro-batch k's loss parts where the step runs (slots NSTAT k + i), part i times w[i] (with several
 * ranks: the shard's share of the global batch's mean; absent parts are then 0 and marked so in present[],
 * to be told apart once summed over the ranks). lp NULL: a rank without rows in this micro-batch. */
static kd_status stash_loss(run *r, int64_t k, const kd_loss_parts *lp, const double *w)
{
    kd_tensor *part[NSTAT] = { 0 };
    if (lp) {
        part[0] = lp->total, part[1] = lp->soft, part[2] = lp->hard, part[3] = lp->hidden, part[4] = lp->attention;
    }
    kd_status st = KD_OK;
    for (int i = 0; i < NSTAT && st == KD_OK; i++) {
        r->present[NSTAT * k + i] = part[i] != NULL;
        if (part[i]) st = kd_copy_into(stat_slot(r, NSTAT * k + i), w[i] == 1.0 ? part[i] : kd_scale(part[i], w[i]));
        else kd_fill(stat_slot(r, NSTAT * k + i), r->world > 1 ? 0.0 : absent_part[i]);
    }
    return st;
}

/* --- data-parallel shards (trainer.h) */

/* Rank r's rows of global batch g, [B r / N, B (r + 1) / N), into out (its own buffers), padded as g. */
static kd_status shard_batch(const kd_batch *g, int rank, int world, kd_batch *out)
{
    int64_t lo = (int64_t)g->batch * rank / world, hi = (int64_t)g->batch * (rank + 1) / world;
    size_t rows = (size_t)(hi - lo), tok = rows * (size_t)g->len;
    if (rows > out->cap_rows || !out->labels) {
        size_t cap = rows ? rows : 1;
        int32_t *l = realloc(out->labels, cap * sizeof *l);
        if (l) out->labels = l;
        size_t *x = realloc(out->index, cap * sizeof *x);
        if (x) out->index = x;
        if (!l || !x) return kd_fail(KD_ERR_NOMEM, "train: out of memory for a shard");
        out->cap_rows = cap;
    }
    if (tok > out->cap_tokens || !out->ids) {
        size_t cap = tok ? tok : 1;
        int32_t **a[3] = { &out->ids, &out->mask, &out->type_ids };
        for (int i = 0; i < 3; i++) {
            int32_t *q = realloc(*a[i], cap * sizeof *q);
            if (!q) return kd_fail(KD_ERR_NOMEM, "train: out of memory for a shard");
            *a[i] = q;
        }
        out->cap_tokens = cap;
    }
    size_t o = (size_t)lo * (size_t)g->len;
    memcpy(out->ids, g->ids + o, tok * sizeof *out->ids);
    memcpy(out->mask, g->mask + o, tok * sizeof *out->mask);
    memcpy(out->type_ids, g->type_ids + o, tok * sizeof *out->type_ids);
    memcpy(out->labels, g->labels + lo, rows * sizeof *out->labels);
    memcpy(out->index, g->index + lo, rows * sizeof *out->index);
    out->batch = (int32_t)rows;
    out->len = g->len;
    return KD_OK;
}

/* Tokens of a batch that are not padding. */
static int64_t batch_tokens(const kd_batch *b)
{
    int64_t n = 0;
    for (size_t i = 0; i < (size_t)b->batch * (size_t)b->len; i++) n += b->mask[i] != 0;
    return n;
}

/* This rank's share of the global batch g's loss: each part of lp (a mean over the shard's rows, labelled
 * rows or tokens) weighted by the shard's share of the global count, so that the sum over the ranks is the
 * mean over g. lp->total becomes that weighted sum; w[i] gets part i's weight (for the logs). m: the shard's
 * labelled rows. */
static kd_status shard_loss(run *r, const kd_batch *g, int64_t m, kd_loss_parts *lp, double *w)
{
    const kd_train_config *c = r->c;
    int64_t gm = 0;
    for (int32_t i = 0; i < g->batch; i++) gm += g->labels[i] != KD_NO_LABEL;
    double ftok = r->im.on ? (double)batch_tokens(&r->sbatch) / (double)batch_tokens(g) : 0.0;
    w[1] = (double)r->sbatch.batch / (double)g->batch;
    w[2] = gm ? (double)m / (double)gm : 0.0;
    w[3] = w[4] = ftok;
    kd_tensor *part[NSTAT] = { NULL, lp->soft, lp->hard, lp->hidden, lp->attention };
    const double weight[NSTAT] = { 0, c->alpha, 1.0 - c->alpha, c->hidden_weight, c->attention_weight };
    kd_tensor *total = NULL;
    for (int i = 1; i < NSTAT; i++) {
        if (!part[i] || !(weight[i] > 0.0)) continue;
        if (i == 1 && !(c->alpha > 0.0)) continue;
        kd_tensor *t = kd_scale(part[i], weight[i] * w[i]);
        total = total ? kd_add(total, t) : t;
    }
    if (!total) return kd_fail(KD_ERR_STATE, "train: a shard with rows but no loss term");
    lp->total = total;
    return KD_OK;
}

/* Replace the student's weights by those of checkpoint dir (same names and shapes). */
static kd_status load_weights(kd_bert *student, const char *dir, uint64_t seed)
{
    kd_bert *saved = kd_bert_load(dir, kd_bert_get_config(student)->num_labels, seed, NULL);
    if (!saved) return kd_last_status();
    size_t n, ns;
    kd_tensor **p = kd_bert_parameters(student, &n), **q = kd_bert_parameters(saved, &ns);
    kd_status st = KD_OK;
    if (n != ns) st = kd_fail(KD_ERR_FORMAT, "%s: %zu parameters, the model being trained has %zu", dir, ns, n);
    for (size_t i = 0; st == KD_OK && i < n; i++) {
        if (strcmp(p[i]->name, q[i]->name) != 0 || !kd_same_shape(p[i], q[i]))
            st = kd_fail(KD_ERR_FORMAT, "%s: parameter %zu is '%s', expected '%s' of the same shape", dir, i, q[i]->name,
                         p[i]->name);
        else st = kd_copy_into(p[i], q[i]);
    }
    kd_bert_free(saved);
    return st;
}

static kd_status save_last(run *r, double t_run0, double base_seconds)
{
    r->state.rng = kd_generator_get();
    r->state.train_seconds = base_seconds + (kd_now() - t_run0);
    r->state.window_sum[0] = r->win_loss;
    r->state.window_n[0] = r->win_n;
    for (int i = 1; i < NSTAT; i++) r->state.window_sum[i] = r->win[i], r->state.window_n[i] = r->win_count[i];
    kd_status st = kd_checkpoint_save(r->dir_last, r->student, r->ptok, r->opt, &r->state);
    return st == KD_OK ? kd_intermediate_save(&r->im, r->dir_last) : st;
}

static kd_status evaluate_dev(run *r, int epoch)
{
    const kd_train_config *c = r->c;
    int nl = kd_bert_get_config(r->student)->num_labels;
    kd_progress prog;
    kd_progress_pass(&prog, stderr, c->progress_tty, c->quiet, "dev evaluation", "examples", (int64_t)r->d->dev->n, 0);
    kd_status st = kd_model_logits(r->student, r->d->dev, r->d->student_tok, c->max_len, c->eval_batch_size,
                                   r->dev_logits, &prog);
    kd_progress_end(&prog);
    kd_bert_set_training(r->student, 1);
    if (st == KD_OK) st = kd_metrics_from_logits(r->dev_logits, r->d->dev->label, r->d->dev->n, nl, &r->metrics);
    if (st != KD_OK) return st;
    write_eval_line(r, epoch);
    if (!c->quiet) {
        fprintf(stderr, "epoch %d/%d  step %lld  dev accuracy %.4f  macro-F1 %.4f  macro-recall %.4f  loss %.4f\n",
                epoch + 1, c->epochs, (long long)r->state.global_step, r->metrics.accuracy, r->metrics.macro_f1,
                r->metrics.macro_recall, r->metrics.loss);
        kd_metrics_print(&r->metrics, (const char *const *)r->d->train->labels.names, stderr);
    }
    return kd_series_push(&r->state.dev, (double)r->state.global_step, r->metrics.accuracy);
}

/* The step a line of metrics.jsonl (its "step") or batch_order.txt (its first number) belongs to; -1: none. */
static int64_t line_step(const char *line, size_t n, int json)
{
    if (!json) {
        char *end;
        long long v = strtoll(line, &end, 10);
        return end == line ? -1 : (int64_t)v;
    }
    char err[8];
    kd_json *j = kd_json_parse(line, n, err, sizeof err);
    const kd_json *v = j ? kd_json_get(j, "step") : NULL;
    int64_t step = v && v->type == KD_JSON_NUMBER && v->is_integer ? v->integer : -1;
    kd_json_free(j);
    return step;
}

/* A resumed run goes on from its checkpoint's step: the lines a killed run wrote after it (steps that are
 * trained again) are dropped from metrics.jsonl and batch_order.txt, so both read as one uninterrupted
 * run's. The file is rewritten under a temporary name. */
static kd_status keep_lines_to(const char *path, int64_t step, int json)
{
    char *text;
    size_t len;
    if (access(path, F_OK) != 0) return KD_OK;
    kd_status st = kd_read_file(path, &text, &len);
    if (st != KD_OK) return st;
    kd_atomic_file af;
    if ((st = kd_atomic_open(&af, path)) != KD_OK) {
        free(text);
        return st;
    }
    for (size_t a = 0; a < len;) {
        const char *nl = memchr(text + a, '\n', len - a);
        size_t b = nl ? (size_t)(nl - text) + 1 : len;
        if (line_step(text + a, b - a - (nl != NULL), json) <= step) fwrite(text + a, 1, b - a, af.f);
        a = b;
    }
    free(text);
    return kd_atomic_commit(&af);
}

/* What the steps depend on beside the seed and the step count: the flags of the recipe and fingerprints of
 * the rows trained on (texts, labels, order) and of the dev set. */
static void make_recipe(run *r)
{
    const kd_train_config *c = r->c;
    int w = snprintf(r->recipe, sizeof r->recipe,
                     "lr=%.10g alpha=%.10g temperature=%.10g warmup_ratio=%.10g warmup_steps=%lld weight_decay=%.10g "
                     "max_grad_norm=%.10g batch_size=%d grad_accum=%d max_len=%d dropout=%.10g hidden_weight=%.10g "
                     "hidden_loss=%d attention_weight=%.10g attention_loss=%d layer_map=",
                     c->lr, c->alpha, c->temperature, c->warmup_ratio, (long long)c->warmup_steps,
                     c->adamw.weight_decay, c->max_grad_norm, c->batch_size, c->grad_accum, c->max_len, c->dropout,
                     c->hidden_weight, (int)c->hidden_loss, c->attention_weight, (int)c->attention_loss);
    for (int i = 0; i < c->n_layer_map && w > 0 && (size_t)w < sizeof r->recipe - 64; i++)
        w += snprintf(r->recipe + w, sizeof r->recipe - (size_t)w, "%s%d:%d", i ? "," : "", c->layer_map[i][0],
                      c->layer_map[i][1]);
    if (w > 0 && (size_t)w < sizeof r->recipe - 64)
        w += snprintf(r->recipe + w, sizeof r->recipe - (size_t)w, " data=%016llx dev=%016llx",
                      (unsigned long long)kd_dataset_fingerprint(KD_FNV_OFFSET, &r->all),
                      (unsigned long long)kd_dataset_fingerprint(KD_FNV_OFFSET, r->d->dev));
    /* One process writes none (its recipes stay as they were); several write how many. */
    if (r->world > 1 && w > 0 && (size_t)w < sizeof r->recipe - 32)
        snprintf(r->recipe + w, sizeof r->recipe - (size_t)w, " world_size=%d", r->world);
}

/* The number of ranks a recipe was trained on (1 when it names none). */
static int recipe_world(const char *recipe)
{
    const char *p = strstr(recipe, " world_size=");
    return p ? atoi(p + 12) : 1;
}

/* The first item of the recipe that differs between a checkpoint's (was) and this run's (now), as
 * "name: was X, now Y"; "" when they agree. */
static void recipe_diff(const char *was, const char *now, char *out, size_t n)
{
    out[0] = '\0';
    while (*was || *now) {
        size_t a = strcspn(was, " "), b = strcspn(now, " ");
        if (a != b || memcmp(was, now, a)) {
            const char *eq = memchr(now, '=', b);
            size_t key = eq ? (size_t)(eq - now) : b;
            const char *what = !strncmp(now, "data=", 5) ? " (the training rows: texts, labels or their order)"
                             : !strncmp(now, "dev=", 4)  ? " (the dev set)" : "";
            snprintf(out, n, "%.*s%s: was %.*s, now %.*s", (int)key, now, what, (int)(a > key ? a - key - 1 : 0),
                     was + (a > key ? key + 1 : a), (int)(b - key - (eq != NULL)), now + key + (eq != NULL));
            return;
        }
        was += a + (was[a] == ' ');
        now += b + (now[b] == ' ');
    }
}

/* --resume: the weights, optimizer state, schedule position, RNG and data position of out/last. */
static kd_status resume(run *r)
{
    const kd_train_config *c = r->c;
    char found[PATH_MAX];
    const char *dir = kd_checkpoint_find(r->dir_last, found, sizeof found);
    if (!dir) return kd_fail(KD_ERR_IO, "--resume: no checkpoint to resume from in %s", r->dir_last);
    kd_train_state_free(&r->state);
    kd_status st = load_weights(r->student, dir, c->seed);
    if (st == KD_OK) st = kd_checkpoint_load_state(dir, r->opt, &r->state);
    if (st == KD_OK) st = kd_intermediate_load(&r->im, dir);
    if (st != KD_OK) return st;
    if (r->state.total_steps != r->total || r->state.seed != c->seed)
        return kd_fail(KD_ERR_ARG,
                       "--resume: %s was made by a run of %lld steps with seed %llu; this run has %lld steps and "
                       "seed %llu (use the same data, epochs, batch size, accumulation and seed)",
                       dir, (long long)r->state.total_steps, (unsigned long long)r->state.seed, (long long)r->total,
                       (unsigned long long)c->seed);
    int was = recipe_world(r->state.recipe);
    if (was != r->world)
        return kd_fail(KD_ERR_ARG, "--resume: %s was written by a run on %d process%s; this run has %d (the shards and "
                                   "the dropout streams follow the number of processes: resume with mpirun -np %d, or "
                                   "start afresh with --overwrite)", dir, was, was == 1 ? "" : "es", r->world, was);
    char diff[600];
    if (r->state.recipe[0]) recipe_diff(r->state.recipe, r->recipe, diff, sizeof diff);
    else diff[0] = '\0';
    if (diff[0])
        return kd_fail(KD_ERR_ARG, "--resume: %s was made by a run with other flags or data: %s (resume with the "
                                   "run's own flags and data, or start afresh with --overwrite)", dir, diff);
    snprintf(r->state.recipe, sizeof r->state.recipe, "%s", r->recipe);
    kd_generator_set(r->state.rng);
    r->win_loss = r->state.window_sum[0];
    r->win_n = r->state.window_n[0];
    for (int i = 1; i < NSTAT; i++) r->win[i] = r->state.window_sum[i], r->win_count[i] = r->state.window_n[i];
    if (r->rank == 0 && ((st = keep_lines_to(r->path_metrics, r->state.global_step, 1)) != KD_OK ||
                         (st = keep_lines_to(r->path_order, r->state.global_step, 0)) != KD_OK))
        return st;
    if (!c->quiet)
        fprintf(stderr, "resuming from %s at step %lld/%lld (epoch %d)\n", dir, (long long)r->state.global_step,
                (long long)r->total, r->state.epoch + 1);
    return KD_OK;
}

/* The teacher's logits of micro-batch b: from the cache, or a no-grad forward of the teacher (NULL when the
 * loss has no teacher term). */
static kd_status teacher_logits(run *r, int64_t b, kd_tensor **zt)
{
    *zt = NULL;
    if (r->tb && r->world > 1) {
        /* the global teacher batch must be the student's; this rank's shard of it */
        if (kd_batcher_next(r->tb, &r->gtbatch) != 1 || r->gtbatch.batch != r->gsbatch.batch ||
            memcmp(r->gtbatch.index, r->gsbatch.index, (size_t)r->gsbatch.batch * sizeof(size_t)) != 0)
            return kd_fail(KD_ERR_STATE, "train: teacher and student batches disagree at batch %lld", (long long)b);
        kd_status st = shard_batch(&r->gtbatch, r->rank, r->world, &r->tbatch);
        if (st != KD_OK) return st;
    }
    if (r->sbatch.batch == 0) return KD_OK;   /* this rank has no rows in the micro-batch */
    if (r->teacher_logits) {
        int64_t shape[2] = { r->sbatch.batch, r->nl };
        for (int32_t i = 0; i < r->sbatch.batch; i++)
            memcpy(r->zt_host + (size_t)i * (size_t)r->nl, r->teacher_logits + r->sbatch.index[i] * (size_t)r->nl,
                   (size_t)r->nl * sizeof(float));
        *zt = kd_from_buffer_on(r->dev, KD_F32, 2, shape, r->zt_host);
        return *zt ? KD_OK : kd_last_status();
    }
    if (!r->tb) return KD_OK;   /* fine-tuning (a teacher with alpha 0 is loaded but never run) */
    if (r->world == 1 && (kd_batcher_next(r->tb, &r->tbatch) != 1 || r->tbatch.batch != r->sbatch.batch ||
        memcmp(r->tbatch.index, r->sbatch.index, (size_t)r->sbatch.batch * sizeof(size_t)) != 0))
        return kd_fail(KD_ERR_STATE, "train: teacher and student batches disagree at batch %lld", (long long)b);
    kd_bert_input tin = { .batch = r->tbatch.batch, .seq = r->tbatch.len, .ids = r->tbatch.ids,
                          .type_ids = r->tbatch.type_ids, .mask = r->tbatch.mask };
    int prev = kd_set_grad_enabled(0);
    *zt = kd_bert_logits_states(r->d->teacher, &tin, r->im.on ? &r->im.t : NULL);
    kd_set_grad_enabled(prev);
    return *zt ? KD_OK : kd_last_status();
}

/* The micro-batch about to be trained as a batch_order.txt line (trainer.h): step, then its examples. */
static void write_order(run *r, const kd_batch *g)
{
    const kd_dataset *train = r->d->train;
    if (!r->order) return;
    fprintf(r->order, "%lld", (long long)r->state.global_step + 1);
    for (int32_t i = 0; i < g->batch; i++) {
        size_t e = g->index[i];
        if (e >= train->n) fprintf(r->order, " t%zu", e - train->n);
        else fprintf(r->order, " %zu", r->d->train_rows ? r->d->train_rows[e] : e);
    }
    fputc('\n', r->order);
}

/* One micro-batch (b, of a group of gs): forward, loss, backward into the parameters' gradients; the loss
 * parts stay where the step runs. */
static kd_status micro_step(run *r, int64_t b, int64_t gs)
{
    const kd_train_config *c = r->c;
    const kd_batch *g = r->world > 1 ? &r->gsbatch : &r->sbatch;   /* the global batch */
    kd_tensor *zt;
    write_order(r, g);
    if (r->world > 1) {
        /* dropout: a stream of this rank's own, keyed by the micro-batch (a resumed run draws the same) */
        uint64_t key = r->c->seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(r->rank + 1));
        kd_generator_set((kd_generator){ .seed = kd_splitmix64(&key),
                                         .counter = ((uint64_t)r->epoch_now * (uint64_t)r->nb + (uint64_t)b) << 40 });
    }
    kd_status st = teacher_logits(r, b, &zt);
    if (st != KD_OK) return st;
    r->samples += g->batch;
    r->state.samples += g->batch;
    r->tokens += batch_tokens(g);
    const double one[NSTAT] = { 1, 1, 1, 1, 1 };
    if (r->sbatch.batch == 0) {
        st = stash_loss(r, r->mb++, NULL, one);
        kd_arena_reset();
        return st;
    }
    kd_bert_input in = { .batch = r->sbatch.batch, .seq = r->sbatch.len, .ids = r->sbatch.ids,
                         .type_ids = r->sbatch.type_ids, .mask = r->sbatch.mask };
    kd_tensor *zs = kd_bert_logits_states(r->student, &in, r->im.on ? &r->im.s : NULL), *y = NULL, *rows = NULL;
    /* The hard term's rows: those with a label (a transfer set's rows have none). */
    int64_t m = 0;
    for (int32_t i = 0; i < r->sbatch.batch; i++)
        if (r->sbatch.labels[i] != KD_NO_LABEL) {
            r->rows_host[m] = i;
            r->y_host[m++] = r->sbatch.labels[i];
        }
    if (m) y = kd_from_buffer_on(r->dev, KD_I32, 1, &m, r->y_host);
    if (m && m < r->sbatch.batch) rows = kd_from_buffer_on(r->dev, KD_I32, 1, &m, r->rows_host);
    if (!zs || (m && !y) || (m && m < r->sbatch.batch && !rows)) return kd_last_status();
    kd_loss_parts lp;
    if ((st = kd_distill_loss(zs, c->alpha > 0.0 ? zt : NULL, y, rows, c->alpha, c->temperature, &lp)) != KD_OK) return st;
    if (r->im.on && (st = kd_intermediate_add(&r->im, &r->sbatch, &r->tbatch, &lp)) != KD_OK) return st;
    double w[NSTAT] = { 1, 1, 1, 1, 1 };
    if (r->world > 1 && (st = shard_loss(r, g, m, &lp, w)) != KD_OK) return st;
    /* The last micro-batch's backward hands each final gradient to the communicator, which starts a
     * bucket's all-reduce as soon as the bucket is full (engine/comm.h); earlier ones only accumulate. */
    int last = (b + 1) % c->grad_accum == 0 || b + 1 == r->nb;
    kd_tensor *root = kd_scale(lp.total, 1.0 / (double)gs);
    if (r->world > 1 && last && kd_comm_grad_bucketed(c->comm)) st = kd_backward_hooked(root, NULL, kd_comm_grad_final, c->comm);
    else st = kd_backward(root, NULL);
    if (st != KD_OK) return st;
    if ((st = stash_loss(r, r->mb++, &lp, w)) != KD_OK) return st;
    kd_arena_reset();
    return KD_OK;
}

/* The optimizer step after micro-batches [b - mb, b) of a group of gs: clipping and AdamW are queued behind
 * the backward, then one read brings the step's losses and gradient norm back (with any error a kernel
 * found). A NaN or Inf loss or gradient norm stops the run naming the step. */
static kd_status optimizer_step(run *r, int epoch, int64_t b, int64_t gs, double lr)
{
    kd_tensor *nt = NULL;
    kd_status st = KD_OK;
    if (r->world > 1) {
        /* the shards' gradients summed: the global batch's, before clipping sees their norm (in buckets:
         * waits for the sums the backward started) */
        double t = kd_comm_grad_seconds(r->c->comm), wt = kd_comm_wait_seconds(r->c->comm);
        st = kd_comm_allreduce_grads(r->c->comm, r->params, r->np);
        t = kd_comm_grad_seconds(r->c->comm) - t;
        wt = kd_comm_wait_seconds(r->c->comm) - wt;
        r->comm_win += t, r->comm_total += t, r->wait_win += wt, r->wait_total += wt, r->comm_win_n++, r->comm_steps++;
    }
    if (st == KD_OK) st = kd_clip_grad_norm(r->params, r->np, r->c->max_grad_norm, &nt);
    if (st == KD_OK) st = kd_copy_into(stat_slot(r, NSTAT * (int64_t)r->c->grad_accum), nt);
    if (st == KD_OK) st = kd_adamw_step(r->opt, lr);
    if (st == KD_OK) st = kd_to_host(r->stats, r->stats_host);
    /* the step's loss parts: this rank's, or summed over the ranks with their presence */
    int64_t nv = NSTAT * r->mb;
    for (int64_t i = 0; i < nv; i++) r->red[i] = r->stats_host[i], r->red[nv + i] = r->present[i];
    if (st == KD_OK && r->world > 1 && (st = kd_comm_allreduce_f64(r->c->comm, r->red, (size_t)(2 * nv), KD_COMM_SUM)) == KD_OK)
        for (int64_t i = 0; i < nv; i++)
            if (!(r->red[nv + i] > 0)) r->red[i] = absent_part[i % NSTAT];
    if (st == KD_OK) {
        r->norm = r->stats_host[NSTAT * r->c->grad_accum];
        for (int64_t k = 0; k < r->mb && st == KD_OK; k++) {
            double lv = r->red[NSTAT * k];
            if (!isfinite(lv))
                st = kd_fail(KD_ERR_STATE, "batch %lld: the loss is %g", (long long)(b - r->mb + k) + 1, lv);
            r->last_loss = lv;
            r->grp_loss += lv / (double)gs;
            r->win_loss += lv;
            for (int i = 1; i < NSTAT; i++) {
                double v = r->red[NSTAT * k + i];
                if (!isnan(v)) r->win[i] += v, r->win_count[i]++, r->grp[i] += v, r->grp_count[i]++;
            }
            r->win_n++;
        }
        if (st == KD_OK) st = kd_check_grad_norm(r->params, r->np, r->norm);
    }
    kd_zero_grad(r->params, r->np);
    kd_arena_reset();
    r->mb = 0;
    if (st != KD_OK) {
        kd_progress_break(&r->prog);
        return kd_fail(kd_last_status(), "step %lld (epoch %d): %s; stopping, nothing saved",
                       (long long)r->state.global_step + 1, epoch + 1, kd_last_error());
    }
    r->state.global_step++;
    double x = (double)r->state.global_step;
    st = kd_series_push(&r->state.loss, x, r->grp_loss);
    for (int i = 1; i < NSTAT && st == KD_OK; i++)
        st = kd_series_push(&r->state.parts[i - 1], x, r->grp_count[i] ? r->grp[i] / (double)r->grp_count[i] : NAN);
    r->grp_loss = 0;
    for (int i = 0; i < NSTAT; i++) r->grp[i] = 0, r->grp_count[i] = 0;
    return st;
}

/* A metrics line every log_every steps and at the end; the progress line every step. */
static void log_step(run *r, int epoch, double lr)
{
    int64_t log_every = r->c->log_every > 0 ? r->c->log_every : 10;
    double el = fmax(kd_now() - r->t0, 1e-9), sps = (double)r->samples / el, tps = (double)r->tokens / el;
    if (r->state.global_step % log_every == 0 || r->state.global_step == r->total) {
        double n = (double)r->win_n;
        double part[NSTAT];
        for (int i = 1; i < NSTAT; i++) part[i] = r->win_count[i] ? r->win[i] / (double)r->win_count[i] : NAN;
        if (r->jsonl) write_train_line(r, epoch, r->win_loss / n, part, lr, r->norm, sps, tps);
        r->win_loss = 0;
        r->comm_win = r->wait_win = 0;
        r->comm_win_n = 0;
        r->win_n = 0;
        for (int i = 0; i < NSTAT; i++) r->win[i] = 0, r->win_count[i] = 0;
    }
    kd_progress_update(&r->prog, r->state.global_step, r->last_loss, lr, sps);
    if (r->order) fflush(r->order);
}

/* The chart's data: the state's histories, the loss parts this run has, the schedule. */
static void chart_data(run *r, kd_chart_data *cd)
{
    static const char *const names[KD_CHART_PARTS] = { "soft (T^2 KL)", "hard (CE)", "hidden", "attention" };
    const kd_train_config *c = r->c;
    int distill = r->d->teacher && c->alpha > 0.0;
    memset(cd, 0, sizeof *cd);
    cd->title = r->chart_title;
    cd->loss = &r->state.loss;
    cd->dev = &r->state.dev;
    cd->teacher_accuracy = r->state.teacher_accuracy;
    cd->total_steps = r->total;
    cd->epochs = c->epochs;
    cd->sched = &r->sched;
    /* fine-tuning's loss is its hard part: no parts then */
    int on[KD_CHART_PARTS] = { distill, distill, c->hidden_weight > 0, c->attention_weight > 0 };
    for (int k = 0; k < KD_CHART_PARTS; k++) {
        cd->parts[k] = on[k] ? &r->state.parts[k] : NULL;
        cd->part_names[k] = names[k];
    }
}

/* OUT/chart.svg and OUT/report.html from the state so far. */
static kd_status write_chart_and_report(run *r, int finished)
{
    kd_chart_data cd;
    chart_data(r, &cd);
    kd_status st = kd_svg_chart_write(r->path_chart, &cd);
    if (st != KD_OK) return st;
    const kd_train_data *d = r->d;
    /* the label names the model carries (config.json's id2label) */
    const kd_bert_config *sc = kd_bert_get_config(r->student);
    const char *names[KD_BERT_MAX_LABELS];
    for (int i = 0; i < r->nl && i < KD_BERT_MAX_LABELS; i++) names[i] = sc->labels[i];
    kd_run_report rep = { .info = r->c->info, .command = d->teacher ? "distill" : "finetune", .out_dir = r->c->out_dir,
                          .finished = finished, .n_train = d->train->n, .n_transfer = d->transfer ? d->transfer->n : 0,
                          .n_dev = d->dev->n, .num_labels = r->nl, .label_names = names,
                          .student = sc, .student_params = kd_bert_num_parameters(r->student),
                          .teacher = d->teacher ? kd_bert_get_config(d->teacher) : NULL,
                          .teacher_params = d->teacher ? kd_bert_num_parameters(d->teacher) : 0, .state = &r->state,
                          .chart = &cd };
    return kd_report_write_run(r->path_report, &rep);
}

/* After an epoch: evaluation, `best` when dev accuracy improved, `last`, the chart and the report. */
static kd_status end_epoch(run *r, int epoch)
{
    r->state.epoch = epoch + 1;
    r->state.next_batch = 0;
    if (r->rank != 0) return KD_OK;   /* rank 0 evaluates and writes */
    kd_status st = evaluate_dev(r, epoch);
    if (st != KD_OK) return st;
    /* the epoch's mean step loss: the steps after the previous evaluation */
    int64_t from = r->state.n_epochs ? r->state.epochs[r->state.n_epochs - 1].step : 0;
    double sum = 0.0;
    int64_t cnt = 0;
    for (size_t i = r->state.loss.n; i-- > 0 && r->state.loss.x[i] > (double)from;) sum += r->state.loss.y[i], cnt++;
    kd_epoch_record e = { .epoch = epoch + 1, .step = r->state.global_step, .accuracy = r->metrics.accuracy,
                          .macro_f1 = r->metrics.macro_f1, .macro_recall = r->metrics.macro_recall,
                          .dev_loss = r->metrics.loss, .train_loss = cnt ? sum / (double)cnt : NAN,
                          .seconds = r->base_seconds + (kd_now() - r->t0) };
    if ((st = kd_train_state_push_epoch(&r->state, &e)) != KD_OK) return st;
    if (r->metrics.accuracy > r->state.best_accuracy) {
        r->state.best_accuracy = r->metrics.accuracy;
        r->state.best_epoch = epoch + 1;
        if ((st = kd_train_state_set_confusion(&r->state, r->metrics.confusion, r->nl)) != KD_OK) return st;
        if ((st = kd_checkpoint_save(r->dir_best, r->student, r->ptok, NULL, NULL)) != KD_OK) return st;
    }
    if ((st = save_last(r, r->t0, r->base_seconds)) != KD_OK) return st;
    return write_chart_and_report(r, 0);
}

/* The teacher on dev, once per run (kept in the state, so a resumed run does not redo it): the chart's and
 * the report's reference, and a metrics.jsonl record. */
static kd_status evaluate_teacher(run *r)
{
    const kd_train_config *c = r->c;
    const kd_train_data *d = r->d;
    if (!d->teacher || r->state.teacher_accuracy >= 0 || r->rank != 0) return KD_OK;
    int tl = kd_bert_get_config(d->teacher)->num_labels;
    float *z = malloc(d->dev->n * (size_t)tl * sizeof *z);
    kd_metrics m;
    kd_status st = z ? kd_metrics_init(&m, tl) : kd_fail(KD_ERR_NOMEM, "train: out of memory");
    if (st != KD_OK) {
        free(z);
        return st;
    }
    kd_progress prog;
    kd_progress_pass(&prog, stderr, c->progress_tty, c->quiet, "teacher dev evaluation", "examples", (int64_t)d->dev->n, 0);
    st = kd_model_logits(d->teacher, d->dev, d->teacher_tok, c->max_len, c->eval_batch_size, z, &prog);
    kd_progress_end(&prog);
    if (st == KD_OK) st = kd_metrics_from_logits(z, d->dev->label, d->dev->n, tl, &m);
    if (st == KD_OK) {
        r->state.teacher_accuracy = m.accuracy;
        r->state.teacher_macro_f1 = m.macro_f1;
        kd_jw w;
        line_begin(&w, r, "teacher_eval", r->state.epoch);
        kd_jw_field_number(&w, "accuracy", m.accuracy);
        kd_jw_field_number(&w, "macro_f1", m.macro_f1);
        kd_jw_field_number(&w, "macro_recall", m.macro_recall);
        kd_jw_field_number(&w, "loss", m.loss);
        line_end(&w, r);
        if (!c->quiet)
            fprintf(stderr, "teacher on dev: accuracy %.4f  macro-F1 %.4f  macro-recall %.4f\n", m.accuracy, m.macro_f1,
                    m.macro_recall);
    }
    kd_metrics_free(&m);
    free(z);
    return st;
}

/* The shipped model: the best epoch's, in the output directory itself (loaded on the host). */
static kd_status ship_best(run *r)
{
    kd_bert *best = kd_bert_load(r->dir_best, r->nl, r->c->seed, NULL);
    if (!best) return kd_last_status();
    kd_status st = kd_bert_save(best, r->c->out_dir);
    if (st == KD_OK && r->ptok) st = kd_checkpoint_save_tokenizer(r->c->out_dir, r->ptok);
    kd_bert_free(best);
    return st;
}

/* One epoch from the data position the state says; *stopped when --max-steps ended it. */
static kd_status run_epoch(run *r, int epoch, int *stopped)
{
    const kd_train_config *c = r->c;
    int64_t accum = c->grad_accum;
    kd_batcher_start_epoch(r->sb, (uint64_t)epoch);
    if (r->tb) kd_batcher_start_epoch(r->tb, (uint64_t)epoch);
    r->epoch_now = epoch;
    kd_batch *gs = r->world > 1 ? &r->gsbatch : &r->sbatch, *gt = r->world > 1 ? &r->gtbatch : &r->tbatch;
    int64_t b = 0;
    for (; b < r->state.next_batch; b++) {
        if (kd_batcher_next(r->sb, gs) != 1 || (r->tb && kd_batcher_next(r->tb, gt) != 1))
            return kd_fail(KD_ERR_STATE, "--resume: the checkpoint's position (batch %lld) is past the epoch's end",
                           (long long)r->state.next_batch);
    }
    int got;
    kd_status st;
    while ((got = kd_batcher_next(r->sb, gs)) == 1) {
        if (r->world > 1 && (st = shard_batch(gs, r->rank, r->world, &r->sbatch)) != KD_OK) return st;
        int64_t gs = accum;   /* the last group of an epoch may be short */
        if ((b / accum + 1) * accum > r->nb) gs = r->nb - b / accum * accum;
        if ((st = micro_step(r, b, gs)) != KD_OK) return st;
        b++;
        if (b % accum != 0 && b != r->nb) continue;
        double lr = kd_schedule_lr(&r->sched, r->state.global_step);
        if ((st = optimizer_step(r, epoch, b, gs, lr)) != KD_OK) return st;
        log_step(r, epoch, lr);
        if (c->max_steps > 0 && r->state.global_step >= c->max_steps && r->state.global_step < r->total) {
            r->state.epoch = epoch;
            r->state.next_batch = b;
            *stopped = 1;
            break;
        }
    }
    kd_progress_break(&r->prog);
    return got < 0 ? kd_last_status() : KD_OK;
}

static kd_status train_loop(run *r, kd_train_result *res)
{
    const kd_train_config *c = r->c;
    const kd_train_data *d = r->d;
    kd_status st;
    r->state.total_steps = r->total;
    r->state.seed = c->seed;
    r->state.best_accuracy = -1.0;
    r->state.teacher_accuracy = r->state.teacher_macro_f1 = -1.0;
    kd_manual_seed(c->seed);
    make_recipe(r);
    snprintf(r->state.recipe, sizeof r->state.recipe, "%s", r->recipe);
    if (c->resume && (st = resume(r)) != KD_OK) return st;
    /* Every rank starts from rank 0's weights (they agree already when made from the seed or a checkpoint). */
    if (r->world > 1 && (st = kd_comm_broadcast_params(c->comm, r->params, r->np, 0)) != KD_OK) return st;
    if (d->teacher && c->cache_teacher) {
        /* rank 0 computes (or reads) the teacher's logits and broadcasts them */
        int cached = 0;
        int64_t tl = kd_bert_get_config(d->teacher)->num_labels, nz = (int64_t)r->all.n * tl;
        if (r->rank == 0)
            st = kd_teacher_cache_get(r->path_cache, d->teacher, &r->all, d->teacher_tok, c->max_len,
                                      c->eval_batch_size, c->progress_tty, c->quiet, &r->teacher_logits, &cached);
        else if (!(r->teacher_logits = malloc((size_t)(nz ? nz : 1) * sizeof(float))))
            st = kd_fail(KD_ERR_NOMEM, "train: out of memory for the teacher's logits");
        if (st != KD_OK) return st;
        /* the others sleep in a barrier while rank 0 works, then take the logits */
        if (r->world > 1 && ((st = kd_comm_barrier(c->comm)) != KD_OK ||
                             (st = kd_comm_broadcast(c->comm, r->teacher_logits, (size_t)nz * sizeof(float), 0)) != KD_OK))
            return st;
        if (!c->quiet)
            fprintf(stderr, "teacher logits: %s %s%s\n", cached ? "read from" : "computed into", r->path_cache,
                    r->world > 1 ? " (by rank 0, broadcast to every rank)" : "");
    }
    if (r->rank == 0) {
        r->jsonl = fopen(r->path_metrics, c->resume ? "a" : "w");
        if (!r->jsonl) return kd_fail(KD_ERR_IO, "%s: cannot write the metrics", r->path_metrics);
        r->order = fopen(r->path_order, c->resume ? "a" : "w");
        if (!r->order) return kd_fail(KD_ERR_IO, "%s: cannot write the batch order", r->path_order);
        if (c->write_init && !c->resume &&
            (st = kd_checkpoint_save(r->dir_init, r->student, r->ptok, NULL, NULL)) != KD_OK)
            return st;
    }
    if (r->world > 1 && (st = kd_comm_grad_buckets(c->comm, r->params, r->np, c->bucket_mb)) != KD_OK) return st;
    if (r->world > 1 && !c->quiet)
        fprintf(stderr, "data-parallel: %d ranks (%s), global batch %d, %d rows per rank; gradients summed in %s\n",
                r->world, kd_comm_name(c->comm), c->batch_size, (c->batch_size + r->world - 1) / r->world,
                kd_comm_grad_bucketed(c->comm) ? kd_comm_grad_mode(c->comm) : "one flat all-reduce after the backward");
    if ((st = evaluate_teacher(r)) != KD_OK) return st;
    if (r->world > 1 && (st = kd_comm_barrier(c->comm)) != KD_OK) return st;   /* rank 0's evaluation */

    kd_progress_init(&r->prog, stderr, c->progress_tty, c->quiet, r->state.global_step, r->total, c->log_every);
    r->t0 = kd_now();
    r->base_seconds = r->state.train_seconds;
    kd_bert_set_training(r->student, 1);
    if (d->teacher) kd_bert_set_training(d->teacher, 0);
    int stopped = 0;
    for (int epoch = r->state.epoch; epoch < c->epochs && !stopped; epoch++) {
        if ((st = run_epoch(r, epoch, &stopped)) != KD_OK) return st;
        if (stopped) {
            if (r->rank == 0 && (st = save_last(r, r->t0, r->base_seconds)) != KD_OK) return st;
            if (r->rank == 0 && (st = write_chart_and_report(r, 0)) != KD_OK) return st;
            if (!c->quiet)
                fprintf(stderr, "stopped at step %lld (--max-steps); continue with --resume\n", (long long)r->state.global_step);
            break;
        }
        if ((st = end_epoch(r, epoch)) != KD_OK) return st;
        if (r->world > 1 && (st = kd_comm_barrier(c->comm)) != KD_OK) return st;   /* rank 0's evaluation */
    }

    res->finished = !stopped;
    res->steps = r->state.global_step;
    res->best_accuracy = r->state.best_accuracy;
    res->best_epoch = r->state.best_epoch;
    res->train_seconds = r->base_seconds + (kd_now() - r->t0);
    if (r->state.dev.n) res->final_accuracy = r->state.dev.y[r->state.dev.n - 1];
    res->final_macro_f1 = r->metrics.macro_f1;
    res->final_macro_recall = r->metrics.macro_recall;
    double run_s = kd_now() - r->t0;
    res->tokens_per_s = run_s > 0 ? (double)r->tokens / run_s : 0.0;
    res->allreduce_s_per_step = r->comm_steps ? r->comm_total / (double)r->comm_steps : 0.0;
    res->allreduce_wait_s_per_step = r->comm_steps ? r->wait_total / (double)r->comm_steps : 0.0;
    res->allreduce_buckets = kd_comm_grad_bucket_count(c->comm);
    if (r->world > 1 && !c->quiet)
        fprintf(stderr, "data-parallel (%s): gradients' all-reduce %.4f s per step from the first gradient handed "
                        "over to the last summed, of which %.4f s exposed (the step waited: %.1f%% of the run's wall "
                        "time)\n", kd_comm_grad_bucketed(c->comm) ? kd_comm_grad_mode(c->comm) : "flat",
                res->allreduce_s_per_step, res->allreduce_wait_s_per_step,
                run_s > 0 ? 100.0 * r->wait_total / run_s : 0.0);
    if (!stopped && r->rank == 0) {
        if ((st = ship_best(r)) != KD_OK) return st;
        r->state.train_seconds = res->train_seconds;
        if ((st = write_chart_and_report(r, 1)) != KD_OK) return st;
    }
    /* the ranks leave together: the model is in place when any of them returns */
    return r->world > 1 ? kd_comm_barrier(c->comm) : KD_OK;
}

kd_status kd_train(kd_bert *student, const kd_train_data *d, const kd_train_config *c, kd_train_result *res)
{
    memset(res, 0, sizeof *res);
    kd_status st = check_config(c, d, student);
    if (st != KD_OK) return st;
    if (c->dropout >= 0 && (st = kd_bert_set_dropout(student, c->dropout, c->dropout)) != KD_OK) return st;
    if ((st = kd_make_dirs(c->out_dir)) != KD_OK) return st;
    char path_subset[PATH_MAX + 32];
    snprintf(path_subset, sizeof path_subset, "%s/train_subset.txt", c->out_dir);
    int rank = kd_comm_rank(c->comm), world = kd_comm_size(c->comm);
    if (rank == 0 && (st = kd_subset_write(path_subset, d->train_rows, d->train->n)) != KD_OK) return st;
    /* Without a teacher term the cache is not needed. Rank 0 alone speaks. */
    kd_train_config cc = *c;
    if (c->alpha == 0.0) cc.cache_teacher = 0;
    if (rank != 0) cc.quiet = 1;
    run r;
    memset(&r, 0, sizeof r);
    r.rank = rank;
    r.world = world;
    r.c = &cc;
    r.d = d;
    r.student = student;
    r.dev = kd_bert_device(student);
    r.params = kd_bert_parameters(student, &r.np);
    r.nl = kd_bert_get_config(student)->num_labels;
    if (c->student_vocab) {
        r.tok = (kd_checkpoint_tokenizer){ .vocab_path = c->student_vocab, .opts = d->student_tok->opts, .max_len = c->max_len };
        r.ptok = &r.tok;
    }
    snprintf(r.dir_last, sizeof r.dir_last, "%s/last", c->out_dir);
    snprintf(r.dir_best, sizeof r.dir_best, "%s/best", c->out_dir);
    snprintf(r.path_metrics, sizeof r.path_metrics, "%s/metrics.jsonl", c->out_dir);
    snprintf(r.path_chart, sizeof r.path_chart, "%s/chart.svg", c->out_dir);
    snprintf(r.path_cache, sizeof r.path_cache, "%s/teacher_logits.bin", c->out_dir);
    snprintf(r.path_order, sizeof r.path_order, "%s/batch_order.txt", c->out_dir);
    snprintf(r.dir_init, sizeof r.dir_init, "%s/init", c->out_dir);
    snprintf(r.path_report, sizeof r.path_report, "%s/report.html", c->out_dir);
    snprintf(r.chart_title, sizeof r.chart_title, "kd %s: %s", d->teacher ? "distill" : "finetune", c->out_dir);
    kd_batch_init(&r.sbatch);
    kd_batch_init(&r.tbatch);
    kd_batch_init(&r.gsbatch);
    kd_batch_init(&r.gtbatch);

    kd_batcher_opts o = kd_batcher_opts_default();
    o.batch_size = c->batch_size;
    o.max_len = c->max_len;
    o.shuffle = 1;
    o.seed = c->seed;
    /* The run happens where the student is; a teacher that runs in the step must be there too. */
    st = kd_intermediate_init(&r.im, &cc, student, d->teacher, cc.cache_teacher, c->seed);
    int teacher_runs = d->teacher && (c->alpha > 0.0 || r.im.on) && !cc.cache_teacher;
    if (st == KD_OK && r.im.nproj) {
        r.own_params = malloc((r.np + (size_t)r.im.nproj) * sizeof *r.own_params);
        if (!r.own_params) st = kd_fail(KD_ERR_NOMEM, "train: out of memory");
        else {
            memcpy(r.own_params, r.params, r.np * sizeof *r.params);
            for (int i = 0; i < KD_BERT_MAX_STATES; i++)
                if (r.im.proj[i]) r.own_params[r.np++] = r.im.proj[i];
            r.params = r.own_params;
        }
    }
    if (st == KD_OK && teacher_runs && kd_bert_device(d->teacher) != r.dev)
        st = kd_fail(KD_ERR_ARG, "train: the teacher is on %s, the student on %s; move both to one device",
                     kd_device_name(kd_bert_device(d->teacher)), kd_device_name(r.dev));
    int64_t ns = NSTAT * (int64_t)c->grad_accum + 1;
    if (st == KD_OK) {
        r.stats = kd_param_on(r.dev, KD_F32, 1, &ns, "step stats");
        r.stats_host = malloc((size_t)ns * sizeof *r.stats_host);
        r.zt_host = malloc((size_t)c->batch_size * (size_t)r.nl * sizeof *r.zt_host);
        r.y_host = malloc((size_t)c->batch_size * sizeof *r.y_host);
        r.rows_host = malloc((size_t)c->batch_size * sizeof *r.rows_host);
        r.dev_logits = malloc(d->dev->n * (size_t)r.nl * sizeof(float));
        r.red = malloc(2 * (size_t)ns * sizeof *r.red);
        r.present = malloc((size_t)ns * sizeof *r.present);
        if (!r.stats || !r.stats_host || !r.zt_host || !r.y_host || !r.rows_host || !r.dev_logits || !r.red || !r.present)
            st = kd_fail(KD_ERR_NOMEM, "train: out of memory");
        else r.stats->requires_grad = 0;
    }
    if (st == KD_OK) st = kd_dataset_concat_view(d->train, d->transfer, &r.all);
    /* Tokenizing a large set takes a while: shown as a pass (nothing printed when it is short). */
    kd_progress tokp;
    o.progress = kd_progress_callback;
    o.progress_ctx = &tokp;
    kd_progress_pass(&tokp, stderr, c->progress_tty, c->quiet, "tokenizing", "texts", (int64_t)r.all.n, 0);
    if (st == KD_OK) st = kd_batcher_new(&r.all, d->student_tok, &o, &r.sb);
    kd_progress_end(&tokp);
    kd_progress_pass(&tokp, stderr, c->progress_tty, c->quiet, "tokenizing for the teacher", "texts", (int64_t)r.all.n, 0);
    if (st == KD_OK && teacher_runs) st = kd_batcher_new(&r.all, d->teacher_tok, &o, &r.tb);
    kd_progress_end(&tokp);
    if (st == KD_OK && !(r.opt = kd_adamw_new(r.params, r.np, &c->adamw))) st = kd_last_status();
    if (st == KD_OK) st = kd_metrics_init(&r.metrics, r.nl);
    if (st == KD_OK) {
        r.nb = (int64_t)kd_batcher_num_batches(r.sb);
        r.total = (r.nb + c->grad_accum - 1) / c->grad_accum * c->epochs;
        r.sched = kd_schedule_linear(c->lr, r.total, c->warmup_steps, c->warmup_ratio);
        st = train_loop(&r, res);
    }
    kd_arena_reset();
    kd_zero_grad(r.params, r.np);
    kd_adamw_free(r.opt);
    kd_intermediate_free(&r.im);
    free(r.own_params);
    kd_tensor_free(r.stats);
    free(r.zt_host);
    free(r.y_host);
    free(r.rows_host);
    kd_dataset_view_free(&r.all);
    free(r.stats_host);
    free(r.red);
    free(r.present);
    kd_batch_free(&r.gsbatch);
    kd_batch_free(&r.gtbatch);
    if (r.jsonl) fclose(r.jsonl);
    if (r.order && fclose(r.order) != 0 && st == KD_OK)
        st = kd_fail(KD_ERR_IO, "%s: cannot write the batch order", r.path_order);
    free(r.teacher_logits);
    free(r.dev_logits);
    kd_metrics_free(&r.metrics);
    kd_train_state_free(&r.state);
    kd_batch_free(&r.sbatch);
    kd_batch_free(&r.tbatch);
    kd_batcher_free(r.sb);
    kd_batcher_free(r.tb);
    return st;
}
