/* data/vocab_prune.h — a student's vocabulary cut to the word pieces of its text (kd distill --prune-vocab).
 *
 * Kept, in their original order: every piece that some text of the given sets tokenizes into with t, t's
 * special tokens ([PAD] [UNK] [CLS] [SEP] [MASK]) and every single-character piece, with and without "##".
 * Every text of the sets tokenizes into the same pieces with the kept vocabulary as with the full one (ids
 * renumbered: old id keep[i] becomes i). */
#ifndef KD_VOCAB_PRUNE_H
#define KD_VOCAB_PRUNE_H

#include "data/readers.h"
#include "data/wordpiece.h"

/* *keep (malloc'd, ascending old ids) and *n: the ids kept. sets[k] may be NULL. */
kd_status kd_vocab_prune(const kd_tokenizer *t, const kd_dataset *const *sets, int nsets, int32_t **keep, int32_t *n);
/* The vocab.txt text of tokens keep[0..n) of v, one a line (malloc'd, *len bytes), or NULL. */
char *kd_vocab_subset_text(const kd_vocab *v, const int32_t *keep, int32_t n, size_t *len);

#endif
