/* data/tokenizer_config.c — tokenizer_config.json read beside a model's vocab.txt and written beside kd's
 * checkpoints, with special_tokens_map.json (see tokenizer_config.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/tokenizer_config.h"
#include "engine/fileio.h"
#include "engine/json.h"

/* BERT's special tokens, as BertTokenizer names them in its config. */
static const char *const special_key[5] = { "unk_token", "sep_token", "pad_token", "cls_token", "mask_token" };
static const char *const special_text[5] = { "[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]" };

/* A true/false field; absent or null leaves *out. */
static kd_status get_bool(const kd_json *o, const char *path, const char *key, int *out)
{
    const kd_json *v = kd_json_get(o, key);
    if (!v || v->type == KD_JSON_NULL) return KD_OK;
    if (v->type != KD_JSON_TRUE && v->type != KD_JSON_FALSE)
        return kd_fail(KD_ERR_FORMAT, "%s: field \"%s\" is not true or false", path, key);
    *out = v->type == KD_JSON_TRUE;
    return KD_OK;
}

kd_status kd_tokenizer_config_read(const char *path, kd_tokenizer_opts *opts)
{
    kd_json *o = kd_json_read_file(path);
    if (!o) return kd_last_status();
    kd_status st = KD_OK;
    kd_tokenizer_opts t = *opts;
    if (o->type != KD_JSON_OBJECT) {
        st = kd_fail(KD_ERR_FORMAT, "%s: expected a JSON object", path);
        goto done;
    }
    const kd_json *cls = kd_json_get(o, "tokenizer_class");
    if (cls && cls->type != KD_JSON_NULL) {
        static const char *const known[] = { "BertTokenizer", "BertTokenizerFast", "DistilBertTokenizer",
                                             "DistilBertTokenizerFast" };
        int ok = 0;
        for (size_t i = 0; cls->type == KD_JSON_STRING && i < sizeof known / sizeof known[0]; i++)
            ok |= strcmp(cls->string, known[i]) == 0;
        if (!ok) {
            st = kd_fail(KD_ERR_FORMAT, "%s: field \"tokenizer_class\" is %s%s%s, expected \"BertTokenizer\" (kd "
                         "tokenizes with BERT's WordPiece only)", path, cls->type == KD_JSON_STRING ? "\"" : "",
                         cls->type == KD_JSON_STRING ? cls->string : "not a string", cls->type == KD_JSON_STRING ? "\"" : "");
            goto done;
        }
    }
    /* A special token is a string or, as newer transformers write it, an AddedToken object with "content". */
    for (int i = 0; i < 5; i++) {
        const kd_json *v = kd_json_get(o, special_key[i]);
        if (v && v->type == KD_JSON_OBJECT) v = kd_json_get(v, "content");
        if (!v || v->type == KD_JSON_NULL) continue;
        if (v->type != KD_JSON_STRING || strcmp(v->string, special_text[i]) != 0) {
            st = kd_fail(KD_ERR_FORMAT, "%s: field \"%s\" is %s%s%s, expected \"%s\" (kd uses BERT's special tokens)",
                         path, special_key[i], v->type == KD_JSON_STRING ? "\"" : "",
                         v->type == KD_JSON_STRING ? v->string : "not a token", v->type == KD_JSON_STRING ? "\"" : "",
                         special_text[i]);
            goto done;
        }
    }
    if ((st = get_bool(o, path, "do_lower_case", &t.lowercase)) != KD_OK ||
        (st = get_bool(o, path, "tokenize_chinese_chars", &t.handle_chinese_chars)) != KD_OK)
        goto done;
    const kd_json *sa = kd_json_get(o, "strip_accents");
    if (!sa || sa->type == KD_JSON_NULL) {
        t.strip_accents = -1;   /* follows do_lower_case, as BertTokenizer's None */
    } else if (sa->type == KD_JSON_TRUE || sa->type == KD_JSON_FALSE) {
        t.strip_accents = sa->type == KD_JSON_TRUE;
    } else {
        st = kd_fail(KD_ERR_FORMAT, "%s: field \"strip_accents\" is not true, false or null", path);
        goto done;
    }
    *opts = t;
done:
    kd_json_free(o);
    return st;
}

/* dir of path + "/" + name into buf. */
static void beside(char *buf, size_t n, const char *path, const char *name)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(buf, n, "%s", name);
    else snprintf(buf, n, "%.*s/%s", (int)(slash - path), path, name);
}

kd_status kd_tokenizer_opts_beside(const char *vocab_path, kd_tokenizer_opts *opts, int *found)
{
    char path[4096];
    struct stat sb;
    *opts = kd_tokenizer_opts_default();
    if (found) *found = 0;
    beside(path, sizeof path, vocab_path, "tokenizer_config.json");
    if (stat(path, &sb) != 0) return KD_OK;
    if (found) *found = 1;
    return kd_tokenizer_config_read(path, opts);
}

kd_status kd_tokenizer_load_beside(const char *vocab_path, kd_tokenizer **out)
{
    *out = NULL;
    kd_tokenizer_opts o;
    kd_status st = kd_tokenizer_opts_beside(vocab_path, &o, NULL);
    if (st != KD_OK) return st;
    kd_vocab *v;
    if ((st = kd_vocab_load(vocab_path, &v)) != KD_OK) return st;
    return kd_tokenizer_new(v, &o, out);   /* its messages name vocab_path */
}

static kd_status write_json(const char *dir, const char *name, kd_jw *w)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    const char *text = kd_jw_text(w);
    if (!text) return kd_fail(KD_ERR_NOMEM, "%s: out of memory", path);
    size_t n = strlen(text);
    char *buf = malloc(n + 2);
    if (!buf) return kd_fail(KD_ERR_NOMEM, "%s: out of memory", path);
    memcpy(buf, text, n);
    buf[n] = '\n';
    kd_status st = kd_write_file_atomic(path, buf, n + 1);
    free(buf);
    return st;
}

kd_status kd_tokenizer_config_save(const char *dir, const kd_tokenizer_opts *opts, int model_max_length)
{
    if (model_max_length < 2)
        return kd_fail(KD_ERR_ARG, "%s/tokenizer_config.json: model_max_length %d, expected >= 2", dir, model_max_length);
    kd_jw w;
    kd_jw_init(&w, 1);
    kd_jw_object_begin(&w);
    kd_jw_field_string(&w, "tokenizer_class", "BertTokenizer");
    kd_jw_key(&w, "do_lower_case");
    kd_jw_bool(&w, opts->lowercase);
    kd_jw_key(&w, "strip_accents");
    if (opts->strip_accents < 0) kd_jw_null(&w);
    else kd_jw_bool(&w, opts->strip_accents);
    kd_jw_key(&w, "tokenize_chinese_chars");
    kd_jw_bool(&w, opts->handle_chinese_chars);
    kd_jw_key(&w, "do_basic_tokenize");
    kd_jw_bool(&w, 1);
    kd_jw_key(&w, "never_split");
    kd_jw_null(&w);
    /* transformers truncates to this with truncation=True: the length the model was trained on. */
    kd_jw_field_int(&w, "model_max_length", model_max_length);
    kd_jw_key(&w, "clean_up_tokenization_spaces");
    kd_jw_bool(&w, 1);
    for (int i = 0; i < 5; i++) kd_jw_field_string(&w, special_key[i], special_text[i]);
    kd_jw_object_end(&w);
    kd_status st = write_json(dir, "tokenizer_config.json", &w);
    kd_jw_free(&w);
    if (st != KD_OK) return st;
    kd_jw_init(&w, 1);
    kd_jw_object_begin(&w);
    for (int i = 0; i < 5; i++) kd_jw_field_string(&w, special_key[i], special_text[i]);
    kd_jw_object_end(&w);
    st = write_json(dir, "special_tokens_map.json", &w);
    kd_jw_free(&w);
    return st;
}
