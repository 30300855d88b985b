/* train/transfer_set.c — the transfer set and the pruned student vocabulary (see transfer_set.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/vocab_prune.h"
#include "engine/fileio.h"
#include "train/transfer_set.h"

kd_status kd_transfer_build(const kd_transfer_opts *o, const kd_dataset *train, kd_dataset *out)
{
    memset(out, 0, sizeof *out);
    kd_status st = KD_OK;
    for (int i = 0; i < o->npaths && st == KD_OK; i++) {
        kd_dataset more;
        size_t kept = 0, read = 0;
        st = kd_dataset_load_unlabelled(o->paths[i], &more);
        read = more.n;
        if (st == KD_OK) st = kd_transfer_add(out, &more, train, &kept);
        if (st == KD_OK && !o->quiet)
            fprintf(stderr, "transfer: %s: %zu texts, %zu kept (the rest repeat a labelled or an earlier text)\n",
                    o->paths[i], read, kept);
    }
    if (st == KD_OK && o->augment.variants > 0) {
        kd_dataset var;
        char path[PATH_MAX + 32];
        size_t kept = 0, made = 0;
        snprintf(path, sizeof path, "%s/augmented.txt", o->out_dir);
        st = kd_augment(train, &o->augment, &var);
        made = var.n;
        if (st == KD_OK && o->out_dir) st = kd_dataset_write_texts(&var, path);
        if (st == KD_OK) st = kd_transfer_add(out, &var, train, &kept);
        else kd_dataset_free(&var);
        if (st == KD_OK && !o->quiet)
            fprintf(stderr, "augment: %zu variants of %zu sentences (%s), %zu kept after dropping repeats\n", made,
                    train->n, path, kept);
    }
    if (st != KD_OK) kd_dataset_free(out);
    return st;
}

kd_status kd_student_prune_vocab(kd_bert *student, const kd_tokenizer *tok, const kd_dataset *const *sets, int nsets,
                                 const char *vocab_path, kd_tokenizer **stok)
{
    *stok = NULL;
    int32_t *keep = NULL, n = 0;
    size_t len = 0;
    kd_status st = kd_vocab_prune(tok, sets, nsets, &keep, &n);
    char *text = st == KD_OK ? kd_vocab_subset_text(tok->vocab, keep, n, &len) : NULL;
    if (st == KD_OK && !text) st = kd_last_status();
    kd_vocab *v = NULL;
    if (st == KD_OK) st = kd_write_file_atomic(vocab_path, text, len);
    if (st == KD_OK) st = kd_vocab_parse(text, len, vocab_path, &v);
    if (st == KD_OK) st = kd_tokenizer_new(v, &tok->opts, stok);
    if (st == KD_OK) st = kd_bert_keep_vocab(student, keep, n);
    if (st != KD_OK && *stok) {
        kd_tokenizer_free(*stok);
        *stok = NULL;
    }
    free(text);
    free(keep);
    return st;
}
