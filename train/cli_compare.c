/* train/cli_compare.c — `kd compare`: teacher and student side by side on one labelled set: accuracy,
 * macro-F1, parameters, file size, latency p50/p95 at batch 1 and throughput at batch 32, and each
 * student's speed-up and share of the teacher's accuracy (--student repeats: one row per student).
 * Latency is end to end for one text: tokenization, padding and the forward pass. --report FILE writes the
 * same side by side as an HTML page (train/report.h), with accuracy plotted against latency and size. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/backend.h"
#include "engine/safetensors.h"
#include "train/cli.h"
#include "train/evaluate.h"
#include "train/progress.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A view of examples [lo, lo + n) of d (no copies; never freed as a data set). */
static kd_dataset slice(const kd_dataset *d, size_t lo, size_t n)
{
    kd_dataset s = *d;
    s.text = d->text + lo;
    s.text_len = d->text_len + lo;
    s.label = d->label + lo;
    s.n = n;
    return s;
}

int64_t kd_measure_work(const kd_dataset *d, int latency_n)
{
    size_t n = d->n, warm = n < 3 ? n : 3, ln = n < (size_t)latency_n ? n : (size_t)latency_n, tn = n < 512 ? n : 512;
    return (int64_t)(n + warm + ln + tn);
}

void kd_model_report_free(kd_model_report *r)
{
    free(r->confusion);
    r->confusion = NULL;
}

kd_status kd_measure_model(kd_bert *m, const kd_tokenizer *tok, const kd_dataset *d, int max_len, int latency_n,
                           const char *dir, kd_model_report *r, kd_progress *prog)
{
    memset(r, 0, sizeof *r);
    int c = kd_bert_get_config(m)->num_labels;
    float *logits = malloc((d->n ? d->n : 1) * (size_t)c * sizeof *logits);
    kd_metrics met;
    kd_status st = logits ? kd_metrics_init(&met, c) : kd_fail(KD_ERR_NOMEM, "compare: out of memory");
    if (st != KD_OK) {
        free(logits);
        return st;
    }
    st = kd_model_logits(m, d, tok, max_len, 64, logits, prog);
    if (st == KD_OK) st = kd_metrics_from_logits(logits, d->label, d->n, c, &met);
    r->accuracy = met.accuracy;
    r->macro_f1 = met.macro_f1;
    r->num_labels = c;
    /* the matrix is handed over to the report */
    r->confusion = met.confusion;
    met.confusion = NULL;
    kd_metrics_free(&met);
    r->params = kd_bert_num_parameters(m);
    r->file_bytes = -1;
    if (dir) {
        char p[PATH_MAX + 32];
        struct stat sb;
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        if (stat(p, &sb) == 0) r->file_bytes = (int64_t)sb.st_size;
        /* a sharded checkpoint: the shards together */
        snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
        kd_st_set *set = r->file_bytes < 0 && stat(p, &sb) == 0 ? kd_st_set_open_index(p) : NULL;
        if (set) r->file_bytes = (int64_t)kd_st_set_bytes(set);
        kd_st_set_close(set);
    }
    size_t ln = d->n < (size_t)latency_n ? d->n : (size_t)latency_n;
    double *t = malloc((ln ? ln : 1) * sizeof *t);
    if (st == KD_OK && !t) st = kd_fail(KD_ERR_NOMEM, "compare: out of memory");
    for (size_t i = 0; st == KD_OK && i < 3 && i < d->n; i++) {   /* warm-up */
        kd_dataset one = slice(d, i, 1);
        st = kd_model_logits(m, &one, tok, max_len, 1, logits, NULL);
        kd_progress_add(prog, 1);
    }
    for (size_t i = 0; st == KD_OK && i < ln; i++) {
        kd_dataset one = slice(d, i, 1);
        double t0 = kd_now();
        st = kd_model_logits(m, &one, tok, max_len, 1, logits, NULL);
        t[i] = (kd_now() - t0) * 1e3;
        kd_progress_add(prog, 1);
    }
    if (st == KD_OK && ln) {
        qsort(t, ln, sizeof *t, cmp_double);
        r->p50_ms = t[ln / 2];
        r->p95_ms = t[(size_t)((double)(ln - 1) * 0.95 + 0.5)];
    }
    free(t);
    size_t tn = d->n < 512 ? d->n : 512;
    if (st == KD_OK && tn) {
        kd_dataset part = slice(d, 0, tn);
        double t0 = kd_now();
        st = kd_model_logits(m, &part, tok, max_len, 32, logits, NULL);
        r->throughput = (double)tn / (kd_now() - t0);
        kd_progress_add(prog, (int64_t)tn);
    }
    free(logits);
    return st;
}

void kd_print_reports(const char *const *names, const kd_model_report *r, int n, const char *const *extra_col,
                      const char *extra_head, FILE *out)
{
    fprintf(out, "%-22s %9s %9s %11s %10s %9s %9s %12s", "model", "accuracy", "macro-F1", "parameters", "file MB",
            "p50 ms", "p95 ms", "examples/s");
    if (extra_head) fprintf(out, " %s", extra_head);
    fputc('\n', out);
    for (int i = 0; i < n; i++) {
        char mb[32];
        if (r[i].file_bytes >= 0) snprintf(mb, sizeof mb, "%.1f", (double)r[i].file_bytes / 1e6);
        else snprintf(mb, sizeof mb, "-");
        fprintf(out, "%-22s %9.4f %9.4f %11lld %10s %9.2f %9.2f %12.1f", names[i], r[i].accuracy, r[i].macro_f1,
                (long long)r[i].params, mb, r[i].p50_ms, r[i].p95_ms, r[i].throughput);
        if (extra_col) fprintf(out, " %s", extra_col[i]);
        fputc('\n', out);
    }
}

/* One student against the teacher (r[0]): the summary line under the table. */
static void print_share(const char *name, const kd_model_report *t, const kd_model_report *s)
{
    printf("%s: %.1f%% of the teacher's accuracy, %.2fx fewer parameters, %.2fx faster at batch 1 (p50), "
           "%.2fx the throughput at batch 32\n", name, 100.0 * s->accuracy / (t->accuracy > 0 ? t->accuracy : 1),
           (double)t->params / (double)s->params, t->p50_ms / s->p50_ms, s->throughput / t->throughput);
}

/* --report FILE: the page of train/report.h, the teacher's label names. */
static int write_report(const char *path, int argc, char **argv, const kd_opt *opts, int nopts, const int *set,
                        const char *data, const kd_dataset *d, const char *const *dirs, const char *const *names,
                        kd_bert *const *m, const kd_model_report *r, int n, int max_len, int latency_n)
{
    kd_run_info info;
    if (kd_cli_run_info("compare", argc, argv, opts, nopts, set, &info) != KD_OK) return kd_cli_fail("compare");
    kd_report_model rows[KD_OPT_LIST_MAX + 1];
    for (int i = 0; i < n; i++)
        rows[i] = (kd_report_model){ .name = names[i], .dir = dirs[i], .cfg = kd_bert_get_config(m[i]),
                                     .params = r[i].params, .file_bytes = r[i].file_bytes, .accuracy = r[i].accuracy,
                                     .macro_f1 = r[i].macro_f1, .p50_ms = r[i].p50_ms, .p95_ms = r[i].p95_ms,
                                     .throughput = r[i].throughput, .confusion = r[i].confusion };
    const kd_bert_config *tc = kd_bert_get_config(m[0]);
    const char *label_names[KD_BERT_MAX_LABELS];
    for (int i = 0; i < tc->num_labels; i++) label_names[i] = tc->labels[i];
    kd_compare_report rep = { .info = &info, .data = data, .n_examples = d->n, .num_labels = tc->num_labels,
                              .label_names = label_names, .threads = kd_threads(), .max_len = max_len,
                              .latency_samples = latency_n < (int)d->n ? latency_n : (int)d->n, .models = rows, .n = n };
    kd_status st = kd_report_write_compare(path, &rep);
    kd_run_info_free(&info);
    if (st != KD_OK) return kd_cli_fail("compare");
    printf("report: %s\n", path);
    return KD_EXIT_OK;
}

int kd_cmd_compare(int argc, char **argv)
{
    const char *cmd = "compare", *tdir = NULL, *data = NULL, *report = NULL;
    kd_opt_list sdirs = { 0 };
    kd_cli_run run = { 0 };
    int max_len = 128, latency_n = 200, quiet = 0;
    kd_opt opts[] = {
        { "--teacher", KD_OPT_STR, &tdir, 0, 0, 0, "a model directory", "DIR: the teacher" },
        { "--student", KD_OPT_LIST, &sdirs, 0, 0, 0, "a model directory", "DIR: a student (repeatable: one row each)" },
        { "--data", KD_OPT_STR, &data, 0, 0, 0, "a labelled file or a directory with dev.*", "FILE|DIR: labelled set (a DIR: its dev split)" },
        { "--max-len", KD_OPT_INT, &max_len, 2, 512, 0, "a whole number from 2 to 512", "tokens per text (128)" },
        { "--latency-samples", KD_OPT_INT, &latency_n, 1, 1000000, 0, "a whole number >= 1", "texts timed one by one (200)" },
        { "--report", KD_OPT_STR, &report, 0, 0, 0, "an HTML file to write", "FILE: also an HTML page: the table, accuracy against latency and size, confusion matrices" },
        { "--quiet", KD_OPT_FLAG, &quiet, 0, 0, 0, NULL, "no progress output" },
        KD_RUN_OPTS(run),
    };
    int set[sizeof opts / sizeof opts[0]] = { 0 };
    int rc = kd_cli_parse(cmd, argc, argv, opts, (int)(sizeof opts / sizeof opts[0]),
                          "usage: kd compare --teacher DIR --student DIR [--student DIR ...] --data PATH\n\n"
                          "Accuracy, parameters, file size, latency p50/p95 at batch 1 (tokenization included),\n"
                          "throughput at batch 32 and each student's speed-up over the teacher. With several students\n"
                          "the table names them student1, student2, ... in the order given, with each one's speed-up\n"
                          "(p50) and share of the teacher's accuracy in two more columns.\n", set);
    if (rc >= 0) return rc;
    if ((rc = kd_cli_apply_common(cmd, &run)) >= 0) return rc;
    if (!tdir || !sdirs.n || !data) {
        fprintf(stderr, "kd %s: %s: got nothing, expected %s\n", cmd, !tdir ? "--teacher" : !sdirs.n ? "--student" : "--data",
                data || !tdir || !sdirs.n ? "a model directory" : "a labelled file or directory");
        return KD_EXIT_USAGE;
    }
    enum { MAX_MODELS = KD_OPT_LIST_MAX + 1 };
    const int n = 1 + sdirs.n;
    const char *dirs[MAX_MODELS] = { tdir };
    for (int i = 0; i < sdirs.n; i++) dirs[1 + i] = sdirs.v[i];
    kd_bert *m[MAX_MODELS] = { NULL };
    kd_tokenizer *tok[MAX_MODELS] = { NULL };
    kd_labels lab[MAX_MODELS] = { { 0 } };
    kd_dataset d = { 0 };
    kd_model_report r[MAX_MODELS];
    memset(r, 0, sizeof r);
    rc = -1;
    for (int i = 0; i < n && rc < 0; i++) {
        char vocab[PATH_MAX];
        if (kd_cli_model_vocab(dirs[i], vocab, sizeof vocab) != KD_OK || !(m[i] = kd_cli_load_classifier(dirs[i])) ||
            kd_cli_model_labels(kd_bert_get_config(m[i]), &lab[i]) != KD_OK || kd_tokenizer_load_beside(vocab, &tok[i]) != KD_OK ||
            kd_cli_place_model(&run, m[i]) != KD_OK)
            rc = kd_cli_fail(cmd);
    }
    for (int i = 1; i < n && rc < 0; i++) {
        if (lab[0].n != lab[i].n) {
            if (n == 2)
                fprintf(stderr, "kd %s: label-set mismatch: the teacher has %d labels, the student %d\n", cmd, lab[0].n, lab[i].n);
            else
                fprintf(stderr, "kd %s: label-set mismatch: the teacher has %d labels, student%d (%s) %d\n", cmd, lab[0].n,
                        i, dirs[i], lab[i].n);
            rc = KD_EXIT_FAIL;
        } else if (kd_cli_check_label_names(dirs[i], kd_bert_get_config(m[i]), &lab[0], "the teacher") != KD_OK) {
            rc = kd_cli_fail(cmd);
        }
    }
    if (rc < 0 && kd_cli_load_eval_split(data, &lab[0], &d) != KD_OK) rc = kd_cli_fail(cmd);
    char name_buf[MAX_MODELS][24];
    const char *names[MAX_MODELS];
    for (int i = 0; i < n; i++) {
        if (i == 0) snprintf(name_buf[i], sizeof name_buf[i], "teacher");
        else if (n == 2) snprintf(name_buf[i], sizeof name_buf[i], "student");
        else snprintf(name_buf[i], sizeof name_buf[i], "student%d", i);
        names[i] = name_buf[i];
    }
    for (int i = 0; i < n && rc < 0; i++) {
        kd_progress prog;
        char what[64];
        snprintf(what, sizeof what, "measuring %s", names[i]);
        kd_progress_pass(&prog, stderr, -1, quiet, what, "examples", kd_measure_work(&d, latency_n), 0);
        if (kd_measure_model(m[i], tok[i], &d, max_len, latency_n, dirs[i], &r[i], &prog) != KD_OK) rc = kd_cli_fail(cmd);
        kd_progress_end(&prog);
    }
    if (rc < 0) {
        char extra_buf[MAX_MODELS][64 + PATH_MAX], head[64];
        const char *extra[MAX_MODELS];
        for (int i = 0; i < n; i++) {
            snprintf(extra_buf[i], sizeof extra_buf[i], "%8.2fx %8.1f%%  %s", r[0].p50_ms / r[i].p50_ms,
                     100.0 * r[i].accuracy / (r[0].accuracy > 0 ? r[0].accuracy : 1), dirs[i]);
            extra[i] = extra_buf[i];
        }
        printf("on %s (%zu examples), %d thread(s)\n", data, d.n, kd_threads());
        /* One student keeps the plain table and its summary line; several add the columns. */
        snprintf(head, sizeof head, "%9s %9s  %s", "speed-up", "acc-share", "model");
        kd_print_reports(names, r, n, n > 2 ? extra : NULL, n > 2 ? head : NULL, stdout);
        for (int i = 1; i < n; i++) print_share(names[i], &r[0], &r[i]);
        rc = KD_EXIT_OK;
        if (report) rc = write_report(report, argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), set, data, &d, dirs,
                                      names, m, r, n, max_len, latency_n);
    }
    for (int i = 0; i < n; i++) kd_model_report_free(&r[i]);
    kd_dataset_free(&d);
    for (int i = 0; i < n; i++) {
        kd_bert_free(m[i]);
        kd_tokenizer_free(tok[i]);
        kd_labels_free(&lab[i]);
    }
    return rc;
}
