/* data/transfer.c — unlabelled text for distillation (a transfer set): plain text read one text a line, or a
 * labelled file whose labels are dropped; sets merged without repeats; a labelled set and a transfer set
 * seen as one. */
#include <stdlib.h>
#include <string.h>

#include "data/reader_internal.h"
#include "data/utf8.h"

static int is_labelled_format(const char *path)
{
    kd_data_format f = kd_data_format_of(path);
    /* *_text.txt is a text file of its own; only its _labels.txt partner would carry labels. */
    return f == KD_FORMAT_TSV || f == KD_FORMAT_CSV || f == KD_FORMAT_JSONL;
}

static kd_status add_line(kd_dataset *d, size_t *cap, const char *path, size_t line, const char *s, size_t n)
{
    size_t bad = kd_utf8_valid_prefix(s, n);
    if (bad != n)
        return kd_fail(KD_ERR_FORMAT, "%s:%zu: invalid UTF-8 (byte 0x%02X at offset %zu), expected UTF-8 text", path,
                       line, (unsigned char)s[bad], bad);
    if (memchr(s, '\0', n)) return kd_fail(KD_ERR_FORMAT, "%s:%zu: NUL byte, expected UTF-8 text", path, line);
    if (d->n == *cap) {
        size_t c = *cap ? *cap * 2 : 1024;
        char **t = realloc(d->text, c * sizeof *t);
        if (t) d->text = t;
        size_t *tl = realloc(d->text_len, c * sizeof *tl);
        if (tl) d->text_len = tl;
        int32_t *l = realloc(d->label, c * sizeof *l);
        if (l) d->label = l;
        if (!t || !tl || !l) return kd_fail(KD_ERR_NOMEM, "%s:%zu: out of memory", path, line);
        *cap = c;
    }
    char *copy = malloc(n + 1);
    if (!copy) return kd_fail(KD_ERR_NOMEM, "%s:%zu: out of memory", path, line);
    memcpy(copy, s, n);
    copy[n] = '\0';
    d->text[d->n] = copy;
    d->text_len[d->n] = n;
    d->label[d->n++] = KD_NO_LABEL;
    return KD_OK;
}

static kd_status read_plain(const char *path, kd_dataset *out)
{
    char *buf;
    size_t len, cap = 0;
    kd_status st = kd_read_data_file(path, &buf, &len);
    if (st != KD_OK) return st;
    size_t line = 1;
    for (size_t i = 0; i < len && st == KD_OK; line++) {
        const char *e = memchr(buf + i, '\n', len - i);
        size_t end = e ? (size_t)(e - buf) : len, n = end - i;
        if (n && buf[i + n - 1] == '\r') n--;
        int blank = 1;
        for (size_t k = 0; k < n && blank; k++) blank = buf[i + k] == ' ' || buf[i + k] == '\t';
        if (!blank) st = add_line(out, &cap, path, line, buf + i, n);
        i = end + 1;
    }
    free(buf);
    if (st == KD_OK && out->n == 0) st = kd_fail(KD_ERR_FORMAT, "%s: only blank lines, expected one text a line", path);
    return st;
}

kd_status kd_dataset_load_unlabelled(const char *path, kd_dataset *out)
{
    memset(out, 0, sizeof *out);
    kd_status st;
    if (is_labelled_format(path)) {
        st = kd_dataset_load(path, NULL, out);
        if (st == KD_OK) {
            for (size_t i = 0; i < out->n; i++) out->label[i] = KD_NO_LABEL;
            kd_labels_free(&out->labels);
        }
    } else {
        st = read_plain(path, out);
    }
    if (st != KD_OK) kd_dataset_free(out);
    return st;
}

/* A set of texts by FNV-1a hash, open addressing over a power-of-two table of row indices + 1. */
typedef struct text_set {
    size_t mask, *slot;
    char **text;
    size_t *text_len;
} text_set;

static uint64_t hash_text(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* 1 when text is already in the set, else adds it as row `row` of the set's arrays. */
static int seen(text_set *s, const char *t, size_t n, size_t row)
{
    size_t i = (size_t)hash_text(t, n) & s->mask;
    for (; s->slot[i]; i = (i + 1) & s->mask) {
        size_t r = s->slot[i] - 1;
        if (s->text_len[r] == n && memcmp(s->text[r], t, n) == 0) return 1;
    }
    s->slot[i] = row + 1;
    return 0;
}

kd_status kd_transfer_add(kd_dataset *transfer, kd_dataset *more, const kd_dataset *labelled, size_t *kept)
{
    size_t nl = labelled ? labelled->n : 0, total = nl + transfer->n + more->n, cap = 16;
    while (cap < 2 * total) cap *= 2;
    text_set s = { .mask = cap - 1, .slot = calloc(cap, sizeof(size_t)) };
    /* One row numbering over the three: labelled rows, then transfer's, then more's as they are kept. */
    s.text = malloc((total ? total : 1) * sizeof *s.text);
    s.text_len = malloc((total ? total : 1) * sizeof *s.text_len);
    char **t = realloc(transfer->text, (transfer->n + more->n + 1) * sizeof *t);
    if (t) transfer->text = t;
    size_t *tl = realloc(transfer->text_len, (transfer->n + more->n + 1) * sizeof *tl);
    if (tl) transfer->text_len = tl;
    int32_t *l = realloc(transfer->label, (transfer->n + more->n + 1) * sizeof *l);
    if (l) transfer->label = l;
    if (!s.slot || !s.text || !s.text_len || !t || !tl || !l) {
        free(s.slot);
        free(s.text);
        free(s.text_len);
        return kd_fail(KD_ERR_NOMEM, "transfer set: out of memory for %zu texts", total);
    }
    size_t rows = 0;
    for (size_t i = 0; i < nl; i++, rows++) {
        s.text[rows] = labelled->text[i];
        s.text_len[rows] = labelled->text_len[i];
        (void)seen(&s, labelled->text[i], labelled->text_len[i], rows);
    }
    for (size_t i = 0; i < transfer->n; i++, rows++) {
        s.text[rows] = transfer->text[i];
        s.text_len[rows] = transfer->text_len[i];
        (void)seen(&s, transfer->text[i], transfer->text_len[i], rows);
    }
    size_t k = 0;
    for (size_t i = 0; i < more->n; i++) {
        s.text[rows] = more->text[i];
        s.text_len[rows] = more->text_len[i];
        if (seen(&s, more->text[i], more->text_len[i], rows)) {
            free(more->text[i]);
            continue;
        }
        rows++;
        transfer->text[transfer->n] = more->text[i];
        transfer->text_len[transfer->n] = more->text_len[i];
        transfer->label[transfer->n++] = KD_NO_LABEL;
        k++;
    }
    free(s.slot);
    free(s.text);
    free(s.text_len);
    /* more's texts now belong to transfer (or are freed) */
    more->n = 0;
    kd_dataset_free(more);
    if (kept) *kept = k;
    return KD_OK;
}

kd_status kd_dataset_concat_view(const kd_dataset *a, const kd_dataset *b, kd_dataset *view)
{
    memset(view, 0, sizeof *view);
    size_t n = a->n + (b ? b->n : 0);
    view->text = malloc((n ? n : 1) * sizeof *view->text);
    view->text_len = malloc((n ? n : 1) * sizeof *view->text_len);
    view->label = malloc((n ? n : 1) * sizeof *view->label);
    if (!view->text || !view->text_len || !view->label) {
        kd_dataset_view_free(view);
        return kd_fail(KD_ERR_NOMEM, "out of memory for a data set of %zu texts", n);
    }
    for (int part = 0; part < 2; part++) {
        const kd_dataset *d = part ? b : a;
        if (!d) continue;
        memcpy(view->text + view->n, d->text, d->n * sizeof *view->text);
        memcpy(view->text_len + view->n, d->text_len, d->n * sizeof *view->text_len);
        memcpy(view->label + view->n, d->label, d->n * sizeof *view->label);
        view->n += d->n;
    }
    view->labels = a->labels;   /* borrowed, like the texts */
    view->format = a->format;
    return KD_OK;
}

void kd_dataset_view_free(kd_dataset *view)
{
    free(view->text);
    free(view->text_len);
    free(view->label);
    memset(view, 0, sizeof *view);
}
