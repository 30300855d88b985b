/* train/checkpoint.h — checkpoints a run can ship or resume from: a directory in Hugging Face's format
 * (config.json, model.safetensors, vocab.txt, tokenizer_config.json, special_tokens_map.json) plus, for resuming, trainer_state.json (step, epoch,
 * position in the epoch, RNG, best score, the history the chart is drawn from) and optimizer.bin
 * (AdamW's m, v and step). The directory is written under DIR.tmp and swapped into place by renames,
 * so a crash leaves the previous checkpoint whole (DIR, or DIR.old during the swap). */
#ifndef KD_TRAIN_CHECKPOINT_H
#define KD_TRAIN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/fileio.h"
#include "engine/rng.h"
#include "data/wordpiece.h"
#include "models/bert.h"
#include "engine/adamw.h"

/* A growing series of (x, y) points. */
typedef struct kd_series {
    size_t n, cap;
    double *x, *y;
} kd_series;

kd_status kd_series_push(kd_series *s, double x, double y);
void kd_series_free(kd_series *s);

/* One evaluation at the end of an epoch, as the run report lists it. */
typedef struct kd_epoch_record {
    int epoch;                /* 1-based */
    int64_t step;
    double accuracy, macro_f1, macro_recall, dev_loss;
    double train_loss;        /* the mean of the epoch's per-step losses */
    double seconds;           /* wall time from the run's start to this evaluation, resumed pieces included */
} kd_epoch_record;

enum { KD_LOSS_PARTS = 4 };   /* soft, hard, hidden, attention */

typedef struct kd_train_state {
    int64_t global_step;      /* optimizer steps done */
    int64_t total_steps;
    int epoch;                /* the epoch in progress (0-based) */
    int64_t next_batch;       /* first micro-batch of `epoch` not yet trained */
    uint64_t seed;
    kd_generator rng;         /* the engine's dropout stream */
    double best_accuracy;     /* -1 before the first evaluation */
    int best_epoch;
    double train_seconds;     /* wall time spent training so far, over every resumed piece */
    kd_series loss;           /* (step, mean training loss since the last log line) */
    kd_series dev;            /* (step, dev accuracy) per evaluation */
    /* For the chart and the report (absent from an older trainer_state.json: empty). */
    kd_series parts[KD_LOSS_PARTS];   /* (step, the step's soft, hard, hidden, attention loss; NaN: none) */
    kd_epoch_record *epochs;  /* per evaluation */
    size_t n_epochs, cap_epochs;
    double teacher_accuracy, teacher_macro_f1;   /* the teacher on dev; < 0: no teacher */
    int64_t samples;          /* examples trained so far */
    /* The metrics line being gathered when the state was saved (steps since the last line): the sums of the
     * micro-batches' loss and of each part, and how many each has, so a resumed run logs what an
     * uninterrupted one does. */
    double window_sum[1 + KD_LOSS_PARTS];
    int64_t window_n[1 + KD_LOSS_PARTS];
    /* What the run's steps depend on beside the seed and the step count ("lr=5e-05 alpha=0.5 ... data=<hex>"),
     * compared on --resume; empty in an older trainer_state.json (not compared). */
    char recipe[1024];
    int num_labels;           /* 0: no confusion matrix yet */
    int64_t *best_confusion;  /* [true][predicted] of the best epoch's dev evaluation, num_labels^2 */
} kd_train_state;

kd_status kd_train_state_push_epoch(kd_train_state *s, const kd_epoch_record *e);
/* Keep a copy of the best epoch's confusion matrix (k x k). */
kd_status kd_train_state_set_confusion(kd_train_state *s, const int64_t *confusion, int k);

void kd_train_state_free(kd_train_state *s);

/* What a checkpoint carries for its tokenizer: vocab.txt copied from vocab_path, and tokenizer_config.json
 * with special_tokens_map.json saying how the text was normalized (opts: do_lower_case, strip_accents) and
 * the length the model was trained on (max_len, as model_max_length), so that transformers' AutoTokenizer
 * lower-cases and truncates as kd did. */
typedef struct kd_checkpoint_tokenizer {
    const char *vocab_path;
    kd_tokenizer_opts opts;
    int max_len;
} kd_checkpoint_tokenizer;

/* The three files of t into dir (each written to a temporary name and renamed). */
kd_status kd_checkpoint_save_tokenizer(const char *dir, const kd_checkpoint_tokenizer *t);

/* Write the checkpoint directory. tok (may be NULL: none) the tokenizer files beside the model. opt and
 * state may be NULL (a model-only checkpoint, as `best`). */
kd_status kd_checkpoint_save(const char *dir, const kd_bert *m, const kd_checkpoint_tokenizer *tok,
                             const kd_adamw *opt, const kd_train_state *state);

/* The checkpoint directory to resume from: dir, or dir.old when a swap was interrupted; NULL if none. */
const char *kd_checkpoint_find(const char *dir, char *buf, size_t n);

/* Read trainer_state.json (into *state, which the caller frees) and optimizer.bin (into opt). */
kd_status kd_checkpoint_load_state(const char *dir, kd_adamw *opt, kd_train_state *state);

/* Remove a flat directory and its files (checkpoint directories have no subdirectories). */
kd_status kd_remove_dir(const char *dir);
/* mkdir -p; an existing directory is fine; a path that cannot be made is KD_ERR_IO naming it. */
kd_status kd_make_dirs(const char *dir);

#endif
