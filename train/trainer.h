/* train/trainer.h — the training loop: fine-tuning (no teacher, or alpha = 0) and distillation.
 *
 * Per optimizer step: grad_accum micro-batches of the student in training mode (the teacher, when there
 * is one, in eval mode under no-grad, or its cached logits), the loss of train/loss.h, backward; then
 * gradient clipping, the NaN/Inf guard, AdamW at the schedule's rate, and the arena reset. After every
 * epoch: evaluation on dev (accuracy, macro-F1, macro-recall, per class), metrics as JSON lines, the SVG
 * chart, the `last` checkpoint (with optimizer, schedule position, RNG and data position, for --resume)
 * and `best` when dev accuracy improved. At the end the best model is also written to the output
 * directory itself, in Hugging Face's format. The chart (OUT/chart.svg) and the run's report page
 * (OUT/report.html, train/report.h) are rewritten after every epoch and at the end; with a teacher, its dev
 * accuracy is measured once at the start (the chart's and report's reference). At the start,
 * OUT/train_subset.txt lists the rows of the training file the run uses (train/subset.h), so another tool
 * can train on the same examples.
 *
 * To replay a run elsewhere (bench/kd_recipe_replay.py): OUT/batch_order.txt has one line per micro-batch,
 * in training order: the optimizer step it belongs to (1-based), then the examples of the batch in the
 * batch's row order, space-separated, each the 0-based row of the training file (as in train_subset.txt)
 * or `tJ` for row J of the transfer set (0-based, after deduplication); a resumed run appends. With
 * write_init, OUT/init holds the student as it is before step 1 (its new or copied head included; not the
 * intermediate losses' projections), in Hugging Face's format. With dropout >= 0 the student's hidden and
 * attention dropout are that value for the run (and in the configs it saves): 0 makes a step a function
 * of the weights and the batch alone.
 *
 * Data-parallel (comm with more than one rank, engine/comm.h): every rank walks the same seeded global
 * batches of batch_size rows and trains rows [B r / N, B (r + 1) / N) of each (its shard, padded as the
 * global batch). Each rank's loss is its shard's share of the global batch's: the soft term is weighted by
 * n_r / B, the hard term by m_r / M (labelled rows), the intermediate losses by the shard's share of the
 * tokens, so the gradients summed over the ranks (in buckets of bucket_mb started during the last
 * micro-batch's backward, or one flat all-reduce after it; all done before clipping) are the one-process
 * gradient up to the order of the sums; clipping then sees
 * the global norm and every rank takes the same AdamW step. Dropout draws per rank from a stream keyed by
 * (seed, rank, micro-batch). Rank 0 alone evaluates, prints, writes metrics, checkpoints, the chart and the
 * report, while the others wait in a barrier; --cache-teacher has rank 0 compute (or read) the teacher's
 * logits and broadcast them. The world
 * size is part of the recipe: --resume with another number of ranks is refused.
 *
 * The run happens where the student is, in its precision (kd_bert_to_device, kd_bert_set_precision: the
 * command places the models first); a teacher that runs in the step must be on the same device. */
#ifndef KD_TRAIN_TRAINER_H
#define KD_TRAIN_TRAINER_H

#include <stdint.h>

#include "data/readers.h"
#include "data/wordpiece.h"
#include "models/bert.h"
#include "engine/adamw.h"
#include "engine/comm.h"
#include "train/loss.h"
#include "train/metrics.h"
#include "train/report.h"

typedef struct kd_train_config {
    int epochs, batch_size, eval_batch_size, grad_accum, max_len;
    double lr, warmup_ratio, max_grad_norm;
    int64_t warmup_steps;          /* >= 0 overrides warmup_ratio */
    double alpha, temperature;     /* the loss's weights (train/loss.h) */
    kd_adamw_config adamw;
    uint64_t seed;                 /* data order and dropout */
    int64_t max_steps;             /* > 0: stop after this many optimizer steps (with a `last` checkpoint) */
    int resume;                    /* continue from out_dir/last */
    int cache_teacher;             /* teacher logits computed once, kept in out_dir/teacher_logits.bin */
    int progress_tty;              /* -1: ask isatty(stderr) */
    int quiet;                     /* no progress or per-epoch prints */
    int64_t log_every;             /* optimizer steps between metrics lines (0: 10) */
    double dropout;                /* >= 0: the student's hidden and attention dropout (0: off); < 0: its config's */
    int write_init;                /* the student before step 1 into out_dir/init */
    const kd_run_info *info;       /* the command line and flags OUT/report.html shows; NULL: none */
    kd_comm *comm;                 /* data-parallel ranks (above); NULL: one process */
    double bucket_mb;              /* data-parallel: the gradients summed in buckets of this many MB (2^20 B),
                                    * each started while the backward runs; 0: one flat all-reduce after it */
    const char *out_dir;
    const char *student_vocab;     /* copied beside every checkpoint */
    /* Intermediate-layer distillation (train/loss.h), added to the loss above: student layer
     * layer_map[i][0] learns from teacher layer layer_map[i][1] (0: the embedding output, l: encoder layer
     * l). hidden_weight * the mean over the pairs of the hidden loss (through a learned projection per pair
     * when the hidden sizes differ: trained, kept in checkpoints' distill_projections.safetensors, never in
     * the student) + attention_weight * the mean over the pairs of encoder layers of the attention loss
     * (the heads must agree). Either weight > 0 runs the teacher every step (no --cache-teacher), and
     * teacher and student must tokenize alike (the same vocabulary, or a pruned one). */
    int n_layer_map;
    int layer_map[KD_BERT_MAX_STATES][2];
    double hidden_weight, attention_weight;
    kd_hidden_kind hidden_loss;
    kd_attention_kind attention_loss;
} kd_train_config;

/* The seed notebooks' defaults: 3 epochs, batch 16, lr 5e-5, max length 128, T 2, alpha 0.5, warmup
 * ratio 0.1, clipping at 1.0, weight decay 0.01, seed 42. */
kd_train_config kd_train_config_default(void);

typedef struct kd_train_data {
    const kd_dataset *train, *dev;
    const kd_dataset *transfer;    /* unlabelled rows (KD_NO_LABEL) for the soft term only; NULL: none */
    const kd_tokenizer *student_tok;
    kd_bert *teacher;              /* NULL: fine-tuning */
    const kd_tokenizer *teacher_tok;
    const size_t *train_rows;      /* train example i is row train_rows[i] of its file; NULL: row i */
} kd_train_data;

typedef struct kd_train_result {
    int finished;                  /* 0 when max_steps stopped the run early */
    int64_t steps;
    double best_accuracy, final_accuracy, final_macro_f1, final_macro_recall;
    int best_epoch;
    double train_seconds;          /* wall time of training and evaluation, resumed pieces included */
    double tokens_per_s;           /* non-padding tokens of the global batches trained per second (this run) */
    double allreduce_s_per_step;   /* mean wall time of the gradients' all-reduce per step, from the first gradient
                                    * handed over to the last summed (0: one process) */
    double allreduce_wait_s_per_step;   /* of it, the part the step waited for (exposed): all of it when flat */
    size_t allreduce_buckets;      /* 0: flat */
} kd_train_result;

kd_status kd_train(kd_bert *student, const kd_train_data *data, const kd_train_config *cfg, kd_train_result *res);

#endif
