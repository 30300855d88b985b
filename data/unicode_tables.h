/* data/unicode_tables.h — per-code-point properties for the BERT tokenizer, generated into
 * data/unicode_tables.c by data/gen_unicode_tables.py from the Unicode Character Database.
 *
 * A two-stage lookup: kd_uc_stage1[cp >> 8] picks a block of 256 entries in kd_uc_stage2, whose entry
 * indexes kd_uc_records. Categories are those of the reference tokenizer (see data/unicode_compat.txt). */
#ifndef KD_UNICODE_TABLES_H
#define KD_UNICODE_TABLES_H

#include <stdint.h>

enum {
    KD_UC_REMOVE = 1,   /* dropped by clean-text: NUL, U+FFFD, Cc/Cf/Co/Cs except \t \n \r */
    KD_UC_SPACE = 2,    /* clean-text maps it to ' ': \t \n \r and White_Space */
    KD_UC_WS = 4,       /* White_Space: the pre-tokenizer splits on it */
    KD_UC_PUNCT = 8,    /* ASCII punctuation/symbols or a P* category: a word of its own */
    KD_UC_MN = 16,      /* nonspacing mark (Mn): removed when stripping accents */
    KD_UC_CJK = 32,     /* CJK ideograph: surrounded by spaces */
    KD_UC_LOWER2 = 64   /* U+0130: lower-cases to U+0069 U+0307 */
};

typedef struct kd_uc_record {
    uint8_t flags;
    uint8_t ccc;            /* canonical combining class */
    uint16_t decomp_off;    /* full canonical decomposition: kd_uc_decomp_pool[off .. off+len) */
    uint8_t decomp_len;     /* 0: the character is its own decomposition */
    int32_t lower_delta;    /* simple lower-case mapping: cp + delta */
} kd_uc_record;

extern const kd_uc_record kd_uc_records[];
extern const uint32_t kd_uc_decomp_pool[];
extern const uint16_t kd_uc_stage1[];
extern const uint16_t kd_uc_stage2[];

static inline const kd_uc_record *kd_uc_lookup(uint32_t cp)
{
    if (cp >= 0x110000u) cp = 0xFFFDu;
    return &kd_uc_records[kd_uc_stage2[((uint32_t)kd_uc_stage1[cp >> 8] << 8) | (cp & 0xFFu)]];
}

#endif
