/* data/utf8.h — UTF-8 decoding and validation (RFC 3629), shared by the tokenizer and the readers.
 *
 * Invalid input decodes as U+FFFD per "maximal subpart" (Unicode ch. 3, U+FFFD substitution), the same
 * rule Python's bytes.decode('utf-8', 'replace') follows: a truncated but well-begun sequence is one
 * U+FFFD, any other bad byte is one U+FFFD; overlongs, surrogates and > U+10FFFF are invalid. */
#ifndef KD_UTF8_H
#define KD_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define KD_UTF8_BAD 0xFFFFFFFFu

/* Decode the code point at s[0..n) (n >= 1); *used gets the bytes consumed (>= 1). Returns the code
 * point, or KD_UTF8_BAD for an invalid sequence (the caller substitutes U+FFFD or reports it). */
static inline uint32_t kd_utf8_next(const unsigned char *s, size_t n, size_t *used)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *used = 1;
        return c;
    }
    size_t need;
    uint32_t cp;
    unsigned lo = 0x80, hi = 0xBF;   /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        cp = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;          /* no overlongs */
        if (c == 0xED) hi = 0x9F;          /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        cp = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;          /* <= U+10FFFF */
    } else {
        *used = 1;
        return KD_UTF8_BAD;
    }
    size_t i = 1;
    for (; i <= need; i++) {
        if (i >= n) break;
        unsigned b = s[i];
        unsigned l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (b < l || b > h) break;
        cp = (cp << 6) | (b & 0x3F);
    }
    *used = i;
    return i == need + 1 ? cp : KD_UTF8_BAD;
}

/* Length of s[0..n) that is valid UTF-8: returns n when all of it is, else the offset of the first bad
 * sequence. */
static inline size_t kd_utf8_valid_prefix(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t used;
        if (kd_utf8_next(u + i, n - i, &used) == KD_UTF8_BAD) return i;
        i += used;
    }
    return n;
}

/* Append the UTF-8 form of cp (<= U+10FFFF, not a surrogate) to out; returns the byte count (1..4). */
static inline size_t kd_utf8_put(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

#endif
