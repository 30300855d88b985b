/* test/data/fuzz_tokenizer.c — libFuzzer target for the tokenizer: arbitrary bytes (split at the first
 * 0xFF 0xFE into a pair) are encoded, uncased and cased, with and without truncation, then decoded.
 * Checks: success, [CLS] first, [SEP] last, ids in range, length within max_len, type ids 0 then 1.
 * Uses ../shared's bert-base-uncased vocab when KD_SHARED points at it, else the demo vocab. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/demo_corpus.h"
#include "data/wordpiece.h"

static kd_tokenizer *tu, *tc;
static kd_encoding enc;

static kd_tokenizer *make(int lowercase)
{
    const char *shared = getenv("KD_SHARED");
    kd_tokenizer *t = NULL;
    if (shared) {
        char p[4096];
        snprintf(p, sizeof p, "%s/data/bert-base-uncased/vocab.txt", shared);
        if (kd_tokenizer_load(p, lowercase, &t) == KD_OK) return t;
    }
    size_t n;
    char *v = kd_demo_corpus_vocab(&n);
    kd_vocab *voc;
    KD_CHECK(v && kd_vocab_parse(v, n, "demo", &voc) == KD_OK);
    free(v);
    kd_tokenizer_opts o = kd_tokenizer_opts_default();
    o.lowercase = lowercase;
    KD_CHECK(kd_tokenizer_new(voc, &o, &t) == KD_OK);
    return t;
}

static void check(const kd_tokenizer *t, const kd_encoding *e, size_t max_len, int pair)
{
    KD_CHECK(e->len >= (size_t)(pair ? 3 : 2));
    KD_CHECK(!max_len || e->len <= max_len);
    KD_CHECK(e->ids[0] == t->cls_id && e->ids[e->len - 1] == t->sep_id);
    int seen_one = 0;
    for (size_t i = 0; i < e->len; i++) {
        KD_CHECK(e->ids[i] >= 0 && e->ids[i] < kd_vocab_size(t->vocab));
        KD_CHECK(e->type_ids[i] == 0 || (pair && e->type_ids[i] == 1));
        if (e->type_ids[i]) seen_one = 1;
        else KD_CHECK(!seen_one);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!tu) {
        tu = make(1);
        tc = make(0);
        kd_encoding_init(&enc);
    }
    const char *s = (const char *)data;
    size_t split = size;
    for (size_t i = 0; i + 1 < size; i++)
        if (data[i] == 0xFF && data[i + 1] == 0xFE) {
            split = i;
            break;
        }
    size_t max_len = size ? 3 + data[0] % 40 : 0;
    for (int k = 0; k < 2; k++) {
        const kd_tokenizer *t = k ? tc : tu;
        KD_CHECK(kd_encode(t, s, size, NULL, 0, 0, &enc) == KD_OK);
        check(t, &enc, 0, 0);
        char *text = kd_decode(t, enc.ids, enc.len, 1);
        KD_CHECK(text != NULL);
        free(text);
        if (split < size) {
            KD_CHECK(kd_encode(t, s, split, s + split + 2, size - split - 2, max_len, &enc) == KD_OK);
            check(t, &enc, max_len, 1);
        } else {
            KD_CHECK(kd_encode(t, s, size, NULL, 0, max_len, &enc) == KD_OK);
            check(t, &enc, max_len, 0);
        }
    }
    return 0;
}
