/* test/train/test_progress.c — the progress line of a pass over data (train/progress.h), written into a
 * file as it would be to a log: a plain line at each 5% once the interval has passed (0 here), a last line
 * with the pass's time; nothing at all when quiet; nothing for a short pass that does not keep its line; on
 * a terminal the bar is redrawn in place and cleared or kept at the end; the training line unchanged. */
#include <string.h>

#include "test/testutil.h"
#include "train/progress.h"

/* Run `adds` adds of `step` over a pass of `total`, return what it printed. */
static char *run_pass(int tty, int quiet, int keep, int64_t total, int64_t step, int adds, double every_s)
{
    FILE *f = tmpfile();
    if (!f) return NULL;
    kd_progress p;
    kd_progress_pass(&p, f, tty, quiet, "teacher logits", "examples", total, keep);
    p.every_s = every_s;
    p.last_draw -= 1.0;   /* a terminal redraws at most every 0.1 s: let the first one through */
    for (int i = 0; i < adds; i++) {
        kd_progress_add(&p, step);
        p.last_draw -= 1.0;
    }
    kd_progress_end(&p);
    long n = ftell(f);
    char *buf = calloc((size_t)n + 1, 1);
    rewind(f);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) buf[0] = '\0';
    fclose(f);
    return buf;
}

static int lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++) n += *s == '\n';
    return n;
}

int main(void)
{
    /* 100 examples in adds of 10, every 5% a line: at 10, 20, ..., 90 (100 is the last line's). */
    char *s = run_pass(0, 0, 1, 100, 10, 10, 0.0);
    CHECK(s && lines(s) == 10, "plain pass: 10 lines, got %d:\n%s", lines(s), s ? s : "");
    CHECK(s && strncmp(s, "teacher logits 10/100  ", 23) == 0 && strstr(s, " examples/s  ETA "),
          "plain pass: the first line is done/total, rate, ETA: %s", s ? s : "");
    const char *last = s ? strstr(s, "teacher logits 100/100  ") : NULL;
    CHECK(last && strstr(last, " examples/s  in ") && last[strlen(last) - 1] == '\n',
          "plain pass: the last line says the time taken: %s", last ? last : "(none)");
    CHECK(s && !strchr(s, '\r') && !strchr(s, '\033'), "plain pass: no terminal codes");
    free(s);

    /* The interval keeps a fast pass to its last line (10 s between lines). */
    s = run_pass(0, 0, 1, 100, 10, 10, 10.0);
    CHECK(s && lines(s) == 1 && strncmp(s, "teacher logits 100/100  ", 24) == 0, "fast pass: the last line only: %s",
          s ? s : "");
    free(s);

    /* A pass that does not keep its line and printed none: nothing. Quiet: nothing. */
    s = run_pass(0, 0, 0, 100, 10, 10, 10.0);
    CHECK(s && s[0] == '\0', "short unkept pass: nothing, got '%s'", s ? s : "");
    free(s);
    s = run_pass(0, 1, 1, 100, 10, 10, 0.0);
    CHECK(s && s[0] == '\0', "quiet: nothing, got '%s'", s ? s : "");
    free(s);
    s = run_pass(1, 1, 1, 100, 10, 10, 0.0);
    CHECK(s && s[0] == '\0', "quiet on a terminal: nothing, got '%s'", s ? s : "");
    free(s);

    /* A terminal: the bar redrawn in place, cleared (unkept) or ended with a newline (kept). */
    s = run_pass(1, 0, 0, 100, 10, 10, 0.0);
    CHECK(s && strstr(s, "\r[####") && strstr(s, "] teacher logits 50/100  ") && !strchr(s, '\n') &&
              strlen(s) >= 4 && strcmp(s + strlen(s) - 4, "\r\033[K") == 0,
          "terminal, unkept: redrawn, then cleared");
    free(s);
    s = run_pass(1, 0, 1, 100, 10, 10, 0.0);
    CHECK(s && strstr(s, "\r[########################] teacher logits 100/100  ") && lines(s) == 1 &&
              s[strlen(s) - 1] == '\n', "terminal, kept: the full bar stays on its line");
    free(s);

    /* Training's plain line, as before. */
    FILE *f = tmpfile();
    kd_progress p;
    kd_progress_init(&p, f, 0, 0, 0, 100, 50);
    kd_progress_update(&p, 49, 0.5, 1e-4, 10.0);
    kd_progress_update(&p, 50, 0.25, 2e-5, 12.5);
    char buf[256] = { 0 };
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    CHECK(n > 0 && strncmp(buf, "step 50/100  loss 0.2500  lr 2.00e-05  12.5 samples/s  ETA ", 58) == 0 && lines(buf) == 1,
          "training line: %s", buf);
    return kd_test_finish("train_progress");
}
