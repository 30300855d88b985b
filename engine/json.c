/* engine/json.c — a small JSON (RFC 8259) reader and writer (see engine/json.h).
 *
 * The reader is a recursive-descent parser with a depth limit (so hostile input cannot exhaust the
 * stack), strict about the grammar: no trailing commas, no comments, no leading zeros, no control
 * characters inside strings, UTF-8 validated, \uXXXX surrogate pairs joined and lone surrogates
 * rejected. The writer escapes what it must and prints doubles in the shortest form that round-trips. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/json.h"
#include "engine/fileio.h"

#define JSON_MAX_DEPTH 512

typedef struct jp {
    const char *s;
    size_t n, i;
    int depth;
    char *err;
    size_t errlen;
    int failed;
} jp;

static void jp_where(const jp *p, size_t at, size_t *line, size_t *col)
{
    size_t l = 1, c = 1;
    for (size_t k = 0; k < at && k < p->n; k++) {
        if (p->s[k] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static void jp_fail(jp *p, const char *expected)
{
    if (p->failed) return;
    p->failed = 1;
    if (!p->err || !p->errlen) return;
    size_t line, col;
    jp_where(p, p->i, &line, &col);
    char found[32];
    if (p->i >= p->n) {
        snprintf(found, sizeof found, "end of input");
    } else {
        unsigned char c = (unsigned char)p->s[p->i];
        if (c >= 0x20 && c < 0x7F) snprintf(found, sizeof found, "'%c'", c);
        else snprintf(found, sizeof found, "byte 0x%02X", c);
    }
    snprintf(p->err, p->errlen, "line %zu, column %zu: expected %s, found %s", line, col, expected, found);
}

static void skip_ws(jp *p)
{
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->i++;
    }
}

static kd_json *new_value(jp *p, kd_json_type t)
{
    kd_json *v = calloc(1, sizeof *v);
    if (!v) {
        jp_fail(p, "memory for a value");
        return NULL;
    }
    v->type = t;
    return v;
}

void kd_json_free(kd_json *v)
{
    if (!v) return;
    for (size_t i = 0; i < v->count; i++) {
        kd_json_free(v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->string);
    free(v);
}

typedef struct sbuf {
    char *b;
    size_t len, cap;
} sbuf;

static int sb_put(sbuf *s, const char *d, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 32;
        while (cap < s->len + n + 1) cap *= 2;
        char *nb = realloc(s->b, cap);
        if (!nb) return 0;
        s->b = nb;
        s->cap = cap;
    }
    memcpy(s->b + s->len, d, n);
    s->len += n;
    s->b[s->len] = '\0';
    return 1;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static size_t put_utf8(unsigned cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 (RFC 3629: no overlongs, surrogates, > U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (n < need + 1) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 2; k <= need; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    return need + 1;
}

/* p->i at the opening quote; on success *out is the decoded string (malloc'd, NUL-terminated). */
static int parse_string(jp *p, char **out, size_t *outlen)
{
    sbuf sb = {0};
    p->i++;
    for (;;) {
        if (p->i >= p->n) {
            jp_fail(p, "'\"' closing the string");
            free(sb.b);
            return 0;
        }
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') {
            p->i++;
            break;
        }
        if (c < 0x20) {
            jp_fail(p, "an escaped control character (\\n, \\t, \\u00XX) inside the string");
            free(sb.b);
            return 0;
        }
        if (c == '\\') {
            if (p->i + 1 >= p->n) {
                p->i++;
                jp_fail(p, "an escape character after '\\'");
                free(sb.b);
                return 0;
            }
            char e = p->s[p->i + 1];
            char ch;
            int ok = 1;
            switch (e) {
            case '"': ch = '"'; break;
            case '\\': ch = '\\'; break;
            case '/': ch = '/'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                p->i += 2;
                if (p->n - p->i < 4 || !hex4(p->s + p->i, &cp)) {
                    jp_fail(p, "4 hex digits after \\u");
                    free(sb.b);
                    return 0;
                }
                p->i += 4;
                if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    p->i -= 6;
                    jp_fail(p, "a high surrogate before a low surrogate \\u escape");
                    free(sb.b);
                    return 0;
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (p->n - p->i < 6 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u' ||
                        !hex4(p->s + p->i + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                        jp_fail(p, "a low surrogate \\uDC00..\\uDFFF after a high surrogate");
                        free(sb.b);
                        return 0;
                    }
                    p->i += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                char u[4];
                if (!sb_put(&sb, u, put_utf8(cp, u))) ok = 0;
                if (!ok) {
                    jp_fail(p, "memory for a string");
                    free(sb.b);
                    return 0;
                }
                continue;
            }
            default:
                p->i++;
                jp_fail(p, "one of \" \\ / b f n r t u after '\\'");
                free(sb.b);
                return 0;
            }
            if (!sb_put(&sb, &ch, 1)) {
                jp_fail(p, "memory for a string");
                free(sb.b);
                return 0;
            }
            p->i += 2;
            continue;
        }
        /* a run of plain bytes, UTF-8 validated */
        size_t start = p->i;
        while (p->i < p->n) {
            unsigned char d = (unsigned char)p->s[p->i];
            if (d == '"' || d == '\\' || d < 0x20) break;
            size_t l = utf8_seq((const unsigned char *)p->s + p->i, p->n - p->i);
            if (!l) {
                jp_fail(p, "valid UTF-8 in the string");
                free(sb.b);
                return 0;
            }
            p->i += l;
        }
        if (!sb_put(&sb, p->s + start, p->i - start)) {
            jp_fail(p, "memory for a string");
            free(sb.b);
            return 0;
        }
    }
    if (!sb.b && !sb_put(&sb, "", 0)) {
        jp_fail(p, "memory for a string");
        return 0;
    }
    *out = sb.b;
    *outlen = sb.len;
    return 1;
}

static kd_json *parse_value(jp *p);

static int append_item(jp *p, kd_json *v, kd_json *item, char *key, size_t *cap)
{
    if (v->count == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        kd_json **ni = realloc(v->items, nc * sizeof *ni);
        if (!ni) goto oom;
        v->items = ni;
        if (v->type == KD_JSON_OBJECT) {
            char **nk = realloc(v->keys, nc * sizeof *nk);
            if (!nk) goto oom;
            v->keys = nk;
        }
        *cap = nc;
    }
    v->items[v->count] = item;
    if (v->type == KD_JSON_OBJECT) v->keys[v->count] = key;
    v->count++;
    return 1;
oom:
    jp_fail(p, "memory for a container");
    kd_json_free(item);
    free(key);
    return 0;
}

static kd_json *parse_container(jp *p, int object)
{
    if (++p->depth > JSON_MAX_DEPTH) {
        jp_fail(p, "nesting at most 512 deep");
        return NULL;
    }
    kd_json *v = new_value(p, object ? KD_JSON_OBJECT : KD_JSON_ARRAY);
    if (!v) return NULL;
    size_t cap = 0;
    char close = object ? '}' : ']';
    p->i++;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == close) {
        p->i++;
        p->depth--;
        return v;
    }
    for (;;) {
        char *key = NULL;
        size_t klen;
        skip_ws(p);
        if (object) {
            if (p->i >= p->n || p->s[p->i] != '"') {
                jp_fail(p, "'\"' starting an object key");
                goto fail;
            }
            if (!parse_string(p, &key, &klen)) goto fail;
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') {
                free(key);
                jp_fail(p, "':' after an object key");
                goto fail;
            }
            p->i++;
        }
        kd_json *item = parse_value(p);
        if (!item) {
            free(key);
            goto fail;
        }
        if (!append_item(p, v, item, key, &cap)) goto fail;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == close) {
            p->i++;
            break;
        }
        jp_fail(p, object ? "',' or '}' in an object" : "',' or ']' in an array");
        goto fail;
    }
    p->depth--;
    return v;
fail:
    kd_json_free(v);
    return NULL;
}

static kd_json *parse_number(jp *p)
{
    size_t start = p->i;
    int is_int = 1;
    if (p->s[p->i] == '-') p->i++;
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') {
        jp_fail(p, "a digit");
        return NULL;
    }
    if (p->s[p->i] == '0') {
        p->i++;
        if (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
            jp_fail(p, "no leading zero in a number");
            return NULL;
        }
    } else {
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && p->s[p->i] == '.') {
        is_int = 0;
        p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') {
            jp_fail(p, "a digit after '.'");
            return NULL;
        }
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        is_int = 0;
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') {
            jp_fail(p, "a digit in the exponent");
            return NULL;
        }
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    size_t len = p->i - start;
    char small[64];
    char *buf = len < sizeof small ? small : malloc(len + 1);
    if (!buf) {
        jp_fail(p, "memory for a number");
        return NULL;
    }
    memcpy(buf, p->s + start, len);
    buf[len] = '\0';
    kd_json *v = new_value(p, KD_JSON_NUMBER);
    if (v) {
        v->number = strtod(buf, NULL);
        if (is_int) {
            errno = 0;
            long long ll = strtoll(buf, NULL, 10);
            if (errno == 0) {
                v->integer = (int64_t)ll;
                v->is_integer = 1;
            }
        } else if (v->number == floor(v->number) && fabs(v->number) < 9007199254740992.0) {
            v->integer = (int64_t)v->number;
            v->is_integer = 1;
        }
    }
    if (buf != small) free(buf);
    return v;
}

static kd_json *parse_value(jp *p)
{
    skip_ws(p);
    if (p->i >= p->n) {
        jp_fail(p, "a value");
        return NULL;
    }
    char c = p->s[p->i];
    if (c == '{' || c == '[') return parse_container(p, c == '{');
    if (c == '"') {
        kd_json *v = new_value(p, KD_JSON_STRING);
        if (v && !parse_string(p, &v->string, &v->string_len)) {
            kd_json_free(v);
            return NULL;
        }
        return v;
    }
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p);
    static const struct {
        const char *word;
        kd_json_type t;
    } lit[3] = {{"null", KD_JSON_NULL}, {"true", KD_JSON_TRUE}, {"false", KD_JSON_FALSE}};
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(lit[k].word);
        if (p->n - p->i >= l && memcmp(p->s + p->i, lit[k].word, l) == 0) {
            p->i += l;
            return new_value(p, lit[k].t);
        }
    }
    jp_fail(p, "a value (object, array, string, number, true, false or null)");
    return NULL;
}

kd_json *kd_json_parse(const char *text, size_t len, char *err, size_t errlen)
{
    jp p = {text ? text : "", text ? len : 0, 0, 0, err, errlen, 0};
    if (err && errlen) err[0] = '\0';
    kd_json *v = parse_value(&p);
    if (!v) return NULL;
    skip_ws(&p);
    if (p.i != p.n) {
        jp_fail(&p, "end of input after the value");
        kd_json_free(v);
        return NULL;
    }
    return v;
}

const kd_json *kd_json_get(const kd_json *obj, const char *key)
{
    if (!obj || obj->type != KD_JSON_OBJECT || !key) return NULL;
    for (size_t i = obj->count; i-- > 0;)
        if (strcmp(obj->keys[i], key) == 0) return obj->items[i];
    return NULL;
}

const kd_json *kd_json_at(const kd_json *arr, size_t i)
{
    if (!arr || arr->type != KD_JSON_ARRAY || i >= arr->count) return NULL;
    return arr->items[i];
}

/* ---- writer ---- */

void kd_jw_init(kd_jw *w, int pretty)
{
    memset(w, 0, sizeof *w);
    w->pretty = pretty;
    w->first[0] = 1;
}

void kd_jw_free(kd_jw *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

static void jw_put(kd_jw *w, const char *s, size_t n)
{
    if (w->failed) return;
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n + 1) cap *= 2;
        char *nb = realloc(w->buf, cap);
        if (!nb) {
            w->failed = 1;
            return;
        }
        w->buf = nb;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

static void jw_newline(kd_jw *w)
{
    if (!w->pretty) return;
    jw_put(w, "\n", 1);
    for (int d = 0; d < w->depth; d++) jw_put(w, "  ", 2);
}

/* Before any value: a comma between siblings, the indentation, nothing after a key. */
static void jw_before(kd_jw *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    int d = w->depth < 64 ? w->depth : 63;
    if (w->depth > 0) {
        if (!w->first[d]) jw_put(w, ",", 1);
        jw_newline(w);
    }
    w->first[d] = 0;
}

static void jw_open(kd_jw *w, char c)
{
    jw_before(w);
    jw_put(w, &c, 1);
    w->depth++;
    if (w->depth < 64) w->first[w->depth] = 1;
}

static void jw_close(kd_jw *w, char c)
{
    int d = w->depth < 64 ? w->depth : 63;
    int empty = w->first[d];
    w->depth--;
    if (!empty) jw_newline(w);
    jw_put(w, &c, 1);
}

void kd_jw_object_begin(kd_jw *w) { jw_open(w, '{'); }
void kd_jw_object_end(kd_jw *w) { jw_close(w, '}'); }
void kd_jw_array_begin(kd_jw *w) { jw_open(w, '['); }
void kd_jw_array_end(kd_jw *w) { jw_close(w, ']'); }

static void jw_escaped(kd_jw *w, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    jw_put(w, "\"", 1);
    size_t i = 0;
    while (i < n) {
        unsigned char c = u[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            jw_put(w, esc, 2);
            i++;
        } else if (c < 0x20) {
            const char *named = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
            if (named) {
                jw_put(w, named, 2);
            } else {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                jw_put(w, esc, 6);
            }
            i++;
        } else if (c < 0x80) {
            size_t j = i;
            while (j < n && u[j] >= 0x20 && u[j] < 0x80 && u[j] != '"' && u[j] != '\\') j++;
            jw_put(w, s + i, j - i);
            i = j;
        } else {
            size_t l = utf8_seq(u + i, n - i);
            if (l) {
                jw_put(w, s + i, l);
                i += l;
            } else {
                jw_put(w, "\xEF\xBF\xBD", 3);
                i++;
            }
        }
    }
    jw_put(w, "\"", 1);
}

void kd_jw_key(kd_jw *w, const char *key)
{
    jw_before(w);
    jw_escaped(w, key, strlen(key));
    jw_put(w, w->pretty ? ": " : ":", w->pretty ? 2 : 1);
    w->after_key = 1;
}

void kd_jw_string_n(kd_jw *w, const char *s, size_t n)
{
    jw_before(w);
    jw_escaped(w, s, n);
}

void kd_jw_string(kd_jw *w, const char *s) { kd_jw_string_n(w, s, strlen(s)); }

void kd_jw_int(kd_jw *w, int64_t v)
{
    char b[32];
    int n = snprintf(b, sizeof b, "%lld", (long long)v);
    jw_before(w);
    jw_put(w, b, (size_t)n);
}

void kd_jw_number(kd_jw *w, double v)
{
    if (!isfinite(v)) {
        kd_jw_null(w);
        return;
    }
    char b[40];
    int n = 0;
    /* the fewest significant digits that read back as the same double */
    for (int prec = 1; prec <= 17; prec++) {
        n = snprintf(b, sizeof b, "%.*g", prec, v);
        if (strtod(b, NULL) == v) break;
    }
    jw_before(w);
    jw_put(w, b, (size_t)n);
}

void kd_jw_bool(kd_jw *w, int v)
{
    jw_before(w);
    jw_put(w, v ? "true" : "false", v ? 4 : 5);
}

void kd_jw_null(kd_jw *w)
{
    jw_before(w);
    jw_put(w, "null", 4);
}

const char *kd_jw_text(const kd_jw *w)
{
    if (w->failed) return NULL;
    return w->buf ? w->buf : "";
}

void kd_jw_field_string(kd_jw *w, const char *key, const char *s) { kd_jw_key(w, key); kd_jw_string(w, s); }
void kd_jw_field_int(kd_jw *w, const char *key, int64_t v) { kd_jw_key(w, key); kd_jw_int(w, v); }
void kd_jw_field_number(kd_jw *w, const char *key, double v) { kd_jw_key(w, key); kd_jw_number(w, v); }

kd_json *kd_json_read_file(const char *path)
{
    char *text = NULL, err[160];
    size_t len = 0;
    if (kd_read_file(path, &text, &len) != KD_OK) return NULL;
    kd_json *o = kd_json_parse(text, len, err, sizeof err);
    free(text);
    if (!o) kd_fail(KD_ERR_FORMAT, "%s: not valid JSON: %s", path, err);
    return o;
}
