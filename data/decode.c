/* data/decode.c — ids back to text, as Hugging Face's BertTokenizerFast.decode does by default:
 * tokens joined by ' ', a "##" piece glued to the one before, then clean_up_tokenization removes the
 * space before . ? ! , and inside " ' ", n't, 'm, 's, 've, 're. */
#include <stdlib.h>
#include <string.h>

#include "data/wordpiece.h"

static int is_special(const kd_tokenizer *t, int32_t id)
{
    for (int k = 0; k < t->nspecial; k++)
        if (t->special_id[k] == id) return 1;
    return 0;
}

/* In-place replacement of every `from` by the shorter or equal `to`. */
static size_t replace_all(char *s, size_t n, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), r = 0, w = 0;
    while (r < n) {
        if (n - r >= fl && memcmp(s + r, from, fl) == 0) {
            memmove(s + w, to, tl);
            w += tl;
            r += fl;
        } else {
            s[w++] = s[r++];
        }
    }
    return w;
}

char *kd_decode(const kd_tokenizer *t, const int32_t *ids, size_t n, int skip_special)
{
    size_t total = 1;
    for (size_t i = 0; i < n; i++) {
        size_t l;
        if (!kd_vocab_token(t->vocab, ids[i], &l)) {
            kd_fail(KD_ERR_INDEX, "decode: id %d at position %zu, expected 0..%d", (int)ids[i], i,
                    (int)kd_vocab_size(t->vocab) - 1);
            return NULL;
        }
        total += l + 1;
    }
    char *out = malloc(total);
    if (!out) {
        kd_fail(KD_ERR_NOMEM, "decode: out of memory");
        return NULL;
    }
    size_t w = 0;
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        if (skip_special && is_special(t, ids[i])) continue;
        size_t l;
        const char *s = kd_vocab_token(t->vocab, ids[i], &l);
        if (!first && l >= 2 && s[0] == '#' && s[1] == '#') {
            s += 2;
            l -= 2;
        } else if (!first) {
            out[w++] = ' ';
        }
        memcpy(out + w, s, l);
        w += l;
        first = 0;
    }
    static const char *const from[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're"};
    static const char *const to[] = {".", "?", "!", ",", "'", "n't", "'m", "'s", "'ve", "'re"};
    for (size_t k = 0; k < sizeof from / sizeof *from; k++) w = replace_all(out, w, from[k], to[k]);
    out[w] = '\0';
    return out;
}
