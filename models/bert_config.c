/* models/bert_config.c — BERT configurations: the presets, the consistency check, and config.json in
 * Hugging Face's BertConfig form (id2label / label2id / architectures included). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/fileio.h"
#include "engine/json.h"
#include "models/bert.h"

static const struct { const char *name; int layers, hidden, heads, ffn; } presets[] = {
    { "bert-large", 24, 1024, 16, 4096 }, { "bert-base", 12, 768, 12, 3072 },  { "distil-base", 6, 768, 12, 3072 },
    { "bert-medium", 8, 512, 8, 2048 },   { "bert-small", 4, 512, 8, 2048 },   { "bert-mini", 4, 256, 4, 1024 },
    { "bert-tiny", 2, 128, 2, 512 },      { "minilm-l6", 6, 384, 12, 1536 },
};
#define N_PRESETS (sizeof presets / sizeof presets[0])

const char *const *kd_bert_preset_names(void)
{
    static const char *names[N_PRESETS + 1];
    for (size_t i = 0; i < N_PRESETS; i++) names[i] = presets[i].name;
    names[N_PRESETS] = NULL;
    return names;
}

/* BertConfig's defaults, the base of every preset and of a config.json that leaves a field out. */
static void config_defaults(kd_bert_config *c)
{
    memset(c, 0, sizeof *c);
    c->vocab_size = 30522;
    c->hidden_size = 768;
    c->num_layers = 12;
    c->num_heads = 12;
    c->intermediate_size = 3072;
    c->max_position = 512;
    c->type_vocab_size = 2;
    c->pad_token_id = 0;
    c->layer_norm_eps = 1e-12;
    c->hidden_dropout = 0.1;
    c->attention_dropout = 0.1;
    c->initializer_range = 0.02;
    snprintf(c->hidden_act, sizeof c->hidden_act, "gelu");
    /* Two classes named as transformers names them when config.json says nothing (it leaves id2label out
     * when the names are these): class i's default name is LABEL_i (models/bert.h). */
    c->num_labels = 2;
    kd_bert_default_labels(c);
}

void kd_bert_default_labels(kd_bert_config *c)
{
    for (int i = 0; i < c->num_labels && i < KD_BERT_MAX_LABELS; i++)
        snprintf(c->labels[i], sizeof c->labels[i], "LABEL_%d", i);
}

int kd_bert_default_label(const char *name, int i)
{
    char a[32], b[32];
    snprintf(a, sizeof a, "%d", i);
    snprintf(b, sizeof b, "LABEL_%d", i);
    return !strcmp(name, a) || !strcmp(name, b);
}

kd_status kd_bert_preset(const char *name, kd_bert_config *cfg)
{
    for (size_t i = 0; i < N_PRESETS; i++) {
        if (strcmp(name, presets[i].name) != 0) continue;
        config_defaults(cfg);
        cfg->num_layers = presets[i].layers;
        cfg->hidden_size = presets[i].hidden;
        cfg->num_heads = presets[i].heads;
        cfg->intermediate_size = presets[i].ffn;
        snprintf(cfg->name, sizeof cfg->name, "%s", name);
        return KD_OK;
    }
    char list[256] = "";
    for (size_t i = 0; i < N_PRESETS; i++) {
        strncat(list, presets[i].name, sizeof list - strlen(list) - 1);
        if (i + 1 < N_PRESETS) strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
    return kd_fail(KD_ERR_ARG, "unknown model preset '%s', expected one of: %s", name, list);
}

kd_status kd_bert_config_check(const kd_bert_config *c, const char *what)
{
    /* Bounds far above any BERT published (bert-large: 30,522 / 1,024 / 24 / 16 / 4,096 / 512 / 2), so a
     * corrupt or hostile config.json is named here instead of failing to allocate gigabytes later. */
    const struct { const char *field; int v, min, max; } pos[] = {
        { "vocab_size", c->vocab_size, 1, 1 << 22 },             { "hidden_size", c->hidden_size, 1, 1 << 14 },
        { "num_hidden_layers", c->num_layers, 1, 256 },          { "num_attention_heads", c->num_heads, 1, 1024 },
        { "intermediate_size", c->intermediate_size, 1, 1 << 18 }, { "max_position_embeddings", c->max_position, 1, 1 << 16 },
        { "type_vocab_size", c->type_vocab_size, 1, 1024 },      { "num_labels", c->num_labels, 1, KD_BERT_MAX_LABELS },
    };
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        if (pos[i].v < pos[i].min || pos[i].v > pos[i].max)
            return kd_fail(KD_ERR_ARG, "%s: %s is %d, expected %d to %d", what, pos[i].field, pos[i].v, pos[i].min,
                           pos[i].max);
    if (c->hidden_size % c->num_heads != 0)
        return kd_fail(KD_ERR_ARG, "%s: hidden_size %d is not divisible by num_attention_heads %d", what,
                       c->hidden_size, c->num_heads);
    if (strcmp(c->hidden_act, "gelu") != 0)
        return kd_fail(KD_ERR_ARG, "%s: hidden_act is \"%s\", expected \"gelu\" (the erf form; no other is supported)",
                       what, c->hidden_act);
    if (c->pad_token_id < 0 || c->pad_token_id >= c->vocab_size)
        return kd_fail(KD_ERR_ARG, "%s: pad_token_id is %d, expected in [0, vocab_size %d)", what, c->pad_token_id,
                       c->vocab_size);
    if (!(c->layer_norm_eps > 0))
        return kd_fail(KD_ERR_ARG, "%s: layer_norm_eps is %g, expected > 0", what, c->layer_norm_eps);
    if (!(c->hidden_dropout >= 0 && c->hidden_dropout < 1))
        return kd_fail(KD_ERR_ARG, "%s: hidden_dropout_prob is %g, expected in [0, 1)", what, c->hidden_dropout);
    if (!(c->attention_dropout >= 0 && c->attention_dropout < 1))
        return kd_fail(KD_ERR_ARG, "%s: attention_probs_dropout_prob is %g, expected in [0, 1)", what,
                       c->attention_dropout);
    if (!(c->initializer_range > 0))
        return kd_fail(KD_ERR_ARG, "%s: initializer_range is %g, expected > 0", what, c->initializer_range);
    return KD_OK;
}

/* --- config.json reading */


/* An integer field; absent keeps *out (BertConfig's default) unless required. */
static kd_status get_int(const kd_json *o, const char *path, const char *key, int required, int *out)
{
    const kd_json *v = kd_json_get(o, key);
    if (!v || v->type == KD_JSON_NULL) {
        if (required) return kd_fail(KD_ERR_FORMAT, "%s: field \"%s\" is missing", path, key);
        return KD_OK;
    }
    if (v->type != KD_JSON_NUMBER || !v->is_integer || v->integer < -1000000000 || v->integer > 1000000000)
        return kd_fail(KD_ERR_FORMAT, "%s: field \"%s\" is not an integer", path, key);
    *out = (int)v->integer;
    return KD_OK;
}

static kd_status get_num(const kd_json *o, const char *path, const char *key, double *out)
{
    const kd_json *v = kd_json_get(o, key);
    if (!v || v->type == KD_JSON_NULL) return KD_OK;
    if (v->type != KD_JSON_NUMBER) return kd_fail(KD_ERR_FORMAT, "%s: field \"%s\" is not a number", path, key);
    *out = v->number;
    return KD_OK;
}

static kd_status get_str(const kd_json *o, const char *path, const char *key, char *out, size_t n)
{
    const kd_json *v = kd_json_get(o, key);
    if (!v || v->type == KD_JSON_NULL) return KD_OK;
    if (v->type != KD_JSON_STRING || v->string_len >= n)
        return kd_fail(KD_ERR_FORMAT, "%s: field \"%s\" is not a string of at most %zu bytes", path, key, n - 1);
    memcpy(out, v->string, v->string_len + 1);
    return KD_OK;
}

/* id2label: {"0": "negative", "1": "positive"}; the keys must be exactly 0..n-1. */
static kd_status get_labels(const kd_json *o, const char *path, kd_bert_config *c)
{
    const kd_json *v = kd_json_get(o, "id2label");
    if (!v || v->type == KD_JSON_NULL) return KD_OK;
    if (v->type != KD_JSON_OBJECT || v->count == 0)
        return kd_fail(KD_ERR_FORMAT, "%s: field \"id2label\" is not a non-empty object", path);
    if (v->count > KD_BERT_MAX_LABELS)
        return kd_fail(KD_ERR_FORMAT, "%s: id2label has %zu labels, expected at most %d", path, v->count,
                       KD_BERT_MAX_LABELS);
    unsigned char seen[KD_BERT_MAX_LABELS] = {0};
    for (size_t i = 0; i < v->count; i++) {
        char *end;
        errno = 0;
        long id = strtol(v->keys[i], &end, 10);
        if (errno || *end || end == v->keys[i] || id < 0 || id >= (long)v->count || seen[id])
            return kd_fail(KD_ERR_FORMAT, "%s: id2label key \"%s\" is not a distinct id in [0, %zu)", path, v->keys[i],
                           v->count);
        const kd_json *s = v->items[i];
        if (s->type != KD_JSON_STRING || s->string_len >= sizeof c->labels[0] || memchr(s->string, 0, s->string_len))
            return kd_fail(KD_ERR_FORMAT, "%s: id2label[\"%s\"] is not a label string of at most %zu bytes", path,
                           v->keys[i], sizeof c->labels[0] - 1);
        seen[id] = 1;
        memcpy(c->labels[id], s->string, s->string_len + 1);
    }
    c->num_labels = (int)v->count;
    return KD_OK;
}

/* "kd_quantization": {"weights": "int8-per-channel-symmetric", "activations": "dynamic-per-token" |
 * "static-per-tensor", "calibration": "..."} marks kd's int8 models (models/bert_quant.c); absent for f32. */
static kd_status get_quantization(const kd_json *o, const char *path, kd_bert_config *c)
{
    const kd_json *q = kd_json_get(o, "kd_quantization");
    if (!q || q->type == KD_JSON_NULL) return KD_OK;
    if (q->type != KD_JSON_OBJECT) return kd_fail(KD_ERR_FORMAT, "%s: kd_quantization: expected an object", path);
    char weights[64] = "";
    kd_status s;
    if ((s = get_str(q, path, "weights", weights, sizeof weights)) ||
        (s = get_str(q, path, "activations", c->quant_activations, sizeof c->quant_activations)) ||
        (s = get_str(q, path, "calibration", c->quant_calibration, sizeof c->quant_calibration)))
        return s;
    if (strcmp(weights, "int8-per-channel-symmetric") != 0)
        return kd_fail(KD_ERR_FORMAT, "%s: kd_quantization.weights is \"%s\", expected \"int8-per-channel-symmetric\"",
                       path, weights);
    if (strcmp(c->quant_activations, "dynamic-per-token") != 0 && strcmp(c->quant_activations, "static-per-tensor") != 0)
        return kd_fail(KD_ERR_FORMAT, "%s: kd_quantization.activations is \"%s\", expected \"dynamic-per-token\" or "
                       "\"static-per-tensor\"", path, c->quant_activations);
    return KD_OK;
}

kd_status kd_bert_config_load(const char *path, kd_bert_config *cfg)
{
    kd_json *o = kd_json_read_file(path);
    if (!o) return kd_last_status();
    kd_status s = KD_OK;
    kd_bert_config c;
    config_defaults(&c);
    snprintf(c.name, sizeof c.name, "checkpoint");
    char model_type[32] = "bert", pet[32] = "absolute", problem[64] = "";
    if (o->type != KD_JSON_OBJECT) {
        s = kd_fail(KD_ERR_FORMAT, "%s: expected a JSON object", path);
        goto done;
    }
    int nl = -1;
    if ((s = get_str(o, path, "model_type", model_type, sizeof model_type)) ||
        (s = get_str(o, path, "position_embedding_type", pet, sizeof pet)) ||
        (s = get_str(o, path, "problem_type", problem, sizeof problem)) ||
        (s = get_int(o, path, "vocab_size", 1, &c.vocab_size)) ||
        (s = get_int(o, path, "hidden_size", 1, &c.hidden_size)) ||
        (s = get_int(o, path, "num_hidden_layers", 1, &c.num_layers)) ||
        (s = get_int(o, path, "num_attention_heads", 1, &c.num_heads)) ||
        (s = get_int(o, path, "intermediate_size", 1, &c.intermediate_size)) ||
        (s = get_int(o, path, "max_position_embeddings", 0, &c.max_position)) ||
        (s = get_int(o, path, "type_vocab_size", 0, &c.type_vocab_size)) ||
        (s = get_int(o, path, "pad_token_id", 0, &c.pad_token_id)) ||
        (s = get_num(o, path, "layer_norm_eps", &c.layer_norm_eps)) ||
        (s = get_num(o, path, "hidden_dropout_prob", &c.hidden_dropout)) ||
        (s = get_num(o, path, "attention_probs_dropout_prob", &c.attention_dropout)) ||
        (s = get_num(o, path, "initializer_range", &c.initializer_range)) ||
        (s = get_str(o, path, "hidden_act", c.hidden_act, sizeof c.hidden_act)) ||
        (s = get_int(o, path, "num_labels", 0, &nl)) || (s = get_labels(o, path, &c)))
        goto done;
    /* transformers' "gelu_python" is the same erf GELU written in Python. */
    if (strcmp(c.hidden_act, "gelu_python") == 0) snprintf(c.hidden_act, sizeof c.hidden_act, "gelu");
    if (strcmp(model_type, "bert") != 0) {
        s = kd_fail(KD_ERR_FORMAT, "%s: model_type is \"%s\", expected \"bert\"", path, model_type);
        goto done;
    }
    if (strcmp(pet, "absolute") != 0) {
        s = kd_fail(KD_ERR_FORMAT, "%s: position_embedding_type is \"%s\", expected \"absolute\"", path, pet);
        goto done;
    }
    /* transformers reads problem_type to pick the loss and the output: a sigmoid per class for
     * "multi_label_classification", a single output for "regression". kd's head is a softmax over the classes. */
    if (problem[0] && strcmp(problem, "single_label_classification") != 0) {
        s = kd_fail(KD_ERR_FORMAT, "%s: problem_type is \"%s\", expected \"single_label_classification\" (or none): kd "
                    "trains and runs single-label classifiers (a softmax over the classes, one label per text), so a "
                    "%s model would get wrong probabilities", path, problem,
                    !strcmp(problem, "multi_label_classification") ? "multi-label (a sigmoid per class)" : "non-classification");
        goto done;
    }
    if (!kd_json_get(o, "id2label") && nl > 0) {
        /* num_labels without names: LABEL_0 .. LABEL_n-1, as BertConfig names them. */
        if (nl > KD_BERT_MAX_LABELS) {
            s = kd_fail(KD_ERR_FORMAT, "%s: num_labels is %d, expected at most %d", path, nl, KD_BERT_MAX_LABELS);
            goto done;
        }
        c.num_labels = nl;
        kd_bert_default_labels(&c);
    } else if (nl > 0 && nl != c.num_labels) {
        s = kd_fail(KD_ERR_FORMAT, "%s: num_labels is %d but id2label has %d labels", path, nl, c.num_labels);
        goto done;
    }
    if ((s = get_quantization(o, path, &c)) != KD_OK) goto done;
    if ((s = kd_bert_config_check(&c, path)) != KD_OK) goto done;
    *cfg = c;
done:
    kd_json_free(o);
    return s;
}

/* --- config.json writing */

kd_status kd_bert_config_save(const char *path, const kd_bert_config *c)
{
    kd_status s = kd_bert_config_check(c, path);
    if (s != KD_OK) return s;
    kd_jw w;
    kd_jw_init(&w, 1);
    kd_jw_object_begin(&w);
    kd_jw_key(&w, "architectures");
    kd_jw_array_begin(&w);
    kd_jw_string(&w, "BertForSequenceClassification");
    kd_jw_array_end(&w);
    kd_jw_field_string(&w, "model_type", "bert");
    kd_jw_field_int(&w, "vocab_size", c->vocab_size);
    kd_jw_field_int(&w, "hidden_size", c->hidden_size);
    kd_jw_field_int(&w, "num_hidden_layers", c->num_layers);
    kd_jw_field_int(&w, "num_attention_heads", c->num_heads);
    kd_jw_field_int(&w, "intermediate_size", c->intermediate_size);
    kd_jw_field_string(&w, "hidden_act", c->hidden_act);
    kd_jw_field_number(&w, "hidden_dropout_prob", c->hidden_dropout);
    kd_jw_field_number(&w, "attention_probs_dropout_prob", c->attention_dropout);
    kd_jw_field_int(&w, "max_position_embeddings", c->max_position);
    kd_jw_field_int(&w, "type_vocab_size", c->type_vocab_size);
    kd_jw_field_number(&w, "initializer_range", c->initializer_range);
    kd_jw_field_number(&w, "layer_norm_eps", c->layer_norm_eps);
    kd_jw_field_int(&w, "pad_token_id", c->pad_token_id);
    kd_jw_field_string(&w, "position_embedding_type", "absolute");
    kd_jw_key(&w, "classifier_dropout");
    kd_jw_null(&w);
    kd_jw_field_string(&w, "torch_dtype", "float32");
    kd_jw_field_string(&w, "problem_type", "single_label_classification");
    kd_jw_field_int(&w, "num_labels", c->num_labels);
    if (c->quant_activations[0]) {
        kd_jw_key(&w, "kd_quantization");
        kd_jw_object_begin(&w);
        kd_jw_field_string(&w, "weights", "int8-per-channel-symmetric");
        kd_jw_field_string(&w, "activations", c->quant_activations);
        if (c->quant_calibration[0]) kd_jw_field_string(&w, "calibration", c->quant_calibration);
        kd_jw_object_end(&w);
    }
    kd_jw_key(&w, "id2label");
    kd_jw_object_begin(&w);
    char key[16];
    for (int i = 0; i < c->num_labels; i++) {
        snprintf(key, sizeof key, "%d", i);
        kd_jw_key(&w, key);
        kd_jw_string(&w, c->labels[i]);
    }
    kd_jw_object_end(&w);
    kd_jw_key(&w, "label2id");
    kd_jw_object_begin(&w);
    for (int i = 0; i < c->num_labels; i++) {
        kd_jw_key(&w, c->labels[i]);
        kd_jw_int(&w, i);
    }
    kd_jw_object_end(&w);
    kd_jw_object_end(&w);
    const char *text = kd_jw_text(&w);
    if (!text || w.failed) {
        kd_jw_free(&w);
        return kd_fail(KD_ERR_NOMEM, "%s: out of memory", path);
    }
    /* Written with a final newline, like Hugging Face's to_json_file. */
    kd_atomic_file af;
    s = kd_atomic_open(&af, path);
    if (s == KD_OK) {
        if (fputs(text, af.f) == EOF || fputc('\n', af.f) == EOF) {
            s = kd_fail(KD_ERR_IO, "%s: write failed: %s", af.tmp, strerror(errno));
            kd_atomic_abort(&af);
        } else {
            s = kd_atomic_commit(&af);
        }
    }
    kd_jw_free(&w);
    return s;
}
