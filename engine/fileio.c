/* engine/fileio.c — whole-file reads and temp-file-then-rename writes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/fileio.h"

kd_status kd_read_file(const char *path, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    struct stat st;
    if (stat(path, &st) != 0) return kd_fail(KD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return kd_fail(KD_ERR_IO, "%s: is a directory, expected a file", path);
    FILE *f = fopen(path, "rb");
    if (!f) return kd_fail(KD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0 || n < cap) {
            if (feof(f) || ferror(f)) break;
            continue;
        }
        char *nb = realloc(buf, cap * 2 + 1);   /* the file grew since stat */
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf) return kd_fail(KD_ERR_NOMEM, "%s: out of memory reading it", path);
    if (err) {
        free(buf);
        return kd_fail(KD_ERR_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return KD_OK;
}

kd_status kd_atomic_open(kd_atomic_file *af, const char *path)
{
    memset(af, 0, sizeof *af);
    size_t n = strlen(path);
    af->path = malloc(n + 1);
    af->tmp = malloc(n + 5);
    if (!af->path || !af->tmp) {
        free(af->path);
        free(af->tmp);
        return kd_fail(KD_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(af->path, path, n + 1);
    snprintf(af->tmp, n + 5, "%s.tmp", path);
    af->f = fopen(af->tmp, "wb");
    if (!af->f) {
        kd_status s = kd_fail(KD_ERR_IO, "%s: cannot create: %s", af->tmp, strerror(errno));
        free(af->path);
        free(af->tmp);
        af->path = af->tmp = NULL;
        return s;
    }
    return KD_OK;
}

static void atomic_release(kd_atomic_file *af)
{
    free(af->path);
    free(af->tmp);
    af->path = af->tmp = NULL;
    af->f = NULL;
}

kd_status kd_atomic_commit(kd_atomic_file *af)
{
    int ok = !ferror(af->f);
    ok = fflush(af->f) == 0 && ok;
    ok = fsync(fileno(af->f)) == 0 && ok;
    int saved = errno;
    ok = fclose(af->f) == 0 && ok;
    if (!ok || rename(af->tmp, af->path) != 0) {
        kd_status s = kd_fail(KD_ERR_IO, "%s: write failed (%s); the previous file, if any, is untouched",
                              af->path, strerror(ok ? errno : saved));
        remove(af->tmp);
        atomic_release(af);
        return s;
    }
    atomic_release(af);
    return KD_OK;
}

void kd_atomic_abort(kd_atomic_file *af)
{
    if (af->f) fclose(af->f);
    if (af->tmp) remove(af->tmp);
    atomic_release(af);
}

kd_status kd_write_file_atomic(const char *path, const void *data, size_t len)
{
    kd_atomic_file af;
    kd_status s = kd_atomic_open(&af, path);
    if (s != KD_OK) return s;
    if (len && fwrite(data, 1, len, af.f) != len) {
        s = kd_fail(KD_ERR_IO, "%s: write failed: %s", af.tmp, strerror(errno));
        kd_atomic_abort(&af);
        return s;
    }
    return kd_atomic_commit(&af);
}
