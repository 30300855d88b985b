/* models/bert.h — BERT for sequence classification on the engine: configuration and presets, parameters
 * (named as Hugging Face names them), forward in train or eval mode, checkpoints in Hugging Face's format
 * (config.json + model.safetensors + vocab.txt), and students built from a teacher's layers. */
#ifndef KD_BERT_H
#define KD_BERT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/tensor.h"

#define KD_BERT_MAX_LABELS 64

typedef struct kd_bert_config {
    int vocab_size, hidden_size, num_layers, num_heads, intermediate_size;
    int max_position, type_vocab_size, pad_token_id;
    double layer_norm_eps, hidden_dropout, attention_dropout, initializer_range;
    char hidden_act[32];          /* "gelu" (erf form); anything else is an error */
    int num_labels;
    char labels[KD_BERT_MAX_LABELS][64];   /* id2label */
    char name[64];                /* preset name or "checkpoint" */
    /* An int8 model (kd quantize; models/bert_quant.c): "" for f32, else config.json's
     * kd_quantization.activations, "dynamic-per-token" or "static-per-tensor" (weights: int8 per channel). */
    char quant_activations[32];
    char quant_calibration[96];   /* how static scales were found (kd_quantization.calibration), or "" */
} kd_bert_config;

/* Class names. A checkpoint's names are its config.json's id2label, kept as they are (kd writes id2label
 * always, so transformers reads kd's names back, and its save_pretrained writes them again). Where no name is
 * given (a preset, a config.json without id2label, a resized head), class i is named "LABEL_i", as transformers
 * names it (and leaves id2label out of config.json for two such classes). "LABEL_i" and "i" are class i's
 * default names, the same class: either stands for any name of class i when names are compared (a model's
 * against the data's labels or the teacher's). */
void kd_bert_default_labels(kd_bert_config *cfg);   /* labels[i] = "LABEL_i" for i < num_labels */
int kd_bert_default_label(const char *name, int i); /* name is "i" or "LABEL_i" */

/* Presets: bert-large, bert-base, distil-base, bert-medium, bert-small, bert-mini, bert-tiny, minilm-l6.
 * vocab 30522, 512 positions, 2 token types, eps 1e-12, dropout 0.1, 2 labels (LABEL_0, LABEL_1) unless changed. */
kd_status kd_bert_preset(const char *name, kd_bert_config *cfg);
/* Names of all presets, NULL-terminated. */
const char *const *kd_bert_preset_names(void);
/* Sizes that fit together (hidden % heads == 0, everything > 0, act known, ...); the message names the
 * field. `what` names the source in messages (a file path or a preset). */
kd_status kd_bert_config_check(const kd_bert_config *cfg, const char *what);
kd_status kd_bert_config_load(const char *path, kd_bert_config *cfg);      /* config.json */
kd_status kd_bert_config_save(const char *path, const kd_bert_config *cfg);

typedef struct kd_bert kd_bert;

/* A new model with BERT's initialisation (truncated normal std initializer_range, LayerNorm 1/0,
 * biases 0) from `seed`. NULL with the error set on failure. */
kd_bert *kd_bert_new(const kd_bert_config *cfg, uint64_t seed);
/* Load dir/config.json and dir/model.safetensors, or the shards of dir/model.safetensors.index.json when there
 * is no single file (F32, F16 or BF16; names with or without "bert.";
 * BertModel or BertForSequenceClassification; a missing pooler/classifier is initialised from `seed`
 * and reported through *missing_head when not NULL). num_labels_override > 0 replaces the head size. */
kd_bert *kd_bert_load(const char *dir, int num_labels_override, uint64_t seed, int *missing_head);
/* Write dir/config.json and dir/model.safetensors (F32), each to a temporary name renamed into place;
 * creates dir. vocab.txt is copied by the caller (kd_bert_copy_vocab; train/checkpoint.c adds the tokenizer
 * files). */
kd_status kd_bert_save(const kd_bert *m, const char *dir);
kd_status kd_bert_copy_vocab(const char *vocab_path, const char *dir);
/* A vocab.txt with more tokens than the word-embedding matrix has rows is KD_ERR_SHAPE naming both
 * (kd_bert_load checks dir/vocab.txt when present). */
kd_status kd_bert_check_vocab(const kd_bert *m, const char *vocab_path);
/* A student of config `scfg` whose embeddings and layers come from the teacher: layer i of the student
 * is teacher layer layers[i] (NULL: every k-th, k = teacher layers / student layers, DistilBERT-style).
 * A student with a smaller hidden_size or intermediate_size is the teacher sliced: every matrix keeps its
 * leading rows and columns, Q/K/V and the attention output the leading hidden/heads dimensions of each
 * head; with equal sizes, a plain copy. Heads, vocabulary, positions and token types must agree and the
 * student may not be wider, else KD_ERR_SHAPE naming the field and both values. */
kd_bert *kd_bert_from_teacher(const kd_bert *teacher, const kd_bert_config *scfg, const int *layers, uint64_t seed);
void kd_bert_free(kd_bert *m);

const kd_bert_config *kd_bert_get_config(const kd_bert *m);
/* The parameter tensors (heap tensors named as in Hugging Face checkpoints, "bert." prefix included
 * for the encoder); *n receives the count. */
kd_tensor **kd_bert_parameters(kd_bert *m, size_t *n);
/* Move every parameter (and its gradient) to `dev` (opening it); the model then runs where the engine's
 * default device is set to the same device. Checkpoints save from any device. */
kd_status kd_bert_to_device(kd_bert *m, kd_device dev);
kd_device kd_bert_device(const kd_bert *m);
int64_t kd_bert_num_parameters(const kd_bert *m);
void kd_bert_set_training(kd_bert *m, int training);
/* Replace the config's hidden and attention dropout (saved with it); each in [0, 1), else KD_ERR_ARG. */
kd_status kd_bert_set_dropout(kd_bert *m, double hidden, double attention);
/* The dtype of the encoder's activations: KD_F32 (the default) or KD_BF16 (mixed precision: bf16
 * activations and GEMM inputs, f32 accumulation, f32 parameters, gradients of parameters, LayerNorm,
 * embeddings, pooler, classifier and logits; see models/bert.c). KD_ERR_DTYPE for anything else. */
kd_status kd_bert_set_precision(kd_bert *m, kd_dtype compute);
kd_dtype kd_bert_precision(const kd_bert *m);
/* Name the labels (id2label, saved in config.json): n must equal num_labels, each name shorter than 64
 * bytes. KD_ERR_ARG naming the label otherwise. */
kd_status kd_bert_set_labels(kd_bert *m, int n, const char *const *names);
/* Keep only the vocabulary ids keep[0..n) (ascending; the padding token among them): old id keep[i] becomes
 * i, its word-embedding row moves along, vocab_size becomes n (models/bert_vocab.c). */
kd_status kd_bert_keep_vocab(kd_bert *m, const int32_t *keep, int32_t n);

/* int8 inference (models/bert_quant.c; what kd quantize makes). kd_bert_quantize replaces every encoder linear
 * and the pooler by s8 weights with a scale per output channel (the f32 weights give back their memory; their
 * tensors keep name and shape only); activations are quantized per token at run time (static_act 0) or per tensor with scales found by
 * calibration (static_act 1): kd_bert_calibrate_begin, forwards of the f32 model over the calibration text
 * (pass 1: each linear's input max |x| over real tokens), and for percentile < 100, kd_bert_calibrate_histograms
 * and the same forwards again (pass 2: a histogram of |x| per input); the scale is then the threshold below
 * which `percentile` per cent of the values lie (the max at 100) / 127, larger values clipping. `calibration`
 * describes the pass (saved in config.json). An int8 model runs on the CPU with f32 activations only (other
 * devices and bf16 are refused) and cannot be a teacher to copy from; kd_bert_save writes I8 weights and F32
 * scales, kd_bert_load reads them back. Already int8: KD_ERR_ARG. */
kd_status kd_bert_calibrate_begin(kd_bert *m);
kd_status kd_bert_calibrate_histograms(kd_bert *m);
kd_status kd_bert_quantize(kd_bert *m, int static_act, double percentile, const char *calibration);
int kd_bert_is_quantized(const kd_bert *m);

/* A batch of token ids, row-major [batch, seq]; mask 1 = token, 0 = padding; type_ids may be NULL. */
typedef struct kd_bert_input {
    int64_t batch, seq;
    const int32_t *ids, *type_ids, *mask;
} kd_bert_input;

/* Last hidden states [batch, seq, hidden] and classification logits [batch, num_labels] (arena tensors,
 * part of the graph when grad mode is on). */
kd_tensor *kd_bert_encode(kd_bert *m, const kd_bert_input *in);
kd_tensor *kd_bert_logits(kd_bert *m, const kd_bert_input *in);

/* What a forward keeps besides the logits, for intermediate-layer distillation. Layer 0 is the embedding
 * output, layer l (1..num_layers) the output of encoder layer l. Bit l of `hidden` keeps h[l]
 * [batch, seq, hidden]; bit l of `attention` (l >= 1) keeps scores[l] [batch, heads, seq, seq]: layer l's
 * scale q k^T plus the mask (-1e9 at padding keys), the logits of its attention distribution. All f32,
 * arena tensors, part of the graph when grad mode is on. */
#define KD_BERT_MAX_STATES 64
typedef struct kd_bert_states {
    uint64_t hidden, attention;
    kd_tensor *h[KD_BERT_MAX_STATES], *scores[KD_BERT_MAX_STATES];
} kd_bert_states;
/* kd_bert_logits, keeping the states st asks for (st may be NULL). */
kd_tensor *kd_bert_logits_states(kd_bert *m, const kd_bert_input *in, kd_bert_states *st);

/* Padding-free tokens. With packing on (the default; KD_PACKED=0 in the environment turns it off for new
 * models), kd_bert_logits and kd_bert_logits_states run a batch whose mask is a prefix of ones in every row
 * (at least one token each) and has padding as the real tokens alone: one [total, hidden] row per token for
 * the embeddings, every linear, LayerNorm, GELU, dropout and residual add, attention per sequence
 * (kd_attention_varlen), the pooler on each sequence's first row. Kept states come back in the layouts above
 * ([batch, seq, ...]), gathered from the packed rows; at padding positions they hold some real token's values
 * (the losses read real tokens only). Without dropout the logits, states and gradients equal the padded
 * forward's within float rounding; dropout draws one mask element per real value (a different stream from
 * the padded forward's, as deterministic). Any other mask, a batch without padding and kd_bert_encode run
 * padded. */
void kd_bert_set_packed(kd_bert *m, int on);
int kd_bert_packed(const kd_bert *m);

#endif
