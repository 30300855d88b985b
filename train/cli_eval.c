/* train/cli_eval.c — `kd eval` (accuracy, macro-F1, macro-recall and the per-class table of a model on a
 * labelled set) and `kd predict` (lines of stdin or a file to one JSON object per line). Both show their
 * pass's progress on stderr (train/progress.h); predict when its input is a file (its lines are counted
 * first) and its output is not the terminal the bar would be drawn on. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/json.h"
#include "train/cli.h"
#include "train/evaluate.h"

/* Model, labels and tokenizer of a model directory. */
static int open_model(const char *cmd, const kd_cli_run *run, const char *dir, kd_bert **m,
                      kd_labels *labels, kd_tokenizer **tok)
{
    char vocab[PATH_MAX];
    *m = NULL;
    *tok = NULL;
    memset(labels, 0, sizeof *labels);
    if (kd_cli_model_vocab(dir, vocab, sizeof vocab) != KD_OK || !(*m = kd_cli_load_classifier(dir)) ||
        kd_cli_model_labels(kd_bert_get_config(*m), labels) != KD_OK || kd_tokenizer_load_beside(vocab, tok) != KD_OK ||
        kd_cli_place_model(run, *m) != KD_OK) {
        int rc = kd_cli_fail(cmd);
        kd_bert_free(*m);
        *m = NULL;
        kd_labels_free(labels);
        return rc;
    }
    return -1;
}

int kd_cmd_eval(int argc, char **argv)
{
    const char *cmd = "eval", *model = NULL, *data = NULL;
    kd_cli_run run = { 0 };
    int batch = 64, max_len = 128, quiet = 0;
    kd_opt opts[] = {
        { "--model", KD_OPT_STR, &model, 0, 0, 0, "a model directory", "DIR: config.json, model.safetensors, vocab.txt" },
        { "--data", KD_OPT_STR, &data, 0, 0, 0, "a labelled file or a directory with dev.*", "FILE|DIR: labelled set (a DIR: its dev split)" },
        { "--batch-size", KD_OPT_INT, &batch, 1, 65536, 0, "a whole number >= 1", "N (64)" },
        { "--max-len", KD_OPT_INT, &max_len, 2, 512, 0, "a whole number from 2 to 512", "tokens per text (128)" },
        { "--quiet", KD_OPT_FLAG, &quiet, 0, 0, 0, NULL, "no progress output" },
        KD_RUN_OPTS(run),
    };
    int rc = kd_cli_parse(cmd, argc, argv, opts, (int)(sizeof opts / sizeof opts[0]),
                          "usage: kd eval --model DIR --data PATH\n\n"
                          "Accuracy, macro-F1, macro-recall and the per-class table of a model on a labelled set.\n", NULL);
    if (rc >= 0) return rc;
    if ((rc = kd_cli_apply_common(cmd, &run)) >= 0) return rc;
    if (!model || !data) {
        fprintf(stderr, "kd %s: %s: got nothing, expected %s\n", cmd, model ? "--data" : "--model",
                model ? "a labelled file or directory" : "a model directory");
        return KD_EXIT_USAGE;
    }
    kd_bert *m;
    kd_labels labels;
    kd_tokenizer *tok;
    if ((rc = open_model(cmd, &run, model, &m, &labels, &tok)) >= 0) return rc;
    kd_dataset d;
    kd_metrics met = { 0 };
    float *logits = NULL;
    rc = KD_EXIT_OK;
    if (kd_cli_load_eval_split(data, &labels, &d) != KD_OK) {
        rc = kd_cli_fail(cmd);
    } else {
        logits = malloc((d.n ? d.n : 1) * (size_t)labels.n * sizeof *logits);
        kd_progress prog;
        kd_progress_pass(&prog, stderr, -1, quiet, "evaluating", "examples", (int64_t)d.n, 0);
        kd_status st = !logits ? kd_fail(KD_ERR_NOMEM, "out of memory") : kd_metrics_init(&met, labels.n);
        if (st == KD_OK) st = kd_model_logits(m, &d, tok, max_len, batch, logits, &prog);
        kd_progress_end(&prog);
        if (st != KD_OK || kd_metrics_from_logits(logits, d.label, d.n, labels.n, &met) != KD_OK)
            rc = kd_cli_fail(cmd);
        else {
            printf("%s on %s (%zu examples)\n", model, data, d.n);
            kd_metrics_print(&met, (const char *const *)labels.names, stdout);
        }
        kd_dataset_free(&d);
    }
    free(logits);
    kd_metrics_free(&met);
    kd_bert_free(m);
    kd_labels_free(&labels);
    kd_tokenizer_free(tok);
    return rc;
}

/* The lines of a regular file from its current position (a last line without a newline counts), the
 * position restored; -1 for a pipe or terminal (not known before reading). */
static int64_t count_lines(FILE *f)
{
    struct stat sb;
    off_t at = ftello(f);
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || at < 0) return -1;
    char buf[1 << 16];
    int64_t n = 0;
    size_t got;
    int last = '\n';
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < got; i++) n += buf[i] == '\n';
        last = buf[got - 1];
    }
    if (last != '\n') n++;
    clearerr(f);
    return fseeko(f, at, SEEK_SET) == 0 ? n : -1;
}

int kd_cmd_predict(int argc, char **argv)
{
    const char *cmd = "predict", *model = NULL;
    kd_cli_run run = { 0 };
    const char *input = NULL;
    int batch = 32, max_len = 128, with_logits = 0, quiet = 0;
    kd_opt opts[] = {
        { "--model", KD_OPT_STR, &model, 0, 0, 0, "a model directory", "DIR: config.json, model.safetensors, vocab.txt" },
        { "--input", KD_OPT_STR, &input, 0, 0, 0, "a text file", "FILE: the lines to classify (default: stdin)" },
        { "--logits", KD_OPT_FLAG, &with_logits, 0, 0, 0, NULL, "also print the raw logits" },
        { "--quiet", KD_OPT_FLAG, &quiet, 0, 0, 0, NULL, "no progress output" },
        { "--batch-size", KD_OPT_INT, &batch, 1, 65536, 0, "a whole number >= 1", "lines per forward pass (32)" },
        { "--max-len", KD_OPT_INT, &max_len, 2, 512, 0, "a whole number from 2 to 512", "tokens per text (128)" },
        KD_RUN_OPTS(run),
    };
    int rc = kd_cli_parse(cmd, argc, argv, opts, (int)(sizeof opts / sizeof opts[0]),
                          "usage: kd predict --model DIR [--logits] [--input FILE | < lines]\n\n"
                          "Classifies each line of stdin (or --input FILE); prints one JSON object per line:\n"
                          "{\"label\": NAME, \"probabilities\": {NAME: p, ...}[, \"logits\": [...]]}\n", NULL);
    if (rc >= 0) return rc;
    if ((rc = kd_cli_apply_common(cmd, &run)) >= 0) return rc;
    if (!model) {
        fprintf(stderr, "kd %s: --model: got nothing, expected a model directory\n", cmd);
        return KD_EXIT_USAGE;
    }
    kd_bert *m;
    kd_labels labels;
    kd_tokenizer *tok;
    FILE *in = stdin;
    if (input && !(in = fopen(input, "rb"))) {
        fprintf(stderr, "kd %s: --input: %s: cannot open: %s\n", cmd, input, strerror(errno));
        return KD_EXIT_FAIL;
    }
    if ((rc = open_model(cmd, &run, model, &m, &labels, &tok)) >= 0) {
        if (in != stdin) fclose(in);
        return rc;
    }
    int c = labels.n;
    /* A file's lines are known before the pass: show its progress (not on the terminal the output goes to). */
    int64_t lines = -1;
    if (!quiet && !(isatty(STDOUT_FILENO) && isatty(STDERR_FILENO))) lines = count_lines(in);
    kd_progress prog;
    kd_progress_pass(&prog, stderr, -1, quiet || lines < 0, "predicting", "lines", lines, 0);
    /* Lines are read and answered `batch` at a time, so output streams. */
    kd_dataset d = { 0 };
    d.text = calloc((size_t)batch, sizeof *d.text);
    d.text_len = calloc((size_t)batch, sizeof *d.text_len);
    d.label = calloc((size_t)batch, sizeof *d.label);
    float *logits = malloc((size_t)batch * (size_t)c * sizeof *logits);
    double *probs = malloc((size_t)batch * (size_t)c * sizeof *probs);
    rc = (!d.text || !d.text_len || !d.label || !logits || !probs) ? KD_EXIT_FAIL : KD_EXIT_OK;
    char *line = NULL;
    size_t cap = 0;
    int eof = 0;
    while (rc == KD_EXIT_OK && !eof) {
        d.n = 0;
        ssize_t got;
        while (d.n < (size_t)batch && (got = getline(&line, &cap, in)) >= 0) {
            while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
            /* The whole line, NULs included (the tokenizer removes them, as Hugging Face's does). */
            if (!(d.text[d.n] = malloc((size_t)got + 1))) break;
            memcpy(d.text[d.n], line, (size_t)got + 1);
            d.text_len[d.n] = (size_t)got;
            d.n++;
        }
        if (d.n < (size_t)batch) eof = 1;
        if (d.n == 0) break;
        if (kd_model_logits(m, &d, tok, max_len, batch, logits, NULL) != KD_OK) {
            rc = kd_cli_fail(cmd);
        } else {
            kd_softmax_rows(logits, d.n, c, probs);
            for (size_t i = 0; i < d.n; i++) {
                int best = 0;
                for (int j = 1; j < c; j++)
                    if (probs[i * (size_t)c + (size_t)j] > probs[i * (size_t)c + (size_t)best]) best = j;
                kd_jw w;
                kd_jw_init(&w, 0);
                kd_jw_object_begin(&w);
                kd_jw_key(&w, "label");
                kd_jw_string(&w, labels.names[best]);
                kd_jw_key(&w, "probabilities");
                kd_jw_object_begin(&w);
                for (int j = 0; j < c; j++) {
                    kd_jw_key(&w, labels.names[j]);
                    kd_jw_number(&w, probs[i * (size_t)c + (size_t)j]);
                }
                kd_jw_object_end(&w);
                if (with_logits) {
                    kd_jw_key(&w, "logits");
                    kd_jw_array_begin(&w);
                    for (int j = 0; j < c; j++) kd_jw_number(&w, logits[i * (size_t)c + (size_t)j]);
                    kd_jw_array_end(&w);
                }
                kd_jw_object_end(&w);
                if (kd_jw_text(&w)) printf("%s\n", kd_jw_text(&w));
                kd_jw_free(&w);
            }
            fflush(stdout);
            kd_progress_add(&prog, (int64_t)d.n);
        }
        for (size_t i = 0; i < d.n; i++) free(d.text[i]);
    }
    kd_progress_end(&prog);
    if (rc == KD_EXIT_FAIL && !logits) fprintf(stderr, "kd %s: out of memory\n", cmd);
    if (in != stdin) fclose(in);
    free(line);
    free(d.text);
    free(d.text_len);
    free(d.label);
    free(logits);
    free(probs);
    kd_bert_free(m);
    kd_labels_free(&labels);
    kd_tokenizer_free(tok);
    return rc;
}
