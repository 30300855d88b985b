/* data/wordpiece.h — the BERT WordPiece tokenizer: vocabulary, encoding of single texts and pairs with
 * [CLS]/[SEP], token_type_ids and longest-first truncation, and decoding ids back to text.
 *
 * Behaves as Hugging Face's BertTokenizerFast (tokenizers' BertNormalizer + BertPreTokenizer + WordPiece):
 * special tokens found in the vocabulary ([PAD] [UNK] [CLS] [SEP] [MASK]) are matched whole in the raw
 * text first; the rest is cleaned (NUL, U+FFFD and controls dropped, whitespace to ' '), CJK ideographs
 * made words, NFD with nonspacing marks removed and lower-cased (uncased vocabularies), split on
 * whitespace and punctuation, then each word is split greedily into the longest vocabulary pieces,
 * continuations prefixed "##"; a word of more than max_chars_per_word characters, or one that cannot be
 * split, is [UNK]. Invalid UTF-8 bytes are read as U+FFFD (and so dropped). */
#ifndef KD_WORDPIECE_H
#define KD_WORDPIECE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/status.h"

typedef struct kd_vocab kd_vocab;

/* vocab.txt: one token per line, id = line number from 0; trailing whitespace (\r included) trimmed.
 * A repeated token keeps its last id. An empty or unreadable file is an error naming the path. */
kd_status kd_vocab_load(const char *path, kd_vocab **out);
/* The same from text in memory; `name` is used in messages. */
kd_status kd_vocab_parse(const char *text, size_t len, const char *name, kd_vocab **out);
void kd_vocab_free(kd_vocab *v);
int32_t kd_vocab_size(const kd_vocab *v);
/* The path (or name) the vocabulary was read under; messages about it name it. */
const char *kd_vocab_name(const kd_vocab *v);
/* Id of the token s[0..n), or -1. */
int32_t kd_vocab_find(const kd_vocab *v, const char *s, size_t n);
/* Token text of id (not NUL-terminated: *len bytes), or NULL when out of range. */
const char *kd_vocab_token(const kd_vocab *v, int32_t id, size_t *len);

typedef struct kd_tokenizer_opts {
    int lowercase;             /* 1 for uncased vocabularies */
    int strip_accents;         /* -1: follows lowercase (BERT's default) */
    int clean_text;            /* drop controls, map whitespace to ' ' */
    int handle_chinese_chars;  /* CJK ideographs as words */
    int max_chars_per_word;    /* longer words become [UNK]; BERT uses 100 */
} kd_tokenizer_opts;

/* The uncased BERT defaults: lowercase, strip accents, clean text, CJK words, 100 characters. */
kd_tokenizer_opts kd_tokenizer_opts_default(void);

typedef struct kd_tokenizer {
    kd_vocab *vocab;
    kd_tokenizer_opts opts;
    int strip;                              /* resolved strip_accents */
    int32_t unk_id, cls_id, sep_id, pad_id, mask_id;   /* -1 where absent */
    size_t max_piece, max_cont_piece;       /* longest token bytes, without and with the "##" prefix */
    int nspecial;
    int32_t special_id[5];
    const char *special_text[5];
    size_t special_len[5];
} kd_tokenizer;

/* Takes ownership of vocab (also on failure). Needs [UNK] in the vocabulary. */
kd_status kd_tokenizer_new(kd_vocab *vocab, const kd_tokenizer_opts *opts, kd_tokenizer **out);
/* kd_vocab_load + kd_tokenizer_new with the defaults and the given lower-casing. */
kd_status kd_tokenizer_load(const char *vocab_path, int lowercase, kd_tokenizer **out);
void kd_tokenizer_free(kd_tokenizer *t);

/* An encoding and the scratch space used to make it; reuse one per thread to avoid allocations. */
typedef struct kd_encoding {
    int32_t *ids;
    int32_t *type_ids;
    size_t len, cap;
    /* scratch */
    uint32_t *cps;
    size_t cps_cap;
    char *word;
    size_t word_cap;
    int32_t *second;
    size_t second_cap;
} kd_encoding;

void kd_encoding_init(kd_encoding *e);
void kd_encoding_free(kd_encoding *e);

/* Append the word-piece ids of text[0..len) (no [CLS]/[SEP]) to e (type id 0). */
kd_status kd_tokenize(const kd_tokenizer *t, const char *text, size_t len, kd_encoding *e);

/* e = [CLS] a [SEP]  or  [CLS] a [SEP] b [SEP] (b != NULL; type ids 0 then 1), truncated when
 * max_len > 0 so that the total, special tokens included, is at most max_len: a single text is cut at
 * the end; a pair longest-first (the shorter keeps its length if it fits in half, else each gets half,
 * the first max_len/2). max_len below 2 (single) or 3 (pair) is an error. */
kd_status kd_encode(const kd_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                    size_t max_len, kd_encoding *e);

/* Text of ids: tokens joined by spaces, "##" continuations glued to the previous token, and the
 * tokenization spaces before . , ? ! and in n't 'm 's 've 're removed (Hugging Face's
 * clean_up_tokenization). skip_special drops [CLS] [SEP] [PAD] [MASK] [UNK]... the special tokens.
 * Unknown ids are an error. Returns a malloc'd NUL-terminated string or NULL. */
char *kd_decode(const kd_tokenizer *t, const int32_t *ids, size_t n, int skip_special);

#endif
