/* test/models/st_util.h — helpers of the checkpoint tests: a temporary directory, a small model config, a
 * two-row input and its logits, and a raw safetensors writer that lets a test choose every entry's name,
 * dtype, shape, bytes and offsets (to build BertModel-style, half-precision, truncated and lying files). */
#ifndef KD_TEST_ST_UTIL_H
#define KD_TEST_ST_UTIL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/autograd.h"
#include "engine/safetensors.h"
#include "engine/tensor.h"
#include "models/bert.h"

typedef struct st_raw {
    char name[128];
    char dtype[8];
    int ndim;
    int64_t shape[KD_MAX_DIMS];
    unsigned char *bytes;     /* owned */
    size_t nbytes;
    int64_t off_begin, off_end;  /* -1: computed; else written as given (a lying header) */
} st_raw;

/* A tiny BERT (2 layers, hidden 32, 2 heads, FFN 64, vocabulary 50, 16 positions, 3 labels). */
static inline kd_bert_config tiny_config(void)
{
    kd_bert_config c;
    kd_bert_preset("bert-tiny", &c);
    c.vocab_size = 50;
    c.hidden_size = 32;
    c.num_heads = 2;
    c.intermediate_size = 64;
    c.max_position = 16;
    c.num_labels = 3;
    snprintf(c.labels[0], sizeof c.labels[0], "neg");
    snprintf(c.labels[1], sizeof c.labels[1], "neutral");
    snprintf(c.labels[2], sizeof c.labels[2], "pos");
    return c;
}

/* Every entry of a safetensors file, with its bytes copied. NULL on error. */
static inline st_raw *st_raw_read(const char *path, size_t *n)
{
    kd_safetensors *st = kd_st_open(path);
    if (!st) return NULL;
    st_raw *r = calloc(st->count + 4, sizeof *r);   /* room for entries a test adds */
    for (size_t i = 0; r && i < st->count; i++) {
        const kd_st_entry *e = &st->entries[i];
        snprintf(r[i].name, sizeof r[i].name, "%s", e->name);
        snprintf(r[i].dtype, sizeof r[i].dtype, "%s", e->dtype);
        r[i].ndim = e->ndim;
        memcpy(r[i].shape, e->shape, sizeof e->shape);
        r[i].nbytes = (size_t)(e->end - e->begin);
        r[i].bytes = malloc(r[i].nbytes ? r[i].nbytes : 1);
        memcpy(r[i].bytes, st->data + e->begin, r[i].nbytes);
        r[i].off_begin = r[i].off_end = -1;
    }
    *n = st->count;
    kd_st_close(st);
    return r;
}

static inline void st_raw_free(st_raw *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++) free(r[i].bytes);
    free(r);
}

/* Write entries as a safetensors file; returns 0 on success. */
static inline int st_raw_write(const char *path, const st_raw *r, size_t n)
{
    size_t cap = 256 + n * 256, len = 0;
    char *h = malloc(cap);
    uint64_t off = 0;
    len += (size_t)snprintf(h + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(h + len, cap - len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", r[i].name, r[i].dtype);
        for (int d = 0; d < r[i].ndim; d++) len += (size_t)snprintf(h + len, cap - len, d ? ",%lld" : "%lld", (long long)r[i].shape[d]);
        uint64_t b = r[i].off_begin >= 0 ? (uint64_t)r[i].off_begin : off;
        uint64_t e = r[i].off_end >= 0 ? (uint64_t)r[i].off_end : off + r[i].nbytes;
        len += (size_t)snprintf(h + len, cap - len, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)b,
                                (unsigned long long)e);
        off += r[i].nbytes;
    }
    len += (size_t)snprintf(h + len, cap - len, "}");
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(h);
        return -1;
    }
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)((uint64_t)len >> (8 * i));
    int ok = fwrite(le, 1, 8, f) == 8 && fwrite(h, 1, len, f) == len;
    for (size_t i = 0; ok && i < n; i++) ok = fwrite(r[i].bytes, 1, r[i].nbytes, f) == r[i].nbytes;
    ok = fclose(f) == 0 && ok;
    free(h);
    return ok ? 0 : -1;
}

/* f32 -> binary16, round to nearest even for normals, flush below 2^-14 to zero (enough for tests: the
 * expected values are decoded from the same bits). bf16: the top half, rounded to nearest even. */
static inline uint16_t f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    int32_t e = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t m = x & 0x7fffffu;
    if (e <= 0) return (uint16_t)sign;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    uint32_t h = sign | ((uint32_t)e << 10) | (m >> 13), rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1))) h++;
    return (uint16_t)h;
}

static inline uint16_t f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

/* Convert an F32 entry in place to "F16" or "BF16". */
static inline void st_raw_to_half(st_raw *r, const char *dtype)
{
    size_t n = r->nbytes / 4;
    unsigned char *b = malloc(n ? n * 2 : 1);
    for (size_t i = 0; i < n; i++) {
        float f;
        memcpy(&f, r->bytes + 4 * i, 4);
        uint16_t h = strcmp(dtype, "BF16") == 0 ? f32_to_bf16(f) : f32_to_f16(f);
        b[2 * i] = (unsigned char)h;
        b[2 * i + 1] = (unsigned char)(h >> 8);
    }
    free(r->bytes);
    r->bytes = b;
    r->nbytes = n * 2;
    snprintf(r->dtype, sizeof r->dtype, "%s", dtype);
}

/* A fresh temporary directory (mkdtemp); the test removes it with rm_tree. */
static inline int make_tmpdir(char *buf, size_t n)
{
    const char *t = getenv("TMPDIR");
    snprintf(buf, n, "%s/kd-models-XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(buf) ? 0 : -1;
}

static inline void rm_tree(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
}

static inline int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fputs(text, f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* The two-row input of the model tests (row 2 padded after 3 tokens) and its eval-mode logits [2, labels]
 * into out; returns the count, 0 on failure. */
static const int32_t IDS[2 * 7] = { 2, 17, 33, 5, 9, 3, 0, 2, 44, 3, 0, 0, 0, 0 };
static const int32_t MASK[2 * 7] = { 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0 };
static const int32_t TYPES[2 * 7] = { 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0 };

static inline int logits_of(kd_bert *m, double *out)
{
    kd_bert_input in = { 2, 7, IDS, TYPES, MASK };
    int prev = kd_set_grad_enabled(0);
    kd_tensor *z = kd_bert_logits(m, &in);
    kd_set_grad_enabled(prev);
    int n = 0;
    if (z)
        for (int64_t i = 0; i < kd_numel(z); i++) out[n++] = ((const float *)kd_data(z))[i];
    kd_arena_reset();
    return n;
}

/* The last error's message contains every one of the NULL-terminated strings. */
static inline int st_error_says(const char *first, ...)
{
    const char *msg = kd_last_error();
    va_list ap;
    va_start(ap, first);
    int ok = 1;
    for (const char *s = first; s; s = va_arg(ap, const char *)) ok &= strstr(msg, s) != NULL;
    va_end(ap);
    return ok;
}

#endif
