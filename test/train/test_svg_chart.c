/* test/train/test_svg_chart.c — golden values of the chart's pieces on fixed data: the round ticks chosen
 * for given ranges (and their labels), the exponential moving average (values worked by hand from pandas'
 * ewm(span, adjust=True, ignore_na=True) formula), the span for a run's length, XML escaping, and a chart
 * rendered from a fixed 100-step run: its tick labels, the stated span, the epoch boundary at step 50, the
 * teacher's line, the learning-rate panel; a 100,000-step run stays small (one point per pixel column). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test/testutil.h"
#include "train/plot.h"
#include "train/svg_chart.h"

static void check_ticks(double lo, double hi, int target, const double *want, int nwant, double want_step)
{
    double got[32], step;
    int n = kd_nice_ticks(lo, hi, target, got, 32, &step);
    int ok = n == nwant && kd_close(step, want_step, 0, 1e-12);
    for (int i = 0; ok && i < n; i++) ok = kd_close(got[i], want[i], 1e-12 * want_step, 1e-12);
    CHECK(ok, "ticks of [%g, %g] (target %d): got %d ticks, step %g, first %g, last %g; want %d, step %g, first %g, last %g",
          lo, hi, target, n, step, n ? got[0] : NAN, n ? got[n - 1] : NAN, nwant, want_step, want[0], want[nwant - 1]);
}

static void check_label(double v, double step, const char *want)
{
    char got[48];
    kd_tick_label(v, step, got, sizeof got);
    CHECK(strcmp(got, want) == 0, "tick label of %.17g (step %g): got '%s', want '%s'", v, step, got, want);
}

static int contains(const char *hay, const char *needle) { return hay && strstr(hay, needle) != NULL; }

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

int main(void)
{
    /* An axis a plain linear split would label 0.191, 118, 236, 353 becomes 0, 100, ..., 500. */
    check_ticks(0.191, 472, 6, (const double[]){ 0, 100, 200, 300, 400, 500 }, 6, 100);
    check_ticks(0.191, 0.7, 5, (const double[]){ 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7 }, 7, 0.1);
    check_ticks(0, 5e-5, 2, (const double[]){ 0, 2e-5, 4e-5, 6e-5 }, 4, 2e-5);
    check_ticks(0.79, 0.86, 4, (const double[]){ 0.78, 0.80, 0.82, 0.84, 0.86 }, 5, 0.02);
    check_ticks(0, 1, 4, (const double[]){ 0, 0.2, 0.4, 0.6, 0.8, 1.0 }, 6, 0.2);
    check_ticks(0, 6300, 6, (const double[]){ 0, 1000, 2000, 3000, 4000, 5000, 6000, 7000 }, 8, 1000);
    check_ticks(3, 3, 5, (const double[]){ 2.7, 2.8, 2.9, 3.0, 3.1, 3.2, 3.3 }, 7, 0.1);   /* widened by 10% */
    check_ticks(-0.3, 0.25, 5, (const double[]){ -0.3, -0.2, -0.1, 0, 0.1, 0.2, 0.3 }, 7, 0.1);

    check_label(0.7000000000000001, 0.1, "0.7");
    check_label(200, 100, "200");
    check_label(4e-05, 2e-05, "4e-05");
    check_label(0.78, 0.02, "0.78");
    check_label(0, 0.1, "0");
    check_label(2.5, 0.5, "2.5");
    check_label(7000, 1000, "7000");

    /* EMA, span 3 (a = 0.5), a NaN skipped: 1, (0.5*1 + 2)/1.5, (0.25*1 + 0.5*2 + 3)/1.75, the same, then
     * (0.125*1 + 0.25*2 + 0.5*3 + 4)/1.875. */
    double y[5] = { 1, 2, 3, NAN, 4 }, e[5];
    const double want[5] = { 1.0, 2.5 / 1.5, 4.25 / 1.75, 4.25 / 1.75, 6.125 / 1.875 };
    kd_ema(y, 5, 3, e);
    for (int i = 0; i < 5; i++) CHECK_CLOSE(e[i], want[i], 0, 1e-14, "EMA span 3");
    double y2[3] = { NAN, 2, 5 }, e2[3];
    kd_ema(y2, 3, 4, e2);   /* a = 0.4: NaN, 2, (0.6*2 + 5)/1.6 */
    CHECK(isnan(e2[0]), "EMA before the first finite point is NaN, got %g", e2[0]);
    CHECK_CLOSE(e2[1], 2.0, 0, 1e-15, "EMA span 4, first point");
    CHECK_CLOSE(e2[2], 3.875, 0, 1e-15, "EMA span 4, second point");
    kd_ema(y, 3, 1, e);   /* span 1: the data itself */
    for (int i = 0; i < 3; i++) CHECK_CLOSE(e[i], y[i], 0, 0, "EMA span 1");
    CHECK(kd_ema_span(0) == 1 && kd_ema_span(19) == 1 && kd_ema_span(30) == 2 && kd_ema_span(100) == 5 &&
              kd_ema_span(6300) == 315, "EMA spans: %d %d %d %d %d", kd_ema_span(0), kd_ema_span(19), kd_ema_span(30),
          kd_ema_span(100), kd_ema_span(6300));

    kd_text t = { 0 };
    kd_text_escape(&t, "a<b&c\"d'e>\x01");
    CHECK(t.p && strcmp(t.p, "a&lt;b&amp;c&quot;d&#39;e&gt;?") == 0, "escaped: %s", t.p ? t.p : "(null)");
    kd_text_free(&t);

    /* A fixed 100-step distillation run of 2 epochs: loss 1/(1 + s/20) +- 0.1 alternating, soft and hard
     * parts, dev accuracy 0.71 and 0.8 after each epoch, teacher 0.85, lr 5e-5 with 10 warmup steps. */
    kd_series loss = { 0 }, soft = { 0 }, hard = { 0 }, dev = { 0 };
    for (int s = 1; s <= 100; s++) {
        double v = 1.0 / (1.0 + s / 20.0) + (s % 2 ? 0.1 : -0.1);
        kd_series_push(&loss, s, v);
        kd_series_push(&soft, s, 0.5 * v);
        kd_series_push(&hard, s, s % 10 == 0 ? NAN : 1.5 * v);
    }
    kd_series_push(&dev, 50, 0.71);
    kd_series_push(&dev, 100, 0.80);
    kd_schedule sched = kd_schedule_linear(5e-5, 100, 10, 0.0);
    kd_chart_data cd = { .title = "run <1> & \"2\"", .loss = &loss, .parts = { &soft, &hard, NULL, NULL },
                         .part_names = { "soft", "hard", NULL, NULL }, .dev = &dev, .teacher_accuracy = 0.85,
                         .total_steps = 100, .epochs = 2, .sched = &sched };
    kd_svg_chart_render(&cd, &t);
    CHECK(!t.failed && t.p, "the chart renders");
    const char *svg = t.p ? t.p : "";
    /* loss max 1/(1 + 1/20) + 0.1 = 1.052, smoothed parts below 1.5 * 1.052: ticks 0, 0.5, 1, 1.5, 2 */
    const char *want_text[] = { ">0</text>", ">0.5</text>", ">1.0</text>", ">1.5</text>",
                                ">20</text>", ">40</text>", ">60</text>", ">80</text>", ">100</text>",
                                ">0.70</text>", ">0.75</text>", ">0.80</text>", ">0.85</text>",
                                "loss, moving average (EMA, span 5 steps)", "soft, EMA", "hard, EMA",
                                "student dev accuracy", "teacher dev accuracy", ">teacher 0.8500<",
                                ">epoch 1<", ">epoch 2<", ">learning rate<", ">2e-05</text>", ">6e-05</text>",
                                "run &lt;1&gt; &amp; &quot;2&quot;", "optimizer step" };
    for (size_t i = 0; i < sizeof want_text / sizeof *want_text; i++)
        CHECK(contains(svg, want_text[i]), "the chart shows '%s'", want_text[i]);
    /* step 50 of 100 on the x axis [66, 714]: x = 390; one dashed boundary there (through both panels) */
    CHECK(count(svg, "stroke-dasharray=\"4 3\" d=\"M390.0 ") == 1, "one epoch boundary at x = 390");
    CHECK(!contains(svg, "nan") && !contains(svg, "inf"), "no NaN or Inf coordinates");
    CHECK(!contains(svg, "run <1>"), "the title is escaped");
    size_t small = t.len;
    kd_text_free(&t);

    /* 100,000 steps: per pixel column, so the file stays about as small as a short run's. */
    kd_series big = { 0 };
    for (int s = 1; s <= 100000; s++) kd_series_push(&big, s, 1.0 / (1.0 + s / 1000.0) + (s % 2 ? 0.1 : -0.1));
    kd_chart_data bd = { .title = "big", .loss = &big, .dev = &dev, .teacher_accuracy = -1, .total_steps = 100000,
                         .epochs = 3, .sched = &sched };
    kd_svg_chart_render(&bd, &t);
    CHECK(!t.failed && t.len < 80000, "100,000 steps: %zu bytes (a 100-step chart: %zu)", t.len, small);
    CHECK(contains(t.p, ">100000</text>") && contains(t.p, "EMA, span 5000 steps"), "100,000 steps: the last tick and span");
    CHECK(!contains(t.p, "teacher dev accuracy"), "no teacher line without a teacher");
    kd_text_free(&t);

    kd_series_free(&loss);
    kd_series_free(&soft);
    kd_series_free(&hard);
    kd_series_free(&dev);
    kd_series_free(&big);
    return kd_test_finish("train_svg_chart");
}
