/* test/data/test_vocab_prune.c — a pruned vocabulary: on SST-2 (train and dev) with bert-base-uncased's
 * vocabulary, every sentence gives the same word pieces (as text) with the kept vocabulary as with the
 * full one; the special tokens and every single-character piece are kept; unseen words split into kept
 * pieces without [UNK] where the full vocabulary manages without it. Skips (77) without ../shared. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/vocab_prune.h"
#include "test/testutil.h"

static int same_pieces(const kd_tokenizer *a, const kd_tokenizer *b, const char *text, size_t len, kd_encoding *ea,
                       kd_encoding *eb)
{
    ea->len = eb->len = 0;
    if (kd_tokenize(a, text, len, ea) != KD_OK || kd_tokenize(b, text, len, eb) != KD_OK || ea->len != eb->len) return 0;
    for (size_t j = 0; j < ea->len; j++) {
        size_t la, lb;
        const char *ta = kd_vocab_token(a->vocab, ea->ids[j], &la), *tb = kd_vocab_token(b->vocab, eb->ids[j], &lb);
        if (la != lb || memcmp(ta, tb, la) != 0) return 0;
    }
    return 1;
}

int main(void)
{
    const char *shared = kd_test_shared_dir();
    if (!shared) {
        printf("SKIP: no shared data directory\n");
        return KD_TEST_SKIP;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/data/bert-base-uncased/vocab.txt", shared);
    kd_tokenizer *full, *small = NULL;
    if (kd_tokenizer_load(path, 1, &full) != KD_OK) {
        fprintf(stderr, "%s\n", kd_last_error());
        return 1;
    }
    kd_dataset train, dev;
    snprintf(path, sizeof path, "%s/data/sst2/train.tsv", shared);
    CHECK(kd_dataset_load(path, NULL, &train) == KD_OK, "%s", kd_last_error());
    snprintf(path, sizeof path, "%s/data/sst2/dev.tsv", shared);
    CHECK(kd_dataset_load(path, NULL, &dev) == KD_OK, "%s", kd_last_error());
    const kd_dataset *sets[3] = { &train, NULL, &dev };
    int32_t *keep, n;
    CHECK(kd_vocab_prune(full, sets, 3, &keep, &n) == KD_OK, "prune: %s", kd_last_error());
    size_t len;
    char *text = kd_vocab_subset_text(full->vocab, keep, n, &len);
    kd_vocab *v;
    CHECK(text && kd_vocab_parse(text, len, "pruned", &v) == KD_OK && kd_tokenizer_new(v, &full->opts, &small) == KD_OK,
          "pruned tokenizer: %s", kd_last_error());
    printf("kept %d of %d pieces\n", (int)n, (int)kd_vocab_size(full->vocab));
    CHECK(n < kd_vocab_size(full->vocab) / 2, "fewer than half the pieces are kept (%d)", (int)n);
    CHECK(small->pad_id == 0 && small->unk_id >= 0 && small->cls_id >= 0 && small->sep_id >= 0 && small->mask_id >= 0,
          "special tokens kept");
    for (int32_t i = 0; i < n; i++)
        CHECK(i == 0 || keep[i] > keep[i - 1], "kept ids ascend");

    kd_encoding ea, eb;
    kd_encoding_init(&ea);
    kd_encoding_init(&eb);
    size_t bad = 0, checked = 0;
    for (int s = 0; s < 3; s++)
        for (size_t i = 0; sets[s] && i < sets[s]->n; i++, checked++)
            if (!same_pieces(full, small, sets[s]->text[i], sets[s]->text_len[i], &ea, &eb) && bad++ < 5)
                fprintf(stderr, "FAIL: '%s' tokenizes differently\n", sets[s]->text[i]);
    CHECK(bad == 0, "%zu of %zu sentences tokenize differently", bad, checked);
    printf("%zu sentences: identical pieces with both vocabularies\n", checked);

    /* Single characters, with and without ##, all kept: a word the text never had still splits. */
    int singles = 0;
    for (int32_t id = 0; id < kd_vocab_size(full->vocab); id++) {
        size_t l;
        const char *t = kd_vocab_token(full->vocab, id, &l);
        int one = (l == 1) || (l == 3 && t[0] == '#' && t[1] == '#');
        if (one) singles++;
        if (one) CHECK(kd_vocab_find(small->vocab, t, l) >= 0, "single-character piece '%.*s' kept", (int)l, t);
    }
    printf("%d one-byte pieces (with and without ##) kept\n", singles);
    const char *unseen = "zyxwvut qwxz";
    ea.len = eb.len = 0;
    CHECK(kd_tokenize(small, unseen, strlen(unseen), &eb) == KD_OK, "unseen text");
    for (size_t j = 0; j < eb.len; j++) CHECK(eb.ids[j] != small->unk_id, "unseen words split without [UNK]");

    kd_encoding_free(&ea);
    kd_encoding_free(&eb);
    free(text);
    free(keep);
    kd_tokenizer_free(small);
    kd_tokenizer_free(full);
    kd_dataset_free(&train);
    kd_dataset_free(&dev);
    return kd_test_finish("test_vocab_prune");
}
