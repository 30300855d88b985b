/* test/fuzz/fuzz_files.c — libFuzzer targets for the files a user downloads or a run leaves behind, one per
 * build (KD_FUZZ_TARGET picks it):
 *   1 safetensors   model.safetensors: header length, JSON header, offsets; every float tensor is read
 *   2 st_index      model.safetensors.index.json beside two fixed shards (a.safetensors, b.safetensors)
 *   3 config        config.json; a config that loads passes the checks and survives save + load unchanged
 *   4 tok_config    tokenizer_config.json
 *   5 vocab         vocab.txt; a vocabulary that makes a tokenizer encodes sentences to ids in range
 *   6 train_state   trainer_state.json; a state that loads has positions a run can reach
 *   7 optimizer     optimizer.bin for the small model of fuzz_common.h; a state that loads is finite, v >= 0
 * Every refusal must name the file. Built with -Dfuzz=true under clang (test/fuzz/run.sh); the same code with
 * fuzz_replay.c's main() runs the kept inputs of test/fuzz/regress/ in the ordinary test suite. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_config.h"
#include "data/wordpiece.h"
#include "engine/adamw.h"
#include "engine/device.h"
#include "engine/safetensors.h"
#include "fuzz_common.h"
#include "models/bert.h"
#include "train/checkpoint.h"

#ifndef KD_FUZZ_TARGET
#define KD_FUZZ_TARGET 1
#endif

#if KD_FUZZ_TARGET != 5
static char path[512];
#endif

static void named(const char *p)
{
    /* A refusal names the file it refused. */
    KD_CHECK(strstr(kd_last_error(), p) != NULL);
}

#if KD_FUZZ_TARGET != 5
/* The fuzzer's bytes as the file `name` in this target's directory; its path (in `path`). */
static const char *input_file(const char *what, const char *name, const uint8_t *data, size_t size)
{
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(what), name);
    fuzz_put(path, data, size);
    return path;
}
#endif

#if KD_FUZZ_TARGET == 1 || KD_FUZZ_TARGET == 2
static void check_file(const kd_safetensors *st)
{
    KD_CHECK(st->data_len <= st->map_len);
    for (size_t i = 0; i < st->count; i++) {
        const kd_st_entry *e = &st->entries[i];
        KD_CHECK(e->name != NULL && e->begin <= e->end && e->end <= st->data_len);
        KD_CHECK(e->ndim >= 0 && e->ndim <= KD_MAX_DIMS);
        size_t es = kd_st_dtype_size(e->dtype);
        if (es) KD_CHECK((uint64_t)kd_st_numel(e) * es == e->end - e->begin);
        KD_CHECK(kd_st_find(st, e->name) != NULL);
        if (!strcmp(e->dtype, "F32") || !strcmp(e->dtype, "F16") || !strcmp(e->dtype, "BF16") ||
            !strcmp(e->dtype, "F64")) {
            int64_t n = kd_st_numel(e);
            float *dst = malloc((size_t)(n ? n : 1) * sizeof *dst);
            KD_CHECK(dst != NULL);
            KD_CHECK(kd_st_read_f32(st, e, dst) == KD_OK);
            free(dst);
        }
    }
}
#endif

#if KD_FUZZ_TARGET == 2
/* Two shards, x in a and y, z in b, written once. */
static void write_shards(const char *dir)
{
    kd_tensor *x = kd_param(KD_F32, 1, (int64_t[]){ 3 }, "x");
    kd_tensor *y = kd_param(KD_F32, 2, (int64_t[]){ 2, 2 }, "y");
    kd_tensor *z = kd_param(KD_F32, 1, (int64_t[]){ 1 }, "z");
    KD_CHECK(x && y && z);
    char p[600];
    snprintf(p, sizeof p, "%s/a.safetensors", dir);
    KD_CHECK(kd_st_save(p, &x, (const char *const[]){ "x" }, 1, NULL, 0) == KD_OK);
    snprintf(p, sizeof p, "%s/b.safetensors", dir);
    KD_CHECK(kd_st_save(p, (kd_tensor *const[]){ y, z }, (const char *const[]){ "y", "z" }, 2, NULL, 0) == KD_OK);
    kd_tensor_free(x);
    kd_tensor_free(y);
    kd_tensor_free(z);
}
#endif

#if KD_FUZZ_TARGET == 3
static void same_config(const kd_bert_config *a, const kd_bert_config *b)
{
    KD_CHECK(a->vocab_size == b->vocab_size && a->hidden_size == b->hidden_size && a->num_layers == b->num_layers);
    KD_CHECK(a->num_heads == b->num_heads && a->intermediate_size == b->intermediate_size);
    KD_CHECK(a->max_position == b->max_position && a->type_vocab_size == b->type_vocab_size);
    KD_CHECK(a->pad_token_id == b->pad_token_id && a->num_labels == b->num_labels);
    KD_CHECK(a->layer_norm_eps == b->layer_norm_eps && a->hidden_dropout == b->hidden_dropout);
    KD_CHECK(a->attention_dropout == b->attention_dropout && a->initializer_range == b->initializer_range);
    KD_CHECK(strcmp(a->hidden_act, b->hidden_act) == 0);
    for (int i = 0; i < a->num_labels; i++) KD_CHECK(strcmp(a->labels[i], b->labels[i]) == 0);
}
#endif

#if KD_FUZZ_TARGET == 7
static kd_bert *model;
static kd_tensor **params;
static size_t nparams;
static kd_adamw *opt;
#endif

#if KD_FUZZ_TARGET == 5
static const char *const sentences[] = {
    "the movie was great, wasn't it?", "[CLS] un ##able [SEP] [MASK] caf\xc3\xa9 na\xc3\xafve",
    "\xe4\xb8\xad\xe6\x96\x87 text\twith\ncontrols\x01 and a verylongwordthatcannotbesplit",
};
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
#if KD_FUZZ_TARGET == 1
    input_file("safetensors", "model.safetensors", data, size);
    kd_safetensors *st = kd_st_open(path);
    if (st) {
        check_file(st);
        kd_st_close(st);
    } else {
        named(path);
    }
#elif KD_FUZZ_TARGET == 2
    static int ready;
    if (!ready) {
        write_shards(fuzz_dir("st_index"));
        ready = 1;
    }
    input_file("st_index", "model.safetensors.index.json", data, size);
    kd_st_set *s = kd_st_set_open_index(path);
    if (s) {
        KD_CHECK(s->nfiles >= 1 && s->nfiles <= 2);
        for (size_t i = 0; i < s->nfiles; i++) check_file(s->files[i]);
        for (size_t i = 0; i < s->count; i++) {
            const kd_safetensors *f = NULL;
            KD_CHECK(s->file_of[i] < s->nfiles);
            KD_CHECK(kd_st_set_find(s, s->names[i], &f) != NULL && f != NULL);
        }
        kd_st_set_close(s);
    } else {
        named(path);
    }
#elif KD_FUZZ_TARGET == 3
    input_file("config", "config.json", data, size);
    kd_bert_config c, c2;
    if (kd_bert_config_load(path, &c) == KD_OK) {
        KD_CHECK(kd_bert_config_check(&c, path) == KD_OK);
        char again[600];
        snprintf(again, sizeof again, "%s/again.json", fuzz_dir("config"));
        KD_CHECK(kd_bert_config_save(again, &c) == KD_OK);
        KD_CHECK(kd_bert_config_load(again, &c2) == KD_OK);
        same_config(&c, &c2);
    } else {
        named(path);
    }
#elif KD_FUZZ_TARGET == 4
    input_file("tok_config", "tokenizer_config.json", data, size);
    kd_tokenizer_opts o = kd_tokenizer_opts_default();
    if (kd_tokenizer_config_read(path, &o) == KD_OK) {
        KD_CHECK((o.lowercase == 0 || o.lowercase == 1) && o.strip_accents >= -1 && o.strip_accents <= 1);
        KD_CHECK(o.handle_chinese_chars == 0 || o.handle_chinese_chars == 1);
    } else {
        named(path);
    }
#elif KD_FUZZ_TARGET == 5
    static const char name[] = "fuzz/vocab.txt";
    kd_vocab *v = NULL;
    kd_tokenizer *t = NULL;
    if (kd_vocab_parse((const char *)data, size, name, &v) != KD_OK) {
        named(name);
        return 0;
    }
    int32_t n = kd_vocab_size(v);
    KD_CHECK(n >= 1);
    for (int lower = 0; lower <= 1; lower++) {
        kd_vocab *vv = v;
        if (lower) KD_CHECK(kd_vocab_parse((const char *)data, size, name, &vv) == KD_OK);
        kd_tokenizer_opts o = kd_tokenizer_opts_default();
        o.lowercase = lower;
        if (kd_tokenizer_new(vv, &o, &t) != KD_OK) {
            named(name);
            continue;
        }
        kd_encoding e;
        kd_encoding_init(&e);
        for (size_t s = 0; s < sizeof sentences / sizeof *sentences; s++) {
            const char *a = sentences[s];
            if (kd_encode(t, a, strlen(a), s ? sentences[s - 1] : NULL, s ? strlen(sentences[s - 1]) : 0, 24, &e) !=
                KD_OK)
                continue;   /* no [CLS]/[SEP] in this vocabulary: refused, not a crash */
            KD_CHECK(e.len >= 2 && e.len <= 24);
            for (size_t i = 0; i < e.len; i++) KD_CHECK(e.ids[i] >= 0 && e.ids[i] < n);
            char *back = kd_decode(t, e.ids, e.len, 1);
            KD_CHECK(back != NULL);
            free(back);
        }
        kd_encoding_free(&e);
        kd_tokenizer_free(t);
    }
#elif KD_FUZZ_TARGET == 6
    input_file("train_state", "trainer_state.json", data, size);
    kd_train_state s;
    if (kd_checkpoint_load_state(fuzz_dir("train_state"), NULL, &s) == KD_OK) {
        KD_CHECK(s.total_steps >= 1 && s.global_step >= 0 && s.global_step <= s.total_steps);
        KD_CHECK(s.epoch >= 0 && s.next_batch >= 0 && s.best_epoch >= -1);
        KD_CHECK(s.loss.n <= s.loss.cap && s.dev.n <= s.dev.cap);
        KD_CHECK(s.num_labels == 0 || (s.num_labels > 0 && s.best_confusion != NULL));
        kd_train_state_free(&s);
    } else {
        named(path);
    }
#elif KD_FUZZ_TARGET == 7
    if (!model) {
        kd_bert_config c = fuzz_small_config();
        model = kd_bert_new(&c, 1);
        KD_CHECK(model != NULL);
        params = kd_bert_parameters(model, &nparams);
        kd_adamw_config ac = kd_adamw_defaults();
        opt = kd_adamw_new(params, nparams, &ac);
        KD_CHECK(opt != NULL);
    }
    input_file("optimizer", "optimizer.bin", data, size);
    if (kd_adamw_load(opt, path) == KD_OK) {
        KD_CHECK(opt->step >= 0);
        for (size_t i = 0; i < nparams; i++) {
            int64_t n = kd_numel(params[i]);
            float *m = malloc((size_t)n * sizeof *m), *v = malloc((size_t)n * sizeof *v);
            KD_CHECK(m && v && kd_to_host(opt->m[i], m) == KD_OK && kd_to_host(opt->v[i], v) == KD_OK);
            for (int64_t k = 0; k < n; k++) KD_CHECK(isfinite(m[k]) && isfinite(v[k]) && v[k] >= 0.0f);
            free(m);
            free(v);
        }
    } else {
        named(path);
    }
#else
#error "KD_FUZZ_TARGET: 1..7"
#endif
    return 0;
}
