/* data/basic_tokenizer.h — BERT's text normalization and pre-tokenization: from raw text (no special
 * tokens in it) to words, each handed to a callback as UTF-8 with its character count. */
#ifndef KD_BASIC_TOKENIZER_H
#define KD_BASIC_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "data/wordpiece.h"

typedef kd_status (*kd_word_fn)(void *ctx, const char *word, size_t nbytes, size_t nchars);

/* Normalize text[0..len) as BertNormalizer does (clean text, CJK spacing, NFD + drop Mn, lower-case,
 * each per opts / strip) and split it as BertPreTokenizer does (whitespace removed, punctuation
 * isolated), calling fn for every word in order. e supplies the scratch buffers. */
kd_status kd_basic_tokenize(const kd_tokenizer_opts *opts, int strip, const char *text, size_t len,
                            kd_encoding *e, kd_word_fn fn, void *ctx);

#endif
