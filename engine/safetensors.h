/* engine/safetensors.h — read and write the safetensors format (Hugging Face's model.safetensors).
 *
 * The format: an 8-byte little-endian header length N, N bytes of JSON mapping each tensor name to
 * {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the data section that follows; an optional
 * "__metadata__" object of strings), then the raw little-endian data. Reading maps the file and checks
 * every entry against the file before anything is used (truncated files and headers that lie about offsets
 * are errors naming the tensor); writing stores F32 through a temporary name renamed into place. */
#ifndef KD_SAFETENSORS_H
#define KD_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/tensor.h"

typedef struct kd_st_entry {
    char *name;
    char dtype[8];            /* as in the file: "F32", "F16", "BF16", "F64", "I64", "I32", ... */
    int ndim;
    int64_t shape[KD_MAX_DIMS];
    uint64_t begin, end;      /* byte range in the data section */
} kd_st_entry;

typedef struct kd_safetensors {
    char *path;
    const unsigned char *map; /* the whole file, mapped read-only */
    size_t map_len;
    const unsigned char *data;/* the data section */
    size_t data_len;
    kd_st_entry *entries;     /* in header order */
    size_t count;
} kd_safetensors;

/* Open and validate path. NULL with the error set (KD_ERR_IO, KD_ERR_FORMAT) on failure. */
kd_safetensors *kd_st_open(const char *path);
void kd_st_close(kd_safetensors *st);
/* The entry named `name`, or NULL. */
const kd_st_entry *kd_st_find(const kd_safetensors *st, const char *name);
/* Bytes per element of a safetensors dtype name, 0 when unknown. */
size_t kd_st_dtype_size(const char *dtype);
int64_t kd_st_numel(const kd_st_entry *e);
/* "[2, 3]" into buf; returns buf. */
const char *kd_st_shape_str(const kd_st_entry *e, char *buf, size_t n);
/* Convert entry e (F32, F16, BF16 or F64) into dst (kd_st_numel(e) floats). KD_ERR_DTYPE for other
 * dtypes, naming the tensor. */
kd_status kd_st_read_f32(const kd_safetensors *st, const kd_st_entry *e, float *dst);

/* Write n tensors (f32 or f64, any strides; stored as F32) to path under names[i] (or each tensor's own
 * name when names is NULL). meta: n_meta key/value string pairs for "__metadata__" (may be NULL). The
 * file is written to "<path>.tmp" and renamed into place. */
kd_status kd_st_save(const char *path, kd_tensor *const *tensors, const char *const *names, size_t n,
                     const char *const *meta, size_t n_meta);

/* Convert an I8 entry into dst (kd_st_numel(e) bytes). KD_ERR_DTYPE naming the tensor for other dtypes. */
kd_status kd_st_read_i8(const kd_safetensors *st, const kd_st_entry *e, int8_t *dst);

/* One tensor to write from host memory, row-major: dtype "F32" (float data) or "I8" (int8_t data). */
typedef struct kd_st_item {
    const char *name;
    const char *dtype;
    int ndim;
    int64_t shape[KD_MAX_DIMS];
    const void *data;
} kd_st_item;
/* Write n items to path as kd_st_save does (temporary name renamed into place, "__metadata__" from meta). */
kd_status kd_st_save_items(const char *path, const kd_st_item *items, size_t n, const char *const *meta, size_t n_meta);

/* --- A checkpoint's tensors across one or more files (engine/safetensors_index.c): a single
 * model.safetensors, or the shards a model.safetensors.index.json names, as transformers'
 * save_pretrained(max_shard_size=...) writes them:
 *     {"metadata": {"total_size": N}, "weight_map": {"tensor name": "model-00001-of-00002.safetensors", ...}} */
typedef struct kd_st_set {
    char *path;               /* the index, or the single file (for messages) */
    kd_safetensors **files;   /* the shards in the order the map first names them (one for a single file) */
    size_t nfiles;
    char **names;             /* weight_map: tensor names[i] is in files[file_of[i]]; none for a single file */
    size_t *file_of;
    size_t count;
} kd_st_set;

/* One safetensors file as a set (kd_st_open's errors). */
kd_st_set *kd_st_set_open_file(const char *path);
/* The index at path and every shard it names, resolved in the index's directory and each validated as
 * kd_st_open does. Refused (NULL, KD_ERR_FORMAT or KD_ERR_IO, the message naming the index and the shard or
 * tensor): an index that is not JSON or has no "weight_map" object of tensor name -> file name; a shard name
 * that is empty, absolute or has a ".." component (it must stay inside the directory); a missing shard; a
 * tensor the map names that its shard lacks. */
kd_st_set *kd_st_set_open_index(const char *path);
void kd_st_set_close(kd_st_set *s);
/* The entry named `name` and the file that holds it (*file, may be NULL), or NULL when absent. */
const kd_st_entry *kd_st_set_find(const kd_st_set *s, const char *name, const kd_safetensors **file);
/* Bytes of all the set's files. */
size_t kd_st_set_bytes(const kd_st_set *s);

/* Half-precision conversions (IEEE binary16 with subnormals; bfloat16 is the top half of a binary32). */
float kd_f16_to_f32(uint16_t h);
float kd_bf16_to_f32(uint16_t h);

#endif
