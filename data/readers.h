/* data/readers.h — labelled text classification data sets and their readers: GLUE TSV, TweetEval
 * (*_text.txt + *_labels.txt), CSV with a header (RFC 4180), JSON lines; label names <-> ids.
 *
 * Every malformed input is an error (kd_status + kd_last_error()) naming the file, the line and what
 * was expected: missing or empty file, ragged row, unknown or out-of-range label, text/label line-count
 * mismatch, invalid UTF-8, unterminated quote, bad JSON. Nothing is silently skipped. */
#ifndef KD_READERS_H
#define KD_READERS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/status.h"

#define KD_MAX_LABELS 1000
/* The label of a row that has none (a transfer set's text: only a teacher labels it). */
#define KD_NO_LABEL (-1)

/* Label names by id (0..n-1). */
typedef struct kd_labels {
    int32_t n;
    char **names;
} kd_labels;

/* Id of name, or -1. */
int32_t kd_labels_id(const kd_labels *l, const char *name);
/* Name of id, or NULL. */
const char *kd_labels_name(const kd_labels *l, int32_t id);
/* Set l to a copy of names[0..n). */
/* names NULL: the names "0" .. "n-1". */
kd_status kd_labels_set(kd_labels *l, const char *const *names, int32_t n);
/* The names "0" .. "n-1": classes known only by their integer ids. */
kd_status kd_labels_ids(kd_labels *l, int32_t n);
kd_status kd_labels_copy(kd_labels *dst, const kd_labels *src);
void kd_labels_free(kd_labels *l);

typedef enum kd_data_format {
    KD_FORMAT_UNKNOWN, KD_FORMAT_TSV, KD_FORMAT_CSV, KD_FORMAT_JSONL, KD_FORMAT_TWEETEVAL
} kd_data_format;

typedef struct kd_dataset {
    size_t n;
    char **text;        /* UTF-8, NUL-terminated */
    size_t *text_len;
    int32_t *label;     /* 0 .. labels.n-1, or KD_NO_LABEL */
    kd_labels labels;
    kd_data_format format;
} kd_dataset;

/* The format of a file from its name: .tsv, .csv, .jsonl/.json/.ndjson, *_text.txt or *_labels.txt
 * (TweetEval, the other file of the pair beside it). */
kd_data_format kd_data_format_of(const char *path);
const char *kd_data_format_name(kd_data_format f);

/* Read one file (format from its name). Labels: with `known` (may be NULL) every label must be one of
 * its names or an id below known->n (written 1 or, as Hugging Face's default name, LABEL_1), and out->labels
 * is a copy of it. Without, integer labels are used as ids (0 .. KD_MAX_LABELS-1, names "0", "1", ...), so
 * are labels that are all LABEL_<id> (names kept), or names get ids in sorted order; a TweetEval
 * directory's mapping.txt ("id<TAB>name" lines) names integer labels. On failure out is empty. */
kd_status kd_dataset_load(const char *path, const kd_labels *known, kd_dataset *out);

/* A split from a directory: "train" reads train.{tsv,csv,jsonl} or train_text.txt; "dev" reads
 * dev.*, validation.*, val.* or val_text.txt; "test" reads test.*. Which file it read goes into
 * *chosen (may be NULL; PATH_MAX bytes). */
kd_status kd_dataset_load_split(const char *dir, const char *split, const kd_labels *known, kd_dataset *out,
                                char *chosen, size_t chosen_len);

void kd_dataset_free(kd_dataset *d);

/* --- transfer sets (data/transfer.c): text a teacher labels softly.
 * A .tsv, .csv or .jsonl file is read as above and its labels dropped; any other file is plain text, one
 * text a line (blank lines are skipped; invalid UTF-8 is an error naming the line). Every label of out is
 * KD_NO_LABEL and out->labels is empty. */
kd_status kd_dataset_load_unlabelled(const char *path, kd_dataset *out);
/* Move the texts of `more` into `transfer`, except those already in `labelled` (may be NULL), in transfer or
 * earlier in `more` (exact byte equality); *kept (may be NULL) says how many were added. more is emptied. */
kd_status kd_transfer_add(kd_dataset *transfer, kd_dataset *more, const kd_dataset *labelled, size_t *kept);
/* view = a's rows then b's (b may be NULL), sharing their texts and a's label names; free it with
 * kd_dataset_view_free (never kd_dataset_free). */
kd_status kd_dataset_concat_view(const kd_dataset *a, const kd_dataset *b, kd_dataset *view);
/* A 64-bit fingerprint of the rows, texts and labels in order (FNV-1a, continued from h): equal sets give
 * equal fingerprints; a changed text, label or order almost surely changes it. */
uint64_t kd_dataset_fingerprint(uint64_t h, const kd_dataset *d);
/* FNV-1a over n bytes, continued from h (start: KD_FNV_OFFSET). */
#define KD_FNV_OFFSET 0xcbf29ce484222325ull
static inline uint64_t kd_fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}
void kd_dataset_view_free(kd_dataset *view);

#endif
