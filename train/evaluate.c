/* train/evaluate.c — batched inference over a data set and metrics from logits (see evaluate.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/batch.h"
#include "engine/autograd.h"
#include "engine/device.h"
#include "train/evaluate.h"

kd_status kd_model_logits(kd_bert *m, const kd_dataset *d, const kd_tokenizer *tok, int max_len, int batch_size,
                          float *out, kd_progress *prog)
{
    const kd_bert_config *cfg = kd_bert_get_config(m);
    int c = cfg->num_labels;
    kd_batcher_opts o = kd_batcher_opts_default();
    o.batch_size = batch_size;
    o.max_len = max_len;
    o.shuffle = 0;
    kd_batcher *b;
    kd_status st = kd_batcher_new(d, tok, &o, &b);
    if (st != KD_OK) return st;
    kd_batch batch;
    kd_batch_init(&batch);
    kd_bert_set_training(m, 0);
    int prev = kd_set_grad_enabled(0);
    /* The model runs where its parameters are; logits come back to the host batch by batch. */
    float *host = malloc((size_t)batch_size * (size_t)c * sizeof *host);
    if (!host) st = kd_fail(KD_ERR_NOMEM, "evaluate: out of memory");
    kd_batcher_start_epoch(b, 0);
    int r = 0;
    while (st == KD_OK && (r = kd_batcher_next(b, &batch)) == 1) {
        kd_bert_input in = { .batch = batch.batch, .seq = batch.len, .ids = batch.ids, .type_ids = batch.type_ids,
                             .mask = batch.mask };
        kd_tensor *z = kd_bert_logits(m, &in);
        if (!z) {
            st = kd_last_status();
            break;
        }
        if ((st = kd_to_host(z, host)) != KD_OK) break;
        for (int32_t i = 0; i < batch.batch; i++)
            memcpy(out + batch.index[i] * (size_t)c, host + (size_t)i * (size_t)c, (size_t)c * sizeof(float));
        kd_arena_reset();
        kd_progress_add(prog, batch.batch);
    }
    if (st == KD_OK && r < 0) st = kd_last_status();
    kd_arena_reset();
    free(host);
    kd_set_grad_enabled(prev);
    kd_batch_free(&batch);
    kd_batcher_free(b);
    return st;
}

void kd_softmax_rows(const float *logits, size_t n, int c, double *probs)
{
    for (size_t i = 0; i < n; i++) {
        const float *z = logits + i * (size_t)c;
        double mx = -INFINITY, s = 0.0;
        for (int j = 0; j < c; j++) mx = fmax(mx, z[j]);
        for (int j = 0; j < c; j++) s += (probs[i * (size_t)c + (size_t)j] = exp(z[j] - mx));
        for (int j = 0; j < c; j++) probs[i * (size_t)c + (size_t)j] /= s;
    }
}

kd_status kd_metrics_from_logits(const float *logits, const int32_t *labels, size_t n, int num_labels, kd_metrics *m)
{
    kd_metrics_reset(m);
    double loss = 0.0;
    for (size_t i = 0; i < n; i++) {
        const float *z = logits + i * (size_t)num_labels;
        int best = 0;
        double mx = z[0], s = 0.0;
        for (int j = 1; j < num_labels; j++)
            if (z[j] > z[best]) best = j;
        mx = z[best];
        for (int j = 0; j < num_labels; j++) s += exp(z[j] - mx);
        if (labels[i] < 0 || labels[i] >= num_labels)
            return kd_fail(KD_ERR_INDEX, "metrics: label %d of example %zu is outside the model's %d labels", labels[i],
                           i, num_labels);
        loss += mx + log(s) - z[labels[i]];
        kd_status st = kd_metrics_add(m, labels[i], best);
        if (st != KD_OK) return st;
    }
    kd_metrics_finish(m);
    m->loss = n ? loss / (double)n : 0.0;
    return KD_OK;
}
