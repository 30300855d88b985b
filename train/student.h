/* train/student.h — how `kd distill` builds its student: a preset, a checkpoint, a directory with only
 * config.json (that config, initialised fresh), or the teacher's embeddings and layers copied or sliced
 * to a narrower shape (--init-from-teacher); --student-layers, --student-hidden and --student-intermediate
 * change the shape, --student-init random keeps the shape and copies nothing. */
#ifndef KD_TRAIN_STUDENT_H
#define KD_TRAIN_STUDENT_H

#include <stdint.h>

#include "data/readers.h"
#include "data/wordpiece.h"
#include "models/bert.h"

typedef enum kd_student_init {
    KD_STUDENT_INIT_DEFAULT = 0,   /* copied/sliced with init_from_teacher, else the source's own */
    KD_STUDENT_INIT_SLICED,        /* the teacher's weights, sliced where narrower (needs init_from_teacher) */
    KD_STUDENT_INIT_RANDOM,        /* BERT's initialisation (truncated normal, std initializer_range) */
} kd_student_init;

typedef struct kd_student_spec {
    const char *student;       /* preset name or model directory; NULL: the teacher's config */
    int init_from_teacher;     /* embeddings and every k-th layer from the teacher */
    kd_student_init init;
    int layers;                /* > 0: num_hidden_layers */
    int hidden;                /* > 0: hidden_size; intermediate_size scales in proportion */
    int intermediate;          /* > 0: intermediate_size (after the scaling) */
    const char *cmd;           /* names the command in messages ("distill") */
} kd_student_spec;

/* 1 when dir is a directory with config.json and no weights (model.safetensors, a sharded checkpoint's index,
 * pytorch_model.bin or its index). */
int kd_student_is_config_only(const char *dir);

/* The student's configuration: spec->student's (a preset, or DIR/config.json), else the teacher's; with
 * init_from_teacher the teacher's vocabulary size, else the vocabulary `stok`'s and the data's `labels`
 * (a checkpoint keeps its own); then the flags. A flag whose value cannot work (--student-hidden wider than
 * the teacher's or not a multiple of the heads, a shape flag on a checkpoint whose weights fix its shape,
 * --student-init sliced without init_from_teacher) is KD_ERR_ARG naming the flag and sets *flag_error
 * (may be NULL) to 1. */
kd_status kd_student_config(const kd_student_spec *spec, const kd_bert *teacher, const kd_tokenizer *stok,
                            const kd_labels *labels, kd_bert_config *cfg, int *flag_error);

/* The student of kd_student_config's configuration: from the teacher (kd_bert_from_teacher: copied, or
 * sliced when narrower) with init_from_teacher unless init is RANDOM; a checkpoint loaded (its head must
 * match `labels`, a headless one gets a new head); otherwise initialised from `seed`. NULL with the error
 * set on failure. */
kd_bert *kd_student_build(const kd_student_spec *spec, const kd_bert *teacher, const kd_tokenizer *stok,
                          const kd_labels *labels, uint64_t seed);

#endif
