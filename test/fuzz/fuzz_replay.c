/* test/fuzz/fuzz_replay.c — a main() for the fuzz targets outside libFuzzer: runs the target over every
 * file named (directories: every file in them), so the kept inputs of test/fuzz/regress/ and the seeds are
 * checked by the ordinary test suite, under any compiler and the sanitizers.
 *     fuzz_replay_<target> FILE|DIR... */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int one(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_replay: %s: cannot open\n", path);
        return 0;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    size_t r;
    while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) b = realloc(b, cap *= 2);
    }
    fclose(f);
    if (!b) return 0;
    LLVMFuzzerTestOneInput(b, n);   /* a failed check aborts */
    free(b);
    return 1;
}

int main(int argc, char **argv)
{
    int n = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) {
            fprintf(stderr, "fuzz_replay: %s: no such file or directory\n", argv[i]);
            bad++;
            continue;
        }
        if (!S_ISDIR(sb.st_mode)) {
            n += one(argv[i]);
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
            n += one(p);
        }
        if (d) closedir(d);
    }
    printf("fuzz_replay: %d inputs ran through the target without a failed check\n", n);
    return bad || n == 0 ? 1 : 0;
}
