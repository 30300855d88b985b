/* test/data/test_json.c — engine/json.c: values of every type, exact int64, string escapes with
 * surrogate pairs and NUL, the last of repeated keys, errors with line and column, the depth limit, and
 * the writer (commas, nesting, pretty form, escaping, invalid UTF-8 as U+FFFD, shortest round-trip
 * numbers, NaN as null) read back by the parser. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/json.h"
#include "test/testutil.h"

static kd_json *parse(const char *s, char *err, size_t errlen) { return kd_json_parse(s, strlen(s), err, errlen); }

static void bad(const char *s, const char *want)
{
    char err[200];
    kd_json *v = parse(s, err, sizeof err);
    CHECK(v == NULL, "'%s' is rejected", s);
    CHECK(strstr(err, want) != NULL, "'%s': message '%s' contains '%s'", s, err, want);
    kd_json_free(v);
}

int main(void)
{
    char err[200];
    const char *doc = " {\"a\": [1, -2, 3.5, 1e3, -0, 9007199254740993, true, false, null],\n"
                      "  \"s\": \"q\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\\u0000z\", \"a\": {\"x\": {}}, \"e\": []} ";
    kd_json *v = parse(doc, err, sizeof err);
    CHECK(v && v->type == KD_JSON_OBJECT && v->count == 4, "object of 4 members: %s", err);
    const kd_json *a = kd_json_get(v, "a");
    CHECK(a && a->type == KD_JSON_OBJECT, "repeated key: the last one wins");
    CHECK(kd_json_get(kd_json_get(a, "x"), "y") == NULL, "absent key");
    const kd_json *arr = v ? v->items[0] : NULL;
    CHECK(arr && arr->type == KD_JSON_ARRAY && arr->count == 9, "array of 9");
    if (arr && arr->count == 9) {
        CHECK(arr->items[0]->is_integer && arr->items[0]->integer == 1, "1");
        CHECK(arr->items[1]->integer == -2, "-2");
        CHECK(!arr->items[2]->is_integer && arr->items[2]->number == 3.5, "3.5");
        CHECK(arr->items[3]->number == 1000.0, "1e3");
        CHECK(arr->items[5]->is_integer && arr->items[5]->integer == 9007199254740993LL, "exact int64 beyond 2^53");
        CHECK(arr->items[6]->type == KD_JSON_TRUE && arr->items[7]->type == KD_JSON_FALSE &&
              arr->items[8]->type == KD_JSON_NULL, "literals");
        CHECK(kd_json_at(arr, 9) == NULL && kd_json_at(arr, 8) != NULL, "kd_json_at bounds");
    }
    const kd_json *s = kd_json_get(v, "s");
    static const char want_s[] = "q\"\\/\b\f\n\r\t\xC3\xA9\xF0\x9F\x98\x80\0z";
    CHECK(s && s->string_len == sizeof want_s - 1 && memcmp(s->string, want_s, sizeof want_s - 1) == 0,
          "escapes decoded, NUL kept (length %zu)", s ? s->string_len : 0);
    kd_json_free(v);

    bad("", "line 1, column 1: expected a value, found end of input");
    bad("[1,]", "line 1, column 4: expected a value");
    bad("{\"a\" 1}", "expected ':'");
    bad("[1 2]", "expected ',' or ']'");
    bad("01", "no leading zero");
    bad("1.", "a digit after '.'");
    bad("\"abc", "closing the string");
    bad("\"a\nb\"", "escaped control character");
    bad("\"\\x\"", "one of");
    bad("\"\\u12G4\"", "4 hex digits");
    bad("\"\\udc00\"", "high surrogate before");
    bad("\"\\ud800x\"", "low surrogate");
    bad("\"\xff\"", "valid UTF-8");
    bad("\"\xC0\xAF\"", "valid UTF-8");
    bad("[1]\n  x", "line 2, column 3: expected end of input");
    bad("tru", "expected a value");
    char *deep = malloc(2000);
    memset(deep, '[', 1000);
    memset(deep + 1000, ']', 999);
    deep[1999] = '\0';
    bad(deep, "nesting at most 512");
    free(deep);
    CHECK(kd_json_parse("x", 1, NULL, 0) == NULL, "NULL error buffer is fine");

    kd_jw w;
    kd_jw_init(&w, 0);
    kd_jw_object_begin(&w);
    kd_jw_key(&w, "n");
    kd_jw_int(&w, -12);
    kd_jw_key(&w, "x");
    kd_jw_number(&w, 0.1);
    kd_jw_key(&w, "big");
    kd_jw_number(&w, 1e300);
    kd_jw_key(&w, "nan");
    kd_jw_number(&w, NAN);
    kd_jw_key(&w, "s");
    kd_jw_string_n(&w, "a\"\\\n\x01\xff\xC3\xA9", 8);
    kd_jw_key(&w, "l");
    kd_jw_array_begin(&w);
    kd_jw_bool(&w, 1);
    kd_jw_null(&w);
    kd_jw_array_begin(&w);
    kd_jw_array_end(&w);
    kd_jw_object_begin(&w);
    kd_jw_object_end(&w);
    kd_jw_array_end(&w);
    kd_jw_object_end(&w);
    const char *txt = kd_jw_text(&w);
    const char *want = "{\"n\":-12,\"x\":0.1,\"big\":1e+300,\"nan\":null,\"s\":\"a\\\"\\\\\\n\\u0001\xEF\xBF\xBD\xC3\xA9\","
                       "\"l\":[true,null,[],{}]}";
    CHECK(txt && strcmp(txt, want) == 0, "compact writer:\n  got  %s\n  want %s", txt ? txt : "(null)", want);
    v = txt ? parse(txt, err, sizeof err) : NULL;
    CHECK(v && kd_json_get(v, "x")->number == 0.1 && kd_json_get(v, "big")->number == 1e300, "numbers round-trip: %s",
          err);
    kd_json_free(v);
    kd_jw_free(&w);

    kd_jw_init(&w, 1);
    kd_jw_object_begin(&w);
    kd_jw_key(&w, "a");
    kd_jw_array_begin(&w);
    kd_jw_int(&w, 1);
    kd_jw_int(&w, 2);
    kd_jw_array_end(&w);
    kd_jw_key(&w, "b");
    kd_jw_string(&w, "c");
    kd_jw_object_end(&w);
    want = "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": \"c\"\n}";
    CHECK(strcmp(kd_jw_text(&w), want) == 0, "pretty writer:\n%s", kd_jw_text(&w));
    kd_jw_free(&w);
    return kd_test_finish("test_json");
}
