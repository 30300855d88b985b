/* data/labels.c — label names <-> ids (a small list; data sets have a handful of classes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/readers.h"

int32_t kd_labels_id(const kd_labels *l, const char *name)
{
    if (!l || !name) return -1;
    for (int32_t i = 0; i < l->n; i++)
        if (strcmp(l->names[i], name) == 0) return i;
    return -1;
}

const char *kd_labels_name(const kd_labels *l, int32_t id)
{
    if (!l || id < 0 || id >= l->n) return NULL;
    return l->names[id];
}

void kd_labels_free(kd_labels *l)
{
    if (!l) return;
    for (int32_t i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    l->names = NULL;
    l->n = 0;
}

kd_status kd_labels_set(kd_labels *l, const char *const *names, int32_t n)
{
    l->n = 0;
    l->names = NULL;
    if (n < 0 || n > KD_MAX_LABELS) return kd_fail(KD_ERR_ARG, "labels: %d names, expected 0..%d", (int)n, KD_MAX_LABELS);
    if (n == 0) return KD_OK;
    l->names = calloc((size_t)n, sizeof *l->names);
    if (!l->names) return kd_fail(KD_ERR_NOMEM, "labels: out of memory");
    for (int32_t i = 0; i < n; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", (int)i);
        l->names[i] = strdup(names ? names[i] : num);
        l->n = i + 1;
        if (!l->names[i]) {
            kd_labels_free(l);
            return kd_fail(KD_ERR_NOMEM, "labels: out of memory");
        }
    }
    return KD_OK;
}

kd_status kd_labels_ids(kd_labels *l, int32_t n) { return kd_labels_set(l, NULL, n); }

kd_status kd_labels_copy(kd_labels *dst, const kd_labels *src)
{
    return kd_labels_set(dst, (const char *const *)src->names, src->n);
}
