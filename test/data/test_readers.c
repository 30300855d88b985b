/* test/data/test_readers.c — the data set readers on good files of every format (texts, labels and
 * label names checked exactly) and on each kind of bad input, which must be an error naming the file,
 * the line and what was expected. Files are written to a fresh temporary directory.
 *
 * usage: test_readers [CASE]   (no CASE: all of them; meson runs one test per case) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/readers.h"
#include "test/testutil.h"

static char dir[256];

static const char *put(const char *name, const char *content, size_t n)
{
    static char path[8][512];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) {
        perror(p);
        exit(1);
    }
    fwrite(content, 1, n, f);
    fclose(f);
    return p;
}
#define PUT(name, lit) put((name), (lit), sizeof(lit) - 1)

/* Loading path must fail with st, and the message must name path (or name_in_msg) then ":line:" and
 * contain `expect`. */
static void bad(const char *path, const kd_labels *known, kd_status st, const char *name_in_msg, int line,
                const char *expect)
{
    kd_dataset d;
    kd_clear_error();
    kd_status got = kd_dataset_load(path, known, &d);
    const char *msg = kd_last_error();
    CHECK(got == st, "%s: status %s, want %s (%s)", path, kd_status_name(got), kd_status_name(st), msg);
    char where[600];
    snprintf(where, sizeof where, "%s:%d:", name_in_msg ? name_in_msg : path, line);
    CHECK(strstr(msg, where) != NULL, "message names '%s': %s", where, msg);
    CHECK(strstr(msg, expect) != NULL, "message says '%s': %s", expect, msg);
    CHECK(d.n == 0 && d.text == NULL, "%s: nothing loaded on failure", path);
    printf("  error as expected: %s\n", msg);
    if (got == KD_OK) kd_dataset_free(&d);
}

static void good_tsv(void)
{
    const char *p = PUT("sst.tsv", "sentence\tlabel\nit 's a charming journey . \t1\nbleak and desperate \t0\r\n\n");
    kd_dataset d;
    CHECK(kd_dataset_load(p, NULL, &d) == KD_OK, "load: %s", kd_last_error());
    CHECK(d.n == 2 && d.format == KD_FORMAT_TSV, "2 rows of TSV, got %zu", d.n);
    if (d.n == 2) {
        CHECK(strcmp(d.text[0], "it 's a charming journey .") == 0, "text 0 '%s'", d.text[0]);
        CHECK(strcmp(d.text[1], "bleak and desperate") == 0, "text 1 '%s'", d.text[1]);
        CHECK(d.label[0] == 1 && d.label[1] == 0, "labels %d %d", d.label[0], d.label[1]);
        CHECK(d.labels.n == 2 && strcmp(d.labels.names[1], "1") == 0, "names 0,1");
    }
    kd_dataset_free(&d);
}

static void good_csv(void)
{
    const char *p = PUT("reviews.csv", "\xEF\xBB\xBFid,text,label\r\n1,\"Hello, \"\"world\"\"\",positive\r\n"
                                       "2,\"two\nlines\",negative\r\n3,plain,neutral\r\n4,\"\",positive\n");
    kd_dataset d;
    CHECK(kd_dataset_load(p, NULL, &d) == KD_OK, "load: %s", kd_last_error());
    CHECK(d.n == 4, "4 records, got %zu", d.n);
    if (d.n == 4) {
        CHECK(strcmp(d.text[0], "Hello, \"world\"") == 0, "quoted text '%s'", d.text[0]);
        CHECK(strcmp(d.text[1], "two\nlines") == 0, "newline in quotes '%s'", d.text[1]);
        CHECK(strcmp(d.text[2], "plain") == 0 && d.text_len[3] == 0, "plain and empty");
        /* names sorted: negative 0, neutral 1, positive 2 */
        CHECK(d.labels.n == 3 && d.label[0] == 2 && d.label[1] == 0 && d.label[2] == 1, "label ids by sorted name");
        CHECK(kd_labels_id(&d.labels, "neutral") == 1 && strcmp(kd_labels_name(&d.labels, 2), "positive") == 0,
              "names <-> ids both ways");
        CHECK(kd_labels_name(&d.labels, 3) == NULL && kd_labels_id(&d.labels, "nope") == -1, "absent names/ids");
    }
    kd_dataset_free(&d);
}

static void good_jsonl(void)
{
    const char *p = PUT("d.jsonl", "{\"text\": \"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\\\ \\/ \\n\", \"label\": 1, \"x\": [1]}\n"
                                   "  {\"label\": 0, \"text\": \"plain\"}  \n");
    kd_dataset d;
    CHECK(kd_dataset_load(p, NULL, &d) == KD_OK, "load: %s", kd_last_error());
    CHECK(d.n == 2, "2 lines, got %zu", d.n);
    if (d.n == 2) {
        CHECK(strcmp(d.text[0], "caf\xC3\xA9 \xF0\x9F\x98\x80 \"q\" \\ / \n") == 0, "escapes decoded: '%s'", d.text[0]);
        CHECK(d.label[0] == 1 && d.label[1] == 0, "int labels");
    }
    kd_dataset_free(&d);
    /* names, checked against a known label set (the order of the known set decides the ids) */
    p = PUT("n.jsonl", "{\"text\": \"a\", \"label\": \"positive\"}\n{\"text\": \"b\", \"label\": \"negative\"}\n");
    const char *names[2] = {"positive", "negative"};
    kd_labels known;
    CHECK(kd_labels_set(&known, names, 2) == KD_OK, "labels");
    CHECK(kd_dataset_load(p, &known, &d) == KD_OK, "load with known labels: %s", kd_last_error());
    CHECK(d.n == 2 && d.label[0] == 0 && d.label[1] == 1, "ids from the known set");
    kd_dataset_free(&d);
    kd_labels_free(&known);
}

static void good_tweeteval(void)
{
    PUT("train_text.txt", "@user I love it\nmeh\r\nworst day ever\n");
    const char *lp = PUT("train_labels.txt", "2\n1\n0\n");
    PUT("mapping.txt", "0\tnegative\n1\tneutral\n2\tpositive\n");
    kd_dataset d;
    CHECK(kd_dataset_load(lp, NULL, &d) == KD_OK, "load via the labels file: %s", kd_last_error());
    CHECK(d.n == 3 && d.format == KD_FORMAT_TWEETEVAL, "3 tweets, got %zu", d.n);
    if (d.n == 3) {
        CHECK(strcmp(d.text[1], "meh") == 0 && d.label[0] == 2 && d.label[2] == 0, "texts and labels");
        CHECK(d.labels.n == 3 && strcmp(d.labels.names[2], "positive") == 0, "names from mapping.txt");
    }
    kd_dataset_free(&d);
    /* the directory form finds train_text.txt */
    char chosen[512];
    CHECK(kd_dataset_load_split(dir, "train", NULL, &d, chosen, sizeof chosen) == KD_OK, "split: %s", kd_last_error());
    CHECK(d.n == 3 && strstr(chosen, "train_text.txt"), "train split is train_text.txt: %s", chosen);
    kd_dataset_free(&d);
    CHECK(kd_dataset_load_split(dir, "dev", NULL, &d, NULL, 0) == KD_ERR_IO, "no dev split: an error");
    CHECK(strstr(kd_last_error(), "dev.tsv") != NULL, "the message lists what was expected: %s", kd_last_error());
}

static void missing_file(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s/nope.tsv", dir);
    kd_dataset d;
    CHECK(kd_dataset_load(p, NULL, &d) == KD_ERR_IO, "missing file is KD_ERR_IO");
    CHECK(strstr(kd_last_error(), p) && strstr(kd_last_error(), "no such file"), "names the file: %s", kd_last_error());
}

static void empty_file(void)
{
    bad(PUT("empty.tsv", ""), NULL, KD_ERR_FORMAT, NULL, 1, "empty file");
    bad(PUT("empty.csv", "\n\n"), NULL, KD_ERR_FORMAT, NULL, 1, "empty file");
    bad(PUT("empty.jsonl", ""), NULL, KD_ERR_FORMAT, NULL, 1, "empty file");
    bad(PUT("hdr.tsv", "sentence\tlabel\n"), NULL, KD_ERR_FORMAT, NULL, 2, "no data rows");
}

static void ragged_row(void)
{
    bad(PUT("r.tsv", "sentence\tlabel\ngood\t1\nno label here\nx\t0\n"), NULL, KD_ERR_FORMAT, NULL, 3,
        "expected 2 as in the header");
    bad(PUT("r2.tsv", "sentence\tlabel\ngood\t1\nx\t0\textra\n"), NULL, KD_ERR_FORMAT, NULL, 3, "3 tab-separated fields");
    bad(PUT("r.csv", "text,label\n\"a, b\",1\nc,1,2\n"), NULL, KD_ERR_FORMAT, NULL, 3, "expected 2 as in the header");
    bad(PUT("h.tsv", "text_a\tclass\nx\t1\n"), NULL, KD_ERR_FORMAT, NULL, 1, "'label' column");
}

static void unknown_label(void)
{
    const char *names[2] = {"negative", "positive"};
    kd_labels known;
    kd_labels_set(&known, names, 2);
    bad(PUT("u.tsv", "sentence\tlabel\na\tpositive\nb\tmixed\n"), &known, KD_ERR_FORMAT, NULL, 3,
        "unknown label 'mixed', expected one of 0=negative, 1=positive");
    bad(PUT("u.jsonl", "{\"text\":\"a\",\"label\":\"neg\"}\n"), &known, KD_ERR_FORMAT, NULL, 1, "unknown label 'neg'");
    kd_labels_free(&known);
    bad(PUT("mix.csv", "text,label\na,1\nb,positive\n"), NULL, KD_ERR_FORMAT, NULL, 3, "expected an integer id");
    bad(PUT("f.jsonl", "{\"text\":\"a\",\"label\":1.5}\n"), NULL, KD_ERR_FORMAT, NULL, 1, "expected an integer id or a name");
    bad(PUT("e.tsv", "sentence\tlabel\na\t \n"), NULL, KD_ERR_FORMAT, NULL, 2, "empty label");
}

static void out_of_range_label(void)
{
    const char *names[2] = {"negative", "positive"};
    kd_labels known;
    kd_labels_set(&known, names, 2);
    bad(PUT("o.tsv", "sentence\tlabel\na\t1\nb\t2\n"), &known, KD_ERR_FORMAT, NULL, 3, "label 2 out of range, expected 0..1");
    kd_labels_free(&known);
    bad(PUT("o.jsonl", "{\"text\":\"a\",\"label\":-1}\n"), NULL, KD_ERR_FORMAT, NULL, 1, "out of range, expected 0..999");
    bad(PUT("o.csv", "text,label\na,0\nb,99999999999\n"), NULL, KD_ERR_FORMAT, NULL, 3, "out of range");
}

static void count_mismatch(void)
{
    char lp[512];
    PUT("dev_text.txt", "one\ntwo\nthree\n");
    snprintf(lp, sizeof lp, "%s", PUT("dev_labels.txt", "0\n1\n"));
    bad(lp, NULL, KD_ERR_FORMAT, lp, 3, "2 labels for 3 texts");
    PUT("t2_text.txt", "one\n");
    snprintf(lp, sizeof lp, "%s", PUT("t2_labels.txt", "7x\n"));
    bad(lp, NULL, KD_ERR_FORMAT, lp, 1, "label '7x', expected an integer id");
}

static void invalid_utf8(void)
{
    bad(PUT("b.tsv", "sentence\tlabel\nok\t1\nbad \xC3\x28 byte\t0\n"), NULL, KD_ERR_FORMAT, NULL, 3, "invalid UTF-8");
    bad(PUT("b.csv", "text,label\n\"over\xC0\xAFlong\",1\n"), NULL, KD_ERR_FORMAT, NULL, 2, "invalid UTF-8");
    bad(PUT("b.jsonl", "{\"text\":\"ok\",\"label\":1}\n{\"text\":\"\xED\xA0\x80\",\"label\":1}\n"), NULL, KD_ERR_FORMAT,
        NULL, 2, "valid UTF-8");
    PUT("b_text.txt", "fine\ntrunc\xE2\x82\n");
    char lp[512];
    snprintf(lp, sizeof lp, "%s", PUT("b_labels.txt", "0\n1\n"));
    char tp[512];
    snprintf(tp, sizeof tp, "%s/b_text.txt", dir);
    bad(lp, NULL, KD_ERR_FORMAT, tp, 2, "invalid UTF-8");
}

static void unterminated_quote(void)
{
    bad(PUT("q.csv", "text,label\na,1\n\"never closed,0\nb,1\n"), NULL, KD_ERR_FORMAT, NULL, 3,
        "unterminated quoted field");
    bad(PUT("q2.csv", "text,label\n\"closed\"x,1\n"), NULL, KD_ERR_FORMAT, NULL, 2, "after a closing quote");
    bad(PUT("q3.csv", "text,label\nsay \"hi\",1\n"), NULL, KD_ERR_FORMAT, NULL, 2, "inside an unquoted field");
}

static void bad_json(void)
{
    bad(PUT("j.jsonl", "{\"text\":\"a\",\"label\":1}\n{\"text\":\"a\",\"label\":1,}\n"), NULL, KD_ERR_FORMAT, NULL, 2,
        "line 1, column 23: expected '\"' starting an object key");
    bad(PUT("j2.jsonl", "{\"text\":\"a\\ud800\",\"label\":1}\n"), NULL, KD_ERR_FORMAT, NULL, 1, "low surrogate");
    bad(PUT("j3.jsonl", "{\"label\":1}\n"), NULL, KD_ERR_FORMAT, NULL, 1, "\"text\" member");
    bad(PUT("j4.jsonl", "{\"text\":\"a\",\"label\":1}\n\n{\"text\":\"a\",\"label\":1}\n"), NULL, KD_ERR_FORMAT, NULL, 2,
        "expected a value");
    bad(PUT("j5.jsonl", "[1,2]\n"), NULL, KD_ERR_FORMAT, NULL, 1, "expected a JSON object");
}

static void unknown_format(void)
{
    kd_dataset d;
    const char *p = PUT("data.xml", "<x/>");
    CHECK(kd_dataset_load(p, NULL, &d) == KD_ERR_ARG, "unknown extension is KD_ERR_ARG");
    CHECK(strstr(kd_last_error(), "expected .tsv"), "says what is expected: %s", kd_last_error());
}

/* Loading path must fail with st and a message that names the file and contains `expect`. */
static void bad_file(const char *path, const kd_labels *known, kd_status st, const char *expect)
{
    kd_dataset d;
    kd_clear_error();
    kd_status got = kd_dataset_load(path, known, &d);
    const char *msg = kd_last_error();
    CHECK(got == st, "%s: status %s, want %s (%s)", path, kd_status_name(got), kd_status_name(st), msg);
    CHECK(strstr(msg, path) != NULL && strstr(msg, expect) != NULL, "message names %s and says '%s': %s", path, expect,
          msg);
    printf("  error as expected: %s\n", msg);
    if (got == KD_OK) kd_dataset_free(&d);
}

/* A byte-order mark is skipped; a binary file is named as one, none of its bytes echoed; a path that does
 * not exist says so whatever its name; integer labels with a gap are refused, listing what was found. */
static void odd_files(void)
{
    kd_dataset d;
    const char *p = PUT("bom.tsv", "\xEF\xBB\xBFsentence\tlabel\ngood\t1\nbad\t0\n");
    CHECK(kd_dataset_load(p, NULL, &d) == KD_OK, "a TSV with a byte-order mark loads: %s", kd_last_error());
    if (d.n == 2) CHECK(strcmp(d.text[0], "good") == 0 && d.label[1] == 0, "its rows read as without the mark");
    CHECK(d.n == 2, "2 rows after the mark, got %zu", d.n);
    kd_dataset_free(&d);
    p = PUT("bom.csv", "\xEF\xBB\xBFtext,label\ngood,1\nbad,0\n");
    CHECK(kd_dataset_load(p, NULL, &d) == KD_OK && d.n == 2, "a CSV with a byte-order mark loads: %s", kd_last_error());
    kd_dataset_free(&d);

    bad_file(PUT("elf.tsv", "\x7f" "ELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0>\0\x01\0\0\0"), NULL, KD_ERR_FORMAT,
             "byte 0x00 at offset 7: not a text file");
    CHECK(strstr(kd_last_error(), "ELF") == NULL, "no byte of the binary file is echoed: %s", kd_last_error());
    bad_file(PUT("latin1.tsv", "s\xe9ntence\tlabel\nx\t1\n"), NULL, KD_ERR_FORMAT, "byte 0xE9 at offset 1");

    char missing[512];
    snprintf(missing, sizeof missing, "%s/no-such-data", dir);
    bad_file(missing, NULL, KD_ERR_IO, "no such file or directory");

    const char *gap = PUT("gap.tsv", "sentence\tlabel\na\t0\nb\t1\nc\t7\nd\t0\n");
    bad_file(gap, NULL, KD_ERR_FORMAT,
             "integer labels with a gap: found 0 (2 rows, first on line 2), 1 (1 row, first on line 3), 7 (1 row, "
             "first on line 4); id 2 never occurs");
    kd_labels ids;
    CHECK(kd_labels_ids(&ids, 8) == KD_OK && ids.n == 8 && strcmp(ids.names[7], "7") == 0, "ids 0..7 named '0'..'7'");
    CHECK(kd_dataset_load(gap, &ids, &d) == KD_OK && d.n == 4 && d.label[2] == 7 && d.labels.n == 8,
          "with 8 classes given the same file loads: %s", kd_last_error());
    kd_dataset_free(&d);
    kd_labels_free(&ids);
}

/* Class i's default names "i" and "LABEL_i" (Hugging Face's) name class i: against a model's labels either
 * form is its id, whatever the model calls the class; a file of LABEL_<id> labels is read by id (LABEL_10 after
 * LABEL_9, not sorted as text) and keeps the names; the forms are not mixed in one file. */
static void default_labels(void)
{
    const char *hf[2] = {"LABEL_0", "LABEL_1"}, *kd[2] = {"0", "1"}, *named[2] = {"neg", "pos"};
    const kd_labels *sets[3];
    kd_labels a, b, c;
    kd_labels_set(&a, hf, 2);
    kd_labels_set(&b, kd, 2);
    kd_labels_set(&c, named, 2);
    sets[0] = &a;
    sets[1] = &b;
    sets[2] = &c;
    const char *p = PUT("mixed_forms.tsv", "sentence\tlabel\na\t1\nb\tLABEL_0\nc\tLABEL_1\nd\t0\n");
    for (int k = 0; k < 3; k++) {
        kd_dataset d;
        CHECK(kd_dataset_load(p, sets[k], &d) == KD_OK, "0/1 and LABEL_0/LABEL_1 rows against %s, %s: %s",
              sets[k]->names[0], sets[k]->names[1], kd_last_error());
        CHECK(d.n == 4 && d.label[0] == 1 && d.label[1] == 0 && d.label[2] == 1 && d.label[3] == 0,
              "ids 1 0 1 0 against %s", sets[k]->names[0]);
        CHECK(d.labels.n == 2 && !strcmp(d.labels.names[0], sets[k]->names[0]), "the model's names kept");
        printf("  against %s/%s: 1 LABEL_0 LABEL_1 0 -> ids %d %d %d %d\n", sets[k]->names[0], sets[k]->names[1],
               d.n == 4 ? d.label[0] : -1, d.n == 4 ? d.label[1] : -1, d.n == 4 ? d.label[2] : -1, d.n == 4 ? d.label[3] : -1);
        if (d.n) kd_dataset_free(&d);
    }
    bad(PUT("range.tsv", "sentence\tlabel\na\tLABEL_2\n"), &a, KD_ERR_FORMAT, NULL, 2, "label LABEL_2 out of range, expected 0..1");
    kd_labels_free(&a);
    kd_labels_free(&b);
    kd_labels_free(&c);
    /* LABEL_0 .. LABEL_11 in a file: ids by number, names LABEL_i. */
    char text[1024] = "sentence\tlabel\n";
    for (int i = 11; i >= 0; i--) snprintf(text + strlen(text), sizeof text - strlen(text), "t%d\tLABEL_%d\n", i, i);
    p = put("twelve.tsv", text, strlen(text));
    kd_dataset d;
    CHECK(kd_dataset_load(p, NULL, &d) == KD_OK, "LABEL_0..LABEL_11: %s", kd_last_error());
    CHECK(d.n == 12 && d.labels.n == 12 && !strcmp(d.labels.names[10], "LABEL_10") && !strcmp(d.labels.names[2], "LABEL_2") &&
          d.label[0] == 11 && d.label[1] == 10 && d.label[11] == 0, "ids by number, names LABEL_i");
    printf("  LABEL_0..LABEL_11: class 2 is %s, class 10 %s\n", d.labels.n == 12 ? d.labels.names[2] : "?",
           d.labels.n == 12 ? d.labels.names[10] : "?");
    if (d.n) kd_dataset_free(&d);
    bad(PUT("mix2.tsv", "sentence\tlabel\na\tLABEL_0\nb\t1\n"), NULL, KD_ERR_FORMAT, NULL, 3,
        "label '1', expected a default name LABEL_<id> like the label 'LABEL_0' on line 2");
    p = PUT("gap.tsv", "sentence\tlabel\na\tLABEL_0\nb\tLABEL_2\n");
    CHECK(kd_dataset_load(p, NULL, &d) == KD_ERR_FORMAT && strstr(kd_last_error(), "gap.tsv") &&
          strstr(kd_last_error(), "id 1 never occurs"), "LABEL_0 and LABEL_2: a gap, named: %s", kd_last_error());
    printf("  error as expected: %s\n", kd_last_error());
}

static const struct {
    const char *name;
    void (*fn)(void);
} cases[] = {
    {"good_tsv", good_tsv}, {"good_csv", good_csv}, {"good_jsonl", good_jsonl}, {"good_tweeteval", good_tweeteval},
    {"missing_file", missing_file}, {"empty_file", empty_file}, {"ragged_row", ragged_row},
    {"unknown_label", unknown_label}, {"out_of_range_label", out_of_range_label}, {"count_mismatch", count_mismatch},
    {"invalid_utf8", invalid_utf8}, {"unterminated_quote", unterminated_quote}, {"bad_json", bad_json},
    {"unknown_format", unknown_format}, {"odd_files", odd_files}, {"default_labels", default_labels},
};

int main(int argc, char **argv)
{
    snprintf(dir, sizeof dir, "/tmp/kd_test_readers_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    int ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) continue;
        printf("%s\n", cases[i].name);
        cases[i].fn();
        ran++;
    }
    CHECK(ran > 0, "case '%s' exists", argc > 1 ? argv[1] : "");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return kd_test_finish("test_readers");
}
