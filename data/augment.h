/* data/augment.h — more text for distillation from the training sentences (Tang et al. 2019, §3.1, with a
 * unigram draw in place of the part-of-speech-guided swap): each variant of a sentence is made word by
 * word (words are the sentence split at spaces): with probability p_mask the word becomes [MASK], else
 * with probability p_replace a word drawn from the corpus's unigram distribution (every word of every
 * sentence equally likely); then, with probability p_ngram, the variant is cut to a random n-gram of it
 * (n uniform in 1..max_ngram, start uniform). The variants carry no label: only a teacher labels them.
 * Same seed, same variants. */
#ifndef KD_AUGMENT_H
#define KD_AUGMENT_H

#include <stdint.h>

#include "data/readers.h"

typedef struct kd_augment_opts {
    int variants;                       /* per sentence */
    double p_mask, p_replace, p_ngram;  /* the paper's defaults: 0.1, 0.1, 0.25 */
    int max_ngram;                      /* 5 */
    const char *mask_token;             /* "[MASK]" */
    uint64_t seed;
} kd_augment_opts;

kd_augment_opts kd_augment_defaults(void);
/* out: opts->variants variants of every text of d, in order (the variants of text 0, then of text 1, ...);
 * every label KD_NO_LABEL. Repeats are kept here (kd_transfer_add drops them). */
kd_status kd_augment(const kd_dataset *d, const kd_augment_opts *opts, kd_dataset *out);
/* The texts of d, one a line, to path (written to a temporary name, then renamed). */
kd_status kd_dataset_write_texts(const kd_dataset *d, const char *path);

#endif
