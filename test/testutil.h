/* test/testutil.h — the few helpers every test uses: counted checks that reject NaN, a closing line,
 * the shared-data path, and the skip code.
 *
 * A test prints each failed check with file:line, prints "N passed, N failed" at the end and exits
 * non-zero on any failure. Tolerances are atol + rtol * |ref| and comparisons are written so NaN fails. */
#ifndef KD_TESTUTIL_H
#define KD_TESTUTIL_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KD_TEST_SKIP 77

static int kd_test_passed, kd_test_failed;

static inline void kd_test_report(int ok, const char *file, int line, const char *fmt, ...)
{
    if (ok) {
        kd_test_passed++;
        return;
    }
    kd_test_failed++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* CHECK(cond, "what, with %d values", ...) */
#define CHECK(cond, ...) kd_test_report(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

/* |got - want| <= atol + rtol * |want|, false for NaN or Inf in either. */
static inline int kd_close(double got, double want, double atol, double rtol)
{
    if (!isfinite(got) || !isfinite(want)) return 0;
    return fabs(got - want) <= atol + rtol * fabs(want);
}

#define CHECK_CLOSE(got, want, atol, rtol, what)                                                     \
    do {                                                                                           \
        double g_ = (got), w_ = (want);                                                            \
        kd_test_report(kd_close(g_, w_, (atol), (rtol)), __FILE__, __LINE__,                       \
                       "%s: got %.9g, want %.9g (atol %g, rtol %g)", (what), g_, w_,               \
                       (double)(atol), (double)(rtol));                                            \
    } while (0)

/* Print the closing line and return the exit code for main. */
static inline int kd_test_finish(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, kd_test_passed, kd_test_failed);
    return kd_test_failed ? 1 : 0;
}

/* Directory of the shared data (KD_SHARED, set by meson), or NULL when absent: the test then skips. */
static inline const char *kd_test_shared_dir(void)
{
    const char *d = getenv("KD_SHARED");
    struct stat st;
    if (!d || stat(d, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL;
    return d;
}

#endif
