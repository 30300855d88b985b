/* test/models/bert_export.c — writes a kd checkpoint with random weights, a padded batch and kd's logits on
 * it into a directory, for check_torch_load.py to load in PyTorch and compare. Usage: bert_export DIR */
#include <stdint.h>
#include <stdio.h>

#include "engine/backend.h"
#include "engine/ops.h"
#include "models/bert.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    kd_bert_config c;
    kd_bert_preset("bert-tiny", &c);
    c.vocab_size = 300;
    c.hidden_size = 64;
    c.num_heads = 4;
    c.intermediate_size = 96;
    c.max_position = 32;
    c.num_labels = 3;
    snprintf(c.labels[0], sizeof c.labels[0], "negative");
    snprintf(c.labels[1], sizeof c.labels[1], "neutral");
    snprintf(c.labels[2], sizeof c.labels[2], "positive");
    /* Larger weights than BERT's 0.02 so attention is far from uniform and the check has teeth. */
    c.initializer_range = 0.2;
    kd_bert *m = kd_bert_new(&c, 77);
    if (!m || kd_bert_save(m, argv[1]) != KD_OK) {
        fprintf(stderr, "bert_export: %s\n", kd_last_error());
        return 1;
    }
    enum { B = 3, T = 9 };
    int32_t ids[B * T], mask[B * T], types[B * T];
    const int len[B] = { 9, 5, 2 };
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            ids[b * T + t] = t < len[b] ? (t == 0 ? 101 % c.vocab_size : (b * 37 + t * 11) % c.vocab_size) : 0;
            mask[b * T + t] = t < len[b];
            types[b * T + t] = b == 0 && t >= 5;
        }
    kd_set_grad_enabled(0);
    kd_bert_input in = { B, T, ids, types, mask };
    kd_tensor *z = kd_bert_logits(m, &in);
    char path[4096];
    snprintf(path, sizeof path, "%s/batch.bin", argv[1]);
    FILE *f = fopen(path, "wb");
    int ok = z && f;
    if (ok) {
        int32_t bt[2] = { B, T };
        ok = fwrite(bt, 4, 2, f) == 2 && fwrite(ids, 4, B * T, f) == B * T && fwrite(mask, 4, B * T, f) == B * T &&
             fwrite(types, 4, B * T, f) == B * T && fwrite(kd_data(z), 4, (size_t)kd_numel(z), f) == (size_t)kd_numel(z);
    }
    if (f) ok = fclose(f) == 0 && ok;
    if (!ok) fprintf(stderr, "bert_export: %s\n", z ? "cannot write batch.bin" : kd_last_error());
    kd_arena_reset();
    kd_bert_free(m);
    kd_shutdown();
    return ok ? 0 : 1;
}
