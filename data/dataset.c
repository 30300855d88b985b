/* data/dataset.c — a labelled data set: file reading, format detection, directory splits, and label
 * resolution (names or integer ids, checked against a known label set) shared by every reader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/reader_internal.h"
#include "engine/fileio.h"
#include "data/utf8.h"

kd_status kd_read_data_file(const char *path, char **out, size_t *len)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return kd_fail(KD_ERR_IO, "%s: no such file (expected a data file here)", path);
    kd_status st = kd_read_file(path, out, len);
    if (st != KD_OK) return st;
    /* A UTF-8 byte-order mark (spreadsheets write one) is not part of the first field. */
    if (*len >= 3 && !memcmp(*out, "\xEF\xBB\xBF", 3)) {
        memmove(*out, *out + 3, *len - 3);
        *len -= 3;
    }
    if (*len == 0) {
        free(*out);
        *out = NULL;
        return kd_fail(KD_ERR_FORMAT, "%s:1: empty file, expected labelled rows", path);
    }
    /* A binary file is named as such here, before any of its bytes could be echoed into a message: a NUL
     * near the start, or a first line that is not UTF-8. */
    size_t head = *len < 65536 ? *len : 65536;
    const char *nul = memchr(*out, '\0', head), *eol = memchr(*out, '\n', head);
    size_t first = eol ? (size_t)(eol - *out) : head;
    size_t bad = kd_utf8_valid_prefix(*out, first);
    if (nul || bad != first) {
        size_t at = nul ? (size_t)(nul - *out) : bad;
        unsigned char b = (unsigned char)(*out)[at];
        free(*out);
        *out = NULL;
        return kd_fail(KD_ERR_FORMAT, "%s: byte 0x%02X at offset %zu: not a text file (a binary file?), expected UTF-8 text",
                       path, b, at);
    }
    return KD_OK;
}

kd_status kd_read_rows_file(const char *path, const char *expected, char **out, size_t *len)
{
    kd_status st = kd_read_data_file(path, out, len);
    if (st != KD_OK) return st;
    /* trailing newlines end the file; a blank line before them is a ragged row */
    while (*len && ((*out)[*len - 1] == '\n' || (*out)[*len - 1] == '\r')) (*len)--;
    if (*len == 0) {
        free(*out);
        *out = NULL;
        return kd_fail(KD_ERR_FORMAT, "%s:1: empty file, expected %s", path, expected);
    }
    return KD_OK;
}

void kd_raw_free(kd_raw_rows *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->text[i]);
        free(r->label[i]);
    }
    free(r->text);
    free(r->text_len);
    free(r->label);
    free(r->line);
    memset(r, 0, sizeof *r);
}

kd_status kd_raw_add(kd_raw_rows *r, const char *path, size_t line, const char *text, size_t tn, const char *label,
                     size_t ln)
{
    size_t bad = kd_utf8_valid_prefix(text, tn);
    if (bad != tn)
        return kd_fail(KD_ERR_FORMAT, "%s:%zu: invalid UTF-8 (byte 0x%02X at text offset %zu), expected UTF-8 text", path,
                       line, (unsigned char)text[bad], bad);
    if (memchr(text, '\0', tn))
        return kd_fail(KD_ERR_FORMAT, "%s:%zu: NUL byte in the text, expected UTF-8 text", path, line);
    /* labels: surrounding spaces are not part of them */
    while (ln && (*label == ' ' || *label == '\t')) label++, ln--;
    while (ln && (label[ln - 1] == ' ' || label[ln - 1] == '\t' || label[ln - 1] == '\r')) ln--;
    if (ln == 0) return kd_fail(KD_ERR_FORMAT, "%s:%zu: empty label, expected a label name or id", path, line);
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        char **t = realloc(r->text, cap * sizeof *t);
        if (t) r->text = t;
        size_t *tl = realloc(r->text_len, cap * sizeof *tl);
        if (tl) r->text_len = tl;
        char **l = realloc(r->label, cap * sizeof *l);
        if (l) r->label = l;
        size_t *li = realloc(r->line, cap * sizeof *li);
        if (li) r->line = li;
        if (!t || !tl || !l || !li) return kd_fail(KD_ERR_NOMEM, "%s:%zu: out of memory", path, line);
        r->cap = cap;
    }
    char *tc = malloc(tn + 1), *lc = malloc(ln + 1);
    if (!tc || !lc) {
        free(tc);
        free(lc);
        return kd_fail(KD_ERR_NOMEM, "%s:%zu: out of memory", path, line);
    }
    memcpy(tc, text, tn);
    tc[tn] = '\0';
    memcpy(lc, label, ln);
    lc[ln] = '\0';
    r->text[r->n] = tc;
    r->text_len[r->n] = tn;
    r->label[r->n] = lc;
    r->line[r->n] = line;
    r->n++;
    return KD_OK;
}

/* A label written as a non-negative or negative decimal integer: 1, -1, 007 (not 1.0, not +1). */
static int parse_int_label(const char *s, long *v)
{
    const char *p = s;
    if (*p == '-') p++;
    if (!*p) return 0;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9') return 0;
    if (strlen(p) > 9) {
        *v = *s == '-' ? -1000000000L : 1000000000L;
        return 1;
    }
    *v = strtol(s, NULL, 10);
    return 1;
}

/* Hugging Face's default class name "LABEL_<id>" (models/bert.h): the id, as an integer label is. */
static int parse_default_label(const char *s, long *v)
{
    return strncmp(s, "LABEL_", 6) == 0 && s[6] != '-' && parse_int_label(s + 6, v);
}

/* An id written as an integer (1) or as a default name (LABEL_1): 1 and 2, 0 for a name. */
static int id_form(const char *s, long *v)
{
    if (parse_int_label(s, v)) return 1;
    return parse_default_label(s, v) ? 2 : 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static kd_status expected_names(const kd_labels *l, char *buf, size_t n)
{
    size_t w = 0;
    buf[0] = '\0';
    for (int32_t i = 0; i < l->n && w + 1 < n; i++) {
        int k = snprintf(buf + w, n - w, "%s%d=%s", i ? ", " : "", (int)i, l->names[i]);
        if (k < 0) break;
        w += (size_t)k;
    }
    return KD_OK;
}

kd_status kd_raw_finish(kd_raw_rows *r, const char *path, const kd_labels *known, kd_dataset *out)
{
    memset(out, 0, sizeof *out);
    if (r->n == 0) return kd_fail(KD_ERR_FORMAT, "%s:2: no data rows, expected labelled rows after the header", path);
    out->label = malloc(r->n * sizeof *out->label);
    if (!out->label) return kd_fail(KD_ERR_NOMEM, "%s: out of memory", path);
    kd_status st = KD_OK;
    char names[512];
    if (known && known->n > 0) {
        expected_names(known, names, sizeof names);
        for (size_t i = 0; i < r->n && st == KD_OK; i++) {
            long v;
            int32_t id = kd_labels_id(known, r->label[i]);
            if (id < 0 && id_form(r->label[i], &v)) {
                if (v < 0 || v >= known->n)
                    st = kd_fail(KD_ERR_FORMAT, "label-set mismatch: %s:%zu: label %s out of range, expected 0..%d (%s)",
                                 path, r->line[i], r->label[i], (int)known->n - 1, names);
                id = (int32_t)v;
            } else if (id < 0) {
                st = kd_fail(KD_ERR_FORMAT, "label-set mismatch: %s:%zu: unknown label '%s', expected one of %s", path,
                             r->line[i], r->label[i], names);
            }
            out->label[i] = id;
        }
        if (st == KD_OK) st = kd_labels_copy(&out->labels, known);
    } else {
        long v;
        /* Integer ids, or all LABEL_<id> (read as the ids, so LABEL_10 follows LABEL_9 as in transformers) */
        static const char *const form_name[3] = { "a name", "an integer id", "a default name LABEL_<id>" };
        int form = id_form(r->label[0], &v), ints = form != 0;
        long maxv = -1;
        for (size_t i = 0; i < r->n && st == KD_OK; i++) {
            int f = id_form(r->label[i], &v);
            if (f != form) {
                st = kd_fail(KD_ERR_FORMAT, "%s:%zu: label '%s', expected %s like the label '%s' on line %zu", path,
                             r->line[i], r->label[i], form_name[form], r->label[0], r->line[0]);
            } else if (ints && (v < 0 || v >= KD_MAX_LABELS)) {
                st = kd_fail(KD_ERR_FORMAT, "%s:%zu: label %s out of range, expected 0..%d", path, r->line[i],
                             r->label[i], KD_MAX_LABELS - 1);
            } else if (ints) {
                out->label[i] = (int32_t)v;
                if (v > maxv) maxv = v;
            }
        }
        if (st == KD_OK && ints) {
            /* Ids name classes 0..max, each of which must occur: a stray id (a 7 in 0/1 data) would otherwise
             * make a model of eight classes without a word. */
            size_t count[KD_MAX_LABELS] = {0}, first_line[KD_MAX_LABELS] = {0};
            for (size_t i = 0; i < r->n; i++)
                if (count[out->label[i]]++ == 0) first_line[out->label[i]] = r->line[i];
            long missing = -1;
            for (long k = 0; k <= maxv && missing < 0; k++)
                if (!count[k]) missing = k;
            if (missing >= 0) {
                char found[512];
                size_t w = 0;
                for (long k = 0; k <= maxv && w < sizeof found - 64; k++)
                    if (count[k])
                        w += (size_t)snprintf(found + w, sizeof found - w, "%s%ld (%zu row%s, first on line %zu)",
                                              w ? ", " : "", k, count[k], count[k] == 1 ? "" : "s", first_line[k]);
                st = kd_fail(KD_ERR_FORMAT, "%s: integer labels with a gap: found %s; id %ld never occurs, expected "
                                            "ids 0..N-1 with every class present (fix the stray rows, or give the "
                                            "number of classes with --num-labels)", path, found, missing);
            }
        }
        if (st == KD_OK && ints) {
            st = kd_labels_ids(&out->labels, (int32_t)maxv + 1);
            for (int32_t k = 0; st == KD_OK && form == 2 && k < out->labels.n; k++) {
                char name[32];
                snprintf(name, sizeof name, "LABEL_%d", (int)k);
                char *c = strdup(name);
                if (!c) st = kd_fail(KD_ERR_NOMEM, "%s: out of memory", path);
                else {
                    free(out->labels.names[k]);
                    out->labels.names[k] = c;
                }
            }
        } else if (st == KD_OK) {
            /* distinct names, sorted, so train and dev files agree on the ids */
            char **all = malloc(r->n * sizeof *all);
            if (!all) st = kd_fail(KD_ERR_NOMEM, "%s: out of memory", path);
            size_t nd = 0;
            if (all) {
                memcpy(all, r->label, r->n * sizeof *all);
                qsort(all, r->n, sizeof *all, cmp_str);
                for (size_t i = 0; i < r->n; i++)
                    if (nd == 0 || strcmp(all[nd - 1], all[i]) != 0) all[nd++] = all[i];
                if (nd > KD_MAX_LABELS)
                    st = kd_fail(KD_ERR_FORMAT, "%s: %zu distinct labels, expected at most %d", path, nd, KD_MAX_LABELS);
                else
                    st = kd_labels_set(&out->labels, (const char *const *)all, (int32_t)nd);
                free(all);
            }
            for (size_t i = 0; i < r->n && st == KD_OK; i++) out->label[i] = kd_labels_id(&out->labels, r->label[i]);
        }
    }
    if (st != KD_OK) {
        kd_labels_free(&out->labels);
        free(out->label);
        memset(out, 0, sizeof *out);
        return st;
    }
    /* the texts move into the data set */
    out->n = r->n;
    out->text = r->text;
    out->text_len = r->text_len;
    r->text = NULL;
    r->text_len = NULL;
    for (size_t i = 0; i < r->n; i++) free(r->label[i]);
    free(r->label);
    free(r->line);
    memset(r, 0, sizeof *r);
    return KD_OK;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

kd_data_format kd_data_format_of(const char *path)
{
    if (ends_with(path, "_text.txt") || ends_with(path, "_labels.txt")) return KD_FORMAT_TWEETEVAL;
    if (ends_with(path, ".tsv")) return KD_FORMAT_TSV;
    if (ends_with(path, ".csv")) return KD_FORMAT_CSV;
    if (ends_with(path, ".jsonl") || ends_with(path, ".json") || ends_with(path, ".ndjson")) return KD_FORMAT_JSONL;
    return KD_FORMAT_UNKNOWN;
}

const char *kd_data_format_name(kd_data_format f)
{
    switch (f) {
    case KD_FORMAT_TSV: return "GLUE TSV";
    case KD_FORMAT_CSV: return "CSV";
    case KD_FORMAT_JSONL: return "JSON lines";
    case KD_FORMAT_TWEETEVAL: return "TweetEval";
    default: return "unknown";
    }
}

void kd_dataset_free(kd_dataset *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->n; i++) free(d->text[i]);
    free(d->text);
    free(d->text_len);
    free(d->label);
    kd_labels_free(&d->labels);
    memset(d, 0, sizeof *d);
}

kd_status kd_dataset_load(const char *path, const kd_labels *known, kd_dataset *out)
{
    memset(out, 0, sizeof *out);
    struct stat stt;
    if (stat(path, &stt) == 0 && S_ISDIR(stt.st_mode))
        return kd_dataset_load_split(path, "train", known, out, NULL, 0);
    kd_data_format f = kd_data_format_of(path);
    if (f != KD_FORMAT_TWEETEVAL && stat(path, &stt) != 0)
        return kd_fail(KD_ERR_IO, "%s: no such file or directory (expected a data file or a directory of them)", path);
    kd_raw_rows r = {0};
    kd_status st;
    kd_labels mapping = {0};
    char *labels_file = NULL;   /* TweetEval: label errors name the labels file */
    switch (f) {
    case KD_FORMAT_TSV: st = kd_read_tsv(path, &r); break;
    case KD_FORMAT_CSV: st = kd_read_csv(path, &r); break;
    case KD_FORMAT_JSONL: st = kd_read_jsonl(path, &r); break;
    case KD_FORMAT_TWEETEVAL: {
        size_t n = strlen(path);
        char *other = malloc(n + 8);
        if (!other) return kd_fail(KD_ERR_NOMEM, "out of memory");
        const char *text_path = path, *labels_path = other;
        if (ends_with(path, "_text.txt")) {
            memcpy(other, path, n - 9);
            strcpy(other + n - 9, "_labels.txt");
        } else {
            memcpy(other, path, n - 11);
            strcpy(other + n - 11, "_text.txt");
            text_path = other;
            labels_path = path;
        }
        st = kd_read_tweeteval(text_path, labels_path, &r, known && known->n ? NULL : &mapping);
        labels_file = strdup(labels_path);
        free(other);
        break;
    }
    default:
        return kd_fail(KD_ERR_ARG, "%s: unknown data format, expected .tsv (GLUE), .csv, .jsonl or TweetEval "
                                   "*_text.txt + *_labels.txt, or a directory holding train/dev files", path);
    }
    if (st == KD_OK) st = kd_raw_finish(&r, labels_file ? labels_file : path, mapping.n ? &mapping : known, out);
    if (st == KD_OK) out->format = f;
    free(labels_file);
    kd_raw_free(&r);
    kd_labels_free(&mapping);
    return st;
}

kd_status kd_dataset_load_split(const char *dir, const char *split, const kd_labels *known, kd_dataset *out,
                                char *chosen, size_t chosen_len)
{
    memset(out, 0, sizeof *out);
    static const char *const train[] = {"train", NULL};
    static const char *const dev[] = {"dev", "validation", "val", "valid", NULL};
    static const char *const test[] = {"test", NULL};
    const char *const *stems = strcmp(split, "train") == 0 ? train : strcmp(split, "dev") == 0 ? dev
                             : strcmp(split, "test") == 0  ? test : NULL;
    if (!stems) return kd_fail(KD_ERR_ARG, "split '%s': expected train, dev or test", split);
    static const char *const ext[] = {".tsv", ".csv", ".jsonl", "_text.txt", NULL};
    char path[4096];
    struct stat st;
    for (int s = 0; stems[s]; s++)
        for (int e = 0; ext[e]; e++) {
            snprintf(path, sizeof path, "%s/%s%s", dir, stems[s], ext[e]);
            if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
                if (chosen && chosen_len) snprintf(chosen, chosen_len, "%s", path);
                return kd_dataset_load(path, known, out);
            }
        }
    return kd_fail(KD_ERR_IO, "%s: no %s file, expected %s.tsv, %s.csv, %s.jsonl or %s_text.txt + %s_labels.txt", dir,
                   split, stems[0], stems[0], stems[0], stems[0], stems[0]);
}

uint64_t kd_dataset_fingerprint(uint64_t h, const kd_dataset *d)
{
    h = kd_fnv1a(h, &d->n, sizeof d->n);
    for (size_t i = 0; i < d->n; i++) {
        h = kd_fnv1a(h, d->text[i], d->text_len[i] + 1);
        h = kd_fnv1a(h, &d->label[i], sizeof d->label[i]);
    }
    return h;
}
