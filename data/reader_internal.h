/* data/reader_internal.h — what the per-format readers share: whole-file reading with the file's own
 * errors, and a list of raw rows (text, label as written, line) whose labels are resolved once the
 * whole file has been read. Not a public header. */
#ifndef KD_READER_INTERNAL_H
#define KD_READER_INTERNAL_H

#include <stddef.h>

#include "data/readers.h"

typedef struct kd_raw_rows {
    size_t n, cap;
    char **text;
    size_t *text_len;
    char **label;       /* as written (trimmed); JSON ints as decimal text */
    size_t *line;
} kd_raw_rows;

/* Read a whole file; a missing file (KD_ERR_IO) and an empty one (KD_ERR_FORMAT) are errors naming it. */
kd_status kd_read_data_file(const char *path, char **out, size_t *len);
/* The same, for row formats: trailing newlines dropped, and a file with nothing else is an error saying
 * what was `expected` ("a header row (text,label)", ...). */
kd_status kd_read_rows_file(const char *path, const char *expected, char **out, size_t *len);

/* Append copies of text[0..tn) and label[0..ln); the text must be valid UTF-8 (else an error at
 * path:line). */
kd_status kd_raw_add(kd_raw_rows *r, const char *path, size_t line, const char *text, size_t tn, const char *label,
                     size_t ln);
void kd_raw_free(kd_raw_rows *r);

/* Turn raw rows into out (see kd_dataset_load for the label rules); frees nothing of r. */
kd_status kd_raw_finish(kd_raw_rows *r, const char *path, const kd_labels *known, kd_dataset *out);

kd_status kd_read_tsv(const char *path, kd_raw_rows *r);
kd_status kd_read_csv(const char *path, kd_raw_rows *r);
kd_status kd_read_jsonl(const char *path, kd_raw_rows *r);
/* text_path and labels_path; mapping (may be NULL) receives mapping.txt's names when present. */
kd_status kd_read_tweeteval(const char *text_path, const char *labels_path, kd_raw_rows *r, kd_labels *mapping);

#endif
