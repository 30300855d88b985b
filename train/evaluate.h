/* train/evaluate.h — a model's logits over a whole data set (eval mode, no graph, the arena reset after
 * every batch) and the metrics they give against the labels. */
#ifndef KD_TRAIN_EVALUATE_H
#define KD_TRAIN_EVALUATE_H

#include <stddef.h>

#include "data/readers.h"
#include "data/wordpiece.h"
#include "models/bert.h"
#include "train/metrics.h"
#include "train/progress.h"

/* out: d->n * num_labels floats in the data set's order. Leaves m in eval mode. prog (may be NULL): a pass
 * begun by the caller, advanced by each batch's examples (the caller ends it). */
kd_status kd_model_logits(kd_bert *m, const kd_dataset *d, const kd_tokenizer *tok, int max_len, int batch_size,
                          float *out, kd_progress *prog);

/* Confusion-matrix metrics of argmax(logits) against labels, and m->loss = mean cross-entropy. */
kd_status kd_metrics_from_logits(const float *logits, const int32_t *labels, size_t n, int num_labels, kd_metrics *m);

/* Row-wise softmax of n rows of c logits into probs. */
void kd_softmax_rows(const float *logits, size_t n, int c, double *probs);

#endif
