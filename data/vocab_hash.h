/* data/vocab_hash.h — the vocabulary's hash (FNV-1a 64), incremental so "##" + piece can be hashed
 * without building the string, and the lookup that takes a prefix and a piece. */
#ifndef KD_VOCAB_HASH_H
#define KD_VOCAB_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "data/wordpiece.h"

#define KD_VOCAB_HASH_SEED 0xcbf29ce484222325ull

static inline uint64_t kd_vocab_hash(uint64_t h, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++) h = (h ^ u[i]) * 0x100000001b3ull;
    return h;
}

/* Id of prefix[0..np) + s[0..n), whose hash is h, or -1. */
int32_t kd_vocab_find2(const kd_vocab *v, uint64_t h, const char *prefix, size_t np, const char *s, size_t n);

#endif
