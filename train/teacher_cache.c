/* train/teacher_cache.c — the teacher-logits cache file: magic "KDTCACHE", version 1, key, rows, cols,
 * then rows * cols little-endian f32 (see teacher_cache.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/device.h"
#include "engine/fileio.h"
#include "train/evaluate.h"
#include "train/teacher_cache.h"

static const char MAGIC[8] = { 'K', 'D', 'T', 'C', 'A', 'C', 'H', 'E' };

uint64_t kd_teacher_cache_key(kd_bert *teacher, const kd_tokenizer *tok, const kd_dataset *d, int max_len)
{
    uint64_t h = KD_FNV_OFFSET;
    size_t np;
    kd_tensor **ps = kd_bert_parameters(teacher, &np);
    for (size_t i = 0; i < np; i++) {
        h = kd_fnv1a(h, ps[i]->name, strlen(ps[i]->name) + 1);
        size_t bytes = (size_t)kd_numel(ps[i]) * kd_dtype_size(ps[i]->dtype);
        /* Hashed from a host copy, wherever the parameters are. */
        void *tmp = malloc(bytes ? bytes : 1);
        if (tmp && kd_to_host(ps[i], tmp) == KD_OK) h = kd_fnv1a(h, tmp, bytes);
        else h = kd_fnv1a(h, "unreadable", 10);
        free(tmp);
    }
    for (int32_t id = 0; id < kd_vocab_size(tok->vocab); id++) {
        size_t n;
        const char *s = kd_vocab_token(tok->vocab, id, &n);
        h = kd_fnv1a(h, s, n);
        h = kd_fnv1a(h, "\n", 1);
    }
    const int how[4] = { tok->opts.lowercase, tok->strip, tok->opts.handle_chinese_chars, tok->opts.max_chars_per_word };
    h = kd_fnv1a(h, how, sizeof how);
    h = kd_fnv1a(h, &max_len, sizeof max_len);
    return kd_dataset_fingerprint(h, d);
}

kd_status kd_teacher_cache_get(const char *path, kd_bert *teacher, const kd_dataset *d, const kd_tokenizer *tok,
                               int max_len, int batch_size, int progress_tty, int quiet, float **out, int *cached)
{
    int c = kd_bert_get_config(teacher)->num_labels;
    uint64_t key = kd_teacher_cache_key(teacher, tok, d, max_len);
    size_t count = d->n * (size_t)c;
    float *z = malloc((count ? count : 1) * sizeof *z);
    *out = NULL;
    *cached = 0;
    if (!z) return kd_fail(KD_ERR_NOMEM, "teacher cache: out of memory for %zu logits", count);
    FILE *f = fopen(path, "rb");
    if (f) {
        char magic[8];
        uint64_t hdr[4];
        int ok = fread(magic, 1, 8, f) == 8 && memcmp(magic, MAGIC, 8) == 0 && fread(hdr, sizeof hdr, 1, f) == 1;
        if (ok && hdr[0] == 1 && hdr[1] == key && hdr[2] == d->n && hdr[3] == (uint64_t)c &&
            fread(z, sizeof *z, count, f) == count) {
            fclose(f);
            *out = z;
            *cached = 1;
            return KD_OK;
        }
        fclose(f);
        fprintf(stderr, "kd: %s was made for another teacher, tokenizer or data (key mismatch): not used, recomputing\n",
                path);
    }
    kd_progress prog;
    kd_progress_pass(&prog, stderr, progress_tty, quiet, "teacher logits", "examples", (int64_t)d->n, 1);
    kd_status st = kd_model_logits(teacher, d, tok, max_len, batch_size, z, &prog);
    kd_progress_end(&prog);
    if (st != KD_OK) {
        free(z);
        return st;
    }
    kd_atomic_file af;
    if ((st = kd_atomic_open(&af, path)) != KD_OK) {
        free(z);
        return st;
    }
    uint64_t hdr[4] = { 1, key, d->n, (uint64_t)c };
    if (fwrite(MAGIC, 1, 8, af.f) != 8 || fwrite(hdr, sizeof hdr, 1, af.f) != 1 || fwrite(z, sizeof *z, count, af.f) != count) {
        int e = errno;
        kd_atomic_abort(&af);
        free(z);
        return kd_fail(KD_ERR_IO, "%s: writing the teacher cache failed: %s", path, strerror(e));
    }
    if ((st = kd_atomic_commit(&af)) != KD_OK) {
        free(z);
        return st;
    }
    *out = z;
    return KD_OK;
}
