/* engine/safetensors.c — safetensors reader (mmap + validation of every entry) and F32 writer. The layout
 * is described in engine/safetensors.h. The host is assumed little-endian, as the format is. */
#include "engine/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/device.h"
#include "engine/fileio.h"
#include "engine/json.h"

/* A header longer than this is not a model file (Hugging Face's own reader caps it at 100 MB). */
#define ST_MAX_HEADER ((uint64_t)100 << 20)

size_t kd_st_dtype_size(const char *dt)
{
    static const struct { const char *name; size_t size; } tab[] = {
        { "F64", 8 }, { "F32", 4 }, { "F16", 2 }, { "BF16", 2 }, { "I64", 8 }, { "I32", 4 }, { "I16", 2 },
        { "I8", 1 },  { "U8", 1 },  { "BOOL", 1 }, { "U16", 2 }, { "U32", 4 }, { "U64", 8 },
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(dt, tab[i].name) == 0) return tab[i].size;
    return 0;
}

int64_t kd_st_numel(const kd_st_entry *e)
{
    int64_t n = 1;
    for (int d = 0; d < e->ndim; d++) n *= e->shape[d];
    return n;
}

const char *kd_st_shape_str(const kd_st_entry *e, char *buf, size_t n)
{
    size_t len = 0;
    if (n == 0) return buf;
    buf[0] = 0;
    len += (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < e->ndim && len < n; d++)
        len += (size_t)snprintf(buf + len, n - len, d ? ", %lld" : "%lld", (long long)e->shape[d]);
    if (len < n) snprintf(buf + len, n - len, "]");
    return buf;
}

float kd_bf16_to_f32(uint16_t h)
{
    uint32_t b = (uint32_t)h << 16;
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits; exponent 0 is subnormal (m * 2^-24). */
float kd_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff, b;
    if (e == 0x1f) {
        b = sign | 0x7f800000u | (m << 13);              /* Inf, NaN */
    } else if (e != 0) {
        b = sign | ((e + 112) << 23) | (m << 13);        /* 127 - 15 = 112 */
    } else if (m == 0) {
        b = sign;
    } else {
        float f = (float)m * 0x1p-24f;                    /* exact: m < 2^10 */
        memcpy(&b, &f, sizeof b);
        b |= sign;
    }
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

void kd_st_close(kd_safetensors *st)
{
    if (!st) return;
    for (size_t i = 0; i < st->count; i++) free(st->entries[i].name);
    free(st->entries);
    if (st->map) munmap((void *)st->map, st->map_len);
    free(st->path);
    free(st);
}

const kd_st_entry *kd_st_find(const kd_safetensors *st, const char *name)
{
    for (size_t i = 0; i < st->count; i++)
        if (strcmp(st->entries[i].name, name) == 0) return &st->entries[i];
    return NULL;
}

static int by_begin(const void *a, const void *b)
{
    const kd_st_entry *x = *(const kd_st_entry *const *)a, *y = *(const kd_st_entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

/* An integer JSON number in [0, 2^53] (the range a double-based writer keeps exact). */
static int json_uint(const kd_json *v, uint64_t *out)
{
    if (!v || v->type != KD_JSON_NUMBER || !v->is_integer || v->integer < 0) return 0;
    *out = (uint64_t)v->integer;
    return 1;
}

/* Check one header entry and fill e; the message names the tensor. */
static kd_status parse_entry(const char *path, const char *name, const kd_json *v, size_t data_len, kd_st_entry *e)
{
    if (v->type != KD_JSON_OBJECT)
        return kd_fail(KD_ERR_FORMAT, "%s: tensor '%s': header entry is not an object", path, name);
    const kd_json *dt = kd_json_get(v, "dtype"), *shape = kd_json_get(v, "shape"), *off = kd_json_get(v, "data_offsets");
    if (!dt || dt->type != KD_JSON_STRING || dt->string_len >= sizeof e->dtype)
        return kd_fail(KD_ERR_FORMAT, "%s: tensor '%s': expected a \"dtype\" string", path, name);
    snprintf(e->dtype, sizeof e->dtype, "%s", dt->string);
    size_t es = kd_st_dtype_size(e->dtype);
    if (es == 0) return kd_fail(KD_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", path, name, e->dtype);
    if (!shape || shape->type != KD_JSON_ARRAY || shape->count > KD_MAX_DIMS)
        return kd_fail(KD_ERR_FORMAT, "%s: tensor '%s': expected a \"shape\" array of at most %d sizes", path, name,
                       KD_MAX_DIMS);
    e->ndim = (int)shape->count;
    uint64_t numel = 1;
    for (size_t d = 0; d < shape->count; d++) {
        uint64_t s;
        if (!json_uint(shape->items[d], &s) || s > ((uint64_t)1 << 40))
            return kd_fail(KD_ERR_FORMAT, "%s: tensor '%s': shape entry %zu is not a size", path, name, d);
        e->shape[d] = (int64_t)s;
        numel = s == 0 ? 0 : (numel > UINT64_MAX / s ? UINT64_MAX : numel * s);
    }
    uint64_t b, en;
    if (!off || off->type != KD_JSON_ARRAY || off->count != 2 || !json_uint(off->items[0], &b) ||
        !json_uint(off->items[1], &en))
        return kd_fail(KD_ERR_FORMAT, "%s: tensor '%s': expected \"data_offsets\": [begin, end]", path, name);
    char sb[128];
    if (b > en || en > data_len)
        return kd_fail(KD_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] outside the data section of %zu bytes "
                       "(truncated file or a header that lies about offsets)",
                       path, name, (unsigned long long)b, (unsigned long long)en, data_len);
    if (numel > UINT64_MAX / es || en - b != numel * es)
        return kd_fail(KD_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, but %s %s needs %llu",
                       path, name, (unsigned long long)b, (unsigned long long)en, (unsigned long long)(en - b),
                       e->dtype, kd_st_shape_str(e, sb, sizeof sb), (unsigned long long)(numel * es));
    e->begin = b;
    e->end = en;
    return KD_OK;
}

kd_safetensors *kd_st_open(const char *path)
{
    kd_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        kd_fail(KD_ERR_NOMEM, "%s: out of memory", path);
        return NULL;
    }
    kd_json *h = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        kd_fail(KD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        kd_fail(KD_ERR_IO, "%s: not a regular file", path);
        close(fd);
        goto fail;
    }
    size_t len = (size_t)sb.st_size;
    if (len < 8) {
        kd_fail(KD_ERR_FORMAT, "%s: %zu bytes, too short for a safetensors file (8-byte header length)", path, len);
        close(fd);
        goto fail;
    }
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        kd_fail(KD_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
        goto fail;
    }
    st->map = map;
    st->map_len = len;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | st->map[i];
    if (hlen > len - 8 || hlen > ST_MAX_HEADER) {
        kd_fail(KD_ERR_FORMAT, "%s: header length %llu bytes, but only %zu bytes follow (truncated file?)", path,
                (unsigned long long)hlen, len - 8);
        goto fail;
    }
    st->data = st->map + 8 + hlen;
    st->data_len = len - 8 - (size_t)hlen;
    char err[160];
    h = kd_json_parse((const char *)st->map + 8, (size_t)hlen, err, sizeof err);
    if (!h) {
        kd_fail(KD_ERR_FORMAT, "%s: header is not valid JSON: %s", path, err);
        goto fail;
    }
    if (h->type != KD_JSON_OBJECT) {
        kd_fail(KD_ERR_FORMAT, "%s: header is not a JSON object", path);
        goto fail;
    }
    st->entries = calloc(h->count ? h->count : 1, sizeof *st->entries);
    if (!st->entries) {
        kd_fail(KD_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (size_t i = 0; i < h->count; i++) {
        if (strcmp(h->keys[i], "__metadata__") == 0) continue;
        kd_st_entry *e = &st->entries[st->count];
        if (parse_entry(path, h->keys[i], h->items[i], st->data_len, e) != KD_OK) goto fail;
        if (!(e->name = strdup(h->keys[i]))) {
            kd_fail(KD_ERR_NOMEM, "%s: out of memory", path);
            goto fail;
        }
        st->count++;
    }
    /* No two tensors may share bytes: a header that points them at each other lies about its offsets. */
    if (st->count > 1) {
        const kd_st_entry **order = malloc(st->count * sizeof *order);
        if (!order) {
            kd_fail(KD_ERR_NOMEM, "%s: out of memory", path);
            goto fail;
        }
        for (size_t i = 0; i < st->count; i++) order[i] = &st->entries[i];
        qsort(order, st->count, sizeof *order, by_begin);
        const kd_st_entry *far = order[0];   /* the entry reaching furthest so far */
        for (size_t i = 1; i < st->count; i++) {
            if (order[i]->end > order[i]->begin && order[i]->begin < far->end) {
                kd_fail(KD_ERR_FORMAT, "%s: tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap in the data section",
                        path, far->name, (unsigned long long)far->begin, (unsigned long long)far->end, order[i]->name,
                        (unsigned long long)order[i]->begin, (unsigned long long)order[i]->end);
                free(order);
                goto fail;
            }
            if (order[i]->end > far->end) far = order[i];
        }
        free(order);
    }
    kd_json_free(h);
    return st;
fail:
    kd_json_free(h);
    kd_st_close(st);
    return NULL;
}

kd_status kd_st_read_f32(const kd_safetensors *st, const kd_st_entry *e, float *dst)
{
    const unsigned char *src = st->data + e->begin;
    int64_t n = kd_st_numel(e);
    if (strcmp(e->dtype, "F32") == 0) {
        memcpy(dst, src, (size_t)n * 4);
    } else if (strcmp(e->dtype, "F16") == 0 || strcmp(e->dtype, "BF16") == 0) {
        int bf = e->dtype[0] == 'B';
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
            dst[i] = bf ? kd_bf16_to_f32(h) : kd_f16_to_f32(h);
        }
    } else if (strcmp(e->dtype, "F64") == 0) {
        for (int64_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, src + 8 * i, sizeof d);
            dst[i] = (float)d;
        }
    } else {
        return kd_fail(KD_ERR_DTYPE, "%s: tensor '%s' has dtype %s, expected F32, F16, BF16 or F64", st->path, e->name,
                       e->dtype);
    }
    return KD_OK;
}

kd_status kd_st_read_i8(const kd_safetensors *st, const kd_st_entry *e, int8_t *dst)
{
    if (strcmp(e->dtype, "I8") != 0)
        return kd_fail(KD_ERR_DTYPE, "%s: tensor '%s' has dtype %s, expected I8", st->path, e->name, e->dtype);
    memcpy(dst, st->data + e->begin, (size_t)kd_st_numel(e));
    return KD_OK;
}

/* Write t's elements as little-endian f32 in row-major order. */
static int write_f32(FILE *f, const kd_tensor *t)
{
    int64_t n = kd_numel(t);
    if (t->device != KD_CPU && t->dtype == KD_F32 && kd_is_contiguous(t)) {
        /* On a device: one copy back to the host, then the write. */
        float *h = malloc((size_t)(n ? n : 1) * 4);
        int ok = h && kd_to_host(t, h) == KD_OK && fwrite(h, 4, (size_t)n, f) == (size_t)n;
        free(h);
        return ok;
    }
    if (t->dtype == KD_F32 && kd_is_contiguous(t)) return fwrite(kd_data(t), 4, (size_t)n, f) == (size_t)n;
    float buf[1024];
    int64_t idx[KD_MAX_DIMS] = {0};
    size_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        buf[k++] = (float)kd_get(t, idx);
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
        if (k == 1024 || i == n - 1) {
            if (fwrite(buf, 4, k, f) != k) return 0;
            k = 0;
        }
    }
    return 1;
}

/* The header's opening and its "__metadata__" object (meta: n_meta key/value pairs; may be NULL). */
static void begin_header(kd_jw *w, const char *const *meta, size_t n_meta)
{
    kd_jw_init(w, 0);
    kd_jw_object_begin(w);
    if (!meta || !n_meta) return;
    kd_jw_key(w, "__metadata__");
    kd_jw_object_begin(w);
    for (size_t i = 0; i < n_meta; i++) {
        kd_jw_key(w, meta[2 * i]);
        kd_jw_string(w, meta[2 * i + 1]);
    }
    kd_jw_object_end(w);
}

/* One tensor's header entry: its dtype, shape and the `bytes` it takes from *off on (advanced past them). */
static void header_entry(kd_jw *w, const char *name, const char *dtype, int ndim, const int64_t *shape,
                         uint64_t bytes, uint64_t *off)
{
    kd_jw_key(w, name);
    kd_jw_object_begin(w);
    kd_jw_field_string(w, "dtype", dtype);
    kd_jw_key(w, "shape");
    kd_jw_array_begin(w);
    for (int d = 0; d < ndim; d++) kd_jw_int(w, shape[d]);
    kd_jw_array_end(w);
    kd_jw_key(w, "data_offsets");
    kd_jw_array_begin(w);
    kd_jw_int(w, (int64_t)*off);
    kd_jw_int(w, (int64_t)(*off + bytes));
    kd_jw_array_end(w);
    kd_jw_object_end(w);
    *off += bytes;
}

/* Open path's temporary file and write the 8-byte length and the JSON header w (freed here), padded with
 * spaces so the data section starts 8-byte aligned, as the reference writer does. */
static kd_status open_with_header(const char *path, kd_jw *w, kd_atomic_file *af)
{
    const char *text = kd_jw_text(w);
    if (!text || w->failed) {
        kd_jw_free(w);
        return kd_fail(KD_ERR_NOMEM, "%s: out of memory writing the header", path);
    }
    size_t hlen = strlen(text), padded = (hlen + 7) / 8 * 8;
    kd_status s = kd_atomic_open(af, path);
    if (s != KD_OK) {
        kd_jw_free(w);
        return s;
    }
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(le, 1, 8, af->f) == 8 && fwrite(text, 1, hlen, af->f) == hlen;
    for (size_t i = hlen; ok && i < padded; i++) ok = fputc(' ', af->f) != EOF;
    kd_jw_free(w);
    if (ok) return KD_OK;
    s = kd_fail(KD_ERR_IO, "%s: write failed: %s", af->tmp, strerror(errno));
    kd_atomic_abort(af);
    return s;
}

/* Commit the file when every write went through (ok), else remove it and say why. */
static kd_status finish(kd_atomic_file *af, int ok)
{
    if (ok) return kd_atomic_commit(af);
    kd_status s = kd_fail(KD_ERR_IO, "%s: write failed: %s", af->tmp, strerror(errno));
    kd_atomic_abort(af);
    return s;
}

kd_status kd_st_save(const char *path, kd_tensor *const *tensors, const char *const *names, size_t n,
                     const char *const *meta, size_t n_meta)
{
    kd_jw w;
    begin_header(&w, meta, n_meta);
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const kd_tensor *t = tensors[i];
        if (!t || (t->dtype != KD_F32 && t->dtype != KD_F64)) {
            kd_jw_free(&w);
            return kd_fail(KD_ERR_DTYPE, "%s: tensor %zu ('%s') is %s, expected f32 or f64", path, i,
                           names ? names[i] : t ? t->name : "(null)", t ? kd_dtype_name(t->dtype) : "NULL");
        }
        header_entry(&w, names ? names[i] : t->name, "F32", t->ndim, t->shape, (uint64_t)kd_numel(t) * 4, &off);
    }
    kd_jw_object_end(&w);
    kd_atomic_file af;
    kd_status s = open_with_header(path, &w, &af);
    if (s != KD_OK) return s;
    int ok = 1;
    for (size_t i = 0; ok && i < n; i++) ok = write_f32(af.f, tensors[i]);
    return finish(&af, ok);
}

kd_status kd_st_save_items(const char *path, const kd_st_item *items, size_t n, const char *const *meta, size_t n_meta)
{
    kd_jw w;
    begin_header(&w, meta, n_meta);
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const kd_st_item *t = &items[i];
        size_t es = strcmp(t->dtype, "F32") == 0 ? 4 : strcmp(t->dtype, "I8") == 0 ? 1 : 0;
        if (!es || !t->data) {
            kd_jw_free(&w);
            return kd_fail(KD_ERR_DTYPE, "%s: tensor '%s' is %s%s, expected F32 or I8 data", path, t->name, t->dtype,
                           t->data ? "" : " without data");
        }
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= (uint64_t)t->shape[d];
        header_entry(&w, t->name, t->dtype, t->ndim, t->shape, numel * es, &off);
    }
    kd_jw_object_end(&w);
    kd_atomic_file af;
    kd_status s = open_with_header(path, &w, &af);
    if (s != KD_OK) return s;
    int ok = 1;
    for (size_t i = 0; ok && i < n; i++) {
        size_t numel = 1, es = strcmp(items[i].dtype, "F32") == 0 ? 4 : 1;
        for (int d = 0; d < items[i].ndim; d++) numel *= (size_t)items[i].shape[d];
        ok = fwrite(items[i].data, es, numel, af.f) == numel;
    }
    return finish(&af, ok);
}
