/* train/teacher_cache.h — the frozen teacher's logits for the training set, computed once (eval mode, no
 * graph: deterministic) and kept in the output directory for every epoch and every resumed run. The file
 * carries a key hashed from the teacher's parameters, its tokenization of the data and the labels, so a
 * cache made for another teacher, tokenizer or data is never used. */
#ifndef KD_TRAIN_TEACHER_CACHE_H
#define KD_TRAIN_TEACHER_CACHE_H

#include <stdint.h>

#include "data/readers.h"
#include "data/wordpiece.h"
#include "models/bert.h"

/* FNV-1a 64 over the teacher's parameter names and bytes, its tokenizer (vocabulary, case and accent
 * handling: a tokenizer_config.json changed beside the vocabulary changes the ids), the data set's texts and
 * labels, and max_len. */
uint64_t kd_teacher_cache_key(kd_bert *teacher, const kd_tokenizer *tok, const kd_dataset *d, int max_len);

/* The teacher's logits for every example of d (d->n * num_labels floats, *out malloc'd): read from path
 * when it holds this key, else computed and written there (atomically). *cached says which. A file with
 * another key is reported on stderr as stale and replaced. Computing shows the pass's progress on stderr
 * (train/progress.h: progress_tty 1, 0 or -1 to ask isatty; nothing when quiet). */
kd_status kd_teacher_cache_get(const char *path, kd_bert *teacher, const kd_dataset *d, const kd_tokenizer *tok,
                               int max_len, int batch_size, int progress_tty, int quiet, float **out, int *cached);

#endif
