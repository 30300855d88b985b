/* data/read_jsonl.c — JSON lines: one object per line, {"text": "...", "label": 1 or "positive"};
 * other members are ignored, blank lines are not allowed (but trailing newlines are). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/reader_internal.h"
#include "engine/json.h"

kd_status kd_read_jsonl(const char *path, kd_raw_rows *r)
{
    char *buf;
    size_t len;
    kd_status st = kd_read_rows_file(path, "one JSON object per line", &buf, &len);
    if (st != KD_OK) return st;
    size_t pos = 0, line = 0;
    char err[256];
    while (st == KD_OK) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        line++;
        kd_json *v = kd_json_parse(buf + pos, end - pos, err, sizeof err);
        if (!v) {
            st = kd_fail(KD_ERR_FORMAT, "%s:%zu: %s (expected {\"text\": ..., \"label\": ...})", path, line, err);
            break;
        }
        const kd_json *t = kd_json_get(v, "text"), *l = kd_json_get(v, "label");
        char num[32];
        if (v->type != KD_JSON_OBJECT)
            st = kd_fail(KD_ERR_FORMAT, "%s:%zu: expected a JSON object {\"text\": ..., \"label\": ...}", path, line);
        else if (!t || t->type != KD_JSON_STRING)
            st = kd_fail(KD_ERR_FORMAT, "%s:%zu: expected a \"text\" member holding a string", path, line);
        else if (!l)
            st = kd_fail(KD_ERR_FORMAT, "%s:%zu: expected a \"label\" member (an integer id or a name)", path, line);
        else if (l->type == KD_JSON_STRING)
            st = kd_raw_add(r, path, line, t->string, t->string_len, l->string, l->string_len);
        else if (l->type == KD_JSON_NUMBER && l->is_integer && l->number == (double)l->integer) {
            snprintf(num, sizeof num, "%lld", (long long)l->integer);
            st = kd_raw_add(r, path, line, t->string, t->string_len, num, strlen(num));
        } else
            st = kd_fail(KD_ERR_FORMAT, "%s:%zu: \"label\" is not an integer or a string, expected an integer id or a "
                                        "name", path, line);
        kd_json_free(v);
        if (!nl) break;
        pos = end + 1;
    }
    free(buf);
    return st;
}
