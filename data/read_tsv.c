/* data/read_tsv.c — GLUE TSV: a header row naming the columns (sentence or text, and label), then one
 * row per example, fields separated by tabs, no quoting. GLUE's SST-2 leaves a space before the tab:
 * trailing spaces of the text are dropped. Every row must have the header's number of fields. */
#include <string.h>

#include "data/reader_internal.h"

#define TSV_MAX_COLS 64

/* Split line[0..n) at tabs into at most TSV_MAX_COLS fields; returns the field count (may exceed). */
static size_t split_tabs(const char *line, size_t n, const char **f, size_t *fl)
{
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || line[i] == '\t') {
            if (k < TSV_MAX_COLS) {
                f[k] = line + start;
                fl[k] = i - start;
            }
            k++;
            start = i + 1;
        }
    }
    return k;
}

kd_status kd_read_tsv(const char *path, kd_raw_rows *r)
{
    char *buf;
    size_t len;
    kd_status st = kd_read_rows_file(path, "a header row (sentence<TAB>label)", &buf, &len);
    if (st != KD_OK) return st;
    const char *f[TSV_MAX_COLS];
    size_t fl[TSV_MAX_COLS];
    size_t pos = 0, line = 0, ncols = 0;
    long text_col = -1, label_col = -1;
    while (pos <= len && st == KD_OK) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        size_t n = end - pos;
        if (n && buf[pos + n - 1] == '\r') n--;
        line++;
        size_t k = split_tabs(buf + pos, n, f, fl);
        if (line == 1) {
            ncols = k;
            if (k > TSV_MAX_COLS) {
                st = kd_fail(KD_ERR_FORMAT, "%s:1: %zu columns, expected at most %d", path, k, TSV_MAX_COLS);
                break;
            }
            for (size_t c = 0; c < k; c++) {
                if ((fl[c] == 8 && memcmp(f[c], "sentence", 8) == 0) || (fl[c] == 4 && memcmp(f[c], "text", 4) == 0))
                    text_col = (long)c;
                if (fl[c] == 5 && memcmp(f[c], "label", 5) == 0) label_col = (long)c;
            }
            if (text_col < 0 || label_col < 0)
                st = kd_fail(KD_ERR_FORMAT, "%s:1: header '%.*s', expected a header row with a 'sentence' (or 'text') "
                                            "and a 'label' column, separated by tabs",
                             path, (int)(n < 200 ? n : 200), buf + pos);
        } else if (k != ncols) {
            st = kd_fail(KD_ERR_FORMAT, "%s:%zu: %zu tab-separated field%s, expected %zu as in the header", path, line,
                         k, k == 1 ? "" : "s", ncols);
        } else {
            size_t tl = fl[text_col];
            while (tl && (f[text_col][tl - 1] == ' ')) tl--;
            st = kd_raw_add(r, path, line, f[text_col], tl, f[label_col], fl[label_col]);
        }
        if (!nl) break;
        pos = end + 1;
    }
    free(buf);
    return st;
}
