/* train/cli_common.c — flag parsing, common flags, data and model loading for the `kd` subcommands
 * (see cli.h). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/backend.h"
#include "train/cli.h"
#include "train/plot.h"
#include "train/subset.h"

static const kd_opt *find_opt(const kd_opt *opts, int n, const char *name, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0) return &opts[i];
    return NULL;
}

static int bad(const char *cmd, const kd_opt *o, const char *got)
{
    /* A whole number with a bound a user can reach is shown with its whole range. */
    if ((o->kind == KD_OPT_INT || o->kind == KD_OPT_I64) && o->hi < 1e9)
        fprintf(stderr, "kd %s: %s: got '%s', expected a whole number from %.0f to %.0f\n", cmd, o->name, got, o->lo,
                o->hi);
    else
        fprintf(stderr, "kd %s: %s: got '%s', expected %s\n", cmd, o->name, got, o->expect ? o->expect : "a value");
    return KD_EXIT_USAGE;
}

int kd_cli_parse(const char *cmd, int argc, char **argv, const kd_opt *opts, int nopts, const char *usage, int *set)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            fputs("\nFlags:\n", stdout);
            for (int k = 0; k < nopts; k++)
                if (opts[k].help) printf("  %-22s %s\n", opts[k].name, opts[k].help);
            printf("  %-22s %s\n", "--help", "this text");
            return KD_EXIT_OK;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "kd %s: got '%s', expected a flag starting with -- (see kd %s --help)\n", cmd, a, cmd);
            return KD_EXIT_USAGE;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const kd_opt *o = find_opt(opts, nopts, a, len);
        if (!o) {
            fprintf(stderr, "kd %s: %.*s: unknown flag (see kd %s --help)\n", cmd, (int)len, a, cmd);
            return KD_EXIT_USAGE;
        }
        if (set) set[o - opts] = 1;
        if (o->kind == KD_OPT_FLAG) {
            if (eq) return bad(cmd, o, eq + 1);
            *(int *)o->dst = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) {
            fprintf(stderr, "kd %s: %s: got nothing, expected %s\n", cmd, o->name, o->expect ? o->expect : "a value");
            return KD_EXIT_USAGE;
        }
        if (o->kind == KD_OPT_STR) {
            if (!*v) return bad(cmd, o, v);
            *(const char **)o->dst = v;
            continue;
        }
        if (o->kind == KD_OPT_LIST) {
            kd_opt_list *l = o->dst;
            if (!*v) return bad(cmd, o, v);
            if (l->n == KD_OPT_LIST_MAX) {
                fprintf(stderr, "kd %s: %s: given more than %d times\n", cmd, o->name, KD_OPT_LIST_MAX);
                return KD_EXIT_USAGE;
            }
            l->v[l->n++] = v;
            continue;
        }
        char *end;
        errno = 0;
        double x = o->kind == KD_OPT_DOUBLE ? strtod(v, &end) : (double)strtoll(v, &end, 10);
        if (errno || end == v || *end || !isfinite(x) || x < o->lo || x > o->hi || (o->lo_open && x == o->lo))
            return bad(cmd, o, v);
        if (o->kind == KD_OPT_DOUBLE) *(double *)o->dst = x;
        else if (o->kind == KD_OPT_INT) *(int *)o->dst = (int)x;
        else *(int64_t *)o->dst = (int64_t)x;
    }
    return -1;
}

/* Append s to t quoted for a POSIX shell when it needs it: 'it'\''s'. */
static void shell_quote(kd_text *t, const char *s)
{
    int plain = *s != '\0';
    for (const char *c = s; *c; c++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%", *c)) plain = 0;
    if (plain) {
        kd_text_printf(t, "%s", s);
        return;
    }
    kd_text_printf(t, "'");
    for (const char *c = s; *c; c++) {
        if (*c == '\'') kd_text_printf(t, "'\\''");
        else kd_text_printf(t, "%c", *c);
    }
    kd_text_printf(t, "'");
}

static char *text_take(kd_text *t)
{
    if (t->failed) {
        kd_text_free(t);
        return NULL;
    }
    char *p = t->p ? t->p : calloc(1, 1);
    memset(t, 0, sizeof *t);
    return p;
}

kd_status kd_cli_run_info(const char *cmd, int argc, char **argv, const kd_opt *opts, int nopts, const int *set,
                          kd_run_info *out)
{
    memset(out, 0, sizeof *out);
    kd_text t = { 0 };
    kd_text_printf(&t, "kd %s", cmd);
    for (int i = 1; i < argc; i++) {
        kd_text_printf(&t, " ");
        shell_quote(&t, argv[i]);
    }
    out->command_line = text_take(&t);
    out->flags = calloc((size_t)(nopts ? nopts : 1), sizeof *out->flags);
    if (!out->command_line || !out->flags) {
        kd_run_info_free(out);
        return kd_fail(KD_ERR_NOMEM, "kd %s: out of memory", cmd);
    }
    for (int i = 0; i < nopts; i++) {
        const kd_opt *o = &opts[i];
        switch (o->kind) {
        case KD_OPT_STR: {
            const char *v = *(const char *const *)o->dst;
            kd_text_printf(&t, "%s", v ? v : "(none)");
            break;
        }
        case KD_OPT_INT: kd_text_printf(&t, "%d", *(const int *)o->dst); break;
        case KD_OPT_I64: kd_text_printf(&t, "%lld", (long long)*(const int64_t *)o->dst); break;
        case KD_OPT_DOUBLE: kd_text_printf(&t, "%g", *(const double *)o->dst); break;
        case KD_OPT_FLAG: kd_text_printf(&t, "%s", *(const int *)o->dst ? "on" : "off"); break;
        case KD_OPT_LIST: {
            const kd_opt_list *l = o->dst;
            if (!l->n) kd_text_printf(&t, "(none)");
            for (int k = 0; k < l->n; k++) kd_text_printf(&t, "%s%s", k ? ", " : "", l->v[k]);
            break;
        }
        }
        kd_report_flag *f = &out->flags[out->nflags++];
        f->value = text_take(&t);
        f->name = strdup(o->name);
        f->given = set ? set[i] : 0;
        if (!f->value || !f->name) {
            kd_run_info_free(out);
            return kd_fail(KD_ERR_NOMEM, "kd %s: out of memory", cmd);
        }
    }
    return KD_OK;
}

int kd_cli_apply_common(const char *cmd, kd_cli_run *r)
{
    if (kd_device_parse(r->device ? r->device : "cpu", &r->dev) != KD_OK) {
        fprintf(stderr, "kd %s: --device: got '%s', expected cpu, cuda or sim (sim: the device code path run on "
                        "the CPU, for testing)\n", cmd, r->device);
        return KD_EXIT_USAGE;
    }
    if (r->threads > 0 && kd_set_threads(r->threads) != KD_OK) return kd_cli_fail(cmd);
    if (kd_device_open(r->dev) != KD_OK) {
        fprintf(stderr, "kd %s: --device %s: %s\n", cmd, r->device, kd_last_error());
        return KD_EXIT_FAIL;
    }
    kd_precision prec;
    if (kd_precision_parse(r->precision, &prec) != KD_OK || kd_device_set_precision(r->dev, prec) != KD_OK) {
        fprintf(stderr, "kd %s: --precision: %s\n", cmd, kd_last_error());
        return KD_EXIT_USAGE;
    }
    r->compute = kd_device_compute_dtype(r->dev);
    return -1;
}

kd_status kd_cli_place_model(const kd_cli_run *r, kd_bert *m)
{
    kd_status st = kd_bert_to_device(m, r->dev);
    return st == KD_OK ? kd_bert_set_precision(m, r->compute) : st;
}

int kd_cli_fail(const char *cmd)
{
    fprintf(stderr, "kd %s: %s\n", cmd, kd_last_error());
    return KD_EXIT_FAIL;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

kd_status kd_cli_load_splits(const char *data, const char *train_path, const char *dev_path, const kd_labels *known,
                             kd_dataset *train, kd_dataset *dev)
{
    kd_status st;
    memset(train, 0, sizeof *train);
    memset(dev, 0, sizeof *dev);
    if (!data && !train_path) return kd_fail(KD_ERR_ARG, "no data: give --data DIR (with train.* and dev.*) or --train FILE");
    if (train_path) st = kd_dataset_load(train_path, known, train);
    else if (is_dir(data)) st = kd_dataset_load_split(data, "train", known, train, NULL, 0);
    else st = kd_dataset_load(data, known, train);
    if (st != KD_OK) return st;
    /* The dev set must use the training set's label ids. */
    const kd_labels *lab = known ? known : &train->labels;
    if (dev_path) st = kd_dataset_load(dev_path, lab, dev);
    else if (data && is_dir(data)) st = kd_dataset_load_split(data, "dev", lab, dev, NULL, 0);
    else st = kd_fail(KD_ERR_ARG, "no dev set: --data %s is a file; give --dev FILE or a directory with train.* and dev.*",
                      data ? data : train_path);
    if (st != KD_OK) kd_dataset_free(train);
    return st;
}

kd_status kd_cli_load_eval_split(const char *data, const kd_labels *known, kd_dataset *out)
{
    memset(out, 0, sizeof *out);
    if (!data) return kd_fail(KD_ERR_ARG, "no data: give --data FILE or a directory with dev.*");
    if (is_dir(data)) return kd_dataset_load_split(data, "dev", known, out, NULL, 0);
    return kd_dataset_load(data, known, out);
}

kd_status kd_cli_model_labels(const kd_bert_config *cfg, kd_labels *out)
{
    const char *names[KD_BERT_MAX_LABELS];
    for (int i = 0; i < cfg->num_labels; i++) names[i] = cfg->labels[i];
    return kd_labels_set(out, names, cfg->num_labels);
}

kd_status kd_cli_model_vocab(const char *dir, char *buf, size_t n)
{
    struct stat st;
    snprintf(buf, n, "%s/vocab.txt", dir);
    if (stat(buf, &st) != 0) return kd_fail(KD_ERR_IO, "%s: missing (a model directory needs its vocab.txt)", buf);
    return KD_OK;
}

int kd_cli_is_preset(const char *spec)
{
    for (const char *const *p = kd_bert_preset_names(); *p; p++)
        if (strcmp(*p, spec) == 0) return 1;
    return 0;
}

int kd_cli_check_model_arg(const char *cmd, const char *flag, const char *spec)
{
    char p[PATH_MAX + 16];
    struct stat st;
    snprintf(p, sizeof p, "%s/config.json", spec);
    if (kd_cli_is_preset(spec) || stat(p, &st) == 0) return -1;
    fprintf(stderr, "kd %s: %s: got '%s', expected a preset name (", cmd, flag, spec);
    for (const char *const *n = kd_bert_preset_names(); *n; n++) fprintf(stderr, "%s%s", *n, n[1] ? ", " : "");
    fprintf(stderr, ") or a model directory with config.json (unknown preset or missing directory)\n");
    return KD_EXIT_USAGE;
}

kd_bert *kd_cli_relabel(kd_bert *m, const kd_labels *labels, uint64_t seed)
{
    if (kd_bert_is_quantized(m)) {
        kd_fail(KD_ERR_ARG, "relabel: an int8 model cannot be copied into a new head; relabel the f32 model");
        return NULL;
    }
    kd_bert_config cfg = *kd_bert_get_config(m);
    for (int i = 0; i < labels->n && i < KD_BERT_MAX_LABELS; i++)
        snprintf(cfg.labels[i], sizeof cfg.labels[i], "%s", labels->names[i]);
    kd_bert *r = kd_bert_new(&cfg, seed);
    if (!r) return NULL;
    size_t n, k;
    kd_tensor **p = kd_bert_parameters(r, &n), **q = kd_bert_parameters(m, &k);
    for (size_t i = 0; i < n && i < k; i++)
        if (kd_copy_into(p[i], q[i]) != KD_OK) {
            kd_bert_free(r);
            return NULL;
        }
    return r;
}

/* The names of a checkpoint's classes against those of the labels it is to learn: class i must be the same
 * class on both sides, unless one of them has only a default name. */
kd_status kd_cli_check_label_names(const char *spec, const kd_bert_config *c, const kd_labels *labels,
                                   const char *labels_from)
{
    for (int i = 0; i < labels->n; i++)
        if (strcmp(c->labels[i], labels->names[i]) && !kd_bert_default_label(c->labels[i], i) &&
            !kd_bert_default_label(labels->names[i], i))
            return kd_fail(KD_ERR_SHAPE, "label-set mismatch: class %d of %s is '%s', of %s '%s' (the same ids must "
                                         "name the same classes)", i, spec, c->labels[i], labels_from, labels->names[i]);
    return KD_OK;
}

kd_bert *kd_cli_make_model(const char *spec, const kd_vocab *vocab, const kd_labels *labels, const char *labels_from,
                           uint64_t seed, const char *cmd)
{
    if (kd_cli_is_preset(spec)) {
        kd_bert_config cfg;
        if (kd_bert_preset(spec, &cfg) != KD_OK) return NULL;
        cfg.vocab_size = kd_vocab_size(vocab);
        if (labels->n > KD_BERT_MAX_LABELS) {
            kd_fail(KD_ERR_ARG, "%d labels, at most %d supported", labels->n, KD_BERT_MAX_LABELS);
            return NULL;
        }
        cfg.num_labels = labels->n;
        for (int i = 0; i < labels->n; i++) snprintf(cfg.labels[i], sizeof cfg.labels[i], "%s", labels->names[i]);
        return kd_bert_new(&cfg, seed);
    }
    if (!is_dir(spec)) {
        const char *const *names = kd_bert_preset_names();
        char list[512] = "";
        for (; *names; names++) {
            strncat(list, *names, sizeof list - strlen(list) - 1);
            if (names[1]) strncat(list, ", ", sizeof list - strlen(list) - 1);
        }
        kd_fail(KD_ERR_ARG, "unknown preset or missing directory '%s': expected one of %s, or a model directory", spec,
                list);
        return NULL;
    }
    int missing = 0;
    kd_bert *m = kd_bert_load(spec, 0, seed, &missing);
    if (!m) return NULL;
    if (kd_bert_is_quantized(m)) {
        kd_bert_free(m);
        kd_fail(KD_ERR_ARG, "%s is an int8 model (config.json kd_quantization, made by kd quantize) for inference only: "
                "kd %s trains f32 weights; train the f32 model it was quantized from, then quantize the result", spec, cmd);
        return NULL;
    }
    if (!missing) {
        const kd_bert_config *c = kd_bert_get_config(m);
        if (c->num_labels != labels->n) {
            kd_fail(KD_ERR_SHAPE, "label-set mismatch: %s has %d labels, %s %d", spec, c->num_labels, labels_from,
                    labels->n);
            kd_bert_free(m);
            return NULL;
        }
        if (kd_cli_check_label_names(spec, c, labels, labels_from) != KD_OK) {
            kd_bert_free(m);
            return NULL;
        }
        return m;
    }
    /* A headless encoder: a new classifier of the data's size. */
    kd_bert_free(m);
    m = kd_bert_load(spec, labels->n, seed, NULL);
    if (!m) return NULL;
    fprintf(stderr, "kd %s: %s has no classification head: a new one of %d labels is initialised\n", cmd, spec, labels->n);
    kd_bert *r = kd_cli_relabel(m, labels, seed);
    kd_bert_free(m);
    return r;
}

kd_bert *kd_cli_load_classifier(const char *dir)
{
    int missing = 0;
    kd_bert *m = kd_bert_load(dir, 0, 1, &missing);
    if (m && missing) {
        kd_bert_free(m);
        kd_fail(KD_ERR_FORMAT, "%s: model.safetensors has no classification head (pooler and classifier weights): "
                               "an encoder only, which cannot classify; fine-tune it first (kd finetune --model %s ...)",
                dir, dir);
        return NULL;
    }
    return m;
}
