/* engine/status.h — error status and message, and the always-on invariant check.
 *
 * Library calls that can fail return a kd_status (or NULL for a tensor) and leave a message naming what
 * was wrong and what was expected in a thread-local buffer: kd_last_error(). Ops given a NULL input return
 * NULL without touching the message, so a chain of ops can be checked once at its end. */
#ifndef KD_STATUS_H
#define KD_STATUS_H

#include <stdio.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kd_status {
    KD_OK = 0,
    KD_ERR_SHAPE,      /* shapes that do not fit the op */
    KD_ERR_DTYPE,      /* wrong or mixed dtypes */
    KD_ERR_INDEX,      /* an index out of range */
    KD_ERR_ARG,        /* a bad argument or flag value */
    KD_ERR_IO,         /* a file that cannot be opened, read or written */
    KD_ERR_FORMAT,     /* a file whose contents are malformed */
    KD_ERR_NOMEM,      /* out of memory, or over the arena's limit */
    KD_ERR_DEVICE,     /* a device that is absent or failed */
    KD_ERR_STATE       /* a call that makes no sense now (backward without a graph, ...) */
} kd_status;

/* Record an error (printf-style message) and return `st`, so `return kd_fail(KD_ERR_ARG, "...")` reads well. */
kd_status kd_fail(kd_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last error's message and status on this thread; kd_clear_error() resets both. */
const char *kd_last_error(void);
kd_status kd_last_status(void);
void kd_clear_error(void);
const char *kd_status_name(kd_status st);

/* An internal invariant: stays on in release builds; a failure is a bug in kd, not bad input. */
#ifdef __cplusplus
}
#endif

#define KD_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "kd: internal check failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
