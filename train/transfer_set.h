/* train/transfer_set.h — the unlabelled side of a distillation run: the transfer set (--transfer files and
 * --augment variants, without repeats) and a student vocabulary cut to the run's text (--prune-vocab). */
#ifndef KD_TRAIN_TRANSFER_SET_H
#define KD_TRAIN_TRANSFER_SET_H

#include "data/augment.h"
#include "data/readers.h"
#include "data/wordpiece.h"
#include "models/bert.h"

#define KD_MAX_TRANSFER_FILES 16

typedef struct kd_transfer_opts {
    const char *paths[KD_MAX_TRANSFER_FILES];
    int npaths;
    kd_augment_opts augment;       /* augment.variants 0: no augmentation */
    const char *out_dir;           /* the variants go to OUT/augmented.txt (NULL: not written) */
    int quiet;
} kd_transfer_opts;

/* out: the texts of every transfer file in order, then the variants of train's sentences; a text that
 * repeats a labelled one or an earlier one is dropped. Prints what it kept unless quiet. */
kd_status kd_transfer_build(const kd_transfer_opts *o, const kd_dataset *train, kd_dataset *out);

/* Cut the student (made on the teacher's vocabulary `tok`) to the pieces of the sets' texts
 * (data/vocab_prune.h): its embedding rows and vocab_size change, the kept vocabulary is written to
 * vocab_path and *stok is its tokenizer. */
kd_status kd_student_prune_vocab(kd_bert *student, const kd_tokenizer *tok, const kd_dataset *const *sets, int nsets,
                                 const char *vocab_path, kd_tokenizer **stok);

#endif
