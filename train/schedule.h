/* train/schedule.h — the learning-rate schedule: linear warmup from 0, then linear decay to 0, as
 * Hugging Face's get_linear_schedule_with_warmup. */
#ifndef KD_TRAIN_SCHEDULE_H
#define KD_TRAIN_SCHEDULE_H

#include <stdint.h>

typedef struct kd_schedule {
    double base_lr;
    int64_t warmup_steps, total_steps;
} kd_schedule;

/* Warmup in steps: warmup_steps when >= 0, else round(warmup_ratio * total_steps). */
kd_schedule kd_schedule_linear(double base_lr, int64_t total_steps, int64_t warmup_steps, double warmup_ratio);

/* The learning rate for the optimizer step that follows `step` completed steps (step 0 is the first):
 *   step < warmup:  base * step / warmup
 *   otherwise:      base * max(0, (total - step) / (total - warmup)) */
double kd_schedule_lr(const kd_schedule *s, int64_t step);

#endif
