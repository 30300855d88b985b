/* train/loss.c — the distillation loss on engine ops (see loss.h for the formula).
 *
 * The soft term is alpha * T^2 * kl_div(log_softmax(z_S / T), softmax(z_T / T)); its gradient with
 * respect to z_S is alpha * T * (q_S - p_T) / N, so T^2 brings it back to the scale of the hard term's
 * (softmax(z_S) - onehot(y)) / N. */
#include <math.h>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "train/loss.h"

kd_tensor *kd_soft_targets(const kd_tensor *teacher_logits, double temperature)
{
    if (!teacher_logits) return NULL;
    if (!(temperature > 0.0) || !isfinite(temperature)) {
        kd_fail(KD_ERR_ARG, "soft targets: temperature %g, expected a finite value > 0", temperature);
        return NULL;
    }
    int prev = kd_set_grad_enabled(0);
    kd_tensor *z = kd_detach(teacher_logits);
    kd_tensor *p = kd_softmax(kd_scale(z, 1.0 / temperature));
    kd_set_grad_enabled(prev);
    return p;
}

kd_status kd_distill_loss(kd_tensor *student_logits, const kd_tensor *teacher_logits, kd_tensor *targets,
                          kd_tensor *rows, double alpha, double temperature, kd_loss_parts *out)
{
    out->total = out->soft = out->hard = NULL;
    if (!student_logits) return kd_fail(KD_ERR_ARG, "distillation loss: missing student logits");
    if (!(alpha >= 0.0 && alpha <= 1.0))
        return kd_fail(KD_ERR_ARG, "distillation loss: alpha %g, expected a value in [0, 1]", alpha);
    if (!(temperature > 0.0) || !isfinite(temperature))
        return kd_fail(KD_ERR_ARG, "distillation loss: temperature %g, expected a finite value > 0", temperature);
    if (student_logits->ndim != 2)
        return kd_fail(KD_ERR_SHAPE, "distillation loss: student logits have %d dims, expected [N, C]",
                       student_logits->ndim);
    if (alpha > 0.0 && !teacher_logits)
        return kd_fail(KD_ERR_ARG, "distillation loss: alpha %g needs teacher logits", alpha);

    kd_tensor *total = NULL;
    if (targets) {
        /* The labelled rows' logits (a gather whose backward scatters into theirs), or all of them. */
        kd_tensor *hard = kd_cross_entropy(rows ? kd_embedding(student_logits, rows) : student_logits, targets);
        if (!hard) return kd_last_status();
        out->hard = hard;
        total = alpha < 1.0 ? kd_scale(hard, 1.0 - alpha) : NULL;
    } else if (!(alpha > 0.0)) {
        return kd_fail(KD_ERR_ARG, "distillation loss: a batch without labels needs alpha > 0 (it has only a soft term)");
    }

    if (teacher_logits) {
        char ss[64], ts[64];
        if (teacher_logits->ndim != 2 || teacher_logits->shape[0] != student_logits->shape[0] ||
            teacher_logits->shape[1] != student_logits->shape[1])
            return kd_fail(KD_ERR_SHAPE,
                           "distillation loss: teacher logits %s and student logits %s: expected the same batch "
                           "and label count",
                           kd_shape_str(teacher_logits, ts, sizeof ts), kd_shape_str(student_logits, ss, sizeof ss));
        kd_tensor *p = kd_soft_targets(teacher_logits, temperature);
        kd_tensor *logq = kd_log_softmax(kd_scale(student_logits, 1.0 / temperature));
        kd_tensor *soft = kd_scale(kd_kl_div(logq, p), temperature * temperature);
        if (!soft) return kd_last_status();
        out->soft = soft;
        if (alpha > 0.0) {
            kd_tensor *ws = kd_scale(soft, alpha);
            total = total ? kd_add(total, ws) : ws;
        }
    }
    if (!total) return kd_last_status();
    out->total = total;
    return KD_OK;
}
