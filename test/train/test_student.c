/* test/train/test_student.c — the student-building policy (train/student.h) on a tiny teacher (hidden 32,
 * 2 heads, FFN 64, 4 layers): the shape each spec gives (teacher's, --student-layers, --student-hidden with
 * the FFN in proportion, --student-intermediate, a preset, a bare config.json), the weights (copied, sliced
 * from the teacher, or fresh with --student-init random), and the flag errors that are usage errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/backend.h"
#include "test/testutil.h"
#include "train/student.h"

static char root[64];

/* Element i of the word embeddings (the first parameter). */
static float word_at(kd_bert *m, size_t i)
{
    size_t n;
    kd_tensor **p = kd_bert_parameters(m, &n);
    return ((const float *)kd_data(p[0]))[i];
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/kd_test_student_XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    char vocab[128], bare[128], cfgpath[160];
    snprintf(vocab, sizeof vocab, "%s/vocab.txt", root);
    FILE *f = fopen(vocab, "w");
    fputs("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n", f);
    for (int i = 5; i < 50; i++) fprintf(f, "w%d\n", i);
    fclose(f);
    kd_tokenizer *tok = NULL;
    CHECK(kd_tokenizer_load(vocab, 1, &tok) == KD_OK, "vocabulary: %s", kd_last_error());
    if (!tok) return kd_test_finish("test_student");
    const char *names[3] = { "neg", "neutral", "pos" };
    kd_labels labels = { 0 };
    kd_labels_set(&labels, names, 3);

    kd_bert_config tc;
    kd_bert_preset("bert-tiny", &tc);
    tc.vocab_size = 50;
    tc.hidden_size = 32;
    tc.num_heads = 2;
    tc.intermediate_size = 64;
    tc.num_layers = 4;
    tc.max_position = 16;
    tc.num_labels = 3;
    for (int i = 0; i < 3; i++) snprintf(tc.labels[i], sizeof tc.labels[i], "%s", names[i]);
    kd_bert *t = kd_bert_new(&tc, 1);

    /* --init-from-teacher alone: the teacher's shape, its weights. */
    kd_student_spec spec = { .init_from_teacher = 1, .layers = 2, .cmd = "test" };
    kd_bert *s = kd_student_build(&spec, t, tok, &labels, 7);
    const kd_bert_config *c = s ? kd_bert_get_config(s) : NULL;
    CHECK(c && c->hidden_size == 32 && c->num_layers == 2 && word_at(s, 5 * 32 + 31) == word_at(t, 5 * 32 + 31),
          "copied student: 2 layers of hidden 32, the teacher's word embeddings: %s", kd_last_error());
    kd_bert_free(s);

    /* --student-hidden 16: FFN 32 (in proportion), sliced: row 5, column 15 is the teacher's row 5, column 15. */
    spec.hidden = 16;
    s = kd_student_build(&spec, t, tok, &labels, 7);
    c = s ? kd_bert_get_config(s) : NULL;
    CHECK(c && c->hidden_size == 16 && c->intermediate_size == 32 && c->num_heads == 2 && c->vocab_size == 50 &&
              word_at(s, 5 * 16 + 15) == word_at(t, 5 * 32 + 15),
          "sliced student: hidden 16, FFN 32, 2 heads, word[5][15] the teacher's: %s", kd_last_error());
    kd_bert_free(s);
    /* --student-init random: the same shape, nothing copied. */
    spec.init = KD_STUDENT_INIT_RANDOM;
    s = kd_student_build(&spec, t, tok, &labels, 7);
    c = s ? kd_bert_get_config(s) : NULL;
    int differ = 0;
    for (int i = 0; s && i < 16; i++) differ += word_at(s, 5 * 16 + (size_t)i) != word_at(t, 5 * 32 + (size_t)i);
    CHECK(c && c->hidden_size == 16 && c->intermediate_size == 32 && differ == 16,
          "random student: the same shape, word[5][0..16) all unlike the teacher's (%d of 16)", differ);
    kd_bert_free(s);
    spec.init = KD_STUDENT_INIT_SLICED;
    spec.intermediate = 24;
    s = kd_student_build(&spec, t, tok, &labels, 7);
    CHECK(s && kd_bert_get_config(s)->intermediate_size == 24, "--student-intermediate 24 overrides the proportional FFN");
    kd_bert_free(s);

    /* Flag values that cannot work: KD_ERR_ARG naming the flag, flagged as usage errors. */
    kd_bert_config out;
    int flag = 0;
    kd_student_spec bad = spec;
    bad.hidden = 64;
    CHECK(kd_student_config(&bad, t, tok, &labels, &out, &flag) == KD_ERR_ARG && flag &&
              strstr(kd_last_error(), "--student-hidden: got 64") && strstr(kd_last_error(), "hidden_size 32"),
          "wider than the teacher: %s", kd_last_error());
    bad.hidden = 15;
    flag = 0;
    CHECK(kd_student_config(&bad, t, tok, &labels, &out, &flag) == KD_ERR_ARG && flag &&
              strstr(kd_last_error(), "multiple of num_attention_heads 2"),
          "not divisible by the heads: %s", kd_last_error());
    bad = (kd_student_spec){ .student = "bert-tiny", .init = KD_STUDENT_INIT_SLICED };
    flag = 0;
    CHECK(kd_student_config(&bad, t, tok, &labels, &out, &flag) == KD_ERR_ARG && flag &&
              strstr(kd_last_error(), "--init-from-teacher"),
          "sliced without a teacher to slice: %s", kd_last_error());

    /* A preset is that shape, fresh, with the vocabulary's size and the data's labels. */
    kd_student_spec ps = { .student = "bert-tiny", .hidden = 64 };
    s = kd_student_build(&ps, t, tok, &labels, 7);
    c = s ? kd_bert_get_config(s) : NULL;
    CHECK(c && c->hidden_size == 64 && c->intermediate_size == 256 && c->vocab_size == 50 && c->num_labels == 3 &&
              !strcmp(c->labels[2], "pos"),
          "bert-tiny with --student-hidden 64: FFN 256, 50 ids, 3 labels: %s", kd_last_error());
    kd_bert_free(s);
    /* A bare config.json: its shape, fresh; saved with weights it is a checkpoint whose shape is fixed. */
    snprintf(bare, sizeof bare, "%s/bare", root);
    snprintf(cfgpath, sizeof cfgpath, "%s/config.json", bare);
    kd_bert_config bc = tc;
    bc.hidden_size = 24;
    bc.intermediate_size = 48;
    bc.num_layers = 1;
    bc.vocab_size = 30522;
    CHECK(kd_bert_save(t, bare) == KD_OK && kd_bert_config_save(cfgpath, &bc) == KD_OK, "write %s", bare);
    CHECK(!kd_student_is_config_only(bare), "%s with model.safetensors is a checkpoint", bare);
    kd_student_spec bs = { .student = bare, .layers = 1 };
    flag = 0;
    CHECK(kd_student_config(&bs, t, tok, &labels, &out, &flag) == KD_ERR_ARG && flag &&
              strstr(kd_last_error(), "--student-layers") && strstr(kd_last_error(), "fix its shape"),
          "a shape flag on a checkpoint: %s", kd_last_error());
    char st[192];
    snprintf(st, sizeof st, "%s/model.safetensors", bare);
    unlink(st);
    CHECK(kd_student_is_config_only(bare), "%s without weights is a bare config", bare);
    s = kd_student_build(&bs, t, tok, &labels, 7);
    c = s ? kd_bert_get_config(s) : NULL;
    CHECK(c && c->hidden_size == 24 && c->intermediate_size == 48 && c->num_layers == 1 && c->vocab_size == 50,
          "bare config.json: hidden 24, FFN 48, 1 layer, the vocabulary's 50 ids: %s", kd_last_error());
    kd_bert_free(s);

    unlink(cfgpath);
    rmdir(bare);
    unlink(vocab);
    rmdir(root);
    kd_bert_free(t);
    kd_tokenizer_free(tok);
    kd_labels_free(&labels);
    kd_shutdown();
    return kd_test_finish("test_student");
}
