/* train/metrics.h — classification metrics from a confusion matrix: accuracy, per-class precision,
 * recall and F1, macro-F1 and macro-recall (an undefined ratio counts as 0, as scikit-learn's
 * zero_division=0), and the per-class table. */
#ifndef KD_TRAIN_METRICS_H
#define KD_TRAIN_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "engine/status.h"

typedef struct kd_metrics {
    int num_labels;
    int64_t *confusion;     /* [true][predicted], num_labels^2 */
    int64_t count;
    double accuracy, macro_f1, macro_recall, loss;
    double *precision, *recall, *f1;   /* per class */
    int64_t *support;                  /* true examples per class */
} kd_metrics;

kd_status kd_metrics_init(kd_metrics *m, int num_labels);
void kd_metrics_free(kd_metrics *m);
void kd_metrics_reset(kd_metrics *m);
/* Count one prediction; labels outside [0, num_labels) are KD_ERR_INDEX. */
kd_status kd_metrics_add(kd_metrics *m, int truth, int predicted);
/* Fill accuracy, per-class and macro figures from the confusion matrix. */
void kd_metrics_finish(kd_metrics *m);
/* The per-class table (precision, recall, F1, support) with the labels' names (NULL: their ids). */
void kd_metrics_print(const kd_metrics *m, const char *const *label_names, FILE *out);

#endif
