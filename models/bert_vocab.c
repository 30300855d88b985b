/* models/bert_vocab.c — a model cut to a subset of its vocabulary: the word-embedding rows of the kept ids,
 * in their order (data/vocab_prune.h says which ids a student keeps). */
#include <stdlib.h>
#include <string.h>

#include "engine/device.h"
#include "models/bert_internal.h"

kd_status kd_bert_keep_vocab(kd_bert *m, const int32_t *keep, int32_t n)
{
    int64_t V = m->cfg.vocab_size, H = m->cfg.hidden_size;
    int32_t pad = -1;
    for (int32_t i = 0; i < n; i++) {
        if (keep[i] < 0 || keep[i] >= V || (i && keep[i] <= keep[i - 1]))
            return kd_fail(KD_ERR_ARG, "bert: kept id %d (entry %d): expected ascending ids in [0, %lld)", (int)keep[i],
                           (int)i, (long long)V);
        if (keep[i] == m->cfg.pad_token_id) pad = i;
    }
    if (pad < 0) return kd_fail(KD_ERR_ARG, "bert: the kept vocabulary drops the padding token (id %d)", m->cfg.pad_token_id);
    float *all = malloc((size_t)(V * H) * sizeof *all), *rows = malloc((size_t)n * (size_t)H * sizeof *rows);
    kd_status st = all && rows ? kd_to_host(m->word, all) : kd_fail(KD_ERR_NOMEM, "bert: out of memory");
    kd_tensor *w = NULL;
    if (st == KD_OK) {
        for (int32_t i = 0; i < n; i++) memcpy(rows + (size_t)i * H, all + (size_t)keep[i] * H, (size_t)H * sizeof *rows);
        int64_t shape[2] = { n, H };
        w = kd_param_on(m->word->device, KD_F32, 2, shape, m->word->name);
        st = w ? kd_from_host(w, rows) : kd_last_status();
    }
    free(all);
    free(rows);
    if (st != KD_OK) {
        kd_tensor_free(w);
        return st;
    }
    for (size_t i = 0; i < m->n_params; i++)
        if (m->params[i] == m->word) m->params[i] = w;
    kd_tensor_free(m->word);
    m->word = w;
    m->cfg.vocab_size = n;
    m->cfg.pad_token_id = pad;
    return KD_OK;
}
