/* engine/safetensors_index.c — a checkpoint's tensors across files: one model.safetensors, or the shards of a
 * model.safetensors.index.json (see engine/safetensors.h). Every shard is opened and every entry of the
 * weight map checked against its shard before anything is read, so a broken checkpoint is named at once. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/fileio.h"
#include "engine/json.h"
#include "engine/safetensors.h"

void kd_st_set_close(kd_st_set *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->nfiles; i++) kd_st_close(s->files[i]);
    for (size_t i = 0; i < s->count; i++) free(s->names[i]);
    free(s->files);
    free(s->names);
    free(s->file_of);
    free(s->path);
    free(s);
}

kd_st_set *kd_st_set_open_file(const char *path)
{
    kd_st_set *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path)) || !(s->files = calloc(1, sizeof *s->files))) {
        kd_st_set_close(s);
        kd_fail(KD_ERR_NOMEM, "%s: out of memory", path);
        return NULL;
    }
    if (!(s->files[0] = kd_st_open(path))) {
        kd_st_set_close(s);
        return NULL;
    }
    s->nfiles = 1;
    return s;
}

/* A shard name that stays inside the index's directory: relative, no ".." component. Symbolic links are
 * followed as the file system does (the Hugging Face hub cache links every file into a blob store). */
static int inside_dir(const char *name)
{
    if (!*name || name[0] == '/') return 0;
    for (const char *p = name; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') return 0;
        p += n + (e != NULL);
    }
    return 1;
}

/* The first tensor the map puts in shard f, for messages. */
static const char *first_in(const kd_st_set *s, size_t f, size_t *count)
{
    const char *first = NULL;
    *count = 0;
    for (size_t i = 0; i < s->count; i++)
        if (s->file_of[i] == f) {
            if (!first) first = s->names[i];
            ++*count;
        }
    return first;
}

kd_st_set *kd_st_set_open_index(const char *path)
{
    kd_st_set *s = calloc(1, sizeof *s);
    char **shard = NULL;
    size_t nshard = 0;
    kd_json *o = NULL;
    if (!s || !(s->path = strdup(path))) {
        kd_fail(KD_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    if (!(o = kd_json_read_file(path))) goto fail;
    const kd_json *map = o->type == KD_JSON_OBJECT ? kd_json_get(o, "weight_map") : NULL;
    if (!map || map->type != KD_JSON_OBJECT || map->count == 0) {
        kd_fail(KD_ERR_FORMAT, "%s: %s, expected \"weight_map\": {\"tensor name\": \"shard file name\", ...} (the index "
                "of a sharded checkpoint, as transformers' save_pretrained writes it)", path,
                o->type != KD_JSON_OBJECT ? "not a JSON object" : !map ? "no field \"weight_map\""
                : map->type != KD_JSON_OBJECT ? "field \"weight_map\" is not an object" : "field \"weight_map\" is empty");
        goto fail;
    }
    s->names = calloc(map->count, sizeof *s->names);
    s->file_of = calloc(map->count, sizeof *s->file_of);
    shard = calloc(map->count, sizeof *shard);
    if (!s->names || !s->file_of || !shard) {
        kd_fail(KD_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (size_t i = 0; i < map->count; i++) {
        const kd_json *v = map->items[i];
        const char *key = map->keys[i];
        if (v->type != KD_JSON_STRING || v->string_len == 0 || memchr(v->string, 0, v->string_len)) {
            kd_fail(KD_ERR_FORMAT, "%s: weight_map[\"%s\"] is not a shard file name (a non-empty string)", path, key);
            goto fail;
        }
        if (!inside_dir(v->string)) {
            kd_fail(KD_ERR_FORMAT, "%s: weight_map[\"%s\"] names the shard '%s', outside the checkpoint's directory "
                    "(expected a file name relative to it, without '..')", path, key, v->string);
            goto fail;
        }
        size_t f = 0;
        while (f < nshard && strcmp(shard[f], v->string) != 0) f++;
        if (f == nshard) shard[nshard++] = v->string;
        if (!(s->names[i] = strdup(key))) {
            kd_fail(KD_ERR_NOMEM, "%s: out of memory", path);
            goto fail;
        }
        s->file_of[i] = f;
        s->count = i + 1;
    }
    if (!(s->files = calloc(nshard, sizeof *s->files))) {
        kd_fail(KD_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    /* The shards live beside the index. */
    const char *slash = strrchr(path, '/');
    int dlen = slash ? (int)(slash - path) : 1;
    const char *dir = slash ? path : ".";
    for (size_t f = 0; f < nshard; f++) {
        char p[4096];
        struct stat sb;
        size_t n;
        const char *first = first_in(s, f, &n);
        if ((size_t)snprintf(p, sizeof p, "%.*s/%s", dlen, dir, shard[f]) >= sizeof p) {
            kd_fail(KD_ERR_FORMAT, "%s: shard path '%s' too long", path, shard[f]);
            goto fail;
        }
        if (stat(p, &sb) != 0) {
            kd_fail(KD_ERR_IO, "%s: shard '%s' (named for %zu tensor%s, '%s' first) is missing: %s: %s", path, shard[f],
                    n, n == 1 ? "" : "s", first, p, strerror(errno));
            goto fail;
        }
        if (!(s->files[f] = kd_st_open(p))) goto fail;
        s->nfiles = f + 1;
    }
    for (size_t i = 0; i < s->count; i++) {
        const kd_safetensors *st = s->files[s->file_of[i]];
        if (!kd_st_find(st, s->names[i])) {
            kd_fail(KD_ERR_FORMAT, "%s: weight_map puts tensor '%s' in '%s', but %s has no such tensor (it holds %zu)",
                    path, s->names[i], shard[s->file_of[i]], st->path, st->count);
            goto fail;
        }
    }
    free(shard);
    kd_json_free(o);
    return s;
fail:
    free(shard);
    kd_json_free(o);
    kd_st_set_close(s);
    return NULL;
}

const kd_st_entry *kd_st_set_find(const kd_st_set *s, const char *name, const kd_safetensors **file)
{
    const kd_safetensors *st = NULL;
    if (!s->names) {
        st = s->files[0];
    } else {
        for (size_t i = 0; i < s->count && !st; i++)
            if (strcmp(s->names[i], name) == 0) st = s->files[s->file_of[i]];
    }
    const kd_st_entry *e = st ? kd_st_find(st, name) : NULL;
    if (file) *file = e ? st : NULL;
    return e;
}

size_t kd_st_set_bytes(const kd_st_set *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nfiles; i++) n += s->files[i]->map_len;
    return n;
}
