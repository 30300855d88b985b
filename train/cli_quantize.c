/* train/cli_quantize.c — `kd quantize`: an int8 copy of a trained model for CPU inference (models/bert_quant.c):
 * s8 weights with a scale per output channel for every encoder linear and the pooler; activations quantized
 * per token at run time, or, with --calibration, with one static scale per linear input found by running the
 * f32 model over calibration text (a percentile of |x| over the real tokens, or the max). The tokenizer files are copied beside it. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/backend.h"
#include "engine/fileio.h"
#include "engine/safetensors.h"
#include "train/cli.h"
#include "train/evaluate.h"

static int64_t file_bytes(const char *dir, const char *name)
{
    char p[PATH_MAX + 64];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &sb) == 0 ? (int64_t)sb.st_size : -1;
}

/* The tokenizer files of `from` (those present) copied into `to`, each to a temporary name renamed. */
static kd_status copy_tokenizer_files(const char *from, const char *to)
{
    static const char *files[] = { "vocab.txt", "tokenizer_config.json", "special_tokens_map.json" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char src[PATH_MAX + 64], dst[PATH_MAX + 64];
        snprintf(src, sizeof src, "%s/%s", from, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", to, files[i]);
        struct stat sb;
        if (stat(src, &sb) != 0) continue;
        char *text;
        size_t len;
        kd_status s = kd_read_file(src, &text, &len);
        if (s == KD_OK) s = kd_write_file_atomic(dst, text, len);
        free(text);
        if (s != KD_OK) return s;
    }
    return KD_OK;
}

/* Calibration text: a file (any format the readers know; labels unused) or a directory's training split. */
static kd_status load_calibration(const char *path, kd_dataset *d)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return kd_fail(KD_ERR_IO, "%s: no such file or directory (--calibration)", path);
    if (S_ISDIR(sb.st_mode)) return kd_dataset_load_split(path, "train", NULL, d, NULL, 0);
    return kd_dataset_load_unlabelled(path, d);
}

/* Run the f32 model over `samples` texts of d spread evenly over it (all when fewer), one at a time. */
static kd_status calibrate(kd_bert *m, const kd_dataset *d, const kd_tokenizer *tok, int samples, int max_len,
                           double percentile, int quiet, size_t *used)
{
    size_t n = d->n < (size_t)samples ? d->n : (size_t)samples;
    *used = n;
    if (n == 0) return kd_fail(KD_ERR_ARG, "--calibration: no texts to calibrate on");
    kd_dataset sub = { 0 };
    sub.n = n;
    sub.text = malloc(n * sizeof *sub.text);
    sub.text_len = malloc(n * sizeof *sub.text_len);
    sub.label = malloc(n * sizeof *sub.label);
    float *logits = malloc(n * (size_t)kd_bert_get_config(m)->num_labels * sizeof *logits);
    kd_status st = sub.text && sub.text_len && sub.label && logits ? KD_OK : kd_fail(KD_ERR_NOMEM, "calibration: out of memory");
    for (size_t i = 0; st == KD_OK && i < n; i++) {
        size_t r = (size_t)((double)i * (double)d->n / (double)n);
        sub.text[i] = d->text[r];
        sub.text_len[i] = d->text_len[r];
        sub.label[i] = KD_NO_LABEL;
    }
    if (st == KD_OK) st = kd_bert_calibrate_begin(m);
    /* pass 1: max |x| of each linear's input; pass 2 (a percentile): histograms of |x| over [0, max] */
    for (int pass = 1; st == KD_OK && pass <= (percentile < 100 ? 2 : 1); pass++) {
        if (pass == 2) st = kd_bert_calibrate_histograms(m);
        if (st != KD_OK) break;
        kd_progress prog;
        kd_progress_pass(&prog, stderr, -1, quiet, pass == 1 ? "calibrating (max)" : "calibrating (histograms)", "texts",
                         (int64_t)n, 0);
        st = kd_model_logits(m, &sub, tok, max_len, 1, logits, &prog);
        kd_progress_end(&prog);
    }
    free(sub.text);
    free(sub.text_len);
    free(sub.label);
    free(logits);
    return st;
}

int kd_cmd_quantize(int argc, char **argv)
{
    const char *cmd = "quantize", *model = NULL, *out = NULL, *calib = NULL;
    int samples = 256, max_len = 128, quiet = 0, overwrite = 0, threads = 0;
    double percentile = 99.99;
    kd_opt opts[] = {
        { "--model", KD_OPT_STR, &model, 0, 0, 0, "a model directory", "DIR: the trained f32 model (config.json, model.safetensors, vocab.txt)" },
        { "--out", KD_OPT_STR, &out, 0, 0, 0, "a directory", "DIR: where the int8 model goes" },
        { "--calibration", KD_OPT_STR, &calib, 0, 0, 0, "a text or data file, or a data directory",
          "FILE|DIR: static activation scales from this text (a DIR: its train split); without it, dynamic per token" },
        { "--calibration-samples", KD_OPT_INT, &samples, 1, 1000000, 0, "a whole number >= 1",
          "N texts, spread evenly over the file (256)" },
        { "--calibration-percentile", KD_OPT_DOUBLE, &percentile, 50, 100, 0, "a number from 50 to 100",
          "P: each input's scale keeps P% of its values unclipped (99.99; 100: the max)" },
        { "--max-len", KD_OPT_INT, &max_len, 2, 512, 0, "a whole number from 2 to 512", "tokens per calibration text (128)" },
        { "--overwrite", KD_OPT_FLAG, &overwrite, 0, 0, 0, NULL, "replace a model already in OUT (refused without it)" },
        { "--threads", KD_OPT_INT, &threads, 1, 1024, 0, "a whole number from 1 to 1024", "CPU threads (all)" },
        { "--quiet", KD_OPT_FLAG, &quiet, 0, 0, 0, NULL, "no progress output" },
    };
    int rc = kd_cli_parse(cmd, argc, argv, opts, (int)(sizeof opts / sizeof opts[0]),
                          "usage: kd quantize --model DIR --out DIR [--calibration FILE|DIR]\n\n"
                          "An int8 copy of a trained model for CPU inference: every encoder linear (query, key, value,\n"
                          "attention output, intermediate, output) and the pooler get int8 weights, symmetric, one scale\n"
                          "per output channel; their inputs are quantized to int8 per token at run time (dynamic), or with\n"
                          "--calibration, with one static scale per input found by running the f32 model over that text\n"
                          "(the --calibration-percentile of |x| over its real tokens, or the max). Embeddings, LayerNorm,\n"
                          "attention, softmax, GELU and the classifier stay f32. kd eval, predict and compare run the\n"
                          "result (on the CPU, f32 activations); it cannot be trained, and transformers cannot load it\n"
                          "(I8 weights with kd's scale tensors).\n", NULL);
    if (rc >= 0) return rc;
    if (!model || !out) {
        fprintf(stderr, "kd %s: %s: got nothing, expected a directory\n", cmd, model ? "--out" : "--model");
        return KD_EXIT_USAGE;
    }
    if ((rc = kd_cli_check_model_arg(cmd, "--model", model)) >= 0) return rc;
    if (kd_cli_is_preset(model)) {
        fprintf(stderr, "kd %s: --model: got the preset '%s', expected a trained model directory (a preset has random "
                        "weights)\n", cmd, model);
        return KD_EXIT_USAGE;
    }
    struct stat s1, s2;
    if (stat(model, &s1) == 0 && stat(out, &s2) == 0 && s1.st_dev == s2.st_dev && s1.st_ino == s2.st_ino) {
        fprintf(stderr, "kd %s: --out: got '%s', the model's own directory; expected another (the f32 model is kept)\n",
                cmd, out);
        return KD_EXIT_USAGE;
    }
    if (!overwrite && (file_bytes(out, "model.safetensors") >= 0 || file_bytes(out, "config.json") >= 0)) {
        fprintf(stderr, "kd %s: --out: '%s' already holds a model; pass --overwrite to replace it, or choose another "
                        "directory\n", cmd, out);
        return KD_EXIT_USAGE;
    }
    if (threads > 0 && kd_set_threads(threads) != KD_OK) return kd_cli_fail(cmd);

    char vocab[PATH_MAX];
    kd_bert *m = NULL;
    kd_tokenizer *tok = NULL;
    kd_dataset d = { 0 };
    if (kd_cli_model_vocab(model, vocab, sizeof vocab) != KD_OK || !(m = kd_cli_load_classifier(model))) {
        rc = kd_cli_fail(cmd);
        goto done;
    }
    if (kd_bert_is_quantized(m)) {
        fprintf(stderr, "kd %s: --model: %s is already int8 (config.json kd_quantization: %s activations); quantize the "
                        "f32 model it was made from\n", cmd, model, kd_bert_get_config(m)->quant_activations);
        rc = KD_EXIT_USAGE;
        goto done;
    }
    char how[96] = "";
    size_t used = 0;
    if (calib) {
        if (kd_tokenizer_load_beside(vocab, &tok) != KD_OK || load_calibration(calib, &d) != KD_OK ||
            calibrate(m, &d, tok, samples, max_len, percentile, quiet, &used) != KD_OK) {
            rc = kd_cli_fail(cmd);
            goto done;
        }
        if (percentile < 100) snprintf(how, sizeof how, "percentile %g of |x| over the real tokens of %zu texts", percentile, used);
        else snprintf(how, sizeof how, "max-abs over the real tokens of %zu texts", used);
    }
    if (kd_bert_quantize(m, calib != NULL, percentile, calib ? how : NULL) != KD_OK || kd_bert_save(m, out) != KD_OK ||
        copy_tokenizer_files(model, out) != KD_OK) {
        rc = kd_cli_fail(cmd);
        goto done;
    }
    const kd_bert_config *c = kd_bert_get_config(m);
    int64_t before = file_bytes(model, "model.safetensors"), after = file_bytes(out, "model.safetensors");
    printf("kd quantize: %s -> %s\n", model, out);
    printf("  int8 weights, per output channel: %d linears (%d layers x 6 and the pooler)\n", c->num_layers * 6 + 1,
           c->num_layers);
    printf("  activations: %s%s%s\n", c->quant_activations, calib ? ", scales: " : " (scale per token at run time)",
           calib ? how : "");
    if (before > 0 && after > 0)
        printf("  model.safetensors: %.1f MB -> %.1f MB (%.2fx smaller)\n", before / 1e6, after / 1e6,
               (double)before / (double)after);
    rc = KD_EXIT_OK;
done:
    kd_dataset_free(&d);
    kd_tokenizer_free(tok);
    kd_bert_free(m);
    return rc;
}
