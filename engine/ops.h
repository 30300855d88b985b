/* engine/ops.h — every differentiable op. Each returns a new tensor (in the arena), or NULL with
 * kd_last_error() set naming the op and the shapes; a NULL input gives NULL and keeps the first error.
 * Float ops take f32 or f64 (all inputs the same dtype); ids and targets are i32. Mixed precision: the
 * activation ops (shape, element-wise, activations, reductions, matmul/linear, softmax, LayerNorm,
 * dropout, attention) also take bf16 (computed in f32, stored in bf16; LayerNorm's gamma/beta and
 * attention's mask stay f32); embeddings and losses take f32 or f64 only: kd_cast at the edges. Forward and backward of
 * each family sit side by side in engine/ops_<family>.c. */
#ifndef KD_OPS_H
#define KD_OPS_H

#include "engine/autograd.h"

/* --- shape and views (ops_shape.c). Views share storage; their backward routes the gradient back. */
kd_tensor *kd_reshape(kd_tensor *x, int ndim, const int64_t *shape);  /* one dim may be -1 */
kd_tensor *kd_permute(kd_tensor *x, const int *perm);
kd_tensor *kd_transpose(kd_tensor *x, int d0, int d1);                 /* negative dims count from the end */
kd_tensor *kd_narrow(kd_tensor *x, int dim, int64_t start, int64_t len);
kd_tensor *kd_contiguous(kd_tensor *x);                                /* x itself when already contiguous */

/* --- dtype (ops_cast.c): f32 <-> bf16 (round to nearest even); x itself when already of dtype dt. The
 * gradient converts back: a bf16 copy of an f32 parameter gives the parameter an f32 gradient. */
kd_tensor *kd_cast(kd_tensor *x, kd_dtype dt);

/* --- element-wise with broadcasting (ops_elementwise.c): shapes align at the right, size-1 dims stretch. */
kd_tensor *kd_add(kd_tensor *a, kd_tensor *b);
kd_tensor *kd_sub(kd_tensor *a, kd_tensor *b);
kd_tensor *kd_mul(kd_tensor *a, kd_tensor *b);
kd_tensor *kd_div(kd_tensor *a, kd_tensor *b);
kd_tensor *kd_scale(kd_tensor *x, double s);
kd_tensor *kd_add_scalar(kd_tensor *x, double s);
kd_tensor *kd_sqrt(kd_tensor *x);    /* x >= 0; the gradient is infinite at 0 */

/* --- activations (ops_activation.c) */
kd_tensor *kd_gelu(kd_tensor *x);    /* erf form: x * Phi(x), as PyTorch's default */
kd_tensor *kd_tanh(kd_tensor *x);

/* --- reductions (ops_reduce.c): over the listed dims (negative allowed), or every dim with ndims = 0. */
kd_tensor *kd_sum(kd_tensor *x, int ndims, const int *dims, int keepdim);
kd_tensor *kd_mean(kd_tensor *x, int ndims, const int *dims, int keepdim);

/* --- matrix products (ops_matmul.c).
 * kd_matmul: a [..., m, k] @ b [..., k, n] -> [..., m, n]; batch dims equal, or b 2-D (shared). A
 * transposed view (kd_transpose) is read in place, without a copy.
 * kd_linear: x [..., in] W^T + bias, W [out, in] (Hugging Face layout), bias [out] or NULL. */
kd_tensor *kd_matmul(kd_tensor *a, kd_tensor *b);
kd_tensor *kd_linear(kd_tensor *x, kd_tensor *w, kd_tensor *bias);

/* --- int8 linear for inference (ops_linear_s8.c): y = x W^T + bias with W held as s8 [out, in] and one f32
 * scale per output channel (W ~ scale[o] * q[o, :]); x is quantized to s8 per row at run time (act_scale
 * 0: dynamic, max |row| / 127) or with one static scale (act_scale > 0), the products summed in int32 and
 * dequantized to f32 (kernels.h, kd_gemm_s8_args). f32 x on the CPU only; no gradient (nothing is recorded).
 * The weights are packed for the CPU table's kernel on first use and again if the table changes. */
typedef struct kd_s8_weight {
    int64_t out, in;
    int8_t *q;              /* [out, in] */
    float *scale;           /* [out] */
    float act_scale;        /* 0: dynamic per row; > 0: static per tensor */
    void *packed;           /* the kernel's layout (owned), for the table packed_for */
    const void *packed_for;
} kd_s8_weight;
kd_tensor *kd_linear_s8(kd_tensor *x, kd_s8_weight *w, kd_tensor *bias);
void kd_s8_weight_release(kd_s8_weight *w);   /* frees q, scale and the packed copy */
/* w->q and w->scale (allocated, out x in) := the symmetric per-channel quantization of the f32 [out, in] matrix
 * f: scale[o] = max |f[o, :]| / 127 (1 for a row of zeros), q = round(f / scale) (kd_quantize_s8_rows). */
void kd_s8_weight_quantize(kd_s8_weight *w, const float *f);

/* --- softmax family over the last dim (ops_softmax.c) */
kd_tensor *kd_softmax(kd_tensor *x);
kd_tensor *kd_log_softmax(kd_tensor *x);

/* --- normalisation and regularisation (ops_layernorm.c, ops_dropout.c) */
kd_tensor *kd_layernorm(kd_tensor *x, kd_tensor *gamma, kd_tensor *beta, double eps);  /* over last dim */
/* Inverted dropout with probability p, drawn from the engine's generator (engine/rng.h); the identity when
 * training is 0 or p is 0. */
kd_tensor *kd_dropout(kd_tensor *x, double p, int training);

/* --- lookup (ops_embedding.c): table [V, D], ids i32 of any shape -> [ids..., D]. An id outside [0, V) is
 * KD_ERR_INDEX naming its position and value. */
kd_tensor *kd_embedding(kd_tensor *table, kd_tensor *ids);

/* --- attention (ops_attention.c). q [B, Tq, H, D], k and v [B, Tk, H, D] (views with a unit last stride
 * are read in place), mask: additive f32/f64 [B, Tk] (0 keep, large negative drop) or NULL.
 * out [B, Tq, H, D] = softmax(scale q k^T + mask) v per batch and head, with dropout p on the
 * probabilities when training. */
kd_tensor *kd_attention(kd_tensor *q, kd_tensor *k, kd_tensor *v, kd_tensor *mask, double scale,
                        double dropout_p, int training);
/* Attention over packed sequences (varlen): q, k, v [total, H, D] hold nseq sequences one after another,
 * sequence s being rows [offsets[s], offsets[s+1]) (offsets: nseq + 1 ascending host values, from 0 to total);
 * each row attends to the rows of its own sequence only. out [total, H, D] equals kd_attention on the same
 * sequences padded to one length with padding keys masked, at its real rows, without computing any padding.
 * Dropout p on the probabilities when training, from one range of the engine's generator. */
kd_tensor *kd_attention_varlen(kd_tensor *q, kd_tensor *k, kd_tensor *v, const int64_t *offsets, int64_t nseq,
                               double scale, double dropout_p, int training);

/* --- losses (ops_loss.c). Scalars (0-d).
 * kd_cross_entropy: logits [N, C], targets i32 [N] in [0, C): mean over N of -log softmax(logits)[t].
 * kd_kl_div: as PyTorch's kl_div(logq, p, reduction="batchmean"): sum p (log p - logq) / N, logq and p
 * [N, C]. Either may require a gradient. */
kd_tensor *kd_cross_entropy(kd_tensor *logits, kd_tensor *targets);
kd_tensor *kd_kl_div(kd_tensor *logq, kd_tensor *p);

#endif
