/* engine/json.h — a small JSON (RFC 8259) reader and writer: config.json, safetensors headers, JSON lines,
 * metrics. Strings are UTF-8 with escapes decoded (\uXXXX surrogate pairs joined); a string may hold NUL,
 * so its length is kept. Numbers keep their exact int64 value when they are integers. */
#ifndef KD_JSON_H
#define KD_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum kd_json_type {
    KD_JSON_NULL, KD_JSON_FALSE, KD_JSON_TRUE, KD_JSON_NUMBER, KD_JSON_STRING, KD_JSON_ARRAY, KD_JSON_OBJECT
} kd_json_type;

typedef struct kd_json {
    kd_json_type type;
    double number;          /* KD_JSON_NUMBER */
    int64_t integer;        /* KD_JSON_NUMBER, exact when is_integer */
    int is_integer;
    char *string;           /* KD_JSON_STRING: NUL-terminated, string_len bytes before the terminator */
    size_t string_len;
    struct kd_json **items; /* KD_JSON_ARRAY and KD_JSON_OBJECT: count values */
    char **keys;            /* KD_JSON_OBJECT: count keys (NUL-terminated), in file order */
    size_t count;
} kd_json;

/* Parse exactly one JSON value (surrounding whitespace allowed) from text[0..len). On failure returns
 * NULL and writes "line L, column C: expected X, found Y" into err (errlen bytes, may be 0). */
kd_json *kd_json_parse(const char *text, size_t len, char *err, size_t errlen);
void kd_json_free(kd_json *v);
/* Read the file at path and parse it: NULL with the error set (KD_ERR_IO naming the file, or KD_ERR_FORMAT
 * "PATH: not valid JSON: line L, column C: ..."). */
kd_json *kd_json_read_file(const char *path);

/* Object member by key (the last one if repeated), or NULL; NULL-safe. Array item i, or NULL. */
const kd_json *kd_json_get(const kd_json *obj, const char *key);
const kd_json *kd_json_at(const kd_json *arr, size_t i);

/* A writer into a growing buffer; commas and nesting handled for the caller. pretty: 2-space indent. */
typedef struct kd_jw {
    char *buf;
    size_t len, cap;
    int depth, pretty, failed;
    unsigned char first[64];      /* per depth: nothing written yet at this level */
    unsigned char after_key;
} kd_jw;

void kd_jw_init(kd_jw *w, int pretty);
void kd_jw_free(kd_jw *w);
void kd_jw_object_begin(kd_jw *w);
void kd_jw_object_end(kd_jw *w);
void kd_jw_array_begin(kd_jw *w);
void kd_jw_array_end(kd_jw *w);
void kd_jw_key(kd_jw *w, const char *key);
void kd_jw_string(kd_jw *w, const char *s);               /* escaped; invalid UTF-8 bytes as U+FFFD */
void kd_jw_string_n(kd_jw *w, const char *s, size_t n);
void kd_jw_int(kd_jw *w, int64_t v);
void kd_jw_number(kd_jw *w, double v);                    /* shortest round-trip form; NaN/Inf as null */
/* A key and its value in one call (inside an object). */
void kd_jw_field_string(kd_jw *w, const char *key, const char *s);
void kd_jw_field_int(kd_jw *w, const char *key, int64_t v);
void kd_jw_field_number(kd_jw *w, const char *key, double v);
void kd_jw_bool(kd_jw *w, int v);
void kd_jw_null(kd_jw *w);
/* The text so far (NUL-terminated), or NULL if an allocation failed. */
const char *kd_jw_text(const kd_jw *w);

#endif
