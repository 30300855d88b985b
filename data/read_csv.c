/* data/read_csv.c — CSV with a header row (RFC 4180): fields separated by commas; a field in double
 * quotes may hold commas, newlines and "" for a quote. The header names a 'text' (or 'sentence') and a
 * 'label' column; every record must have the header's number of fields. */
#include <stdlib.h>
#include <string.h>

#include "data/reader_internal.h"

#define CSV_MAX_COLS 64

typedef struct csv_field {
    char *s;      /* unquoted text (points into the record buffer) */
    size_t n;
} csv_field;

/* Parse one record starting at buf[*pos]; unquoted field bytes are copied into rec (capacity len + 1).
 * *line advances over newlines, also those inside quotes. Returns the field count or -1 on error. */
static long parse_record(const char *path, const char *buf, size_t len, size_t *pos, size_t *line, char *rec,
                         csv_field *f, kd_status *st)
{
    size_t i = *pos, w = 0;
    long k = 0;
    size_t start_line = *line;
    for (;;) {
        if (k >= CSV_MAX_COLS) {
            *st = kd_fail(KD_ERR_FORMAT, "%s:%zu: more than %d fields, expected at most %d", path, start_line,
                          CSV_MAX_COLS, CSV_MAX_COLS);
            return -1;
        }
        f[k].s = rec + w;
        size_t fstart = w;
        if (i < len && buf[i] == '"') {
            size_t qline = *line;
            i++;
            for (;;) {
                if (i >= len) {
                    *st = kd_fail(KD_ERR_FORMAT, "%s:%zu: unterminated quoted field, expected a closing '\"'", path,
                                  qline);
                    return -1;
                }
                if (buf[i] == '"') {
                    if (i + 1 < len && buf[i + 1] == '"') {
                        rec[w++] = '"';
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                if (buf[i] == '\n') (*line)++;
                rec[w++] = buf[i++];
            }
            if (i < len && buf[i] != ',' && buf[i] != '\n' && !(buf[i] == '\r' && (i + 1 == len || buf[i + 1] == '\n'))) {
                *st = kd_fail(KD_ERR_FORMAT, "%s:%zu: '%c' after a closing quote, expected ',' or the end of the line",
                              path, *line, buf[i]);
                return -1;
            }
        } else {
            while (i < len && buf[i] != ',' && buf[i] != '\n') {
                if (buf[i] == '"') {
                    *st = kd_fail(KD_ERR_FORMAT, "%s:%zu: '\"' inside an unquoted field, expected the whole field "
                                                 "in quotes with \"\" for a quote",
                                  path, *line);
                    return -1;
                }
                rec[w++] = buf[i++];
            }
            if (w > fstart && rec[w - 1] == '\r' && (i >= len || buf[i] == '\n')) w--;
        }
        f[k].n = w - fstart;
        k++;
        if (i < len && buf[i] == ',') {
            i++;
            continue;
        }
        if (i < len && buf[i] == '\r') i++;
        if (i < len && buf[i] == '\n') {
            i++;
            (*line)++;
        }
        break;
    }
    *pos = i;
    return k;
}

kd_status kd_read_csv(const char *path, kd_raw_rows *r)
{
    char *buf;
    size_t len;
    kd_status st = kd_read_rows_file(path, "a header row (text,label)", &buf, &len);
    if (st != KD_OK) return st;
    char *rec = malloc(len + 1);
    if (!rec) {
        free(buf);
        return kd_fail(KD_ERR_NOMEM, "%s: out of memory", path);
    }
    csv_field f[CSV_MAX_COLS];
    size_t pos = 0, line = 1;
    long ncols = -1, text_col = -1, label_col = -1;
    while (pos < len && st == KD_OK) {
        size_t rec_line = line;
        long k = parse_record(path, buf, len, &pos, &line, rec, f, &st);
        if (k < 0) break;
        if (ncols < 0) {
            ncols = k;
            for (long c = 0; c < k; c++) {
                /* a UTF-8 byte order mark before the first name is not part of it */
                if (c == 0 && f[0].n >= 3 && memcmp(f[0].s, "\xEF\xBB\xBF", 3) == 0) {
                    f[0].s += 3;
                    f[0].n -= 3;
                }
                if ((f[c].n == 4 && memcmp(f[c].s, "text", 4) == 0) || (f[c].n == 8 && memcmp(f[c].s, "sentence", 8) == 0))
                    text_col = c;
                if (f[c].n == 5 && memcmp(f[c].s, "label", 5) == 0) label_col = c;
            }
            if (text_col < 0 || label_col < 0)
                st = kd_fail(KD_ERR_FORMAT, "%s:1: expected a header row naming a 'text' and a 'label' column "
                                            "(text,label)", path);
        } else if (k != ncols) {
            st = kd_fail(KD_ERR_FORMAT, "%s:%zu: %ld comma-separated field%s, expected %ld as in the header", path,
                         rec_line, k, k == 1 ? "" : "s", ncols);
        } else {
            st = kd_raw_add(r, path, rec_line, f[text_col].s, f[text_col].n, f[label_col].s, f[label_col].n);
        }
    }
    free(rec);
    free(buf);
    return st;
}
