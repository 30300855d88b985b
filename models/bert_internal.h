/* models/bert_internal.h — the model's layout, shared by the files of models/ (not part of the public API):
 * one table of parameters in Hugging Face order, with named pointers into it. */
#ifndef KD_BERT_INTERNAL_H
#define KD_BERT_INTERNAL_H

#include "engine/ops.h"
#include "models/bert.h"

/* Tensors per encoder layer, in the order of kd_bert_layer. */
#define KD_BERT_LAYER_TENSORS 16

typedef union kd_bert_layer {
    struct {
    kd_tensor *q_w, *q_b, *k_w, *k_b, *v_w, *v_b;   /* attention.self.{query,key,value} */
    kd_tensor *ao_w, *ao_b, *aln_w, *aln_b;         /* attention.output.{dense,LayerNorm} */
    kd_tensor *i_w, *i_b;                           /* intermediate.dense */
    kd_tensor *o_w, *o_b, *oln_w, *oln_b;           /* output.{dense,LayerNorm} */
    };
    kd_tensor *t[KD_BERT_LAYER_TENSORS];             /* the same, as a table */
} kd_bert_layer;
_Static_assert(sizeof(kd_bert_layer) == KD_BERT_LAYER_TENSORS * sizeof(kd_tensor *), "layer table");

/* The int8 linears of a quantized model (models/bert_quant.c): per layer query, key, value, attention output,
 * intermediate and output dense (in that order), then the pooler; each stands for the f32 weight it was
 * made from, whose tensor keeps its name and shape but no memory (kd_tensor_release_storage): nothing may
 * read it. */
#define KD_BERT_QLINEARS_PER_LAYER 6
#define KD_BERT_CALIB_BINS 4096
typedef struct kd_bert_quant {
    int static_act;           /* activations: 1 static per tensor, 0 dynamic per token */
    size_t n;                 /* num_layers * 6 + 1 */
    kd_s8_weight *w;
} kd_bert_quant;

struct kd_bert {
    kd_bert_config cfg;
    int training;
    kd_dtype compute;         /* KD_F32, or KD_BF16: the encoder's activations in bf16 (mixed precision) */
    kd_tensor **params;       /* every parameter, named; the pointers below point into this table */
    size_t n_params;
    kd_tensor *word, *pos, *type, *eln_w, *eln_b;
    kd_bert_layer *layers;
    kd_tensor *pool_w, *pool_b, *cls_w, *cls_b;
    kd_bert_quant *quant;     /* NULL: f32 */
    float *calib;             /* while calibrating: max |input| of each linear (n of kd_bert_qlinears) */
    uint64_t *calib_hist;     /* second pass (percentiles): n x KD_BERT_CALIB_BINS counts of |x| over [0, calib[i]] */
    const int32_t *calib_mask;/* the batch's mask while it runs (rows of padding are left out of calib) */
    int64_t calib_rows;       /* batch x seq */
    int packed;               /* 1: padding-free forward where the mask allows (kd_bert_set_packed) */
};

/* Linear i of kd_bert_quant's order: its f32 weight and bias. */
void kd_bert_qlinear(kd_bert *m, size_t i, kd_tensor **w, kd_tensor **b);
size_t kd_bert_qlinears(const kd_bert *m);
kd_status kd_bert_quant_alloc(kd_bert *m, int static_act);   /* buffers for every linear, unfilled */
void kd_bert_quant_release_f32(kd_bert *m, size_t i);         /* linear i's f32 weight gives back its memory */
void kd_bert_quant_free(kd_bert *m);

/* A model with every parameter allocated (zeros) and named, not initialised. */
kd_bert *kd_bert_alloc(const kd_bert_config *cfg);
/* BERT's initialisation of one parameter (by its name: LayerNorm 1/0, biases 0, else truncated normal). */
void kd_bert_init_param(kd_bert *m, kd_tensor *p, uint64_t seed);
/* The parameter named `name` (full Hugging Face name), or NULL. */
kd_tensor *kd_bert_param(kd_bert *m, const char *name);

#endif
