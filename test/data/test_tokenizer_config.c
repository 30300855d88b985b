/* test/data/test_tokenizer_config.c — tokenizer_config.json beside a vocab.txt (data/tokenizer_config.c):
 * absent, it leaves BERT's uncased defaults; do_lower_case false keeps case (and accents, strip_accents
 * following it), strip_accents true/false apart from it, tokenize_chinese_chars; the ids a small cased
 * vocabulary gives each way; bad files named with the field and what was expected; and the file kd writes
 * beside a checkpoint (with special_tokens_map.json) read back to the same options. No Python:
 * test/data/check_tokenizer_config.py compares the ids with transformers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/tokenizer_config.h"
#include "engine/fileio.h"
#include "engine/json.h"
#include "test/testutil.h"

/* ids 0..4 the specials, then the words */
static const char *const VOCAB[] = { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "Hello", "world",
                                     "World", "cafe", "café", "Cafe", "Café", "!", NULL };
enum { HELLO = 5, HELLO_C, WORLD, WORLD_C, CAFE, CAFE_ACC, CAFE_C, CAFE_C_ACC, BANG };

static char dir[256], vocab_path[300], config_path[300];

static void write_file(const char *path, const char *text)
{
    CHECK(kd_write_file_atomic(path, text, strlen(text)) == KD_OK, "write %s: %s", path, kd_last_error());
}

/* The tokenizer of dir with `config` as its tokenizer_config.json (NULL: none), and the ids of text. */
static int ids_of(const char *config, const char *text, int32_t *ids, int max, kd_tokenizer_opts *opts)
{
    unlink(config_path);
    if (config) write_file(config_path, config);
    kd_tokenizer *t = NULL;
    if (kd_tokenizer_load_beside(vocab_path, &t) != KD_OK) {
        CHECK(0, "load with %s: %s", config ? config : "no config", kd_last_error());
        return -1;
    }
    if (opts) *opts = t->opts;
    kd_encoding e;
    kd_encoding_init(&e);
    int n = -1;
    if (kd_tokenize(t, text, strlen(text), &e) == KD_OK && e.len <= (size_t)max) {
        n = (int)e.len;
        memcpy(ids, e.ids, e.len * sizeof *ids);
    }
    kd_encoding_free(&e);
    kd_tokenizer_free(t);
    return n;
}

static void expect_ids(const char *config, const char *text, const int32_t *want, int nwant, int lowercase,
                       int strip)
{
    int32_t got[16];
    kd_tokenizer_opts o;
    int n = ids_of(config, text, got, 16, &o);
    int same = n == nwant;
    for (int i = 0; same && i < n; i++) same = got[i] == want[i];
    char g[128] = "", w[128] = "";
    for (int i = 0; i < n && i < 16; i++) snprintf(g + strlen(g), sizeof g - strlen(g), " %d", (int)got[i]);
    for (int i = 0; i < nwant; i++) snprintf(w + strlen(w), sizeof w - strlen(w), " %d", (int)want[i]);
    CHECK(same, "%s on '%s': ids [%s ], want [%s ]", config ? config : "no config", text, g, w);
    int s = o.strip_accents < 0 ? o.lowercase : o.strip_accents;
    CHECK(n >= 0 && o.lowercase == lowercase && s == strip, "%s: lowercase %d strip %d, want %d %d",
          config ? config : "no config", o.lowercase, s, lowercase, strip);
    printf("%-62s '%s' ->%s\n", config ? config : "(no tokenizer_config.json)", text, g);
}

static void expect_bad(const char *config, const char *want1, const char *want2)
{
    unlink(config_path);
    write_file(config_path, config);
    kd_tokenizer *t = NULL;
    kd_status st = kd_tokenizer_load_beside(vocab_path, &t);
    const char *msg = kd_last_error();
    CHECK(st == KD_ERR_FORMAT && !t, "%s: refused with KD_ERR_FORMAT (got %s)", config, kd_status_name(st));
    CHECK(strstr(msg, config_path) && strstr(msg, want1) && (!want2 || strstr(msg, want2)),
          "%s: message '%s' names the file, '%s'%s%s", config, msg, want1, want2 ? " and " : "", want2 ? want2 : "");
    printf("refused %-54s %s\n", config, msg);
    kd_tokenizer_free(t);
}

static void test_read(void)
{
    const char *text = "Hello World! Café";
    /* Absent: BERT's uncased defaults, as kd did before reading the file. */
    expect_ids(NULL, text, (const int32_t[]){ HELLO, WORLD, BANG, CAFE }, 4, 1, 1);
    expect_ids("{\"do_lower_case\": true}", text, (const int32_t[]){ HELLO, WORLD, BANG, CAFE }, 4, 1, 1);
    /* Cased: case and accents kept (strip_accents null follows do_lower_case). */
    expect_ids("{\"do_lower_case\": false}", text, (const int32_t[]){ HELLO_C, WORLD_C, BANG, CAFE_C_ACC }, 4, 0, 0);
    expect_ids("{\"do_lower_case\": false, \"strip_accents\": null}", text,
               (const int32_t[]){ HELLO_C, WORLD_C, BANG, CAFE_C_ACC }, 4, 0, 0);
    /* strip_accents set apart from do_lower_case */
    expect_ids("{\"do_lower_case\": true, \"strip_accents\": false}", text,
               (const int32_t[]){ HELLO, WORLD, BANG, CAFE_ACC }, 4, 1, 0);
    expect_ids("{\"do_lower_case\": false, \"strip_accents\": true}", text,
               (const int32_t[]){ HELLO_C, WORLD_C, BANG, CAFE_C }, 4, 0, 1);
    /* The whole file transformers writes for a cased BERT (AddedToken objects in newer versions). */
    expect_ids("{\"clean_up_tokenization_spaces\": true, \"cls_token\": \"[CLS]\", \"do_basic_tokenize\": true, "
               "\"do_lower_case\": false, \"mask_token\": {\"content\": \"[MASK]\", \"__type\": \"AddedToken\"}, "
               "\"model_max_length\": 512, \"never_split\": null, \"pad_token\": \"[PAD]\", \"sep_token\": \"[SEP]\", "
               "\"strip_accents\": null, \"tokenize_chinese_chars\": true, \"tokenizer_class\": \"BertTokenizerFast\", "
               "\"unk_token\": \"[UNK]\"}",
               "Hello", (const int32_t[]){ HELLO_C }, 1, 0, 0);
    kd_tokenizer_opts o;
    int32_t ids[16];
    ids_of("{\"tokenize_chinese_chars\": false}", "x", ids, 16, &o);
    CHECK(o.handle_chinese_chars == 0 && o.lowercase == 1, "tokenize_chinese_chars false read (%d)", o.handle_chinese_chars);
    int found = -1;
    unlink(config_path);
    CHECK(kd_tokenizer_opts_beside(vocab_path, &o, &found) == KD_OK && found == 0, "no file: found = 0");
    write_file(config_path, "{}");
    CHECK(kd_tokenizer_opts_beside(vocab_path, &o, &found) == KD_OK && found == 1 && o.lowercase == 1,
          "an empty object: found, the defaults");
}

static void test_bad(void)
{
    expect_bad("{\"do_lower_case\": \"false\"}", "\"do_lower_case\"", "true or false");
    expect_bad("{\"do_lower_case\": 0}", "\"do_lower_case\"", "true or false");
    expect_bad("{\"strip_accents\": 1}", "\"strip_accents\"", "true, false or null");
    expect_bad("{\"tokenize_chinese_chars\": \"yes\"}", "\"tokenize_chinese_chars\"", "true or false");
    expect_bad("{\"tokenizer_class\": \"RobertaTokenizer\"}", "\"tokenizer_class\"", "RobertaTokenizer");
    expect_bad("{\"unk_token\": \"<unk>\"}", "\"unk_token\"", "\"[UNK]\"");
    expect_bad("{\"do_lower_case\": false,}", "not valid JSON", NULL);
    expect_bad("[true]", "expected a JSON object", NULL);
}

static void test_save(void)
{
    char sub[300], path[400];
    snprintf(sub, sizeof sub, "%s/saved", dir);
    CHECK(mkdir(sub, 0777) == 0, "mkdir %s", sub);
    kd_tokenizer_opts o = kd_tokenizer_opts_default();
    o.lowercase = 0;
    CHECK(kd_tokenizer_config_save(sub, &o, 64) == KD_OK, "save: %s", kd_last_error());
    snprintf(path, sizeof path, "%s/tokenizer_config.json", sub);
    kd_tokenizer_opts back = kd_tokenizer_opts_default();
    CHECK(kd_tokenizer_config_read(path, &back) == KD_OK, "read back: %s", kd_last_error());
    CHECK(back.lowercase == 0 && back.strip_accents == -1 && back.handle_chinese_chars == 1,
          "read back: lowercase %d strip_accents %d cjk %d, want 0 -1 1", back.lowercase, back.strip_accents,
          back.handle_chinese_chars);
    char *text = NULL;
    size_t len = 0;
    kd_json *j = kd_read_file(path, &text, &len) == KD_OK ? kd_json_parse(text, len, NULL, 0) : NULL;
    const kd_json *mml = kd_json_get(j, "model_max_length"), *cls = kd_json_get(j, "tokenizer_class");
    CHECK(mml && mml->is_integer && mml->integer == 64, "model_max_length 64");
    CHECK(cls && cls->type == KD_JSON_STRING && !strcmp(cls->string, "BertTokenizer"), "tokenizer_class BertTokenizer");
    CHECK(kd_json_get(j, "do_lower_case") && kd_json_get(j, "do_lower_case")->type == KD_JSON_FALSE, "do_lower_case false");
    CHECK(kd_json_get(j, "strip_accents") && kd_json_get(j, "strip_accents")->type == KD_JSON_NULL, "strip_accents null");
    kd_json_free(j);
    free(text);
    snprintf(path, sizeof path, "%s/special_tokens_map.json", sub);
    j = kd_read_file(path, &text, &len) == KD_OK ? kd_json_parse(text, len, NULL, 0) : NULL;
    static const char *const keys[5] = { "unk_token", "sep_token", "pad_token", "cls_token", "mask_token" };
    static const char *const toks[5] = { "[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]" };
    CHECK(j && j->type == KD_JSON_OBJECT && j->count == 5, "special_tokens_map.json: an object of 5 tokens");
    for (int i = 0; i < 5; i++) {
        const kd_json *v = kd_json_get(j, keys[i]);
        CHECK(v && v->type == KD_JSON_STRING && !strcmp(v->string, toks[i]), "special_tokens_map %s = %s", keys[i], toks[i]);
    }
    kd_json_free(j);
    free(text);
    snprintf(path, sizeof path, "%s/tokenizer_config.json.tmp", sub);
    CHECK(access(path, F_OK) != 0, "no temporary file left");
    /* Uncased with accents kept writes strip_accents false. */
    o = kd_tokenizer_opts_default();
    o.strip_accents = 0;
    CHECK(kd_tokenizer_config_save(sub, &o, 128) == KD_OK, "save uncased: %s", kd_last_error());
    snprintf(path, sizeof path, "%s/tokenizer_config.json", sub);
    back = kd_tokenizer_opts_default();
    CHECK(kd_tokenizer_config_read(path, &back) == KD_OK && back.lowercase == 1 && back.strip_accents == 0,
          "uncased, accents kept: read back lowercase %d strip_accents %d", back.lowercase, back.strip_accents);
    CHECK(kd_tokenizer_config_save(sub, &o, 1) == KD_ERR_ARG, "model_max_length 1 refused");
    printf("written and read back: %s/tokenizer_config.json, special_tokens_map.json\n", sub);
}

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/kd-tokcfg-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(vocab_path, sizeof vocab_path, "%s/vocab.txt", dir);
    snprintf(config_path, sizeof config_path, "%s/tokenizer_config.json", dir);
    char v[512] = "";
    for (int i = 0; VOCAB[i]; i++) snprintf(v + strlen(v), sizeof v - strlen(v), "%s\n", VOCAB[i]);
    write_file(vocab_path, v);
    test_read();
    test_bad();
    test_save();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
    return kd_test_finish("test_tokenizer_config");
}
