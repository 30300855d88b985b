/* train/loss.h — the distillation loss: soft targets from the teacher, the student's KL to them and its
 * cross-entropy to the labels, mixed by alpha.
 *
 *   p_T = softmax(z_T / T),  log q_S = log_softmax(z_S / T)
 *   L = alpha * T^2 * KL(p_T || q_S) + (1 - alpha) * CE(z_S, y)        (KL with batchmean reduction)
 *
 * alpha weights the soft (teacher) term: alpha = 0 is plain fine-tuning, alpha = 1 pure distillation.
 * T^2 keeps the soft gradients on the scale of the hard ones (Hinton et al. 2015). */
#ifndef KD_TRAIN_LOSS_H
#define KD_TRAIN_LOSS_H

#include "engine/tensor.h"

/* Scalar tensors of the step arena, where the logits are; nothing is read back (kd_item reads one). */
typedef struct kd_loss_parts {
    kd_tensor *total;   /* the scalar to differentiate (part of the graph) */
    kd_tensor *soft;    /* T^2 * KL(p_T || q_S), before the alpha weight; NULL when no teacher */
    kd_tensor *hard;    /* CE(z_S, y) over the labelled rows, before the (1 - alpha) weight; NULL when none */
    kd_tensor *hidden, *attention;   /* the intermediate-layer losses, before their weights; NULL when off */
} kd_loss_parts;

/* p_T = softmax(z_T / T) as a new arena tensor with no graph (the teacher is frozen). T > 0. */
kd_tensor *kd_soft_targets(const kd_tensor *teacher_logits, double temperature);

/* The loss above. student_logits [N, C] (in the graph), teacher_logits [N, C] or NULL (only with alpha 0).
 * Labels: targets i32 [M] are the labels of rows `rows` (i32 [M], distinct, in [0, N)) of the batch, or of
 * every row when rows is NULL (M = N); targets NULL: no row is labelled (alpha must be > 0). The soft term
 * is the mean over all N rows, the hard term the mean over the M labelled ones. alpha in [0, 1],
 * temperature > 0; the teacher's logits never receive a gradient. Fails with KD_ERR_ARG on a bad alpha or
 * T, KD_ERR_SHAPE when the teacher and student disagree on the label count. */
kd_status kd_distill_loss(kd_tensor *student_logits, const kd_tensor *teacher_logits, kd_tensor *targets,
                          kd_tensor *rows, double alpha, double temperature, kd_loss_parts *out);
/* --- intermediate layers (TinyBERT, PKD, MiniLM), over the tokens that are not padding.
 *
 * kd_hidden_loss: hs [B, T, Hs] (the student's hidden states, in the graph), ht [B, T, Ht] (the teacher's),
 * proj [Ht, Hs] (a learned projection, TinyBERT's W_h) or NULL when Hs = Ht, rows i32 [M]: the tokens
 * b * T + t to compare. MSE: the mean over the M x Ht values of (hs proj^T - ht)^2; COS: the mean over the
 * tokens of 1 - cos(hs proj^T, ht).
 * kd_attention_loss: scores [B, heads, T, T] of both (kd_bert_states: attention logits, padding keys at
 * -1e9), rows i32 [M]: the query rows (b * heads + h) * T + t to compare. KL: the mean over the rows of
 * KL(softmax(teacher) || softmax(student)); MSE: the mean over the M x T values of the difference of the
 * two distributions, squared. The teacher's side never receives a gradient. */
typedef enum kd_hidden_kind { KD_HIDDEN_MSE, KD_HIDDEN_COS } kd_hidden_kind;
typedef enum kd_attention_kind { KD_ATTENTION_KL, KD_ATTENTION_MSE } kd_attention_kind;
kd_tensor *kd_hidden_loss(kd_tensor *hs, const kd_tensor *ht, kd_tensor *proj, kd_tensor *rows, kd_hidden_kind kind);
kd_tensor *kd_attention_loss(kd_tensor *ss, const kd_tensor *st, kd_tensor *rows, kd_attention_kind kind);

#endif
