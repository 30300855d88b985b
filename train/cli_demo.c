/* train/cli_demo.c — `kd demo`, the embedded default: no download. The grammar corpus of
 * data/demo_corpus.h (negation, intensifiers, contrast), a small teacher fine-tuned on it, then one
 * smaller student trained twice from the same initialisation: with the teacher's soft targets
 * (alpha 0.5, T 2) and without (alpha 0), and the three side by side. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/demo_corpus.h"
#include "engine/backend.h"
#include "train/checkpoint.h"
#include "train/cli.h"
#include "train/progress.h"
#include "train/trainer.h"

static kd_bert_config shape(const kd_vocab *v, int layers, int hidden, int heads)
{
    kd_bert_config c;
    kd_bert_preset("bert-tiny", &c);
    c.vocab_size = kd_vocab_size(v);
    c.num_layers = layers;
    c.hidden_size = hidden;
    c.num_heads = heads;
    c.intermediate_size = 4 * hidden;
    c.max_position = 64;
    snprintf(c.name, sizeof c.name, "demo");
    return c;
}

int kd_cmd_demo(int argc, char **argv)
{
    const char *cmd = "demo", *out = "kd-demo";
    kd_cli_run run = { 0 };
    int teacher_epochs = 6, student_epochs = 3, quiet = 0;
    int64_t n_train = 4000, n_dev = 500, seed = 1;
    double lr_teacher = 5e-4, lr_student = 1e-3;   /* higher rates made post-LN training collapse to one class on some seeds */
    kd_opt opts[] = {
        { "--out", KD_OPT_STR, &out, 0, 0, 0, "an output directory", "DIR: the corpus vocabulary and the three models (kd-demo)" },
        { "--train-size", KD_OPT_I64, &n_train, 16, 1e7, 0, "a whole number >= 16", "generated training sentences (4000)" },
        { "--dev-size", KD_OPT_I64, &n_dev, 16, 1e7, 0, "a whole number >= 16", "generated dev sentences (500)" },
        { "--teacher-epochs", KD_OPT_INT, &teacher_epochs, 1, 10000, 0, "a whole number >= 1", "N (6)" },
        { "--student-epochs", KD_OPT_INT, &student_epochs, 1, 10000, 0, "a whole number >= 1", "N (3)" },
        { "--seed", KD_OPT_I64, &seed, 0, 9e15, 0, "a whole number >= 0", "corpus, init and data order (1)" },
        { "--quiet", KD_OPT_FLAG, &quiet, 0, 0, 0, NULL, "only the final table" },
        KD_RUN_OPTS(run),
    };
    int rc = kd_cli_parse(cmd, argc, argv, opts, (int)(sizeof opts / sizeof opts[0]),
                          "usage: kd demo [--out DIR] [flags]\n\n"
                          "The built-in example, no download: generates a sentiment corpus from a small grammar\n"
                          "(negation, intensifiers, contrast: \"not bad at all\", \"good, but far too long\"), fine-tunes a\n"
                          "4-layer teacher, then trains a 2-layer student twice from the same start: with knowledge\n"
                          "distillation (alpha 0.5, T 2) and without (alpha 0), and prints the three side by side.\n", NULL);
    if (rc >= 0) return rc;
    if ((rc = kd_cli_apply_common(cmd, &run)) >= 0) return rc;

    kd_demo_opts o = kd_demo_opts_default();
    o.n_train = (size_t)n_train;
    o.n_dev = (size_t)n_dev;
    o.seed = (uint64_t)seed;
    kd_dataset train = { 0 }, dev = { 0 };
    kd_tokenizer *tok = NULL;
    kd_bert *models[3] = { NULL, NULL, NULL };
    char vocab_path[PATH_MAX + 16], dirs[3][PATH_MAX + 16];
    const char *names[3] = { "teacher (4 layers)", "student + KD", "student, no KD" };
    kd_model_report rep[3];
    memset(rep, 0, sizeof rep);
    char wall[3][32];
    size_t vlen = 0;
    char *vtext = NULL;
    rc = -1;
    if (kd_make_dirs(out) != KD_OK || kd_demo_corpus_make(&o, &train, &dev) != KD_OK || !(vtext = kd_demo_corpus_vocab(&vlen)))
        rc = kd_cli_fail(cmd);
    snprintf(vocab_path, sizeof vocab_path, "%s/vocab.txt", out);
    if (rc < 0 && (kd_write_file_atomic(vocab_path, vtext, vlen) != KD_OK || kd_tokenizer_load(vocab_path, 1, &tok) != KD_OK))
        rc = kd_cli_fail(cmd);
    free(vtext);
    if (rc < 0 && !quiet)
        printf("kd demo: %zu training and %zu dev sentences, %d labels, %d thread(s); models in %s/\n", train.n, dev.n,
               train.labels.n, kd_threads(), out);

    for (int i = 0; i < 3 && rc < 0; i++) {
        static const char *const sub[3] = { "teacher", "student-kd", "student-nokd" };
        snprintf(dirs[i], sizeof dirs[i], "%s/%s", out, sub[i]);
        kd_bert_config c = i == 0 ? shape(tok->vocab, 4, 128, 4) : shape(tok->vocab, 2, 64, 2);
        c.num_labels = train.labels.n;
        for (int k = 0; k < c.num_labels; k++) snprintf(c.labels[k], sizeof c.labels[k], "%s", train.labels.names[k]);
        /* Both students start from the same weights: the only difference is the teacher's term. */
        models[i] = kd_bert_new(&c, (uint64_t)seed + (i == 0 ? 100 : 200));
        if (!models[i]) {
            rc = kd_cli_fail(cmd);
            break;
        }
        kd_train_config tc = kd_train_config_default();
        tc.epochs = i == 0 ? teacher_epochs : student_epochs;
        tc.batch_size = 32;
        tc.max_len = 64;
        tc.lr = i == 0 ? lr_teacher : lr_student;
        tc.alpha = i == 1 ? 0.5 : 0.0;
        tc.temperature = 2.0;
        tc.seed = (uint64_t)seed;
        tc.quiet = quiet;
        tc.out_dir = dirs[i];
        tc.student_vocab = vocab_path;
        tc.cache_teacher = 1;
        kd_train_data d = { .train = &train, .dev = &dev, .student_tok = tok, .teacher = i == 1 ? models[0] : NULL,
                            .teacher_tok = tok };
        if (!quiet) printf("\n== %s: %d epochs, lr %g%s\n", names[i], tc.epochs, tc.lr, i == 1 ? ", alpha 0.5, T 2" : "");
        fflush(stdout);
        kd_train_result res;
        if (kd_cli_place_model(&run, models[i]) != KD_OK || kd_train(models[i], &d, &tc, &res) != KD_OK) {
            rc = kd_cli_fail(cmd);
            break;
        }
        kd_format_duration(res.train_seconds, wall[i], sizeof wall[i]);
        /* Compare the shipped (best-epoch) models, as written to disk. */
        kd_bert_free(models[i]);
        models[i] = kd_bert_load(dirs[i], 0, 1, NULL);
        if (models[i] && kd_cli_place_model(&run, models[i]) != KD_OK) rc = kd_cli_fail(cmd);
        else if (!models[i] || kd_measure_model(models[i], tok, &dev, 64, 100, dirs[i], &rep[i], NULL) != KD_OK) rc = kd_cli_fail(cmd);
    }
    if (rc < 0) {
        const char *col[3] = { wall[0], wall[1], wall[2] };
        printf("\nkd demo: dev set of %zu sentences\n", dev.n);
        kd_print_reports(names, rep, 3, col, "train time", stdout);
        printf("KD student: %.1f%% of the teacher's accuracy, %+.2f points over the same student without KD, "
               "%.1fx fewer parameters\n", 100.0 * rep[1].accuracy / (rep[0].accuracy > 0 ? rep[0].accuracy : 1),
               100.0 * (rep[1].accuracy - rep[2].accuracy), (double)rep[0].params / (double)rep[1].params);
        rc = KD_EXIT_OK;
    }
    for (int i = 0; i < 3; i++) {
        kd_bert_free(models[i]);
        kd_model_report_free(&rep[i]);
    }
    kd_tokenizer_free(tok);
    kd_dataset_free(&train);
    kd_dataset_free(&dev);
    return rc;
}
