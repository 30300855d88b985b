/* train/cli_train.c — `kd finetune` and `kd distill`: flags to a kd_train_config, data and models loaded
 * and checked (labels, vocabularies; the student built by train/student.c), then train/trainer.c. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "train/checkpoint.h"
#include "train/intermediate.h"
#include "train/cli.h"
#include "train/student.h"
#include "train/subset.h"
#include "train/trainer.h"
#include "train/transfer_set.h"

typedef struct train_flags {
    kd_train_config c;
    kd_cli_run run;
    const char *data, *train, *dev, *out, *vocab;
    const char *model, *teacher, *student;
    int resume, overwrite, quiet, init_from_teacher, student_layers, student_hidden, student_intermediate, cache_teacher;
    const char *student_init;
    int64_t train_samples, seed;
    double weight_decay;
    kd_opt_list transfer;
    int augment, prune_vocab, num_labels;
    double p_mask, p_replace, p_ngram;
    const char *layer_map, *hidden_loss, *attention_loss;
    const char *comm_backend, *rendezvous;   /* data-parallel: engine/comm.h */
    double comm_timeout;
    kd_comm *comm;
} train_flags;

#define COMMON_TRAIN_OPTS(f)                                                                                        \
    { "--data", KD_OPT_STR, &f.data, 0, 0, 0, "a data directory (train.* and dev.*) or a training file",             \
      "DIR|FILE: train.*/dev.* (tsv, csv, jsonl, TweetEval) or a training file" },                                   \
    { "--train", KD_OPT_STR, &f.train, 0, 0, 0, "a training file", "FILE: training set (instead of --data)" },        \
    { "--dev", KD_OPT_STR, &f.dev, 0, 0, 0, "a dev file", "FILE: dev set, evaluated after each epoch" },             \
    { "--out", KD_OPT_STR, &f.out, 0, 0, 0, "an output directory", "DIR: checkpoints (last/, best/), metrics.jsonl, chart.svg, batch_order.txt, final model" }, \
    { "--epochs", KD_OPT_INT, &f.c.epochs, 1, 100000, 0, "a whole number >= 1", "N (3)" },                           \
    { "--lr", KD_OPT_DOUBLE, &f.c.lr, 0, 1, 1, "a number in (0, 1]", "peak learning rate (5e-5)" },                 \
    { "--batch-size", KD_OPT_INT, &f.c.batch_size, 1, 65536, 0, "a whole number >= 1", "N (16)" },                  \
    { "--eval-batch-size", KD_OPT_INT, &f.c.eval_batch_size, 1, 65536, 0, "a whole number >= 1", "N (64)" },        \
    { "--max-len", KD_OPT_INT, &f.c.max_len, 2, 512, 0, "a whole number from 2 to 512", "tokens per text, [CLS]/[SEP] included (128)" }, \
    { "--seed", KD_OPT_I64, &f.seed, 0, 9e15, 0, "a whole number >= 0", "data order, subset, dropout, init (42)" }, \
    { "--warmup-ratio", KD_OPT_DOUBLE, &f.c.warmup_ratio, 0, 1, 0, "a number in [0, 1]", "share of steps warming up linearly (0.1)" }, \
    { "--warmup-steps", KD_OPT_I64, &f.c.warmup_steps, 0, 1e12, 0, "a whole number >= 0", "warmup in steps (overrides the ratio)" }, \
    { "--weight-decay", KD_OPT_DOUBLE, &f.weight_decay, 0, 1, 0, "a number in [0, 1]", "AdamW decoupled decay, not on biases/LayerNorm (0.01)" }, \
    { "--max-grad-norm", KD_OPT_DOUBLE, &f.c.max_grad_norm, 0, 1e9, 0, "a number >= 0", "clip the global gradient norm; 0 = off (1.0)" }, \
    { "--grad-accum", KD_OPT_INT, &f.c.grad_accum, 1, 65536, 0, "a whole number >= 1", "micro-batches per optimizer step (1)" }, \
    { "--train-samples", KD_OPT_I64, &f.train_samples, 1, 1e12, 0, "a whole number >= 1", "train on a seeded random subset of N examples" }, \
    { "--max-steps", KD_OPT_I64, &f.c.max_steps, 1, 1e12, 0, "a whole number >= 1", "stop after N optimizer steps (resumable)" }, \
    { "--resume", KD_OPT_FLAG, &f.resume, 0, 0, 0, NULL, "continue from OUT/last (same flags)" },                   \
    { "--overwrite", KD_OPT_FLAG, &f.overwrite, 0, 0, 0, NULL, "replace the run already in OUT (refused without it)" }, \
    { "--log-every", KD_OPT_I64, &f.c.log_every, 1, 1e12, 0, "a whole number >= 1", "optimizer steps per metrics line (10)" }, \
    { "--dropout", KD_OPT_DOUBLE, &f.c.dropout, 0, 1, 0, "a number in [0, 1)", "P: hidden and attention dropout of the trained model, 0 = off (default: its config's)" }, \
    { "--write-init", KD_OPT_FLAG, &f.c.write_init, 0, 0, 0, NULL, "the model before step 1 into OUT/init (Hugging Face format); with OUT/batch_order.txt (a line per "  \
      "micro-batch: its optimizer step, then its examples as 0-based rows of the training file, tJ for row J of the " \
      "transfer set) the run can be replayed elsewhere" }, \
    { "--quiet", KD_OPT_FLAG, &f.quiet, 0, 0, 0, NULL, "no progress output" },                                     \
    { "--comm", KD_OPT_STR, &f.comm_backend, 0, 0, 0, "auto, none, mpi or nccl",                                    \
      "data-parallel across processes (mpirun -np N kd ...): auto | none | mpi | nccl (auto: mpi under mpirun, "    \
      "nccl on cuda when libnccl.so.2 loads); each rank trains 1/N of every --batch-size batch" },                   \
    { "--rendezvous", KD_OPT_STR, &f.rendezvous, 0, 0, 0, "a directory",                                            \
      "DIR: nccl without mpirun (ranks from KD_RANK, KD_WORLD_SIZE): where rank 0 leaves NCCL's id; empty per run" }, \
    { "--bucket-mb", KD_OPT_DOUBLE, &f.c.bucket_mb, 0, 1e6, 0,                                                   \
      "a number of MB from 0 to 1e6 (0: one flat all-reduce)",                                                     \
      "MB: data-parallel gradients summed in buckets of about MB (2^20 bytes), each started while the backward "  \
      "still runs; 0 = one flat all-reduce after the backward (25)" },                                             \
    { "--comm-timeout", KD_OPT_DOUBLE, &f.comm_timeout, 0, 1e7, 1, "a number of seconds > 0",                       \
      "S: a rank waiting longer than S for the others stops the job with a message (KD_COMM_TIMEOUT, 1800)" },     \
    KD_RUN_OPTS(f.run)

static void flags_init(train_flags *f)
{
    memset(f, 0, sizeof *f);
    f->c = kd_train_config_default();
    f->seed = 42;
    f->weight_decay = f->c.adamw.weight_decay;
    kd_augment_opts a = kd_augment_defaults();
    f->p_mask = a.p_mask;
    f->p_replace = a.p_replace;
    f->p_ngram = a.p_ngram;
}

static void print_result(const char *what, const kd_train_result *r, const char *out, const kd_comm *comm)
{
    if (kd_comm_rank(comm) != 0) return;
    if (kd_comm_size(comm) > 1)
        printf("%s: %d ranks (%s): %.0f tokens/s, gradients' all-reduce %.4f s per step, %.4f s of it exposed (%s)\n",
               what, kd_comm_size(comm), kd_comm_name(comm), r->tokens_per_s, r->allreduce_s_per_step,
               r->allreduce_wait_s_per_step, kd_comm_grad_mode(comm));
    else printf("%s: %.0f tokens/s\n", what, r->tokens_per_s);
    if (!r->finished) {
        printf("%s: stopped at step %lld; run again with --resume to continue\n", what, (long long)r->steps);
        return;
    }
    printf("%s: %lld steps in %.1f s; dev accuracy %.4f (last epoch), best %.4f at epoch %d; model in %s\n", what,
           (long long)r->steps, r->train_seconds, r->final_accuracy, r->best_accuracy, r->best_epoch, out);
}

/* Load the data with the labels `known` (or the data's own) and take the subset; *rows gets each training
 * example's row in its file (the trainer lists them in OUT/train_subset.txt). */
static int load_data(const char *cmd, train_flags *f, const kd_labels *known, kd_dataset *train, kd_dataset *dev,
                     size_t **rows)
{
    if (kd_cli_load_splits(f->data, f->train, f->dev, known, train, dev) != KD_OK) return kd_cli_fail(cmd);
    if (kd_subset_select(train, f->train_samples, (uint64_t)f->seed, rows) != KD_OK) {
        kd_dataset_free(train);
        kd_dataset_free(dev);
        return kd_cli_fail(cmd);
    }
    return -1;
}

/* A run's output directory that already holds a run (its model, checkpoints or metrics) is not written over
 * unless the user says so: --resume continues it, --overwrite replaces it. */
static int check_out_dir(const char *cmd, const train_flags *f)
{
    static const char *const marks[] = { "model.safetensors", "last", "best", "metrics.jsonl" };
    if (f->resume || f->overwrite) return -1;
    char found[256] = "";
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        char p[PATH_MAX];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", f->out, marks[i]);
        if (stat(p, &st) != 0) continue;
        size_t n = strlen(found);
        snprintf(found + n, sizeof found - n, "%s%s%s", n ? ", " : "", marks[i], S_ISDIR(st.st_mode) ? "/" : "");
    }
    if (!found[0]) return -1;
    fprintf(stderr, "kd %s: --out: %s already holds a run (%s); continue it with --resume, replace it with "
                    "--overwrite, or choose another directory\n", cmd, f->out, found);
    return KD_EXIT_USAGE;
}

static int check_common(const char *cmd, train_flags *f)
{
    /* several ranks on one machine: one GPU each, chosen before the device opens */
    if (f->run.device && !strcmp(f->run.device, "cuda")) kd_comm_pick_gpu(KD_CUDA);
    /* ...and the cores shared among the ranks of one machine unless --threads or KD_THREADS says */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int local = kd_comm_local_size();
    if (!f->run.threads && !getenv("KD_THREADS") && local > 1)
        f->run.threads = ncpu > local ? (int)(ncpu / local) : 1;
    int rc = kd_cli_apply_common(cmd, &f->run);
    if (rc >= 0) return rc;
    if (!f->out) {
        fprintf(stderr, "kd %s: --out: got nothing, expected an output directory\n", cmd);
        return KD_EXIT_USAGE;
    }
    if (!f->data && !f->train) {
        fprintf(stderr, "kd %s: --data: got nothing, expected a data directory or a training file\n", cmd);
        return KD_EXIT_USAGE;
    }
    if (f->c.dropout >= 1.0) {
        fprintf(stderr, "kd %s: --dropout: got '%g', expected a number in [0, 1)\n", cmd, f->c.dropout);
        return KD_EXIT_USAGE;
    }
    if (f->resume && f->overwrite) {
        fprintf(stderr, "kd %s: --overwrite: cannot be used with --resume (one continues the run in OUT, the other "
                        "replaces it)\n", cmd);
        return KD_EXIT_USAGE;
    }
    if (f->comm_backend && strcmp(f->comm_backend, "auto") && strcmp(f->comm_backend, "none") &&
        strcmp(f->comm_backend, "mpi") && strcmp(f->comm_backend, "nccl")) {
        fprintf(stderr, "kd %s: --comm: got '%s', expected auto, none, mpi or nccl\n", cmd, f->comm_backend);
        return KD_EXIT_USAGE;
    }
    kd_comm_opts co = { .backend = f->comm_backend, .rendezvous = f->rendezvous, .device = f->run.dev,
                        .timeout_s = f->comm_timeout };
    if (kd_comm_open(&co, &f->comm) != KD_OK) {
        fprintf(stderr, "kd %s: --comm: %s\n", cmd, kd_last_error());
        return KD_EXIT_FAIL;
    }
    /* rank 0 owns OUT: it alone looks at what is there, and every rank gets its answer */
    int32_t out_rc = kd_comm_rank(f->comm) == 0 ? check_out_dir(cmd, f) : -1;
    if (kd_comm_broadcast(f->comm, &out_rc, sizeof out_rc, 0) != KD_OK) out_rc = kd_cli_fail(cmd);
    if (out_rc >= 0) {
        kd_comm_close(f->comm, 0);
        f->comm = NULL;
        return out_rc;
    }
    if (kd_comm_rank(f->comm) != 0) f->quiet = 1;
    f->c.comm = f->comm;
    f->c.seed = (uint64_t)f->seed;
    f->c.adamw.weight_decay = f->weight_decay;
    f->c.resume = f->resume;
    f->c.quiet = f->quiet;
    f->c.out_dir = f->out;
    return -1;
}

/* The communicator closed with the command's exit code: after a failure with several ranks the whole job
 * ends (the others would wait for this one). */
static int comm_end(train_flags *f, int rc)
{
    kd_comm_close(f->comm, rc == KD_EXIT_FAIL);
    f->comm = NULL;
    return rc;
}

int kd_cmd_finetune(int argc, char **argv)
{
    const char *cmd = "finetune";
    train_flags f;
    flags_init(&f);
    f.c.alpha = 0.0;
    kd_opt opts[] = {
        { "--model", KD_OPT_STR, &f.model, 0, 0, 0, "a preset name or a model directory", "PRESET|DIR: model to train" },
        { "--vocab", KD_OPT_STR, &f.vocab, 0, 0, 0, "a vocab.txt file", "FILE: vocabulary for a preset (a DIR uses its own)" },
        { "--num-labels", KD_OPT_INT, &f.num_labels, 2, KD_MAX_LABELS, 0, "a whole number from 2 to 1000",
          "N: classes 0..N-1 for integer labels, some of which the data may lack (default: the data's)" },
        COMMON_TRAIN_OPTS(f),
    };
    int set[sizeof opts / sizeof opts[0]] = { 0 };
    int rc = kd_cli_parse(cmd, argc, argv, opts, (int)(sizeof opts / sizeof opts[0]),
                          "usage: kd finetune --model PRESET|DIR --data PATH --out DIR [flags]\n\n"
                          "Trains a classifier on labelled text with cross-entropy (no teacher), evaluating on the dev\n"
                          "set after every epoch. Writes OUT/last (resumable), OUT/best and the best model into OUT,\n"
                          "with OUT/chart.svg and OUT/report.html (the run at a glance).\n",
                          set);
    if (rc >= 0) return rc;
    if (!f.model) {
        fprintf(stderr, "kd %s: --model: got nothing, expected a preset name or a model directory\n", cmd);
        return KD_EXIT_USAGE;
    }
    if ((rc = kd_cli_check_model_arg(cmd, "--model", f.model)) >= 0) return rc;
    if ((rc = check_common(cmd, &f)) >= 0) return rc;
    char vocab_path[PATH_MAX];
    int preset = kd_cli_is_preset(f.model);
    if (preset) {
        if (!f.vocab) {
            fprintf(stderr, "kd %s: --vocab: got nothing, expected a vocab.txt for preset %s\n", cmd, f.model);
            return comm_end(&f, KD_EXIT_USAGE);
        }
        snprintf(vocab_path, sizeof vocab_path, "%s", f.vocab);
    } else if (kd_cli_model_vocab(f.model, vocab_path, sizeof vocab_path) != KD_OK) {
        return comm_end(&f, kd_cli_fail(cmd));
    }
    /* The data fixes the label set; a checkpoint with a head must agree with it (kd_cli_make_model). */
    kd_dataset train, dev;
    size_t *rows = NULL;
    kd_labels ids = { 0 };
    if (f.num_labels && kd_labels_ids(&ids, f.num_labels) != KD_OK) return comm_end(&f, kd_cli_fail(cmd));
    rc = load_data(cmd, &f, f.num_labels ? &ids : NULL, &train, &dev, &rows);
    kd_labels_free(&ids);
    if (rc >= 0) return comm_end(&f, rc);
    kd_tokenizer *tok = NULL;
    kd_bert *m = NULL;
    kd_train_result res;
    kd_run_info info = { 0 };
    rc = KD_EXIT_OK;
    if (kd_cli_run_info(cmd, argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), set, &info) != KD_OK ||
        kd_tokenizer_load_beside(vocab_path, &tok) != KD_OK || !(m = kd_cli_make_model(f.model, tok->vocab, &train.labels, "the data", f.c.seed, cmd)))
        rc = kd_cli_fail(cmd);
    if (rc == KD_EXIT_OK) {
        f.c.student_vocab = vocab_path;
        f.c.info = &info;
        kd_train_data d = { .train = &train, .dev = &dev, .student_tok = tok, .train_rows = rows };
        if (kd_cli_place_model(&f.run, m) != KD_OK || kd_train(m, &d, &f.c, &res) != KD_OK) rc = kd_cli_fail(cmd);
        else print_result("finetune", &res, f.out, f.comm);
    }
    kd_bert_free(m);
    kd_tokenizer_free(tok);
    kd_run_info_free(&info);
    free(rows);
    kd_dataset_free(&train);
    kd_dataset_free(&dev);
    return comm_end(&f, rc);
}

/* --layer-map, --hidden-loss, --attention-loss into the config (the map by default evenly spaced). */
static int intermediate_flags(const char *cmd, train_flags *f, const kd_bert *student, const kd_bert *teacher)
{
    kd_train_config *c = &f->c;
    c->hidden_loss = KD_HIDDEN_MSE;
    c->attention_loss = KD_ATTENTION_KL;
    if (f->hidden_loss && strcmp(f->hidden_loss, "mse") && strcmp(f->hidden_loss, "cos")) {
        fprintf(stderr, "kd %s: --hidden-loss: got '%s', expected mse or cos\n", cmd, f->hidden_loss);
        return KD_EXIT_USAGE;
    }
    if (f->attention_loss && strcmp(f->attention_loss, "kl") && strcmp(f->attention_loss, "mse")) {
        fprintf(stderr, "kd %s: --attention-loss: got '%s', expected kl or mse\n", cmd, f->attention_loss);
        return KD_EXIT_USAGE;
    }
    if (f->hidden_loss && !strcmp(f->hidden_loss, "cos")) c->hidden_loss = KD_HIDDEN_COS;
    if (f->attention_loss && !strcmp(f->attention_loss, "mse")) c->attention_loss = KD_ATTENTION_MSE;
    int ls = kd_bert_get_config(student)->num_layers, lt = kd_bert_get_config(teacher)->num_layers;
    if (!f->layer_map) {
        c->n_layer_map = ls < KD_BERT_MAX_STATES ? kd_layer_map_default(ls, lt, c->layer_map) : 0;
        return -1;
    }
    c->n_layer_map = 0;
    for (const char *p = f->layer_map; *p;) {
        int s, t, n = 0;
        if (c->n_layer_map == KD_BERT_MAX_STATES || sscanf(p, "%d:%d%n", &s, &t, &n) != 2 || s < 0 || s > ls || t < 0 ||
            t > lt || (p[n] && p[n] != ',')) {
            fprintf(stderr, "kd %s: --layer-map: got '%s', expected pairs S:T separated by commas with S in 0..%d (the "
                            "student's layers) and T in 0..%d (the teacher's), 0 being the embeddings\n",
                    cmd, f->layer_map, ls, lt);
            return KD_EXIT_USAGE;
        }
        c->layer_map[c->n_layer_map][0] = s;
        c->layer_map[c->n_layer_map++][1] = t;
        p += n + (p[n] == ',');
    }
    return -1;
}

/* What kd distill loads and builds, step by step; each step returns -1 (go on) or an exit code. */
typedef struct distill_run {
    train_flags *f;
    const char *cmd;
    char tvocab[PATH_MAX], svocab[PATH_MAX];
    kd_bert *teacher, *student;
    kd_labels tl;
    kd_dataset train, dev, transfer;
    size_t *rows;
    kd_tokenizer *ttok, *stok;
} distill_run;

static int distill_check_flags(const char *cmd, train_flags *f)
{
    int rc;
    if (!f->teacher) {
        fprintf(stderr, "kd %s: --teacher: got nothing, expected a fine-tuned model directory\n", cmd);
        return KD_EXIT_USAGE;
    }
    if (!f->student && !f->init_from_teacher) {
        fprintf(stderr, "kd %s: --student: got nothing, expected a preset name or a model directory\n", cmd);
        return KD_EXIT_USAGE;
    }
    if (f->student && (rc = kd_cli_check_model_arg(cmd, "--student", f->student)) >= 0) return rc;
    if (f->student_init && strcmp(f->student_init, "sliced") && strcmp(f->student_init, "random")) {
        fprintf(stderr, "kd %s: --student-init: got '%s', expected sliced or random\n", cmd, f->student_init);
        return KD_EXIT_USAGE;
    }
    if (kd_cli_is_preset(f->teacher)) {
        fprintf(stderr, "kd %s: --teacher: got '%s', a preset (an untrained shape), expected a fine-tuned model "
                        "directory: fine-tune the teacher first (kd finetune --model %s ... --out DIR)\n",
                cmd, f->teacher, f->teacher);
        return KD_EXIT_USAGE;
    }
    if ((rc = kd_cli_check_model_arg(cmd, "--teacher", f->teacher)) >= 0) return rc;
    f->c.cache_teacher = f->cache_teacher;
    return check_common(cmd, f);
}

/* The teacher, its labels, the data, both tokenizers. */
static int distill_load(distill_run *r)
{
    train_flags *f = r->f;
    if (kd_cli_model_vocab(f->teacher, r->tvocab, sizeof r->tvocab) != KD_OK) return kd_cli_fail(r->cmd);
    if (!(r->teacher = kd_cli_load_classifier(f->teacher))) return kd_cli_fail(r->cmd);
    if (kd_bert_is_quantized(r->teacher)) {
        kd_fail(KD_ERR_ARG, "--teacher: %s is an int8 model (config.json kd_quantization, made by kd quantize) for "
                "inference only: distill from the f32 teacher it was quantized from", f->teacher);
        return kd_cli_fail(r->cmd);
    }
    if (kd_cli_model_labels(kd_bert_get_config(r->teacher), &r->tl) != KD_OK) return kd_cli_fail(r->cmd);
    int rc = load_data(r->cmd, f, &r->tl, &r->train, &r->dev, &r->rows);
    if (rc >= 0) return rc;
    /* A checkpoint brings its vocabulary; a preset or a bare config.json takes --vocab or the teacher's
     * (a config-only directory's own vocab.txt when it has one). */
    int bare = kd_student_is_config_only(f->student);
    if (f->student && !kd_cli_is_preset(f->student) &&
        !(bare && (f->vocab || kd_cli_model_vocab(f->student, r->svocab, sizeof r->svocab) != KD_OK)))
        kd_cli_model_vocab(f->student, r->svocab, sizeof r->svocab);
    else snprintf(r->svocab, sizeof r->svocab, "%s", f->vocab ? f->vocab : r->tvocab);
    if (kd_tokenizer_load_beside(r->tvocab, &r->ttok) != KD_OK || kd_tokenizer_load_beside(r->svocab, &r->stok) != KD_OK)
        return kd_cli_fail(r->cmd);
    return -1;
}

/* The student, by train/student.c's policy. */
static int distill_student(distill_run *r)
{
    train_flags *f = r->f;
    if (f->init_from_teacher && strcmp(r->svocab, r->tvocab) != 0 &&
        kd_vocab_size(r->stok->vocab) != kd_vocab_size(r->ttok->vocab)) {
        fprintf(stderr, "kd %s: --init-from-teacher: the student's vocabulary (%s) differs from the teacher's "
                        "(%s); initialising from the teacher needs the same vocabulary\n", r->cmd, r->svocab, r->tvocab);
        return KD_EXIT_USAGE;
    }
    kd_student_spec spec = { .student = f->student, .init_from_teacher = f->init_from_teacher,
                             .layers = f->student_layers, .hidden = f->student_hidden,
                             .intermediate = f->student_intermediate, .cmd = r->cmd };
    if (f->student_init) spec.init = !strcmp(f->student_init, "random") ? KD_STUDENT_INIT_RANDOM : KD_STUDENT_INIT_SLICED;
    kd_bert_config scfg;
    int flag_error = 0;
    if (kd_student_config(&spec, r->teacher, r->stok, &r->tl, &scfg, &flag_error) != KD_OK) {
        fprintf(stderr, "kd %s: %s\n", r->cmd, kd_last_error());
        return flag_error ? KD_EXIT_USAGE : KD_EXIT_FAIL;
    }
    if (!(r->student = kd_student_build(&spec, r->teacher, r->stok, &r->tl, f->c.seed))) return kd_cli_fail(r->cmd);
    return -1;
}

/* --transfer files and --augment variants: the unlabelled rows. */
static int distill_transfer(distill_run *r)
{
    train_flags *f = r->f;
    if (!f->transfer.n && !f->augment) return -1;
    /* every rank builds the same set; rank 0 alone writes OUT/augmented.txt */
    kd_transfer_opts to = { .npaths = f->transfer.n, .augment = kd_augment_defaults(),
                            .out_dir = kd_comm_rank(f->comm) == 0 ? f->out : NULL,
                            .quiet = f->quiet };
    memcpy(to.paths, f->transfer.v, sizeof f->transfer.v);
    to.augment.variants = f->augment;
    to.augment.p_mask = f->p_mask;
    to.augment.p_replace = f->p_replace;
    to.augment.p_ngram = f->p_ngram;
    to.augment.seed = f->c.seed;
    if (kd_make_dirs(f->out) != KD_OK || kd_transfer_build(&to, &r->train, &r->transfer) != KD_OK)
        return kd_cli_fail(r->cmd);
    return -1;
}

/* --prune-vocab: the student's vocabulary and embedding cut to the pieces its text uses. */
static int distill_prune(distill_run *r)
{
    const kd_dataset *sets[3] = { &r->train, &r->transfer, &r->dev };
    kd_tokenizer *pruned = NULL;
    int64_t before = kd_bert_num_parameters(r->student), teacher = kd_bert_num_parameters(r->teacher);
    int32_t full = kd_vocab_size(r->stok->vocab);
    /* rank 0 writes OUT/pruned_vocab.txt (copied beside its checkpoints); another rank, the same pieces to a
     * file of its own, removed once read */
    int rank = kd_comm_rank(r->f->comm);
    const char *tmpdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    if (rank == 0) snprintf(r->svocab, sizeof r->svocab, "%s/pruned_vocab.txt", r->f->out);
    else snprintf(r->svocab, sizeof r->svocab, "%s/kd_pruned_vocab.%ld.txt", tmpdir, (long)getpid());
    kd_status pst = kd_make_dirs(r->f->out);
    if (pst == KD_OK) pst = kd_student_prune_vocab(r->student, r->stok, sets, 3, r->svocab, &pruned);
    if (rank != 0) unlink(r->svocab);
    if (pst != KD_OK) return kd_cli_fail(r->cmd);
    kd_tokenizer_free(r->stok);
    r->stok = pruned;
    int64_t after = kd_bert_num_parameters(r->student);
    if (!r->f->quiet)
        fprintf(stderr, "prune-vocab: kept %d of %d word pieces (%s); student %lld -> %lld parameters, teacher %lld "
                        "(%.2fx fewer)\n", (int)kd_vocab_size(r->stok->vocab), (int)full, r->svocab, (long long)before,
                (long long)after, (long long)teacher, (double)teacher / (double)after);
    return -1;
}

int kd_cmd_distill(int argc, char **argv)
{
    const char *cmd = "distill";
    train_flags f;
    flags_init(&f);
    kd_opt opts[] = {
        { "--teacher", KD_OPT_STR, &f.teacher, 0, 0, 0, "a fine-tuned model directory", "DIR: the frozen teacher (fine-tuned)" },
        { "--student", KD_OPT_STR, &f.student, 0, 0, 0, "a preset name or a model directory",
          "PRESET|DIR: the student (a DIR with only config.json: fresh; none: the teacher's shape)" },
        { "--temperature", KD_OPT_DOUBLE, &f.c.temperature, 0, 1e6, 1, "a number > 0", "T: softens both distributions (2)" },
        { "--alpha", KD_OPT_DOUBLE, &f.c.alpha, 0, 1, 0, "a number in [0, 1]",
          "weight of the soft term: L = alpha T^2 KL(p_T||q_S) + (1-alpha) CE (0.5)" },
        { "--init-from-teacher", KD_OPT_FLAG, &f.init_from_teacher, 0, 0, 0, NULL,
          "copy embeddings and every k-th layer of the teacher (DistilBERT-style), sliced when narrower" },
        { "--student-layers", KD_OPT_INT, &f.student_layers, 1, 1000, 0, "a whole number >= 1", "N: layers of the student (overrides its config)" },
        { "--student-hidden", KD_OPT_INT, &f.student_hidden, 1, 65536, 0, "a whole number >= 1",
          "N: hidden size, a multiple of the heads (same heads, narrower; FFN in proportion)" },
        { "--student-intermediate", KD_OPT_INT, &f.student_intermediate, 1, 262144, 0, "a whole number >= 1",
          "N: FFN size (overrides the proportional one)" },
        { "--student-init", KD_OPT_STR, &f.student_init, 0, 0, 0, "sliced or random",
          "sliced | random: with --init-from-teacher, the teacher's weights or the same shape fresh (sliced)" },
        { "--cache-teacher", KD_OPT_FLAG, &f.cache_teacher, 0, 0, 0, NULL, "compute the teacher's logits once (OUT/teacher_logits.bin)" },
        { "--vocab", KD_OPT_STR, &f.vocab, 0, 0, 0, "a vocab.txt file", "FILE: student vocabulary for a preset or a bare config.json (default: the teacher's)" },
        { "--transfer", KD_OPT_LIST, &f.transfer, 0, 0, 0, "a text file", "FILE: unlabelled text the teacher labels (repeatable; see below)" },
        { "--augment", KD_OPT_INT, &f.augment, 0, 1000, 0, "a whole number from 0 to 1000", "N: variants of each training sentence, teacher-labelled (0)" },
        { "--p-mask", KD_OPT_DOUBLE, &f.p_mask, 0, 1, 0, "a number in [0, 1]", "augmentation: a word becomes [MASK] (0.1)" },
        { "--p-replace", KD_OPT_DOUBLE, &f.p_replace, 0, 1, 0, "a number in [0, 1]", "augmentation: a word is replaced by a unigram draw (0.1)" },
        { "--p-ngram", KD_OPT_DOUBLE, &f.p_ngram, 0, 1, 0, "a number in [0, 1]", "augmentation: the variant is cut to a 1..5-gram (0.25)" },
        { "--layer-map", KD_OPT_STR, &f.layer_map, 0, 0, 0, "pairs S:T separated by commas (0 = embeddings)",
          "S:T,...: student layer S learns teacher layer T (default: 0:0 and evenly spaced)" },
        { "--hidden-loss", KD_OPT_STR, &f.hidden_loss, 0, 0, 0, "mse or cos", "mse | cos: hidden states of the mapped layers (mse)" },
        { "--hidden-weight", KD_OPT_DOUBLE, &f.c.hidden_weight, 0, 1e6, 0, "a number >= 0", "weight of the hidden loss (0: off)" },
        { "--attention-loss", KD_OPT_STR, &f.attention_loss, 0, 0, 0, "kl or mse", "kl | mse: attention distributions, heads must match (kl)" },
        { "--attention-weight", KD_OPT_DOUBLE, &f.c.attention_weight, 0, 1e6, 0, "a number >= 0", "weight of the attention loss (0: off)" },
        { "--prune-vocab", KD_OPT_FLAG, &f.prune_vocab, 0, 0, 0, NULL, "keep only the student's word pieces that its train/transfer/dev text uses" },
        COMMON_TRAIN_OPTS(f),
    };
    int set[sizeof opts / sizeof opts[0]] = { 0 };
    int rc = kd_cli_parse(cmd, argc, argv, opts, (int)(sizeof opts / sizeof opts[0]),
                          "usage: kd distill --teacher DIR --student PRESET|DIR --data PATH --out DIR\n"
                          "                  [--temperature 2] [--alpha 0.5] [--init-from-teacher] [flags]\n\n"
                          "Trains the student on L = alpha * T^2 * KL(softmax(z_T/T) || softmax(z_S/T)) + (1 - alpha) * CE(z_S, y)\n"
                          "(KL with batchmean reduction). alpha weights the teacher's soft targets: alpha = 0 is plain\n"
                          "fine-tuning, 1 pure distillation; T^2 keeps the soft gradients on the scale of the hard ones.\n"
                          "The teacher runs frozen in eval mode; teacher and student may use different vocabularies\n"
                          "but must share the label set.\n\n"
                          "Transfer set: --transfer files (plain text, one text a line; or .tsv/.csv/.jsonl, labels ignored)\n"
                          "and --augment variants (written to OUT/augmented.txt) join the training rows without a label;\n"
                          "texts repeating a labelled or an earlier one are dropped. Batches draw from all rows shuffled\n"
                          "together: the soft term is the mean over every row of a batch, the hard term the mean over\n"
                          "its labelled rows only (a batch without one has only the soft term). Needs alpha > 0.\n\n"
                          "Intermediate layers (TinyBERT, MiniLM): with --hidden-weight or --attention-weight > 0 the loss\n"
                          "adds weight * the mean over the --layer-map pairs of the hidden-state loss (through a learned\n"
                          "projection when the hidden sizes differ; kept in checkpoints, not in the student) and of the\n"
                          "attention loss (encoder layers only; the head counts must match, else an error). Both compare\n"
                          "the tokens that are not padding, so teacher and student must tokenize alike; the teacher then\n"
                          "runs every step (no --cache-teacher). The parts are logged in metrics.jsonl.\n\n"
                          "Narrower students: --init-from-teacher --student-hidden N slices the teacher: the same heads,\n"
                          "each N/heads wide (the first dimensions of each teacher head), the first N entries of every\n"
                          "hidden vector and the first intermediate units of each FFN (N/hidden of the teacher's, or\n"
                          "--student-intermediate). --student-init random gives the same shape initialised fresh, to\n"
                          "compare; --hidden-weight then learns the projection between the two hidden sizes.\n\n"
                          "Besides the model: OUT/chart.svg (loss with its soft and hard parts, dev accuracy of student\n"
                          "and teacher, learning rate) and OUT/report.html (the run at a glance), after every epoch.\n",
                          set);
    if (rc >= 0) return rc;
    if ((rc = distill_check_flags(cmd, &f)) >= 0) return rc;
    distill_run r = { .f = &f, .cmd = cmd };
    kd_run_info info = { 0 };
    rc = kd_cli_run_info(cmd, argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), set, &info) != KD_OK
             ? kd_cli_fail(cmd) : distill_load(&r);
    if (rc < 0) rc = distill_student(&r);
    if (rc < 0) rc = intermediate_flags(cmd, &f, r.student, r.teacher);
    if (rc < 0) rc = distill_transfer(&r);
    if (rc < 0 && f.prune_vocab) rc = distill_prune(&r);
    if (rc < 0) {
        f.c.student_vocab = r.svocab;
        f.c.info = &info;
        kd_train_data d = { .train = &r.train, .dev = &r.dev, .student_tok = r.stok, .teacher = r.teacher,
                            .teacher_tok = r.ttok, .train_rows = r.rows, .transfer = r.transfer.n ? &r.transfer : NULL };
        kd_train_result res;
        if (kd_cli_place_model(&f.run, r.teacher) != KD_OK || kd_cli_place_model(&f.run, r.student) != KD_OK ||
            kd_train(r.student, &d, &f.c, &res) != KD_OK)
            rc = kd_cli_fail(cmd);
        else {
            print_result("distill", &res, f.out, f.comm);
            rc = KD_EXIT_OK;
        }
    }
    kd_bert_free(r.student);
    kd_bert_free(r.teacher);
    kd_tokenizer_free(r.ttok);
    kd_tokenizer_free(r.stok);
    free(r.rows);
    kd_dataset_free(&r.transfer);
    kd_dataset_free(&r.train);
    kd_dataset_free(&r.dev);
    kd_labels_free(&r.tl);
    kd_run_info_free(&info);
    return comm_end(&f, rc);
}
