/* engine/fileio.h — whole-file reads and crash-safe writes, shared by every part that touches files.
 * A write goes to PATH.tmp, is flushed to disk, then renamed over PATH, so a crash or a full disk never
 * leaves a half-written file where the last good one was. */
#ifndef KD_FILEIO_H
#define KD_FILEIO_H

#include <stddef.h>
#include <stdio.h>

#include "engine/status.h"

/* Read all of path into a NUL-terminated malloc'd buffer (*len excludes the NUL). Errors name the path:
 * missing, a directory, unreadable. */
kd_status kd_read_file(const char *path, char **data, size_t *len);

typedef struct kd_atomic_file {
    FILE *f;          /* write through this */
    char *path, *tmp;
} kd_atomic_file;

/* Open PATH.tmp for writing. */
kd_status kd_atomic_open(kd_atomic_file *af, const char *path);
/* Flush, fsync, close and rename into place; on any failure PATH is untouched and PATH.tmp removed. */
kd_status kd_atomic_commit(kd_atomic_file *af);
/* Give up: close and remove PATH.tmp. */
void kd_atomic_abort(kd_atomic_file *af);
/* Open, write len bytes, commit. */
kd_status kd_write_file_atomic(const char *path, const void *data, size_t len);

#endif
