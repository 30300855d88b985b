/* test/fuzz/fuzz_seeds.c — the starting corpus of every file-format fuzz target, written by kd itself into
 * OUT/<target>/: a checkpoint of fuzz_common.h's small model (config.json, model.safetensors, vocab.txt,
 * tokenizer_config.json, trainer_state.json with histories and a confusion matrix, optimizer.bin), safetensors
 * files of every float dtype and an integer one, and a shard index for the st_index target's two shards.
 *     fuzz_seeds OUT */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/demo_corpus.h"
#include "engine/adamw.h"
#include "fuzz_common.h"
#include "train/checkpoint.h"

static void sub(char *buf, size_t n, const char *out, const char *what)
{
    snprintf(buf, n, "%s/%s", out, what);
    KD_CHECK(mkdir(buf, 0755) == 0 || access(buf, W_OK) == 0);
}

static void copy(const char *from, const char *to)
{
    FILE *f = fopen(from, "rb");
    KD_CHECK(f != NULL);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    fuzz_put(to, buf, n);
}

/* A safetensors file written byte by byte: header JSON, then `data`. */
static void raw_st(const char *path, const char *header, const void *data, size_t n)
{
    size_t h = strlen(header);
    unsigned char *b = malloc(8 + h + n);
    KD_CHECK(b != NULL);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    memcpy(b + 8 + h, data, n);
    fuzz_put(path, b, 8 + h + n);
    free(b);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds OUT\n");
        return 2;
    }
    const char *out = argv[1];
    KD_CHECK(mkdir(out, 0755) == 0 || access(out, W_OK) == 0);
    char d[600], p[700], q[700];

    /* The small model's whole checkpoint, as a run writes it. */
    sub(d, sizeof d, out, "checkpoint");
    size_t vn;
    char *vocab = kd_demo_corpus_vocab(&vn);
    KD_CHECK(vocab != NULL);
    snprintf(p, sizeof p, "%s/demo_vocab.txt", out);
    fuzz_put(p, vocab, vn);
    kd_bert_config c = fuzz_small_config();
    kd_bert *m = kd_bert_new(&c, 7);
    KD_CHECK(m != NULL);
    size_t np;
    kd_tensor **params = kd_bert_parameters(m, &np);
    kd_adamw_config ac = kd_adamw_defaults();
    kd_adamw *opt = kd_adamw_new(params, np, &ac);
    KD_CHECK(opt != NULL);
    opt->step = 12;
    kd_train_state s;
    memset(&s, 0, sizeof s);
    s.global_step = 12;
    s.total_steps = 40;
    s.epoch = 1;
    s.next_batch = 2;
    s.seed = 42;
    s.best_accuracy = 0.75;
    s.best_epoch = 0;
    s.train_seconds = 3.5;
    s.teacher_accuracy = -1;
    s.samples = 96;
    snprintf(s.recipe, sizeof s.recipe, "lr=5e-05 alpha=0.5 T=2 batch=8 data=00ff");
    for (int i = 1; i <= 3; i++) {
        KD_CHECK(kd_series_push(&s.loss, 4.0 * i, 0.7 / i) == KD_OK);
        KD_CHECK(kd_series_push(&s.parts[0], 4.0 * i, 0.3 / i) == KD_OK);
    }
    KD_CHECK(kd_series_push(&s.dev, 6, 0.75) == KD_OK);
    kd_epoch_record e = { 1, 6, 0.75, 0.7, 0.72, 0.5, 0.6, 2.0 };
    KD_CHECK(kd_train_state_push_epoch(&s, &e) == KD_OK);
    KD_CHECK(kd_train_state_set_confusion(&s, (const int64_t[]){ 5, 1, 2, 4 }, 2) == KD_OK);
    kd_checkpoint_tokenizer tok = { p, kd_tokenizer_opts_default(), 16 };
    KD_CHECK(kd_checkpoint_save(d, m, &tok, opt, &s) == KD_OK);
    kd_train_state_free(&s);

    static const struct { const char *target, *file; } from_ckpt[] = {
        { "safetensors", "model.safetensors" }, { "config", "config.json" },
        { "tok_config", "tokenizer_config.json" }, { "vocab", "vocab.txt" },
        { "train_state", "trainer_state.json" }, { "optimizer", "optimizer.bin" },
    };
    for (size_t i = 0; i < sizeof from_ckpt / sizeof *from_ckpt; i++) {
        char t[600];
        sub(t, sizeof t, out, from_ckpt[i].target);
        snprintf(p, sizeof p, "%s/%s", d, from_ckpt[i].file);
        snprintf(q, sizeof q, "%s/seed_%s", t, from_ckpt[i].file);
        copy(p, q);
    }

    /* Every dtype the reader converts, an integer one it only maps, metadata, a scalar and an empty tensor. */
    sub(d, sizeof d, out, "safetensors");
    static const unsigned char bytes[64] = { 0, 0, 128, 63, 0, 0, 0, 192, 0, 60, 0, 188, 128, 63, 0, 64 };
    snprintf(p, sizeof p, "%s/seed_dtypes.safetensors", d);
    raw_st(p,
           "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
           "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]},"
           "\"c\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[12,16]},"
           "\"d\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[16,24]},"
           "\"e\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[24,32]},"
           "\"f\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[32,32]}}",
           bytes, 32);

    sub(d, sizeof d, out, "st_index");
    static const char index[] = "{\"metadata\": {\"total_size\": 32}, \"weight_map\": {\"x\": \"a.safetensors\", "
                                "\"y\": \"b.safetensors\", \"z\": \"b.safetensors\"}}\n";
    snprintf(p, sizeof p, "%s/seed_index.json", d);
    fuzz_put(p, index, sizeof index - 1);

    sub(d, sizeof d, out, "tok_config");
    static const char tc[] = "{\"do_lower_case\": false, \"strip_accents\": null, \"tokenize_chinese_chars\": true, "
                             "\"tokenizer_class\": \"BertTokenizerFast\", \"unk_token\": \"[UNK]\", "
                             "\"model_max_length\": 512}";
    snprintf(p, sizeof p, "%s/seed_cased.json", d);
    fuzz_put(p, tc, sizeof tc - 1);

    free(vocab);
    kd_adamw_free(opt);
    kd_bert_free(m);
    printf("fuzz_seeds: wrote the seeds of safetensors, st_index, config, tok_config, vocab, train_state, optimizer "
           "under %s\n", out);
    return 0;
}
