/* test/models/test_bert_checkpoint.c — presets and parameter counts, BERT's initialisation, config.json
 * round trip, checkpoints saved and loaded (ours, BertModel naming without "bert.", old gamma/beta names, F16
 * and BF16), a resized head, train/eval modes, and students built from a teacher's layers. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/backend.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "models/bert_internal.h"
#include "test/models/st_util.h"
#include "test/testutil.h"



static int same_values(const kd_tensor *a, const kd_tensor *b)
{
    return kd_same_shape(a, b) && memcmp(kd_data(a), kd_data(b), (size_t)kd_numel(a) * 4) == 0;
}

static void test_presets(void)
{
    const char *const *names = kd_bert_preset_names();
    int n = 0;
    for (; names[n]; n++) {
        kd_bert_config c;
        CHECK(kd_bert_preset(names[n], &c) == KD_OK && kd_bert_config_check(&c, names[n]) == KD_OK,
              "preset %s is valid: %s", names[n], kd_last_error());
    }
    CHECK(n == 8, "8 presets, got %d", n);
    kd_bert_config c;
    CHECK(kd_bert_preset("bert-huge", &c) == KD_ERR_ARG && strstr(kd_last_error(), "bert-huge") &&
              strstr(kd_last_error(), "bert-base"),
          "unknown preset names itself and the choices: %s", kd_last_error());
    /* Parameter counts as Hugging Face reports them: BertModel bert-base-uncased has 109,482,240;
     * BertForSequenceClassification adds 768 * 2 + 2. */
    kd_bert_preset("bert-base", &c);
    kd_bert *m = kd_bert_alloc(&c);
    CHECK(m && kd_bert_num_parameters(m) == 109482240 + 1538, "bert-base has %lld parameters",
          m ? (long long)kd_bert_num_parameters(m) : -1LL);
    size_t np = 0;
    if (m) kd_bert_parameters(m, &np);
    CHECK(np == 5 + 12 * 16 + 4, "bert-base has %zu parameter tensors", np);
    kd_bert_free(m);
    kd_bert_preset("bert-large", &c);
    CHECK(c.num_layers == 24 && c.hidden_size == 1024 && c.num_heads == 16 && c.intermediate_size == 4096, "bert-large sizes");
    kd_bert_preset("minilm-l6", &c);
    CHECK(c.num_layers == 6 && c.hidden_size == 384 && c.num_heads == 12 && c.intermediate_size == 1536, "minilm-l6 sizes");
}

static void test_init(void)
{
    kd_bert_config c = tiny_config();
    c.vocab_size = 400;   /* 400 x 32 word embeddings: enough draws for the statistics below */
    kd_bert *m = kd_bert_new(&c, 42), *m2 = kd_bert_new(&c, 42), *m3 = kd_bert_new(&c, 43);
    CHECK(m && m2 && m3, "kd_bert_new: %s", kd_last_error());
    if (!m || !m2 || !m3) goto done;
    const float *w = kd_data(m->word);
    double s = 0, s2 = 0, mx = 0;
    int64_t n = kd_numel(m->word) - c.hidden_size;   /* without the zero padding row */
    for (int64_t i = c.hidden_size; i < kd_numel(m->word); i++) {
        s += w[i];
        s2 += (double)w[i] * w[i];
        if (fabs(w[i]) > mx) mx = fabs(w[i]);
    }
    double mean = s / (double)n, sd = sqrt(s2 / (double)n - mean * mean);
    /* A normal truncated at 2 sigma has std 0.8796 sigma. */
    CHECK(fabs(mean) < 0.002 && fabs(sd - 0.02 * 0.8796) < 0.001, "word embeddings: mean %g, std %g (want ~0, %g)", mean,
          sd, 0.02 * 0.8796);
    CHECK(mx <= 0.04 + 1e-7 && mx > 0.03, "truncated at 2 std: max |w| = %g", mx);
    int pad_zero = 1;
    for (int64_t i = 0; i < c.hidden_size; i++) pad_zero &= w[(int64_t)c.pad_token_id * c.hidden_size + i] == 0.0f;
    CHECK(pad_zero, "padding row of the word embeddings is zero");
    int ln_ok = 1, bias_ok = 1;
    for (int64_t i = 0; i < c.hidden_size; i++) {
        ln_ok &= ((float *)kd_data(m->layers[1].oln_w))[i] == 1.0f && ((float *)kd_data(m->eln_b))[i] == 0.0f;
        bias_ok &= ((float *)kd_data(m->layers[0].q_b))[i] == 0.0f && ((float *)kd_data(m->pool_b))[i] == 0.0f;
    }
    CHECK(ln_ok && bias_ok, "LayerNorm 1/0 and biases 0");
    size_t np;
    kd_tensor **p1 = kd_bert_parameters(m, &np), **p2 = kd_bert_parameters(m2, NULL), **p3 = kd_bert_parameters(m3, NULL);
    int same = 1, differ = 0;
    for (size_t i = 0; i < np; i++) {
        same &= same_values(p1[i], p2[i]);
        differ |= !same_values(p1[i], p3[i]);
    }
    CHECK(same && differ, "same seed gives the same model, another seed another");
    CHECK(strcmp(p1[6]->name, "bert.encoder.layer.0.attention.self.query.bias") == 0, "parameter names: %s", p1[6]->name);
done:
    kd_bert_free(m);
    kd_bert_free(m2);
    kd_bert_free(m3);
}

static void test_config_roundtrip(const char *dir)
{
    kd_bert_config c = tiny_config(), r;
    c.layer_norm_eps = 1e-7;
    c.hidden_dropout = 0.25;
    c.attention_dropout = 0.125;
    c.pad_token_id = 1;
    char path[4200];
    snprintf(path, sizeof path, "%s/cfg.json", dir);
    CHECK(kd_bert_config_save(path, &c) == KD_OK, "config save: %s", kd_last_error());
    CHECK(kd_bert_config_load(path, &r) == KD_OK, "config load: %s", kd_last_error());
    CHECK(r.vocab_size == 50 && r.hidden_size == 32 && r.num_layers == c.num_layers && r.num_heads == 2 &&
              r.intermediate_size == 64 && r.max_position == 16 && r.type_vocab_size == 2 && r.pad_token_id == 1 &&
              r.layer_norm_eps == 1e-7 && r.hidden_dropout == 0.25 && r.attention_dropout == 0.125 &&
              r.num_labels == 3 && strcmp(r.labels[1], "neutral") == 0 && strcmp(r.hidden_act, "gelu") == 0,
          "config.json round trip keeps every field");
    /* A Hugging Face config without id2label but with num_labels. */
    write_text(path, "{\"model_type\": \"bert\", \"vocab_size\": 50, \"hidden_size\": 32, \"num_hidden_layers\": 1,"
                     " \"num_attention_heads\": 4, \"intermediate_size\": 8, \"num_labels\": 4}");
    CHECK(kd_bert_config_load(path, &r) == KD_OK && r.num_labels == 4 && r.max_position == 512 &&
              strcmp(r.labels[3], "LABEL_3") == 0,
          "num_labels without id2label: %s", kd_last_error());
    /* Neither: two classes LABEL_0, LABEL_1, as transformers reads the config.json it writes for them. */
    write_text(path, "{\"model_type\": \"bert\", \"vocab_size\": 50, \"hidden_size\": 32, \"num_hidden_layers\": 1,"
                     " \"num_attention_heads\": 4, \"intermediate_size\": 8}");
    CHECK(kd_bert_config_load(path, &r) == KD_OK && r.num_labels == 2 && !strcmp(r.labels[0], "LABEL_0") &&
              !strcmp(r.labels[1], "LABEL_1"),
          "no id2label, no num_labels: LABEL_0, LABEL_1 (got %s, %s): %s", r.labels[0], r.labels[1], kd_last_error());
    /* kd's names, default ones included, are written as id2label and read back as they are. */
    c = tiny_config();
    kd_bert_default_labels(&c);
    snprintf(c.labels[1], sizeof c.labels[1], "1");
    CHECK(kd_bert_config_save(path, &c) == KD_OK && kd_bert_config_load(path, &r) == KD_OK && r.num_labels == 3 &&
              !strcmp(r.labels[0], "LABEL_0") && !strcmp(r.labels[1], "1") && !strcmp(r.labels[2], "LABEL_2"),
          "names LABEL_0, 1, LABEL_2 round trip");
    CHECK(kd_bert_default_label("LABEL_2", 2) && kd_bert_default_label("2", 2) && !kd_bert_default_label("LABEL_2", 1) &&
              !kd_bert_default_label("pos", 2) && !kd_bert_default_label("LABEL_02", 2),
          "kd_bert_default_label: LABEL_i and i, for class i only");
}

static void test_roundtrip(const char *dir)
{
    kd_bert_config c = tiny_config();
    kd_bert *m = kd_bert_new(&c, 5);
    double want[8], got[8];
    int n = m ? logits_of(m, want) : 0;
    CHECK(n == 6, "logits of the fresh model: %s", kd_last_error());
    char sub[4200], path[4300];
    snprintf(sub, sizeof sub, "%s/ckpt/nested", dir);
    CHECK(m && kd_bert_save(m, sub) == KD_OK, "save: %s", kd_last_error());
    snprintf(path, sizeof path, "%s/model.safetensors.tmp", sub);
    CHECK(access(path, F_OK) != 0, "no temporary file left behind");
    int missing = -1;
    kd_bert *r = kd_bert_load(sub, 0, 9, &missing);
    CHECK(r && missing == 0, "load: %s", kd_last_error());
    if (r) {
        CHECK(logits_of(r, got) == n && memcmp(got, want, sizeof(double) * (size_t)n) == 0, "identical logits after reload");
        CHECK(strcmp(kd_bert_get_config(r)->labels[2], "pos") == 0, "labels kept");
        size_t np;
        kd_tensor **a = kd_bert_parameters(m, &np), **b = kd_bert_parameters(r, NULL);
        int same = 1;
        for (size_t i = 0; i < np; i++) same &= same_values(a[i], b[i]);
        CHECK(same, "every parameter identical after reload");
    }
    kd_bert_free(r);

    /* Saving again over the same directory replaces it (rename over the old file). */
    CHECK(kd_bert_save(m, sub) == KD_OK, "second save: %s", kd_last_error());

    /* vocab.txt beside it: copied, then checked against the embedding rows on load. */
    char vsrc[4300];
    snprintf(vsrc, sizeof vsrc, "%s/vocab_src.txt", dir);
    FILE *f = fopen(vsrc, "w");
    for (int i = 0; f && i < 50; i++) fprintf(f, "tok%d\n", i);
    if (f) fclose(f);
    CHECK(kd_bert_copy_vocab(vsrc, sub) == KD_OK, "copy vocab: %s", kd_last_error());
    r = kd_bert_load(sub, 0, 9, NULL);
    CHECK(r != NULL, "load with a matching vocab.txt: %s", kd_last_error());
    kd_bert_free(r);

    /* A resized head: classifier initialised fresh, the rest kept. */
    missing = -1;
    r = kd_bert_load(sub, 5, 9, &missing);
    CHECK(r && missing == 1 && kd_bert_get_config(r)->num_labels == 5 && r->cls_w->shape[0] == 5,
          "num_labels override 5: %s", kd_last_error());
    CHECK(r && !strcmp(kd_bert_get_config(r)->labels[4], "LABEL_4"), "a resized head's classes are LABEL_i");
    if (r) CHECK(same_values(r->layers[1].i_w, m->layers[1].i_w), "encoder kept under a new head");
    const char *names[5] = { "a", "b", "c", "d", "e" }, *dup[5] = { "a", "b", "a", "d", "e" };
    CHECK(r && kd_bert_set_labels(r, 5, names) == KD_OK && strcmp(kd_bert_get_config(r)->labels[4], "e") == 0,
          "set labels: %s", kd_last_error());
    CHECK(r && kd_bert_set_labels(r, 4, names) == KD_ERR_ARG && strstr(kd_last_error(), "num_labels 5"),
          "wrong label count: %s", kd_last_error());
    CHECK(r && kd_bert_set_labels(r, 5, dup) == KD_ERR_ARG && strstr(kd_last_error(), "\"a\" appears twice"),
          "duplicate label: %s", kd_last_error());
    kd_bert_free(r);
    kd_bert_free(m);
}

/* Rewrite a kd checkpoint as a BertModel (no "bert.", no classifier, old gamma/beta names) in `dtype`. */
static void test_hf_variants(const char *dir)
{
    kd_bert_config c = tiny_config();
    kd_bert *m = kd_bert_new(&c, 11);
    char sub[4200], path[4300];
    snprintf(sub, sizeof sub, "%s/hf", dir);
    CHECK(m && kd_bert_save(m, sub) == KD_OK, "save: %s", kd_last_error());
    snprintf(path, sizeof path, "%s/model.safetensors", sub);
    const char *dtypes[3] = { "F32", "F16", "BF16" };
    for (int v = 0; v < 3; v++) {
        size_t n = 0;
        st_raw *r = st_raw_read(path, &n);
        CHECK(r != NULL, "reread: %s", kd_last_error());
        if (!r) break;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (strncmp(r[i].name, "classifier.", 11) == 0) {
                free(r[i].bytes);
                continue;
            }
            st_raw e = r[i];
            if (strncmp(e.name, "bert.", 5) == 0) memmove(e.name, e.name + 5, strlen(e.name + 5) + 1);
            char *ln = strstr(e.name, "LayerNorm.");
            if (ln && v == 1) snprintf(ln, sizeof e.name - (size_t)(ln - e.name), "LayerNorm.%s",
                                       strstr(ln, ".weight") ? "gamma" : "beta");
            if (v > 0) st_raw_to_half(&e, dtypes[v]);
            r[k++] = e;
        }
        /* An extra buffer as Hugging Face files carry, which is ignored. */
        st_raw *pid = &r[k++];
        memset(pid, 0, sizeof *pid);
        snprintf(pid->name, sizeof pid->name, "embeddings.position_ids");
        snprintf(pid->dtype, sizeof pid->dtype, "I64");
        pid->ndim = 2;
        pid->shape[0] = 1;
        pid->shape[1] = 16;
        pid->nbytes = 16 * 8;
        pid->bytes = calloc(16, 8);
        pid->off_begin = pid->off_end = -1;
        char vdir[4300], vpath[4400], cpath[4400], dst[4400];
        snprintf(vdir, sizeof vdir, "%s/hf_%s", dir, dtypes[v]);
        mkdir(vdir, 0777);
        snprintf(vpath, sizeof vpath, "%s/model.safetensors", vdir);
        snprintf(cpath, sizeof cpath, "%s/config.json", sub);
        snprintf(dst, sizeof dst, "%s/config.json", vdir);
        CHECK(st_raw_write(vpath, r, k) == 0, "write %s", vpath);
        kd_bert_config cc;
        kd_bert_config_load(cpath, &cc);
        kd_bert_config_save(dst, &cc);
        int missing = -1;
        kd_bert *h = kd_bert_load(vdir, 0, 3, &missing);
        CHECK(h && missing == 1, "BertModel %s checkpoint loads (head missing = %d): %s", dtypes[v], missing,
              kd_last_error());
        if (h) {
            /* Each value must be the decoded half of the original. */
            int exact = 1;
            size_t np;
            kd_tensor **a = kd_bert_parameters(m, &np), **b = kd_bert_parameters(h, NULL);
            for (size_t i = 0; i + 2 < np; i++) {
                const float *x = kd_data(a[i]), *y = kd_data(b[i]);
                for (int64_t j = 0; j < kd_numel(a[i]); j++) {
                    float want = v == 0 ? x[j] : v == 1 ? kd_f16_to_f32(f32_to_f16(x[j])) : kd_bf16_to_f32(f32_to_bf16(x[j]));
                    exact &= memcmp(&want, &y[j], 4) == 0;
                }
            }
            CHECK(exact, "%s values decoded exactly (encoder and pooler)", dtypes[v]);
        }
        kd_bert_free(h);
        st_raw_free(r, k);
    }
    kd_bert_free(m);
}

static void test_half_decode(void)
{
    CHECK(kd_f16_to_f32(0x3C00) == 1.0f && kd_f16_to_f32(0xC000) == -2.0f && kd_f16_to_f32(0x7BFF) == 65504.0f &&
              kd_f16_to_f32(0x0400) == 0x1p-14f && kd_f16_to_f32(0x0001) == 0x1p-24f &&
              kd_f16_to_f32(0x83FF) == -0x3FFp-24f && kd_f16_to_f32(0x3555) == 0x1.554p-2f &&
              isinf(kd_f16_to_f32(0x7C00)) && isnan(kd_f16_to_f32(0x7E00)),
          "binary16 decoding (normals, subnormals, Inf, NaN)");
    CHECK(kd_bf16_to_f32(0x3F80) == 1.0f && kd_bf16_to_f32(0xC0A0) == -5.0f && kd_bf16_to_f32(0x0001) == 0x1p-133f,
          "bfloat16 decoding");
}

static void test_modes(void)
{
    kd_bert_config c = tiny_config();
    c.hidden_dropout = 0.3;
    kd_bert *m = kd_bert_new(&c, 8);
    double a[8], b[8], d1[8], d2[8];
    kd_manual_seed(1);
    int n = logits_of(m, a);
    logits_of(m, b);
    kd_bert_set_training(m, 1);
    logits_of(m, d1);
    logits_of(m, d2);
    kd_bert_set_training(m, 0);
    CHECK(n == 6 && memcmp(a, b, sizeof(double) * 6) == 0, "eval mode is deterministic");
    CHECK(memcmp(a, d1, sizeof(double) * 6) != 0 && memcmp(d1, d2, sizeof(double) * 6) != 0, "training mode applies dropout");
    /* Gradients reach every parameter but the key biases' softmax-invariant direction, in training mode. */
    kd_bert_set_training(m, 1);
    kd_bert_input in = { 2, 7, IDS, TYPES, MASK };
    kd_tensor *z = kd_bert_logits(m, &in);
    int32_t y[2] = { 0, 2 };
    kd_tensor *loss = kd_cross_entropy(z, kd_from_buffer(KD_I32, 1, (const int64_t[]){ 2 }, y));
    CHECK(loss && kd_backward(loss, NULL) == KD_OK, "backward in training mode: %s", kd_last_error());
    size_t np;
    kd_tensor **p = kd_bert_parameters(m, &np);
    int all = 1;
    for (size_t i = 0; i < np; i++) all &= p[i]->grad != NULL;
    CHECK(all, "every parameter received a gradient");
    kd_zero_grad(p, np);
    kd_arena_reset();
    /* Over-long input is an error naming both lengths. */
    int32_t ids[17] = {0};
    kd_bert_input lng = { 1, 17, ids, NULL, NULL };
    CHECK(kd_bert_logits(m, &lng) == NULL && strstr(kd_last_error(), "17") && strstr(kd_last_error(), "16"),
          "sequence longer than max_position: %s", kd_last_error());
    kd_arena_reset();
    /* A token id outside the vocabulary, and a mask that is not 0/1, are errors naming the value. */
    int32_t bad_ids[3] = { 2, 50, 3 }, bad_mask[3] = { 1, 1, 2 };
    kd_bert_input oov = { 1, 3, bad_ids, NULL, NULL };
    CHECK(kd_bert_logits(m, &oov) == NULL && kd_last_status() == KD_ERR_INDEX && strstr(kd_last_error(), "50"),
          "id 50 with a vocabulary of 50: %s", kd_last_error());
    kd_arena_reset();
    bad_ids[1] = 4;
    kd_bert_input bm = { 1, 3, bad_ids, NULL, bad_mask };
    CHECK(kd_bert_logits(m, &bm) == NULL && strstr(kd_last_error(), "mask") && strstr(kd_last_error(), "2"),
          "mask value 2: %s", kd_last_error());
    kd_arena_reset();
    kd_bert_free(m);
}

static void test_from_teacher(void)
{
    kd_bert_config tc = tiny_config(), sc = tiny_config();
    tc.num_layers = 4;
    sc.num_layers = 2;
    kd_bert *t = kd_bert_new(&tc, 1);
    kd_bert *s = kd_bert_from_teacher(t, &sc, NULL, 2);
    CHECK(s != NULL, "student: %s", kd_last_error());
    if (s) {
        CHECK(same_values(s->word, t->word) && same_values(s->eln_w, t->eln_w) && same_values(s->pos, t->pos),
              "embeddings copied");
        int ok = 1;
        for (int j = 0; j < KD_BERT_LAYER_TENSORS; j++)
            ok &= same_values(s->layers[0].t[j], t->layers[0].t[j]) && same_values(s->layers[1].t[j], t->layers[2].t[j]);
        CHECK(ok, "every 2nd layer: student 0, 1 = teacher 0, 2");
        CHECK(strcmp(s->layers[1].q_w->name, "bert.encoder.layer.1.attention.self.query.weight") == 0, "student names");
    }
    kd_bert_free(s);
    const int list[2] = { 3, 1 };
    s = kd_bert_from_teacher(t, &sc, list, 2);
    CHECK(s && same_values(s->layers[0].o_w, t->layers[3].o_w) && same_values(s->layers[1].k_b, t->layers[1].k_b),
          "explicit layer list {3, 1}");
    kd_bert_free(s);
    const int bad[2] = { 0, 4 };
    CHECK(kd_bert_from_teacher(t, &sc, bad, 2) == NULL && strstr(kd_last_error(), "4"), "layer index out of range: %s",
          kd_last_error());
    kd_bert_config wide = sc;
    wide.hidden_size = 64;
    CHECK(kd_bert_from_teacher(t, &wide, NULL, 2) == NULL && kd_last_status() == KD_ERR_SHAPE &&
              strstr(kd_last_error(), "hidden_size") && strstr(kd_last_error(), "32") && strstr(kd_last_error(), "64"),
          "hidden sizes differ: %s", kd_last_error());
    kd_bert_free(t);
}

int main(void)
{
    char dir[4096];
    if (make_tmpdir(dir, sizeof dir) != 0) {
        perror("mkdtemp");
        return 1;
    }
    test_presets();
    test_init();
    test_half_decode();
    test_config_roundtrip(dir);
    test_roundtrip(dir);
    test_hf_variants(dir);
    test_modes();
    test_from_teacher();
    rm_tree(dir);
    kd_shutdown();
    return kd_test_finish("test_bert_checkpoint");
}
