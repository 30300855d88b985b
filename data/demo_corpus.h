/* data/demo_corpus.h — the built-in sentiment corpus `kd demo` trains on: sentences generated from a
 * small grammar, so that the label depends on structure, not on which words occur.
 *
 * The grammar (each choice uniform unless a probability is given):
 *   sentence  := clause                                     label = polarity(clause)
 *              | clause ", but" clause                      label = polarity(second)      (contrast)
 *              | "although" clause "," clause               label = polarity(second)
 *              | clause "and" clause'                       both of one polarity
 *              | neutral                                    label neutral (3 classes only)
 *   clause    := subject verb [negation] [intensifier] adjective [tail]
 *   polarity  = polarity(adjective), flipped by a negation (p = 0.4): "not good" < 0, "never boring" > 0
 *   subject   := "the movie" | "this film" | "the plot" | "the acting" | ...      (12)
 *   verb      := "is" | "was" | "feels" | "seemed"
 *   negation  := "not" | "never" | "hardly"
 *   intensifier := "very" | "really" | "truly" | "incredibly" | "rather"   (p = 0.3; no effect on polarity)
 *   adjective := 14 positive ("good", "charming", ...) | 14 negative ("bad", "boring", ...)
 *   tail      := "at all" (p = 0.15, only after a negation: "not bad at all") | "to watch" (p = 0.1)
 *   neutral   := factual templates ("the movie is two hours long", "the film was shot in spain", ...)
 * Negation and contrast make sentiment words weak evidence: counting them (more positive than
 * negative words) is right on 55% of sentences with 2 classes and 70% with 3 (measured by
 * test/data/test_demo_corpus, seed 1), while reading the structure is right on 100%. */
#ifndef KD_DEMO_CORPUS_H
#define KD_DEMO_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "data/readers.h"

typedef struct kd_demo_opts {
    size_t n_train, n_dev;
    int classes;          /* 2 (negative, positive) or 3 (negative, neutral, positive) */
    uint64_t seed;
} kd_demo_opts;

kd_demo_opts kd_demo_opts_default(void);   /* 4000 train, 500 dev, 2 classes, seed 1 */

/* Generate the train and dev splits (disjoint streams of one seeded generator). */
kd_status kd_demo_corpus_make(const kd_demo_opts *o, kd_dataset *train, kd_dataset *dev);

/* A vocab.txt for the corpus (the BERT special tokens, then every word and punctuation mark of the
 * grammar, one per line): text to hand to kd_vocab_parse. malloc'd, NUL-terminated, length in *len. */
char *kd_demo_corpus_vocab(size_t *len);

/* The lexicon polarity of a word (+1 positive adjective, -1 negative, 0 other): for baselines. */
int kd_demo_word_polarity(const char *word);

#endif
