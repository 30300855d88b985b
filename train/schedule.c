/* train/schedule.c — linear warmup and decay (see schedule.h). */
#include <math.h>

#include "train/schedule.h"

kd_schedule kd_schedule_linear(double base_lr, int64_t total_steps, int64_t warmup_steps, double warmup_ratio)
{
    kd_schedule s = { .base_lr = base_lr, .total_steps = total_steps > 0 ? total_steps : 1 };
    s.warmup_steps = warmup_steps >= 0 ? warmup_steps : (int64_t)llround(warmup_ratio * (double)total_steps);
    if (s.warmup_steps < 0) s.warmup_steps = 0;
    return s;
}

double kd_schedule_lr(const kd_schedule *s, int64_t step)
{
    if (step < s->warmup_steps) return s->base_lr * (double)step / (double)s->warmup_steps;
    int64_t rest = s->total_steps - s->warmup_steps;
    if (rest <= 0) return 0.0;
    double f = (double)(s->total_steps - step) / (double)rest;
    return s->base_lr * (f > 0.0 ? f : 0.0);
}
