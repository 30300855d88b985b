/* test/models/test_bert_sharded.c — a sharded checkpoint (model.safetensors.index.json + shards, the layout
 * transformers' save_pretrained(max_shard_size=...) writes), built here by hand from a kd checkpoint: two
 * shards load to the same logits bit for bit (also a shard in a subdirectory); the single file wins when both
 * are there; and each bad case is an error naming the index and the shard or tensor: a missing shard, a
 * tensor the map names but its shard lacks, a tensor no shard has, an index that is not JSON or has no
 * weight_map object, a shard name that leaves the directory ("../", absolute), no weights at all.
 * test/train/check_transformers_roundtrip.py loads a checkpoint sharded by transformers itself. */
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/backend.h"
#include "test/models/st_util.h"
#include "test/testutil.h"

static char dir[4096];
static double want[8];
static int nwant;

/* kd_bert_load(d) fails with `status` and a message holding every string given. */
#define EXPECT_FAIL(d, status, ...)                                                                     \
    do {                                                                                                \
        kd_clear_error();                                                                               \
        kd_bert *m_ = kd_bert_load((d), 0, 1, NULL);                                                    \
        CHECK(!m_ && kd_last_status() == (status) && st_error_says(__VA_ARGS__, (const char *)NULL),    \
              "load %s: want %s naming the cause, got %s: %s", (d), kd_status_name(status),             \
              kd_status_name(kd_last_status()), kd_last_error());                                       \
        printf("  refused: %s\n", kd_last_error());                                                     \
        kd_bert_free(m_);                                                                               \
    } while (0)

static st_raw *entries;
static size_t nentries;

/* dir/sub: config.json, the entries [0, half) in shard A and the rest in shard B (paths relative to dir/sub),
 * and an index whose weight_map says so; `map_extra` is appended inside weight_map (a lying or extra entry). */
static void make_sharded(const char *sub, const char *shard_a, const char *shard_b, const char *map_extra)
{
    char d[4200], p[4400];
    snprintf(d, sizeof d, "%s/%s", dir, sub);
    mkdir(d, 0777);
    kd_bert_config c = tiny_config();
    c.initializer_range = 0.2;
    snprintf(p, sizeof p, "%s/config.json", d);
    CHECK(kd_bert_config_save(p, &c) == KD_OK, "config: %s", kd_last_error());
    size_t half = nentries / 2;
    const char *shard[2] = { shard_a, shard_b };
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof p, "%s/%s", d, shard[k]);
        char *slash = strrchr(p, '/');
        *slash = 0;
        mkdir(p, 0777);
        *slash = '/';
        CHECK(st_raw_write(p, entries + (k ? half : 0), k ? nentries - half : half) == 0, "write %s", p);
    }
    size_t cap = 256 + nentries * 200 + (map_extra ? strlen(map_extra) : 0), len = 0;
    char *idx = malloc(cap);
    len += (size_t)snprintf(idx + len, cap - len, "{\"metadata\": {\"total_size\": 12345}, \"weight_map\": {");
    for (size_t i = 0; i < nentries; i++)
        len += (size_t)snprintf(idx + len, cap - len, "%s\"%s\": \"%s\"", i ? ", " : "", entries[i].name,
                                i < half ? shard_a : shard_b);
    snprintf(idx + len, cap - len, "%s}}\n", map_extra ? map_extra : "");
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
    CHECK(write_text(p, idx) == 0, "write %s", p);
    free(idx);
}

static void write_index(const char *sub, const char *text)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/%s/model.safetensors.index.json", dir, sub);
    CHECK(write_text(p, text) == 0, "write %s", p);
}

static void expect_same_logits(const char *sub)
{
    char d[4200];
    snprintf(d, sizeof d, "%s/%s", dir, sub);
    int missing = -1;
    kd_bert *m = kd_bert_load(d, 0, 1, &missing);
    CHECK(m != NULL, "load %s: %s", d, kd_last_error());
    if (!m) return;
    double got[8];
    int n = logits_of(m, got);
    int same = n == nwant && missing == 0;
    for (int i = 0; same && i < n; i++) same = got[i] == want[i];
    CHECK(same, "%s: logits of the sharded checkpoint differ from the single file's (or a head was missing: %d)", sub,
          missing);
    printf("%-12s %d logits equal to the single file's, bit for bit\n", sub, n);
    kd_bert_free(m);
}

int main(void)
{
    if (make_tmpdir(dir, sizeof dir) != 0) {
        perror("mkdtemp");
        return 1;
    }
    char full[4200], p[4400];
    snprintf(full, sizeof full, "%s/full", dir);
    kd_bert_config c = tiny_config();
    c.initializer_range = 0.2;
    kd_bert *m = kd_bert_new(&c, 11);
    CHECK(m && kd_bert_save(m, full) == KD_OK, "save: %s", kd_last_error());
    nwant = logits_of(m, want);
    kd_bert_free(m);
    snprintf(p, sizeof p, "%s/model.safetensors", full);
    entries = st_raw_read(p, &nentries);
    CHECK(entries && nentries > 10, "read %s", p);
    if (!entries) return kd_test_finish("test_bert_sharded");

    /* Two shards, named as transformers names them; then one of them in a subdirectory. */
    make_sharded("sharded", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", NULL);
    expect_same_logits("sharded");
    snprintf(p, sizeof p, "%s/sharded/model.safetensors.index.json", dir);
    kd_st_set *set = kd_st_set_open_index(p);
    CHECK(set && set->nfiles == 2 && set->count == nentries, "the index names %zu tensors in 2 shards", nentries);
    struct stat sa, sb;
    char pa[4400], pb[9000];
    snprintf(pa, sizeof pa, "%s/sharded/model-00001-of-00002.safetensors", dir);
    snprintf(pb, sizeof pb, "%s/sharded/model-00002-of-00002.safetensors", dir);
    CHECK(set && stat(pa, &sa) == 0 && stat(pb, &sb) == 0 && kd_st_set_bytes(set) == (size_t)(sa.st_size + sb.st_size),
          "kd_st_set_bytes: the two shards' sizes");
    kd_st_set_close(set);
    make_sharded("subdir", "model-00001-of-00002.safetensors", "parts/model-00002-of-00002.safetensors", NULL);
    expect_same_logits("subdir");

    /* model.safetensors beside an index is the one read (as transformers does): the index may be broken. */
    make_sharded("both", "a.safetensors", "b.safetensors", NULL);
    snprintf(pa, sizeof pa, "%s/model.safetensors", full);
    snprintf(pb, sizeof pb, "cp '%s' '%s/both/model.safetensors'", pa, dir);
    CHECK(system(pb) == 0, "copy the single file");
    write_index("both", "not json");
    expect_same_logits("both");

    char d[4200];
    /* A missing shard: named, with the tensors the map puts there. */
    make_sharded("noshard", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", NULL);
    snprintf(p, sizeof p, "%s/noshard/model-00002-of-00002.safetensors", dir);
    unlink(p);
    snprintf(d, sizeof d, "%s/noshard", dir);
    EXPECT_FAIL(d, KD_ERR_IO, "noshard/model.safetensors.index.json", "shard 'model-00002-of-00002.safetensors'",
                entries[nentries / 2].name, "is missing");
    /* The map names a tensor in a shard that lacks it. */
    make_sharded("lying", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                 ", \"bert.pooler.dense.bias\": \"model-00001-of-00002.safetensors\"");
    snprintf(d, sizeof d, "%s/lying", dir);
    EXPECT_FAIL(d, KD_ERR_FORMAT, "lying/model.safetensors.index.json", "weight_map puts tensor 'bert.pooler.dense.bias' "
                "in 'model-00001-of-00002.safetensors'", "has no such tensor");
    /* A tensor the model needs that no shard has: the index is named. */
    st_raw keep = entries[1];
    memmove(entries + 1, entries + 2, (nentries - 2) * sizeof *entries);
    nentries--;
    make_sharded("short", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", NULL);
    nentries++;
    memmove(entries + 2, entries + 1, (nentries - 2) * sizeof *entries);
    entries[1] = keep;
    snprintf(d, sizeof d, "%s/short", dir);
    EXPECT_FAIL(d, KD_ERR_FORMAT, "short/model.safetensors.index.json", entries[1].name, "is missing");

    /* Malformed indexes. */
    make_sharded("bad", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", NULL);
    snprintf(d, sizeof d, "%s/bad", dir);
    write_index("bad", "{\"weight_map\": {\"x\": \"a.safetensors\",}}");
    EXPECT_FAIL(d, KD_ERR_FORMAT, "bad/model.safetensors.index.json", "not valid JSON", "line 1");
    write_index("bad", "{\"metadata\": {}}");
    EXPECT_FAIL(d, KD_ERR_FORMAT, "bad/model.safetensors.index.json", "no field \"weight_map\"");
    write_index("bad", "{\"weight_map\": [\"model-00001-of-00002.safetensors\"]}");
    EXPECT_FAIL(d, KD_ERR_FORMAT, "field \"weight_map\" is not an object");
    write_index("bad", "{\"weight_map\": {}}");
    EXPECT_FAIL(d, KD_ERR_FORMAT, "field \"weight_map\" is empty");
    write_index("bad", "[1, 2]");
    EXPECT_FAIL(d, KD_ERR_FORMAT, "bad/model.safetensors.index.json: not a JSON object");
    write_index("bad", "{\"weight_map\": {\"bert.embeddings.word_embeddings.weight\": 3}}");
    EXPECT_FAIL(d, KD_ERR_FORMAT, "weight_map[\"bert.embeddings.word_embeddings.weight\"] is not a shard file name");
    /* Shard names that leave the directory are refused before anything is opened, even when the file exists. */
    snprintf(pa, sizeof pa, "%s/outside.safetensors", dir);
    CHECK(st_raw_write(pa, entries, nentries) == 0, "write %s", pa);
    write_index("bad", "{\"weight_map\": {\"bert.embeddings.word_embeddings.weight\": \"../outside.safetensors\"}}");
    EXPECT_FAIL(d, KD_ERR_FORMAT, "names the shard '../outside.safetensors', outside the checkpoint's directory");
    snprintf(pb, sizeof pb, "{\"weight_map\": {\"classifier.bias\": \"%s\"}}", pa);
    write_index("bad", pb);
    EXPECT_FAIL(d, KD_ERR_FORMAT, "outside the checkpoint's directory", pa);
    write_index("bad", "{\"weight_map\": {\"classifier.bias\": \"parts/../../outside.safetensors\"}}");
    EXPECT_FAIL(d, KD_ERR_FORMAT, "'parts/../../outside.safetensors', outside the checkpoint's directory");
    write_index("bad", "{\"weight_map\": {\"classifier.bias\": \"\"}}");
    EXPECT_FAIL(d, KD_ERR_FORMAT, "weight_map[\"classifier.bias\"] is not a shard file name");

    /* No weights at all: the message names both layouts. */
    snprintf(p, sizeof p, "%s/bad/model.safetensors.index.json", dir);
    unlink(p);
    EXPECT_FAIL(d, KD_ERR_IO, "bad/model.safetensors: missing, and no model.safetensors.index.json");

    st_raw_free(entries, nentries);
    rm_tree(dir);
    kd_shutdown();
    return kd_test_finish("test_bert_sharded");
}
