/* data/read_tweeteval.c — TweetEval: SPLIT_text.txt (one text per line) beside SPLIT_labels.txt (one
 * integer label per line, same count), and optionally mapping.txt ("id<TAB>name" per line) naming the
 * labels. */
#include <stdlib.h>
#include <string.h>

#include "data/reader_internal.h"

static size_t count_lines(const char *b, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += b[i] == '\n';
    return k + (n && b[n - 1] != '\n');
}

static size_t trim_newlines(const char *b, size_t n)
{
    while (n && (b[n - 1] == '\n' || b[n - 1] == '\r')) n--;
    return n;
}

/* digits, possibly with surrounding spaces or a '\r' */
static int is_int_label(const char *s, size_t n)
{
    size_t digits = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= '0' && s[i] <= '9') digits++;
        else if (s[i] != ' ' && s[i] != '\r' && s[i] != '\t') return 0;
    }
    return digits > 0;
}

/* mapping.txt in the directory of text_path, if present. */
static kd_status read_mapping(const char *text_path, kd_labels *out)
{
    const char *slash = strrchr(text_path, '/');
    size_t dl = slash ? (size_t)(slash - text_path) + 1 : 0;
    char *path = malloc(dl + 16);
    if (!path) return kd_fail(KD_ERR_NOMEM, "out of memory");
    memcpy(path, text_path, dl);
    strcpy(path + dl, "mapping.txt");
    FILE *f = fopen(path, "rb");
    if (!f) {
        free(path);
        return KD_OK;
    }
    fclose(f);
    char *buf;
    size_t len;
    kd_status st = kd_read_data_file(path, &buf, &len);
    if (st != KD_OK) {
        free(path);
        return st;
    }
    len = trim_newlines(buf, len);
    char *names[KD_MAX_LABELS] = {0};
    int32_t n = 0;
    size_t pos = 0, line = 0;
    while (st == KD_OK && pos < len) {
        char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        line++;
        buf[end] = '\0';
        if (end > pos && buf[end - 1] == '\r') buf[end - 1] = '\0';
        char *tab = strchr(buf + pos, '\t');
        char *e;
        long id = strtol(buf + pos, &e, 10);
        if (!tab || e != tab || id != n || !tab[1])
            st = kd_fail(KD_ERR_FORMAT, "%s:%zu: expected '%d<TAB>name' (ids in order from 0)", path, line, (int)n);
        else if (n >= KD_MAX_LABELS)
            st = kd_fail(KD_ERR_FORMAT, "%s:%zu: more than %d labels", path, line, KD_MAX_LABELS);
        else
            names[n++] = tab + 1;
        pos = end + 1;
    }
    if (st == KD_OK) st = kd_labels_set(out, (const char *const *)names, n);
    free(buf);
    free(path);
    return st;
}

kd_status kd_read_tweeteval(const char *text_path, const char *labels_path, kd_raw_rows *r, kd_labels *mapping)
{
    char *tb = NULL, *lb = NULL;
    size_t tn, ln;
    kd_status st = kd_read_data_file(text_path, &tb, &tn);
    if (st == KD_OK) st = kd_read_data_file(labels_path, &lb, &ln);
    if (st == KD_OK) {
        tn = trim_newlines(tb, tn);
        ln = trim_newlines(lb, ln);
        size_t nt = count_lines(tb, tn), nl = count_lines(lb, ln);
        if (nt != nl)
            st = kd_fail(KD_ERR_FORMAT, "%s:%zu: %zu labels for %zu texts in %s, expected one label per text line",
                         labels_path, (nl < nt ? nl : nt) + 1, nl, nt, text_path);
    }
    size_t tp = 0, lp = 0, line = 0;
    while (st == KD_OK && tp < tn) {
        const char *a = memchr(tb + tp, '\n', tn - tp), *b = memchr(lb + lp, '\n', ln - lp);
        size_t ta = a ? (size_t)(a - tb) : tn, lbe = b ? (size_t)(b - lb) : ln;
        line++;
        size_t tl = ta - tp;
        if (tl && tb[tp + tl - 1] == '\r') tl--;
        size_t ll = lbe - lp;
        if (ll == 0 || (ll == 1 && lb[lp] == '\r'))
            st = kd_fail(KD_ERR_FORMAT, "%s:%zu: empty label, expected an integer label", labels_path, line);
        else if (!is_int_label(lb + lp, ll))
            st = kd_fail(KD_ERR_FORMAT, "%s:%zu: label '%.*s', expected an integer id", labels_path, line,
                         (int)(ll < 40 ? ll : 40), lb + lp);
        else {
            /* a bad label is reported at the labels file's line */
            st = kd_raw_add(r, text_path, line, tb + tp, tl, lb + lp, ll);
            if (st == KD_OK) r->line[r->n - 1] = line;
        }
        tp = ta + 1;
        lp = lbe + 1;
    }
    if (st == KD_OK && mapping) st = read_mapping(text_path, mapping);
    free(tb);
    free(lb);
    return st;
}
