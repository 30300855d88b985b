/* train/cli.h — what every `kd` subcommand shares: a table-driven flag parser whose every refusal reads
 * "kd <cmd>: --flag: got X, expected Y" (exit 2), the common flags (--threads, --device), loading data
 * splits and models with their vocabularies, and the subcommands' entry points. */
#ifndef KD_TRAIN_CLI_H
#define KD_TRAIN_CLI_H

#include <stdint.h>

#include "data/readers.h"
#include "data/tokenizer_config.h"
#include "data/wordpiece.h"
#include "engine/device.h"
#include "models/bert.h"
#include "train/progress.h"
#include "train/report.h"

/* Exit codes: 0 done, 1 a runtime failure (message from the library), 2 bad usage. */
enum { KD_EXIT_OK = 0, KD_EXIT_FAIL = 1, KD_EXIT_USAGE = 2 };

typedef enum kd_opt_kind { KD_OPT_STR, KD_OPT_INT, KD_OPT_I64, KD_OPT_DOUBLE, KD_OPT_FLAG, KD_OPT_LIST } kd_opt_kind;

/* A flag that may repeat (KD_OPT_LIST): its values in order. */
#define KD_OPT_LIST_MAX 16
typedef struct kd_opt_list { const char *v[KD_OPT_LIST_MAX]; int n; } kd_opt_list;

typedef struct kd_opt {
    const char *name;        /* "--lr" */
    kd_opt_kind kind;
    void *dst;               /* const char **, int *, int64_t *, double *, int *, kd_opt_list * */
    double lo, hi;           /* numeric range, inclusive (lo_open: lo excluded) */
    int lo_open;
    const char *expect;      /* what a good value is, for messages: "a number > 0" */
    const char *help;        /* one line for --help; NULL: not listed */
} kd_opt;

/* Parse argv[1..] against opts. Returns -1 when it parsed (go on), else the exit code: 0 after --help
 * (usage printed), 2 after a bad flag (message printed). `set` (may be NULL) gets 1 per option seen. */
int kd_cli_parse(const char *cmd, int argc, char **argv, const kd_opt *opts, int nopts, const char *usage,
                 int *set);

/* Where a command runs: --threads, --device and --precision as given, and what kd_cli_apply_common makes of
 * them. Each command keeps one (no globals) and lists the three flags with KD_RUN_OPTS. */
typedef struct kd_cli_run {
    int threads;                       /* 0: all cores */
    const char *device, *precision;    /* as given; NULL: cpu, and the device's default precision */
    kd_device dev;                     /* the device, opened */
    kd_dtype compute;                  /* the models' activation dtype (kd_device_compute_dtype) */
} kd_cli_run;

#define KD_RUN_OPTS(r)                                                                                              \
    { "--threads", KD_OPT_INT, &(r).threads, 1, 1024, 0, "a whole number from 1 to 1024", "CPU threads (all)" },    \
    { "--device", KD_OPT_STR, &(r).device, 0, 0, 0, "cpu, cuda or sim", "cpu | cuda | sim (cpu)" },                 \
    { "--precision", KD_OPT_STR, &(r).precision, 0, 0, 0, "f32, tf32 or bf16",                                    \
      "bf16: bf16 activations, f32 weights (default on cuda); tf32: cuda" }

/* What the report pages show of a command: "kd <cmd> ARGS" shell-quoted, and every flag of opts with its
 * value after parsing (the default when not given; `set` as kd_cli_parse filled it). */
kd_status kd_cli_run_info(const char *cmd, int argc, char **argv, const kd_opt *opts, int nopts, const int *set,
                          kd_run_info *out);

/* Apply r's flags: threads (> 0 calls kd_set_threads), open the device, set its precision; fills r->dev and
 * r->compute. Returns -1 (go on) or an exit code after printing why. */
int kd_cli_apply_common(const char *cmd, kd_cli_run *r);
/* Move a model to the command's device and set its precision. */
kd_status kd_cli_place_model(const kd_cli_run *r, kd_bert *m);
/* Print "kd <cmd>: <last library error>" and return 1. */
int kd_cli_fail(const char *cmd);

/* Training and dev sets from --data (a directory with train.* and dev.*, or a training file) and the
 * optional --train/--dev files; dev may be NULL when only one is needed (then only `which` = "dev" or
 * "train" is loaded into *one). Labels: with `known`, names/ids must belong to it. */
kd_status kd_cli_load_splits(const char *data, const char *train_path, const char *dev_path, const kd_labels *known,
                             kd_dataset *train, kd_dataset *dev);
kd_status kd_cli_load_eval_split(const char *data, const kd_labels *known, kd_dataset *out);

/* The model's labels as a kd_labels (from config id2label). */
kd_status kd_cli_model_labels(const kd_bert_config *cfg, kd_labels *out);
/* dir/vocab.txt into buf; KD_ERR_IO naming it when absent. */
kd_status kd_cli_model_vocab(const char *dir, char *buf, size_t n);
/* Is spec a preset name (else a directory)? */
int kd_cli_is_preset(const char *spec);
/* A model from a preset (vocab_size from the vocabulary, labels from `labels`) or a checkpoint directory
 * (labels must agree with the checkpoint's head when it has one, in number and names; a headless one gets a
 * new head). labels_from names where the labels come from in messages ("the data", "the teacher"). */
kd_bert *kd_cli_make_model(const char *spec, const kd_vocab *vocab, const kd_labels *labels, const char *labels_from,
                           uint64_t seed, const char *cmd);
/* The class names of checkpoint `spec` (config c) against `labels`: class i must have the same name on both
 * sides unless either is a default name ("i" or "LABEL_i", models/bert.h), else KD_ERR_SHAPE naming the class,
 * both names and where the labels come from. */
kd_status kd_cli_check_label_names(const char *spec, const kd_bert_config *c, const kd_labels *labels,
                                   const char *labels_from);
/* A trained classifier from dir, to run (eval, predict, compare, a distillation teacher): one without its
 * pooler or classifier in model.safetensors is refused (a random head would give random answers), NULL
 * with the error set. */
kd_bert *kd_cli_load_classifier(const char *dir);
/* -1 when spec is a preset or a directory with config.json, else the message and exit code 2. */
int kd_cli_check_model_arg(const char *cmd, const char *flag, const char *spec);
/* A copy of m whose config carries `labels` as id2label (same sizes). */
kd_bert *kd_cli_relabel(kd_bert *m, const kd_labels *labels, uint64_t seed);

/* What `kd compare` and `kd demo` measure of one model on a labelled set. */
typedef struct kd_model_report {
    double accuracy, macro_f1;
    int64_t params;
    int64_t file_bytes;          /* model.safetensors, -1 when not on disk */
    double p50_ms, p95_ms;       /* batch 1, tokenization included */
    double throughput;           /* examples/s at batch 32 */
    int num_labels;
    int64_t *confusion;          /* [true][predicted], num_labels^2 (kd_model_report_free) */
} kd_model_report;

/* The examples kd_measure_model runs through, for its progress pass: the set, the warm-up, latency_n, the
 * throughput batch. */
int64_t kd_measure_work(const kd_dataset *d, int latency_n);
/* latency_n examples timed one at a time (after a warm-up), up to 512 at batch 32. dir may be NULL. prog
 * (may be NULL): a pass of kd_measure_work examples, begun by the caller. */
kd_status kd_measure_model(kd_bert *m, const kd_tokenizer *tok, const kd_dataset *d, int max_len, int latency_n,
                           const char *dir, kd_model_report *r, kd_progress *prog);
void kd_model_report_free(kd_model_report *r);
void kd_print_reports(const char *const *names, const kd_model_report *r, int n, const char *const *extra_col,
                      const char *extra_head, FILE *out);

int kd_cmd_finetune(int argc, char **argv);
int kd_cmd_distill(int argc, char **argv);
int kd_cmd_eval(int argc, char **argv);
int kd_cmd_predict(int argc, char **argv);
int kd_cmd_compare(int argc, char **argv);
int kd_cmd_demo(int argc, char **argv);
int kd_cmd_quantize(int argc, char **argv);

#endif
