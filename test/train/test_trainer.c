/* test/train/test_trainer.c — the loop end to end with a very small BERT:
 * a 2-epoch run on a tiny corpus in the demo vocabulary whose dev accuracy rises above the untrained model's; a run stopped by --max-steps and
 * resumed ends with bit-identical weights and dev accuracy to an uninterrupted one; the checkpoint loads
 * back with the same logits; the metrics file, chart and teacher cache exist; a distillation run with a
 * cached teacher works, and one with alpha 0 beside a teacher (the no-KD control) never runs it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/demo_corpus.h"
#include "engine/backend.h"
#include "test/testutil.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/intermediate.h"
#include "train/trainer.h"

static kd_dataset train_set, dev_set;

/* A tiny, easy corpus in the demo vocabulary ("the plot was dull" -> 0, "this film is great" -> 1), so
 * that two short epochs are enough to see dev accuracy rise. */
static void easy_corpus(size_t n, uint64_t seed, kd_dataset *d)
{
    static const char *const subj[] = { "the movie", "this film", "the plot", "the acting", "the script" };
    static const char *const verb[] = { "is", "was", "feels", "seemed" };
    static const char *const adj[2][4] = { { "bad", "boring", "dull", "awful" }, { "good", "great", "charming", "moving" } };
    static const char *const names[2] = { "0", "1" };
    memset(d, 0, sizeof *d);
    d->n = n;
    d->text = calloc(n, sizeof *d->text);
    d->text_len = calloc(n, sizeof *d->text_len);
    d->label = calloc(n, sizeof *d->label);
    kd_labels_set(&d->labels, names, 2);
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        unsigned r = (unsigned)(s >> 33);
        int y = (int)(r & 1);
        char buf[96];
        snprintf(buf, sizeof buf, "%s %s %s", subj[(r >> 1) % 5], verb[(r >> 4) % 4], adj[y][(r >> 7) % 4]);
        d->text[i] = strdup(buf);
        d->text_len[i] = strlen(buf);
        d->label[i] = y;
    }
}
static kd_tokenizer *tok;
static char vocab_path[320], root[256];

static kd_bert *small_model(uint64_t seed)
{
    kd_bert_config cfg;
    kd_bert_preset("bert-tiny", &cfg);
    cfg.vocab_size = kd_vocab_size(tok->vocab);
    cfg.hidden_size = 32;
    cfg.num_heads = 2;
    cfg.intermediate_size = 64;
    cfg.num_layers = 2;
    cfg.max_position = 64;
    return kd_bert_new(&cfg, seed);
}

static kd_train_config small_config(const char *out)
{
    kd_train_config c = kd_train_config_default();
    c.epochs = 2;
    c.batch_size = 8;
    c.max_len = 32;
    c.lr = 3e-3;
    c.alpha = 0.0;
    c.quiet = 1;
    c.progress_tty = 0;
    c.out_dir = out;
    c.student_vocab = vocab_path;
    c.seed = 7;
    return c;
}

static int same_weights(kd_bert *a, kd_bert *b)
{
    size_t na, nb;
    kd_tensor **p = kd_bert_parameters(a, &na), **q = kd_bert_parameters(b, &nb);
    if (na != nb) return 0;
    for (size_t i = 0; i < na; i++)
        if (memcmp(kd_data(p[i]), kd_data(q[i]), (size_t)kd_numel(p[i]) * sizeof(float)) != 0) return 0;
    return 1;
}

static int exists(const char *dir, const char *file)
{
    char p[600];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, file);
    return stat(p, &st) == 0;
}

int main(void)
{
    kd_set_threads(2);
    easy_corpus(480, 1, &train_set);
    easy_corpus(160, 2, &dev_set);
    size_t vlen;
    char *vtext = kd_demo_corpus_vocab(&vlen);
    snprintf(root, sizeof root, "/tmp/kd_test_trainer_XXXXXX");
    CHECK(mkdtemp(root) != NULL, "temp dir");
    snprintf(vocab_path, sizeof vocab_path, "%s/vocab.txt", root);
    FILE *f = fopen(vocab_path, "w");
    fwrite(vtext, 1, vlen, f);
    fclose(f);
    free(vtext);
    CHECK(kd_tokenizer_load(vocab_path, 1, &tok) == KD_OK, "tokenizer: %s", kd_last_error());

    /* 1. Two epochs: dev accuracy rises. */
    char out_a[300], out_b[300], out_k[300];
    snprintf(out_a, sizeof out_a, "%s/a", root);
    snprintf(out_b, sizeof out_b, "%s/b", root);
    snprintf(out_k, sizeof out_k, "%s/k", root);
    kd_bert *m = small_model(3);
    float *logits = malloc(dev_set.n * 2 * sizeof(float));
    kd_metrics met;
    kd_metrics_init(&met, 2);
    kd_model_logits(m, &dev_set, tok, 32, 64, logits, NULL);
    kd_metrics_from_logits(logits, dev_set.label, dev_set.n, 2, &met);
    double acc0 = met.accuracy;
    kd_train_data data = { .train = &train_set, .dev = &dev_set, .student_tok = tok };
    kd_train_config c = small_config(out_a);
    kd_train_result res;
    kd_status st = kd_train(m, &data, &c, &res);
    CHECK(st == KD_OK, "train: %s", kd_last_error());
    printf("dev accuracy: untrained %.4f, after 2 epochs %.4f (best %.4f, %lld steps)\n", acc0, res.final_accuracy,
           res.best_accuracy, (long long)res.steps);
    CHECK(res.finished && res.steps == 2 * 60, "120 optimizer steps (480 / 8 * 2), got %lld", (long long)res.steps);
    CHECK(res.final_accuracy > acc0 + 0.1, "dev accuracy rose from %.4f to %.4f", acc0, res.final_accuracy);
    CHECK(exists(out_a, "metrics.jsonl") && exists(out_a, "chart.svg") && exists(out_a, "last/trainer_state.json") &&
              exists(out_a, "last/optimizer.bin") && exists(out_a, "best/model.safetensors") &&
              exists(out_a, "model.safetensors") && exists(out_a, "vocab.txt"),
          "metrics, chart, last, best and the final model are written");

    /* 2. Checkpoint round trip: the saved model gives the same dev logits. */
    kd_bert *back = kd_bert_load(out_a, 0, 1, NULL);
    CHECK(back != NULL, "load the final model: %s", kd_last_error());
    if (back) {
        float *l2 = malloc(dev_set.n * 2 * sizeof(float));
        kd_model_logits(back, &dev_set, tok, 32, 64, l2, NULL);
        kd_metrics_from_logits(l2, dev_set.label, dev_set.n, 2, &met);
        CHECK(met.accuracy == res.best_accuracy, "reloaded best model: accuracy %.4f == %.4f", met.accuracy,
              res.best_accuracy);
        kd_bert *last = kd_bert_load(out_a, 0, 1, NULL);
        kd_bert_free(last);
        free(l2);
        kd_bert_free(back);
    }

    /* 3. Resume: stop at step 37 (mid-epoch, with dropout state), resume, compare with run 1. */
    kd_bert *r = small_model(3);
    kd_train_config cb = small_config(out_b);
    cb.max_steps = 37;
    kd_train_result rb;
    CHECK(kd_train(r, &data, &cb, &rb) == KD_OK && !rb.finished && rb.steps == 37, "interrupted run stops at 37: %s",
          kd_last_error());
    kd_bert_free(r);
    r = small_model(99);   /* different weights: the resume must replace them all */
    cb.max_steps = 0;
    cb.resume = 1;
    CHECK(kd_train(r, &data, &cb, &rb) == KD_OK && rb.finished, "resumed run: %s", kd_last_error());
    CHECK(rb.steps == res.steps, "same step count");
    CHECK(rb.final_accuracy == res.final_accuracy, "resumed dev accuracy %.6f == uninterrupted %.6f", rb.final_accuracy,
          res.final_accuracy);
    CHECK(same_weights(r, m), "resumed weights are bit-identical to the uninterrupted run's");
    kd_bert_free(r);

    /* 4. Distillation from the trained model with a cached teacher; a wrong-size teacher is refused. */
    kd_bert *s = small_model(5);
    kd_train_config ck = small_config(out_k);
    ck.alpha = 0.5;
    ck.epochs = 1;
    ck.cache_teacher = 1;
    data.teacher = m;
    data.teacher_tok = tok;
    CHECK(kd_train(s, &data, &ck, &rb) == KD_OK, "distill: %s", kd_last_error());
    CHECK(exists(out_k, "teacher_logits.bin"), "teacher cache written");
    CHECK(rb.final_accuracy > acc0, "distilled student learns (%.4f)", rb.final_accuracy);
    kd_bert_config c3;
    kd_bert_preset("bert-tiny", &c3);
    c3.vocab_size = kd_vocab_size(tok->vocab);
    c3.hidden_size = 32;
    c3.num_heads = 2;
    c3.intermediate_size = 64;
    c3.num_layers = 1;
    c3.num_labels = 3;
    kd_bert *t3 = kd_bert_new(&c3, 1);
    data.teacher = t3;
    CHECK(kd_train(s, &data, &ck, &rb) == KD_ERR_SHAPE && strstr(kd_last_error(), "label-set mismatch"),
          "a 3-label teacher for a 2-label student: %s", kd_last_error());
    ck.alpha = 1.5;
    data.teacher = m;
    CHECK(kd_train(s, &data, &ck, &rb) == KD_ERR_ARG && strstr(kd_last_error(), "alpha"), "alpha 1.5: %s",
          kd_last_error());
    /* alpha 0 with a teacher given (kd distill --alpha 0, the no-KD control): the teacher is never run. */
    char out_n[300];
    snprintf(out_n, sizeof out_n, "%s/n", root);
    kd_train_config cn = small_config(out_n);
    cn.alpha = 0.0;
    cn.epochs = 1;
    cn.max_steps = 3;
    CHECK(kd_train(s, &data, &cn, &rb) == KD_OK && rb.steps == 3, "alpha 0 with a teacher: %s", kd_last_error());
    kd_bert_free(t3);
    kd_bert_free(s);

    /* 5. A transfer set: 16 labelled rows and the other 464 as unlabelled text. The soft term sees all 480 a
     * epoch, the hard term the 16; the student learns more than from the 16 labels alone. */
    kd_dataset few = train_set, rest = train_set;
    few.n = 16;
    rest.n = train_set.n - 16;
    rest.text += 16;
    rest.text_len += 16;
    int32_t *none = malloc(rest.n * sizeof *none);
    for (size_t i = 0; i < rest.n; i++) none[i] = KD_NO_LABEL;
    rest.label = none;
    char out_t[300], out_f[300];
    snprintf(out_t, sizeof out_t, "%s/t", root);
    snprintf(out_f, sizeof out_f, "%s/f", root);
    kd_train_data dt = { .train = &few, .dev = &dev_set, .student_tok = tok, .teacher = m, .teacher_tok = tok,
                         .transfer = &rest };
    kd_train_config ct = small_config(out_t);
    ct.alpha = 0.5;
    ct.cache_teacher = 1;
    kd_bert *st_t = small_model(5), *st_f = small_model(5);
    kd_train_result rt, rf;
    CHECK(kd_train(st_t, &dt, &ct, &rt) == KD_OK, "distill with a transfer set: %s", kd_last_error());
    CHECK(rt.steps == 2 * 60, "transfer rows are batched with the labelled ones: %lld steps, want 120", (long long)rt.steps);
    kd_train_data df = { .train = &few, .dev = &dev_set, .student_tok = tok, .teacher = m, .teacher_tok = tok };
    kd_train_config cf = small_config(out_f);
    cf.alpha = 0.5;
    cf.epochs = 60;   /* as many steps as the transfer run (2 a epoch) */
    CHECK(kd_train(st_f, &df, &cf, &rf) == KD_OK, "distill on the 16 alone: %s", kd_last_error());
    printf("16 labels + 464 transfer rows: dev %.4f; the 16 alone (%lld steps): %.4f\n", rt.best_accuracy,
           (long long)rf.steps, rf.best_accuracy);
    CHECK(rt.best_accuracy > rf.best_accuracy, "the transfer set helps: %.4f > %.4f", rt.best_accuracy, rf.best_accuracy);
    dt.teacher = NULL;
    ct.alpha = 0.0;
    CHECK(kd_train(st_t, &dt, &ct, &rt) == KD_ERR_ARG && strstr(kd_last_error(), "transfer set"),
          "a transfer set without a teacher: %s", kd_last_error());
    free(none);
    kd_bert_free(st_t);
    kd_bert_free(st_f);

    /* 6. Intermediate layers: a narrower student (hidden 16, the teacher's 32) learns the teacher's hidden
     * states through projections and its attention distributions; the parts are logged; a run stopped and
     * resumed (projections and their optimizer state restored) ends bit-identical to an uninterrupted one. */
    kd_bert_config nc;
    kd_bert_preset("bert-tiny", &nc);
    nc.vocab_size = kd_vocab_size(tok->vocab);
    nc.hidden_size = 16;
    nc.num_heads = 2;
    nc.intermediate_size = 32;
    nc.num_layers = 1;
    nc.max_position = 64;
    char out_i[300], out_j[300];
    snprintf(out_i, sizeof out_i, "%s/i", root);
    snprintf(out_j, sizeof out_j, "%s/j", root);
    kd_train_config ci = small_config(out_i);
    ci.alpha = 0.5;
    /* two epochs: after one, whether this student had left the constant prediction depended on the dropout
     * stream its teacher was trained with (some streams gave a student stuck on one class) */
    ci.epochs = 2;
    ci.n_layer_map = kd_layer_map_default(1, 2, ci.layer_map);
    CHECK(ci.n_layer_map == 2 && ci.layer_map[1][0] == 1 && ci.layer_map[1][1] == 2, "default map 0:0, 1:2");
    ci.hidden_weight = 1.0;
    ci.attention_weight = 1.0;
    ci.hidden_loss = KD_HIDDEN_MSE;
    ci.attention_loss = KD_ATTENTION_KL;
    kd_train_data di = { .train = &train_set, .dev = &dev_set, .student_tok = tok, .teacher = m, .teacher_tok = tok };
    kd_bert *ni = kd_bert_new(&nc, 11), *nj = kd_bert_new(&nc, 11);
    kd_train_result ri, rj;
    CHECK(kd_train(ni, &di, &ci, &ri) == KD_OK, "distill with hidden and attention losses: %s", kd_last_error());
    CHECK(ri.final_accuracy > acc0, "the narrow student learns (%.4f)", ri.final_accuracy);
    CHECK(exists(out_i, "last/distill_projections.safetensors"), "projections kept in the checkpoint");
    char mpath[340], line[1024];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", out_i);
    FILE *mf = fopen(mpath, "r");
    int logged = 0;
    while (mf && fgets(line, sizeof line, mf))
        if (strstr(line, "\"train\"") && strstr(line, "\"hidden\":") && strstr(line, "\"attention\":") &&
            !strstr(line, "null"))
            logged++;
    if (mf) fclose(mf);
    CHECK(logged >= 3, "metrics lines carry the hidden and attention parts (%d lines)", logged);
    printf("narrow student with intermediate losses: dev %.4f\n", ri.final_accuracy);
    kd_train_config cj = ci;
    cj.out_dir = out_j;
    cj.max_steps = 23;
    CHECK(kd_train(nj, &di, &cj, &rj) == KD_OK && rj.steps == 23, "interrupted: %s", kd_last_error());
    kd_bert_free(nj);
    nj = kd_bert_new(&nc, 99);
    cj.max_steps = 0;
    cj.resume = 1;
    CHECK(kd_train(nj, &di, &cj, &rj) == KD_OK && rj.finished, "resumed: %s", kd_last_error());
    CHECK(same_weights(ni, nj), "resumed with projections: weights bit-identical to the uninterrupted run's");
    cj = ci;
    cj.out_dir = out_j;
    cj.cache_teacher = 1;
    CHECK(kd_train(nj, &di, &cj, &rj) == KD_ERR_ARG && strstr(kd_last_error(), "--cache-teacher"),
          "intermediate losses with a cached teacher: %s", kd_last_error());
    nc.num_heads = 4;
    kd_bert *nh = kd_bert_new(&nc, 3);
    cj.cache_teacher = 0;
    CHECK(kd_train(nh, &di, &cj, &rj) == KD_ERR_SHAPE && strstr(kd_last_error(), "4 heads"),
          "attention loss with 4 heads against 2: %s", kd_last_error());
    kd_bert_free(nh);
    kd_bert_free(ni);
    kd_bert_free(nj);

    kd_bert_free(m);
    free(logits);
    kd_metrics_free(&met);
    kd_tokenizer_free(tok);
    kd_dataset_free(&train_set);
    kd_dataset_free(&dev_set);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (!getenv("KD_TEST_KEEP") && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    kd_shutdown();
    return kd_test_finish("test_trainer");
}
