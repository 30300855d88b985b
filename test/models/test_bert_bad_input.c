/* test/models/test_bert_bad_input.c — each kind of bad configuration or checkpoint is a clear error naming
 * the field or tensor and both values: hidden not divisible by heads, unknown activation, truncated
 * safetensors, a header that lies about offsets, a vocabulary larger than the embedding matrix, a missing
 * tensor, a wrong shape, a wrong dtype, sizes past any BERT, NaN/Inf weights, a vocabulary far smaller than
 * the matrix, a problem_type other than single-label classification (and a few more malformed files). */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/backend.h"
#include "test/models/st_util.h"
#include "test/testutil.h"

static char dir[4096], good[4200];

#define EXPECT_FAIL(call, status, ...)                                                                  \
    do {                                                                                                \
        kd_clear_error();                                                                               \
        int failed_ = (call);                                                                           \
        CHECK(failed_ && kd_last_status() == (status) && st_error_says(__VA_ARGS__, (const char *)NULL), \
              "%s: want %s naming the cause, got %s: %s", #call, kd_status_name(status),                \
              kd_status_name(kd_last_status()), kd_last_error());                                       \
        printf("  ok: %s\n", kd_last_error());                                                          \
    } while (0)

static void path_in(char *out, size_t n, const char *sub, const char *file)
{
    snprintf(out, n, "%s/%s%s%s", dir, sub, *file ? "/" : "", file);
}

/* A safetensors file of the given header text followed by `data_len` zero bytes. */
static void write_st(const char *path, const char *header, size_t data_len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return;
    size_t n = strlen(header);
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)((uint64_t)n >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(header, 1, n, f);
    for (size_t i = 0; i < data_len; i++) fputc(0, f);
    fclose(f);
}

/* A copy of the good checkpoint under dir/sub with its safetensors entries passed through `edit`. */
static void variant(const char *sub, void (*edit)(st_raw *r, size_t *n))
{
    char d[4300], src[4300], dst[4400];
    snprintf(d, sizeof d, "%s/%s", dir, sub);
    mkdir(d, 0777);
    snprintf(src, sizeof src, "%s/config.json", good);
    snprintf(dst, sizeof dst, "%s/config.json", d);
    kd_bert_config c;
    kd_bert_config_load(src, &c);
    kd_bert_config_save(dst, &c);
    snprintf(src, sizeof src, "%s/model.safetensors", good);
    snprintf(dst, sizeof dst, "%s/model.safetensors", d);
    size_t n = 0;
    st_raw *r = st_raw_read(src, &n);
    if (edit) edit(r, &n);
    st_raw_write(dst, r, n);
    st_raw_free(r, n);
}

static void drop_pooler_bias(st_raw *r, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(r[i].name, "bert.encoder.layer.1.output.dense.bias") == 0) {
            free(r[i].bytes);
            memmove(&r[i], &r[i + 1], (*n - i - 1) * sizeof *r);
            (*n)--;
            return;
        }
}

static void wrong_shape(st_raw *r, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(r[i].name, "bert.encoder.layer.0.intermediate.dense.weight") == 0) {
            r[i].shape[0] = 32;     /* [64, 32] stored as [32, 64]: same bytes, wrong shape */
            r[i].shape[1] = 64;
        }
}

static void wrong_dtype(st_raw *r, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(r[i].name, "bert.embeddings.LayerNorm.bias") == 0) snprintf(r[i].dtype, sizeof r[i].dtype, "I32");
}

static void lying_offsets(st_raw *r, size_t *n)
{
    size_t total = 0;
    for (size_t i = 0; i < *n; i++) total += r[i].nbytes;
    for (size_t i = 0; i < *n; i++)
        if (strcmp(r[i].name, "bert.pooler.dense.weight") == 0) {
            r[i].off_begin = (int64_t)total;   /* points past the end of the data */
            r[i].off_end = (int64_t)(total + r[i].nbytes);
        }
}

static void overlapping(st_raw *r, size_t *n)
{
    /* classifier.bias (last) claims the bytes of the first tensor, its size unchanged. */
    r[*n - 1].off_begin = 0;
    r[*n - 1].off_end = (int64_t)r[*n - 1].nbytes;
}

static void nan_weight(st_raw *r, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(r[i].name, "bert.encoder.layer.1.attention.self.key.weight") == 0) {
            const float bad[2] = { 0.0f, NAN };
            memcpy(r[i].bytes + 4 * 5, bad, sizeof bad);   /* elements 5 and 6: the NaN is element 6 */
        }
}

static void inf_weight(st_raw *r, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(r[i].name, "classifier.weight") == 0) {
            const float bad = -INFINITY;
            memcpy(r[i].bytes, &bad, sizeof bad);
        }
}

static void no_head(st_raw *r, size_t *n)
{
    size_t k = 0;
    for (size_t i = 0; i < *n; i++) {
        if (!strncmp(r[i].name, "classifier.", 11) || !strncmp(r[i].name, "bert.pooler.", 12)) free(r[i].bytes);
        else r[k++] = r[i];
    }
    *n = k;
}

static void test_config(void)
{
    kd_bert_config c = tiny_config();
    c.num_heads = 3;
    EXPECT_FAIL(kd_bert_config_check(&c, "cfg") != KD_OK, KD_ERR_ARG, "hidden_size 32", "num_attention_heads 3");
    EXPECT_FAIL(kd_bert_new(&c, 1) == NULL, KD_ERR_ARG, "hidden_size 32", "num_attention_heads 3");
    c = tiny_config();
    snprintf(c.hidden_act, sizeof c.hidden_act, "swish");
    EXPECT_FAIL(kd_bert_config_check(&c, "cfg") != KD_OK, KD_ERR_ARG, "hidden_act", "swish", "gelu");
    c = tiny_config();
    c.intermediate_size = 0;
    EXPECT_FAIL(kd_bert_config_check(&c, "cfg") != KD_OK, KD_ERR_ARG, "intermediate_size", "0");

    char path[4300];
    snprintf(path, sizeof path, "%s/bad.json", dir);
    kd_bert_config r;
    write_text(path, "{\"vocab_size\": 50, \"hidden_size\": 100, \"num_hidden_layers\": 1, \"num_attention_heads\": 3,"
                     " \"intermediate_size\": 8}");
    EXPECT_FAIL(kd_bert_config_load(path, &r) != KD_OK, KD_ERR_ARG, path, "hidden_size 100", "num_attention_heads 3");
    write_text(path, "{\"vocab_size\": 50, \"hidden_size\": 32, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
                     " \"intermediate_size\": 8, \"hidden_act\": \"relu\"}");
    EXPECT_FAIL(kd_bert_config_load(path, &r) != KD_OK, KD_ERR_ARG, path, "hidden_act", "relu");
    write_text(path, "{\"vocab_size\": 50, \"hidden_size\": 32, \"num_attention_heads\": 4, \"intermediate_size\": 8}");
    EXPECT_FAIL(kd_bert_config_load(path, &r) != KD_OK, KD_ERR_FORMAT, path, "num_hidden_layers", "missing");
    write_text(path, "{\"vocab_size\": 50, \"hidden_size\": \"32\", \"num_hidden_layers\": 1}");
    EXPECT_FAIL(kd_bert_config_load(path, &r) != KD_OK, KD_ERR_FORMAT, path, "hidden_size", "integer");
    write_text(path, "{\"vocab_size\": 50, \"hidden_size\": 32,");
    EXPECT_FAIL(kd_bert_config_load(path, &r) != KD_OK, KD_ERR_FORMAT, path, "JSON");
    write_text(path, "{\"model_type\": \"distilbert\", \"vocab_size\": 50, \"hidden_size\": 32, \"num_hidden_layers\": 1,"
                     " \"num_attention_heads\": 4, \"intermediate_size\": 8}");
    EXPECT_FAIL(kd_bert_config_load(path, &r) != KD_OK, KD_ERR_FORMAT, "model_type", "distilbert");
    write_text(path, "{\"vocab_size\": 50, \"hidden_size\": 32, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
                     " \"intermediate_size\": 8, \"id2label\": {\"0\": \"a\", \"2\": \"b\"}}");
    EXPECT_FAIL(kd_bert_config_load(path, &r) != KD_OK, KD_ERR_FORMAT, "id2label", "\"2\"");
    /* Sizes far past any BERT are named before anything is allocated. */
    write_text(path, "{\"vocab_size\": 50, \"hidden_size\": 32, \"num_hidden_layers\": 1000000000, "
                     "\"num_attention_heads\": 4, \"intermediate_size\": 8}");
    EXPECT_FAIL(kd_bert_config_load(path, &r) != KD_OK, KD_ERR_ARG, path, "num_hidden_layers is 1000000000",
                "expected 1 to 256");
    write_text(path, "{\"vocab_size\": 50, \"hidden_size\": 32, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
                     " \"intermediate_size\": 300000}");
    EXPECT_FAIL(kd_bert_config_load(path, &r) != KD_OK, KD_ERR_ARG, path, "intermediate_size is 300000", "expected 1 to 262144");
    /* problem_type: transformers' multi-label head (a sigmoid per class) and regression are refused; the
     * single-label kind kd writes, and null, load. */
    write_text(path, "{\"vocab_size\": 50, \"hidden_size\": 32, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
                     " \"intermediate_size\": 8, \"problem_type\": \"multi_label_classification\"}");
    EXPECT_FAIL(kd_bert_config_load(path, &r) != KD_OK, KD_ERR_FORMAT, path,
                "problem_type is \"multi_label_classification\"", "kd trains and runs single-label classifiers");
    write_text(path, "{\"vocab_size\": 50, \"hidden_size\": 32, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
                     " \"intermediate_size\": 8, \"num_labels\": 1, \"problem_type\": \"regression\"}");
    EXPECT_FAIL(kd_bert_config_load(path, &r) != KD_OK, KD_ERR_FORMAT, path, "problem_type is \"regression\"");
    write_text(path, "{\"vocab_size\": 50, \"hidden_size\": 32, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
                     " \"intermediate_size\": 8, \"problem_type\": 3}");
    EXPECT_FAIL(kd_bert_config_load(path, &r) != KD_OK, KD_ERR_FORMAT, path, "\"problem_type\" is not a string");
    const char *const fine[2] = { "\"single_label_classification\"", "null" };
    for (int i = 0; i < 2; i++) {
        char text[512];
        snprintf(text, sizeof text, "{\"vocab_size\": 50, \"hidden_size\": 32, \"num_hidden_layers\": 1, "
                 "\"num_attention_heads\": 4, \"intermediate_size\": 8, \"problem_type\": %s}", fine[i]);
        write_text(path, text);
        CHECK(kd_bert_config_load(path, &r) == KD_OK, "problem_type %s loads: %s", fine[i], kd_last_error());
    }
    snprintf(path, sizeof path, "%s/absent.json", dir);
    EXPECT_FAIL(kd_bert_config_load(path, &r) != KD_OK, KD_ERR_IO, path);
}

static void test_checkpoints(void)
{
    char p[4300];
    variant("missing", drop_pooler_bias);
    path_in(p, sizeof p, "missing", "");
    EXPECT_FAIL(kd_bert_load(p, 0, 1, NULL) == NULL, KD_ERR_FORMAT, "bert.encoder.layer.1.output.dense.bias", "missing");

    variant("shape", wrong_shape);
    path_in(p, sizeof p, "shape", "");
    EXPECT_FAIL(kd_bert_load(p, 0, 1, NULL) == NULL, KD_ERR_SHAPE, "bert.encoder.layer.0.intermediate.dense.weight",
                "[32, 64]", "[64, 32]");

    variant("dtype", wrong_dtype);
    path_in(p, sizeof p, "dtype", "");
    EXPECT_FAIL(kd_bert_load(p, 0, 1, NULL) == NULL, KD_ERR_DTYPE, "bert.embeddings.LayerNorm.bias", "I32");

    variant("lying", lying_offsets);
    path_in(p, sizeof p, "lying", "");
    EXPECT_FAIL(kd_bert_load(p, 0, 1, NULL) == NULL, KD_ERR_FORMAT, "bert.pooler.dense.weight", "data_offsets",
                "outside the data section");

    variant("overlap", overlapping);
    path_in(p, sizeof p, "overlap", "model.safetensors");
    EXPECT_FAIL(kd_st_open(p) == NULL, KD_ERR_FORMAT, "classifier.bias", "overlap");

    /* A truncated file: the last bytes are gone, so the last tensors' offsets run past the end. */
    variant("trunc", NULL);
    path_in(p, sizeof p, "trunc", "model.safetensors");
    struct stat sb;
    stat(p, &sb);
    CHECK(truncate(p, sb.st_size - 10) == 0, "truncate");
    path_in(p, sizeof p, "trunc", "");
    EXPECT_FAIL(kd_bert_load(p, 0, 1, NULL) == NULL, KD_ERR_FORMAT, "classifier.bias", "truncated");
    /* ... and cut inside the header. */
    path_in(p, sizeof p, "trunc", "model.safetensors");
    CHECK(truncate(p, 100) == 0, "truncate");
    EXPECT_FAIL(kd_st_open(p) == NULL, KD_ERR_FORMAT, p, "header length", "truncated");
    CHECK(truncate(p, 5) == 0, "truncate");
    EXPECT_FAIL(kd_st_open(p) == NULL, KD_ERR_FORMAT, p, "5 bytes");
    /* A header that is not JSON. */
    write_st(p, "{not json at all}", 0);
    EXPECT_FAIL(kd_st_open(p) == NULL, KD_ERR_FORMAT, p, "JSON");
    /* Sizes that disagree with the shape. */
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 24);
    EXPECT_FAIL(kd_st_open(p) == NULL, KD_ERR_FORMAT, "'w'", "[2, 3]", "24");

    /* A vocabulary larger than the embedding matrix. */
    char vocab[4300];
    variant("vocab", NULL);
    path_in(vocab, sizeof vocab, "vocab", "vocab.txt");
    FILE *f = fopen(vocab, "w");
    for (int i = 0; f && i < 60; i++) fprintf(f, "tok%d\n", i);
    if (f) fclose(f);
    path_in(p, sizeof p, "vocab", "");
    EXPECT_FAIL(kd_bert_load(p, 0, 1, NULL) == NULL, KD_ERR_SHAPE, "vocab.txt", "60 tokens", "50 rows");

    /* config.json says a vocabulary of 60, the matrix has 50 rows. */
    char cpath[4300];
    path_in(cpath, sizeof cpath, "vocab", "config.json");
    kd_bert_config c;
    kd_bert_config_load(cpath, &c);
    c.vocab_size = 60;
    kd_bert_config_save(cpath, &c);
    remove(vocab);
    EXPECT_FAIL(kd_bert_load(p, 0, 1, NULL) == NULL, KD_ERR_SHAPE, "bert.embeddings.word_embeddings.weight", "[50, 32]",
                "[60, 32]");

    /* Only a PyTorch pickle beside config.json. */
    char bin[4300];
    path_in(bin, sizeof bin, "vocab", "model.safetensors");
    remove(bin);
    path_in(bin, sizeof bin, "vocab", "pytorch_model.bin");
    write_text(bin, "pickle");
    EXPECT_FAIL(kd_bert_load(p, 0, 1, NULL) == NULL, KD_ERR_IO, "model.safetensors", "pytorch_model.bin");

    /* NaN or Inf weights are named at load, tensor and element. */
    variant("nan", nan_weight);
    path_in(p, sizeof p, "nan", "");
    EXPECT_FAIL(kd_bert_load(p, 0, 1, NULL) == NULL, KD_ERR_FORMAT, "bert.encoder.layer.1.attention.self.key.weight",
                "NaN at element 6", "expected finite weights");
    variant("inf", inf_weight);
    path_in(p, sizeof p, "inf", "");
    EXPECT_FAIL(kd_bert_load(p, 0, 1, NULL) == NULL, KD_ERR_FORMAT, "classifier.weight", "Inf at element 0");

    /* An encoder without pooler and classifier loads (a head is made for it) and says so. */
    variant("headless", no_head);
    path_in(p, sizeof p, "headless", "");
    int missing = 0;
    kd_bert *h = kd_bert_load(p, 0, 1, &missing);
    CHECK(h && missing == 1, "a headless encoder loads and reports its missing head: %s", kd_last_error());
    kd_bert_free(h);

    /* A vocabulary far smaller than the embedding matrix (more than padding): another model's. */
    kd_bert_config big = tiny_config();
    big.vocab_size = 1100;
    kd_bert *wide = kd_bert_new(&big, 5);
    path_in(p, sizeof p, "smallvocab", "");
    CHECK(wide && kd_bert_save(wide, p) == KD_OK, "save a 1,100-row model: %s", kd_last_error());
    kd_bert_free(wide);
    path_in(vocab, sizeof vocab, "smallvocab", "vocab.txt");
    f = fopen(vocab, "w");
    for (int i = 0; f && i < 50; i++) fprintf(f, "tok%d\n", i);
    if (f) fclose(f);
    EXPECT_FAIL(kd_bert_load(p, 0, 1, NULL) == NULL, KD_ERR_SHAPE, "vocab.txt", "50 tokens", "1100 rows",
                "1050 rows would never be used");
    /* ... while a few padding rows are accepted. */
    f = fopen(vocab, "w");
    for (int i = 0; f && i < 1090; i++) fprintf(f, "tok%d\n", i);
    if (f) fclose(f);
    wide = kd_bert_load(p, 0, 1, NULL);
    CHECK(wide != NULL, "a vocabulary 10 rows short of the matrix (padding) loads: %s", kd_last_error());
    kd_bert_free(wide);

    path_in(p, sizeof p, "nowhere", "");
    EXPECT_FAIL(kd_bert_load(p, 0, 1, NULL) == NULL, KD_ERR_IO, "config.json");
}

int main(void)
{
    if (make_tmpdir(dir, sizeof dir) != 0) {
        perror("mkdtemp");
        return 1;
    }
    kd_bert_config c = tiny_config();
    kd_bert *m = kd_bert_new(&c, 3);
    snprintf(good, sizeof good, "%s/good", dir);
    CHECK(m && kd_bert_save(m, good) == KD_OK, "save the good checkpoint: %s", kd_last_error());
    kd_bert_free(m);
    test_config();
    test_checkpoints();
    rm_tree(dir);
    kd_shutdown();
    return kd_test_finish("test_bert_bad_input");
}
