/* test/data/test_tokenizer_parity.c — kd's WordPiece tokenizer against the reference (Hugging Face
 * tokenizers) on (a) the published cases in ../shared/data/tokenizer-cases/bert-base-uncased.json and
 * (b) goldens made by test/data/gen_tokenizer_golden.py: 500+ hand-written hard cases and every SST-2
 * sentence. Every case must give identical ids and type ids. Skips (77) without ../shared.
 *
 * Regenerate the goldens with: python3 test/data/gen_tokenizer_golden.py ../shared test/data/golden
 * usage: test_tokenizer_parity GOLDEN_DIR */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/wordpiece.h"
#include "engine/json.h"
#include "test/testutil.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[n] = '\0';
    *len = (size_t)n;
    return b;
}

static int shown;

static void show_ids(const char *what, const int32_t *ids, size_t n)
{
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", (int)ids[i]);
    fputc('\n', stderr);
}

/* Compare e with want[0..nw) (and want_types when given); print the first few mismatches. */
static int same(const kd_encoding *e, const int32_t *want, size_t nw, const char *want_types, const char *label)
{
    int ok = e->len == nw;
    for (size_t i = 0; ok && i < nw; i++) ok = e->ids[i] == want[i];
    if (ok && want_types) {
        ok = strlen(want_types) == nw;
        for (size_t i = 0; ok && i < nw; i++) ok = e->type_ids[i] == want_types[i] - '0';
    }
    if (!ok && shown++ < 20) {
        fprintf(stderr, "MISMATCH %s\n", label);
        show_ids("want", want, nw);
        show_ids("got ", e->ids, e->len);
    }
    return ok;
}

static size_t parse_ids(char *s, int32_t *out, size_t cap)
{
    size_t n = 0;
    char *end;
    for (;;) {
        long v = strtol(s, &end, 10);
        if (end == s) break;
        if (n < cap) out[n] = (int32_t)v;
        n++;
        s = end;
    }
    return n;
}

static size_t unhex(const char *h, size_t hn, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i + 1 < hn + 1 && i < hn; i += 2) {
        unsigned v;
        sscanf(h + i, "%2x", &v);
        out[n++] = (char)v;
    }
    return n;
}

static void check_published(const kd_tokenizer *t, const char *shared, kd_encoding *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/data/tokenizer-cases/bert-base-uncased.json", shared);
    size_t len;
    char *text = slurp(path, &len);
    CHECK(text != NULL, "read %s", path);
    if (!text) return;
    char err[256];
    kd_json *root = kd_json_parse(text, len, err, sizeof err);
    CHECK(root != NULL, "%s: %s", path, err);
    int total = 0, good = 0;
    static const char *const groups[2] = {"single", "pairs"};
    for (int g = 0; root && g < 2; g++) {
        const kd_json *arr = kd_json_get(root, groups[g]);
        CHECK(arr && arr->type == KD_JSON_ARRAY && arr->count > 0, "%s: '%s' array", path, groups[g]);
        for (size_t i = 0; arr && i < arr->count; i++) {
            const kd_json *c = kd_json_at(arr, i);
            const kd_json *a = kd_json_get(c, "text"), *b = kd_json_get(c, "text_pair"), *ids = kd_json_get(c, "ids");
            if (!a || !ids || a->type != KD_JSON_STRING || ids->type != KD_JSON_ARRAY) {
                CHECK(0, "%s: %s[%zu] lacks text/ids", path, groups[g], i);
                continue;
            }
            int32_t want[1024];
            size_t nw = ids->count < 1024 ? ids->count : 1024;
            for (size_t k = 0; k < nw; k++) want[k] = (int32_t)kd_json_at(ids, k)->integer;
            kd_status st = kd_encode(t, a->string, a->string_len, b ? b->string : NULL, b ? b->string_len : 0, 0, e);
            char label[300];
            snprintf(label, sizeof label, "published %s[%zu] \"%.200s\"", groups[g], i, a->string);
            int ok = st == KD_OK && same(e, want, nw, NULL, label);
            CHECK(ok, "%s", label);
            total++;
            good += ok;
        }
    }
    printf("published cases: %d/%d identical\n", good, total);
    CHECK(total == 17, "17 published cases, found %d", total);
    kd_json_free(root);
    free(text);
}

static void check_hard(const kd_tokenizer *tu, const kd_tokenizer *tc, const char *golden_dir, kd_encoding *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_hard.txt", golden_dir);
    size_t len;
    char *text = slurp(path, &len);
    CHECK(text != NULL, "read %s", path);
    if (!text) return;
    CHECK(strncmp(text, "KDTOKGOLD 1\n", 12) == 0, "%s: magic KDTOKGOLD 1", path);
    int total = 0, good = 0;
    char *line = strchr(text, '\n');
    char *a = malloc(len), *b = malloc(len);
    int32_t *want = malloc(len * sizeof *want);
    while (line && *++line) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        char *f[6];
        int nf = 0;
        for (char *p = line; nf < 6; nf++) {
            f[nf] = p;
            char *tab = strchr(p, '\t');
            if (!tab) {
                nf++;
                break;
            }
            *tab = '\0';
            p = tab + 1;
        }
        total++;
        if (nf != 6) {
            CHECK(0, "%s case %d: 6 tab-separated fields", path, total);
            line = nl;
            if (!nl) break;
            continue;
        }
        const kd_tokenizer *t = f[0][0] == 'C' ? tc : tu;
        size_t max_len = (size_t)strtoul(f[1], NULL, 10);
        size_t na = unhex(f[2], strlen(f[2]), a);
        int pair = strcmp(f[3], "-") != 0;
        size_t nb = pair ? unhex(f[3], strlen(f[3]), b) : 0;
        size_t nw = parse_ids(f[4], want, len);
        kd_status st = kd_encode(t, a, na, pair ? b : NULL, nb, max_len, e);
        char label[600];
        snprintf(label, sizeof label, "hard case %d (mode %s, max_len %zu, hex %.200s / %.200s)", total, f[0], max_len,
                 f[2], f[3]);
        int ok = st == KD_OK && same(e, want, nw, f[5], label);
        CHECK(ok, "%s", label);
        good += ok;
        line = nl;
        if (!nl) break;
    }
    printf("hard cases: %d/%d identical\n", good, total);
    CHECK(total >= 300, "at least 300 hard cases, found %d", total);
    free(a);
    free(b);
    free(want);
    free(text);
}

static uint32_t fnv_ids(const kd_encoding *e)
{
    uint64_t h = 0xcbf29ce484222325ull;
    char buf[16];
    for (size_t i = 0; i < e->len; i++) {
        int n = snprintf(buf, sizeof buf, i ? " %d" : "%d", (int)e->ids[i]);
        for (int k = 0; k < n; k++) h = (h ^ (unsigned char)buf[k]) * 0x100000001b3ull;
    }
    return (uint32_t)h;
}

static void check_sst2(const kd_tokenizer *t, const char *shared, const char *golden_dir, kd_encoding *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_sst2.txt", golden_dir);
    size_t glen;
    char *gold = slurp(path, &glen);
    CHECK(gold != NULL, "read %s", path);
    if (!gold) return;
    CHECK(strncmp(gold, "KDTOKSST2 1\n", 12) == 0, "%s: magic KDTOKSST2 1", path);
    char *g = strchr(gold, '\n') + 1;
    int32_t *want = malloc(4096 * sizeof *want);
    while (*g == 'F') {
        char name[256], how[16];
        int count = 0;
        if (sscanf(g, "F %255s %d %15s", name, &count, how) != 3) break;
        g = strchr(g, '\n') + 1;
        char dpath[4096];
        snprintf(dpath, sizeof dpath, "%s/data/sst2/%s", shared, name);
        size_t dlen;
        char *data = slurp(dpath, &dlen);
        CHECK(data != NULL, "read %s", dpath);
        if (!data) break;
        char *row = strchr(data, '\n');
        int n = 0, good = 0;
        while (row && *++row && n < count) {
            char *nl = strchr(row, '\n');
            char *tab = strchr(row, '\t');
            size_t sl = (size_t)((tab && (!nl || tab < nl) ? tab : nl ? nl : row + strlen(row)) - row);
            char *gl = strchr(g, '\n');
            *gl = '\0';
            kd_status st = kd_encode(t, row, sl, NULL, 0, 0, e);
            int ok;
            char label[400];
            snprintf(label, sizeof label, "%s sentence %d \"%.*s\"", name, n + 1, (int)(sl < 300 ? sl : 300), row);
            if (strcmp(how, "ids") == 0) {
                size_t nw = parse_ids(g, want, 4096);
                ok = st == KD_OK && same(e, want, nw, NULL, label);
            } else {
                unsigned h = (unsigned)strtoul(g, NULL, 16);
                ok = st == KD_OK && fnv_ids(e) == h;
                if (!ok && shown++ < 20) {
                    fprintf(stderr, "MISMATCH %s (hash)\n", label);
                    show_ids("got ", e->ids, e->len);
                }
            }
            good += ok;
            n++;
            g = gl + 1;
            row = nl;
        }
        CHECK(good == n && n == count, "SST-2 %s: %d/%d identical (golden has %d)", name, good, n, count);
        printf("SST-2 %s: %d/%d identical\n", name, good, n);
        free(data);
    }
    free(want);
    free(gold);
}

int main(int argc, char **argv)
{
    const char *shared = kd_test_shared_dir();
    if (!shared || argc < 2) {
        printf("no ../shared (KD_SHARED) or golden dir: skipped\n");
        return KD_TEST_SKIP;
    }
    char vpath[4096];
    snprintf(vpath, sizeof vpath, "%s/data/bert-base-uncased/vocab.txt", shared);
    kd_tokenizer *tu = NULL, *tc = NULL;
    CHECK(kd_tokenizer_load(vpath, 1, &tu) == KD_OK, "load %s: %s", vpath, kd_last_error());
    CHECK(kd_tokenizer_load(vpath, 0, &tc) == KD_OK, "load %s (cased): %s", vpath, kd_last_error());
    if (!tu || !tc) return kd_test_finish("test_tokenizer_parity");
    CHECK(kd_vocab_size(tu->vocab) == 30522, "bert-base-uncased has 30522 tokens, got %d", kd_vocab_size(tu->vocab));
    kd_encoding e;
    kd_encoding_init(&e);
    check_published(tu, shared, &e);
    check_hard(tu, tc, argv[1], &e);
    check_sst2(tu, shared, argv[1], &e);
    kd_encoding_free(&e);
    kd_tokenizer_free(tu);
    kd_tokenizer_free(tc);
    return kd_test_finish("test_tokenizer_parity");
}
