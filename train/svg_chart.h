/* train/svg_chart.h — the run's chart (OUT/chart.svg), a plain SVG that any browser shows and a README can
 * embed: the training loss per optimizer step, faint, with its exponential moving average over it (span
 * stated in the legend); for a distillation the moving averages of the soft and hard parts and of any
 * intermediate-layer parts; the student's dev accuracy per evaluation (right axis) and the teacher's as a
 * dashed line; epoch boundaries; round tick values; and the learning-rate schedule in a small panel below. */
#ifndef KD_TRAIN_SVG_CHART_H
#define KD_TRAIN_SVG_CHART_H

#include <stdint.h>

#include "train/checkpoint.h"
#include "train/plot.h"
#include "train/schedule.h"

enum { KD_CHART_PARTS = 4 };   /* soft, hard, hidden, attention */

typedef struct kd_chart_data {
    const char *title;
    const kd_series *loss;                      /* (step, loss) per optimizer step */
    const kd_series *parts[KD_CHART_PARTS];     /* the same steps, NaN where a step had none; NULL: not drawn */
    const char *part_names[KD_CHART_PARTS];
    const kd_series *dev;                       /* (step, student dev accuracy) per evaluation */
    double teacher_accuracy;                    /* < 0: no teacher line */
    int64_t total_steps;                        /* the x axis spans the whole run, finished or not */
    int epochs;                                 /* boundaries every total_steps / epochs steps */
    const kd_schedule *sched;                   /* the learning-rate panel; NULL: none */
} kd_chart_data;

/* The SVG document appended to out (escaping the title). */
void kd_svg_chart_render(const kd_chart_data *d, kd_text *out);
/* Rendered and written to path atomically. */
kd_status kd_svg_chart_write(const char *path, const kd_chart_data *d);

#endif
