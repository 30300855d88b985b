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
    out->total = out->soft = out->hard = out->hidden = out->attention = NULL;
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

/* --- intermediate layers */

kd_tensor *kd_hidden_loss(kd_tensor *hs, const kd_tensor *ht, kd_tensor *proj, kd_tensor *rows, kd_hidden_kind kind)
{
    if (!hs || !ht || !rows) return NULL;
    int64_t hsz = hs->shape[hs->ndim - 1], htz = ht->shape[ht->ndim - 1];
    if (hs->ndim != 3 || ht->ndim != 3 || hs->shape[0] != ht->shape[0] || hs->shape[1] != ht->shape[1] ||
        (!proj && hsz != htz) || (proj && (proj->ndim != 2 || proj->shape[0] != htz || proj->shape[1] != hsz))) {
        char a[64], b[64], c[64] = "none";
        if (proj) kd_shape_str(proj, c, sizeof c);
        kd_fail(KD_ERR_SHAPE, "hidden loss: student %s, teacher %s, projection %s: expected [B, T, Hs], [B, T, Ht] and "
                              "[Ht, Hs] (none when Hs = Ht)", kd_shape_str(hs, a, sizeof a), kd_shape_str(ht, b, sizeof b), c);
        return NULL;
    }
    int64_t fs[2] = { hs->shape[0] * hs->shape[1], hsz }, ft[2] = { fs[0], htz };
    kd_tensor *s = kd_embedding(kd_reshape(hs, 2, fs), rows);   /* the tokens' rows [M, Hs] */
    int prev = kd_set_grad_enabled(0);
    kd_tensor *t = kd_embedding(kd_reshape(kd_detach(ht), 2, ft), rows);
    kd_set_grad_enabled(prev);
    if (proj) s = kd_linear(s, proj, NULL);
    if (!s || !t) return NULL;
    if (kind == KD_HIDDEN_MSE) {
        kd_tensor *d = kd_sub(s, t);
        return kd_mean(kd_mul(d, d), 0, NULL, 0);
    }
    /* 1 - cos(s, t) per token, averaged; the norms get a floor so that a zero vector stays finite. */
    int last = -1;
    kd_tensor *dot = kd_sum(kd_mul(s, t), 1, &last, 0);
    kd_tensor *ns = kd_sqrt(kd_add_scalar(kd_sum(kd_mul(s, s), 1, &last, 0), 1e-12));
    kd_tensor *nt = kd_sqrt(kd_add_scalar(kd_sum(kd_mul(t, t), 1, &last, 0), 1e-12));
    kd_tensor *cos = kd_div(dot, kd_mul(ns, nt));
    return kd_add_scalar(kd_scale(kd_mean(cos, 0, NULL, 0), -1.0), 1.0);
}

kd_tensor *kd_attention_loss(kd_tensor *ss, const kd_tensor *st, kd_tensor *rows, kd_attention_kind kind)
{
    if (!ss || !st || !rows) return NULL;
    if (ss->ndim != 4 || !kd_same_shape(ss, st)) {
        char a[64], b[64];
        kd_fail(KD_ERR_SHAPE, "attention loss: student scores %s, teacher %s: expected the same [B, heads, T, T] (the "
                              "same number of heads and the same tokens)", kd_shape_str(ss, a, sizeof a),
                kd_shape_str(st, b, sizeof b));
        return NULL;
    }
    int64_t f[2] = { ss->shape[0] * ss->shape[1] * ss->shape[2], ss->shape[3] };
    kd_tensor *s = kd_embedding(kd_reshape(ss, 2, f), rows);   /* the query rows [M, T] */
    int prev = kd_set_grad_enabled(0);
    kd_tensor *p = kd_softmax(kd_embedding(kd_reshape(kd_detach(st), 2, f), rows));
    kd_set_grad_enabled(prev);
    if (kind == KD_ATTENTION_KL) return kd_kl_div(kd_log_softmax(s), p);
    kd_tensor *d = kd_sub(kd_softmax(s), p);
    return kd_mean(kd_mul(d, d), 0, NULL, 0);
}
