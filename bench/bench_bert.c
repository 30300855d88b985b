/* bench/bench_bert.c — end-to-end BERT on the CPU: a bert-large forward and a bert-base training step
 * (forward, backward, plain SGD update) at batch 16 x 128 tokens, bert-base inference latency at batch
 * 1 x 128, and the distillation step of `kd distill` at 16 x 128: kd-step (bert-large teacher forward in
 * eval mode without a graph, then the bert-base student's forward, the distillation loss, backward,
 * clipping at 1.0 and AdamW) and student-step (the same without the teacher forward: a step with the
 * teacher's logits cached, `kd distill --cache-teacher`). Each case runs in its own child process, so its
 * peak memory (the step arena's peak, heap tensors, and the process's maximum resident set) is its own.
 * Validates the outputs (finite logits, loss and gradients) before timing; reports the median of the timed
 * repeats, tokens/s and the achieved GFLOP/s. With --case all, the kd-step / student-step ratio (what
 * caching the teacher's logits saves) closes the report.
 *
 * With --device cuda|sim the models are built on the host and moved to the device, the batch goes up each
 * step (as in `kd distill --device`), clipping and AdamW run there and the clock is read after
 * kd_device_sync(), so the GPU's work is timed; outputs are read back and checked before timing, and the
 * report adds the device's memory peak (heap tensors + device arena), the copies per step and one
 * "result ..." line of key=value pairs for scripts.
 *
 * Usage: bench_bert [--case large-forward|base-train|base-latency|kd-step|student-step|all] [--reps N]
 *                   [--large-reps N] [--threads N] [--kernels ref|avx2|avx512|best] [--device cpu|cuda|sim]
 *                   [--precision f32|tf32|bf16] [--batch N] [--seq T] [--teacher-preset P] [--student-preset P]
 *                   [--layers N] [--warmup N] [--int8]
 *
 * --batch/--seq set B x T of every case but base-latency (1 x T); the presets (bert-large, bert-base) name
 * the large-forward / teacher model and the base-* / student model; --layers N gives every model N encoder
 * layers (the SST-2 student: --student-preset minilm-l6 --layers 3); --warmup N runs N untimed forwards
 * before large-forward's timed ones (default none on the CPU). Without a graph the linears read their
 * weights prepacked as KD_PREPACK says (0, auto, 1; engine/backend.h), and in bf16 the weights' bf16 copies
 * are made once, in the first (warm-up) forward.
 * --int8: the forward cases (large-forward, base-latency) run the model quantized as `kd quantize` makes it
 * (int8 weights per channel, activations per token at run time; CPU only), e.g.
 *   bench_bert --int8 --case base-latency;  bench_bert --int8 --case large-forward --teacher-preset bert-base --batch 32 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/device.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "models/bert.h"
#include "engine/adamw.h"
#include "train/loss.h"

typedef struct opts {
    const char *which, *kernels, *device, *precision, *teacher, *student;
    int reps, large_reps, threads;
    int64_t batch, seq;
    int warmup;   /* large-forward's warm-up forwards (--warmup; -1: none on the CPU, 2 on a device) */
} opts;

/* Where the case runs (set in the case's process) and the case's name (for the result line). */
static kd_device bench_dev = KD_CPU;
static const char *bench_case = "";
static int bench_int8 = 0;   /* --int8: forward cases on the int8 model */
/* --layers N: every model the case builds has N encoder layers (0: the preset's). */
static int bench_layers = 0;

/* Forward FLOPs of the encoder + head: 2 * (matmul parameters) per token, plus attention's two batched
 * products (q k^T and p v), 2 * 2 * T * hidden per token per layer. A training step is ~3x this. */
static double forward_flops(const kd_bert_config *c, int64_t B, int64_t T)
{
    double H = c->hidden_size, F = c->intermediate_size, L = c->num_layers;
    double per_token = L * (2.0 * (4.0 * H * H + 2.0 * H * F) + 4.0 * (double)T * H);
    return per_token * (double)(B * T) + 2.0 * (double)B * (H * H + H * c->num_labels);
}

static void make_batch(int64_t B, int64_t T, int vocab, int32_t *ids, int32_t *mask, int32_t *labels)
{
    uint64_t s = 12345;
    for (int64_t b = 0; b < B; b++) {
        /* Realistic padding: row lengths between T/2 and T. */
        int64_t len = T - (int64_t)((uint64_t)b * 7919 % (uint64_t)(T / 2));
        for (int64_t t = 0; t < T; t++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            ids[b * T + t] = t == 0 ? 101 : t < len ? (int32_t)(1000 + (s >> 33) % (uint64_t)(vocab - 1000)) : 0;
            mask[b * T + t] = t < len;
        }
        labels[b] = (int32_t)(b % 2);
    }
}

static void report_memory(const char *what)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    if (bench_dev != KD_CPU) {   /* the tensors are on the device: report_device() */
        printf("  memory %-14s host arena peak %.3f GiB; max RSS %.2f GiB\n", what, (double)kd_arena_peak() / (1 << 30),
               (double)ru.ru_maxrss / (1 << 20));
        return;
    }
    printf("  memory %-14s arena peak %.2f GiB + heap tensors %.2f GiB = %.2f GiB; max RSS %.2f GiB\n", what,
           (double)kd_arena_peak() / (1 << 30), (double)kd_heap_bytes() / (1 << 30),
           (double)(kd_arena_peak() + kd_heap_bytes()) / (1 << 30), (double)ru.ru_maxrss / (1 << 20));
}

/* Minor page faults so far: a step that runs in already-mapped memory adds (almost) none. */
static long minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

/* CPU seconds (user + system, all threads) so far. On a shared machine the wall time of a step depends on
 * what else runs; CPU time per step divided by the thread count is what the step costs on idle cores. */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

/* The loads of the last 1, 5 and 15 minutes: figures taken under load say so. */
static void print_cost(long faults0, double cpu0, int reps)
{
    double la[3] = { 0, 0, 0 };
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3) la[0] = la[1] = la[2] = 0;
        fclose(f);
    }
    printf("  per timed step: %.0f page faults, %.3f CPU s (%.3f s per thread); load average %.2f %.2f %.2f\n",
           (double)(minor_faults() - faults0) / reps, (cpu_seconds() - cpu0) / reps,
           (cpu_seconds() - cpu0) / reps / kd_threads(), la[0], la[1], la[2]);
}

static kd_bert *make_model(const char *preset, kd_bert_config *c)
{
    if (kd_bert_preset(preset, c) != KD_OK) {
        fprintf(stderr, "bench_bert: %s\n", kd_last_error());
        return NULL;
    }
    if (bench_layers > 0) c->num_layers = bench_layers;
    double t0 = bench_now();
    kd_bert *m = kd_bert_new(c, 1);
    if (!m) {
        fprintf(stderr, "bench_bert: %s\n", kd_last_error());
        return NULL;
    }
    printf("  %s (%d layers): %.1f M parameters, initialised in %.1f s\n", preset, c->num_layers,
           (double)kd_bert_num_parameters(m) / 1e6, bench_now() - t0);
    return m;
}

/* On a device: move the models there (built on the host, as `kd distill --device` loads them), so the
 * batches, activations and optimizer state made for them live there too. */
static int place_models(kd_bert *a, kd_bert *b)
{
    /* The device's precision: bf16 means the models' activations in bf16 (mixed precision). */
    kd_dtype dt = kd_device_compute_dtype(bench_dev);
    if (kd_bert_set_precision(a, dt) != KD_OK || (b && kd_bert_set_precision(b, dt) != KD_OK)) return 1;
    if (bench_dev == KD_CPU) return 0;
    double t0 = bench_now();
    kd_status st = kd_bert_to_device(a, bench_dev);
    if (st == KD_OK && b) st = kd_bert_to_device(b, bench_dev);
    if (st == KD_OK) st = kd_device_sync(bench_dev);
    if (st != KD_OK) {
        fprintf(stderr, "bench_bert: moving the models to %s: %s\n", kd_device_name(bench_dev), kd_last_error());
        return 1;
    }
    printf("  models moved to %s in %.1f s\n", kd_device_name(bench_dev), bench_now() - t0);
    return 0;
}

/* The end of a timed step: on a device the queued kernels must finish before the clock is read. */
static int step_done(void)
{
    if (kd_device_sync(bench_dev) == KD_OK) return 1;
    fprintf(stderr, "bench_bert: %s\n", kd_last_error());
    return 0;
}

/* Every element finite (f32). A tensor on a device is read back first (a copy: the host cannot read device
 * memory). */
static int finite_all(const kd_tensor *t)
{
    const int64_t n = kd_numel(t);
    if (t->device == KD_CPU && kd_is_contiguous(t)) {
        const float *d = kd_data(t);
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(d[i])) return 0;
        return 1;
    }
    float *h = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    int ok = h && kd_to_host(t, h) == KD_OK;
    for (int64_t i = 0; ok && i < n; i++)
        if (!isfinite(h[i])) ok = 0;
    free(h);
    return ok;
}

/* "12.3 GFLOP/s" on the CPU, "123.45 TFLOP/s" on a device. */
static const char *flop_rate(char *buf, size_t n, double flops, double seconds)
{
    if (bench_dev == KD_CPU) snprintf(buf, n, "%.1f GFLOP/s", flops / seconds * 1e-9);
    else snprintf(buf, n, "%.2f TFLOP/s", flops / seconds * 1e-12);
    return buf;
}

/* The median step: to the millisecond on the CPU, to 0.1 ms on a device. */
static const char *step_time(char *buf, size_t n, double seconds)
{
    snprintf(buf, n, bench_dev == KD_CPU ? "%.3f" : "%.4f", seconds);
    return buf;
}

/* On a device: its memory, the copies and kernels of a timed step (s0 is taken before the timed steps),
 * and the key=value line scripts read. */
static void report_device(kd_device_stats s0, int reps, int64_t B, int64_t T, double med, double flops)
{
    if (bench_dev == KD_CPU) return;
    kd_device_stats s = kd_device_get_stats(bench_dev);
    const double gib = (double)(1 << 30);
    char what[32];
    snprintf(what, sizeof what, "(%s)", kd_device_name(bench_dev));
    printf("  memory %-14s peak %.2f GiB (heap tensors + device arena chunks); device arena peak %.2f GiB; "
           "heap tensors %.2f GiB now\n", what, (double)s.mem_peak / gib, (double)kd_device_arena_peak() / gib,
           (double)kd_heap_bytes() / gib);
    printf("  per timed step: %.1f copies to the device (%.1f KiB), %.1f back (%.1f KiB), %.0f kernels\n",
           (double)(s.h2d_copies - s0.h2d_copies) / reps, (double)(s.h2d_bytes - s0.h2d_bytes) / reps / 1024.0,
           (double)(s.d2h_copies - s0.d2h_copies) / reps, (double)(s.d2h_bytes - s0.d2h_bytes) / reps / 1024.0,
           (double)(s.kernels - s0.kernels) / reps);
    printf("result case=%s device=%s precision=%s batch=%lld seq=%lld reps=%d median_s=%.6f tokens_per_s=%.1f "
           "tflops=%.4f mem_peak_gib=%.3f\n", bench_case, kd_device_name(bench_dev), kd_precision_name(kd_device_precision(bench_dev)),
           (long long)B, (long long)T, reps, med, (double)(B * T) / med, flops / med * 1e-12,
           (double)s.mem_peak / gib);
}

/* Inference: eval mode, no graph. */
static int run_forward(const char *preset, int64_t B, int64_t T, int reps, int warmup)
{
    kd_bert_config c;
    kd_bert *m = make_model(preset, &c);
    if (!m) return 1;
    if (bench_int8 && kd_bert_quantize(m, 0, 100.0, NULL) != KD_OK) {
        fprintf(stderr, "bench_bert: --int8: %s\n", kd_last_error());
        kd_bert_free(m);
        return 1;
    }
    if (place_models(m, NULL) != 0) {
        kd_bert_free(m);
        return 1;
    }
    int32_t *ids = malloc((size_t)(B * T) * 4), *mask = malloc((size_t)(B * T) * 4), *labels = malloc((size_t)B * 4);
    make_batch(B, T, c.vocab_size, ids, mask, labels);
    kd_bert_input in = { B, T, ids, NULL, mask };
    kd_set_grad_enabled(0);
    double *t = malloc(sizeof(double) * (size_t)(reps + warmup));
    long faults0 = 0;
    double cpu0 = 0;
    kd_device_stats s0 = kd_device_get_stats(bench_dev);
    int ok = 1;
    for (int r = 0; r < reps + warmup && ok; r++) {
        if (r == warmup) {
            faults0 = minor_faults();
            cpu0 = cpu_seconds();
            s0 = kd_device_get_stats(bench_dev);
        }
        double t0 = bench_now();
        kd_tensor *z = kd_bert_logits(m, &in);
        ok = z && step_done();
        t[r] = bench_now() - t0;
        ok = ok && finite_all(z);
        if (!ok) fprintf(stderr, "bench_bert: forward failed or not finite: %s\n", kd_last_error());
        kd_arena_reset();
    }
    if (ok) {
        double med = bench_median(t + warmup, reps), fl = forward_flops(&c, B, T);
        char ms[32], rate[48];
        printf("  %s%s forward %lld x %lld: median %s s over %d (after %d warm-up), %.0f tokens/s, %s\n", preset,
               bench_int8 ? " int8 (dynamic)" : "", (long long)B, (long long)T, step_time(ms, sizeof ms, med), reps, warmup, (double)(B * T) / med,
               flop_rate(rate, sizeof rate, fl, med));
        report_memory("(forward)");
        print_cost(faults0, cpu0, reps);
        report_device(s0, reps, B, T, med, fl);
    }
    free(t);
    free(ids);
    free(mask);
    free(labels);
    kd_bert_free(m);
    return ok ? 0 : 1;
}

/* The SGD update and squared gradient norm on the CPU, on four independent sums (one dependency chain of
 * double adds would cost more than the update itself). */
static double sgd_host(kd_tensor **p, size_t np)
{
    double gn = 0;
    for (size_t i = 0; i < np; i++) {
        float *w = kd_data(p[i]), *g = kd_data(p[i]->grad);
        const int64_t ne = kd_numel(p[i]);
        double g4[4] = { 0, 0, 0, 0 };
        int64_t j = 0;
        for (; j + 4 <= ne; j += 4)
            for (int l = 0; l < 4; l++) {
                g4[l] += (double)g[j + l] * g[j + l];
                w[j + l] -= 1e-4f * g[j + l];
            }
        for (; j < ne; j++) {
            g4[0] += (double)g[j] * g[j];
            w[j] -= 1e-4f * g[j];
        }
        gn += (g4[0] + g4[1]) + (g4[2] + g4[3]);
        kd_mark_modified(p[i]);   /* written through kd_data: what was kept from the old values goes */
    }
    return gn;
}

/* The same on a device, with the engine's ops outside the graph: the norm (clipping off) into slot 1 of
 * `stats`, then w <- w - 1e-4 g. */
static int sgd_device(kd_tensor **p, size_t np, kd_tensor *stats)
{
    kd_tensor *norm = NULL;
    if (kd_clip_grad_norm(p, np, 0.0, &norm) != KD_OK ||
        kd_copy_into(kd_view_of(stats, 0, NULL, NULL, 1), norm) != KD_OK)
        return 0;
    int prev = kd_set_grad_enabled(0), ok = 1;
    for (size_t i = 0; ok && i < np; i++) {
        kd_tensor *w = kd_sub(p[i], kd_scale(p[i]->grad, 1e-4));
        ok = w && kd_copy_into(p[i], w) == KD_OK;
    }
    kd_set_grad_enabled(prev);
    return ok;
}

/* Training step: train mode (dropout), forward, cross-entropy, backward, SGD, zero grads, arena reset. On a
 * device the loss and gradient norm stay there until one read at the end of the step. */
static int run_train(const char *preset, int64_t B, int64_t T, int reps, int warmup)
{
    kd_bert_config c;
    kd_bert *m = make_model(preset, &c);
    if (!m) return 1;
    if (place_models(m, NULL) != 0) {
        kd_bert_free(m);
        return 1;
    }
    const int on_dev = bench_dev != KD_CPU;
    kd_bert_set_training(m, 1);
    kd_manual_seed(1);
    int32_t *ids = malloc((size_t)(B * T) * 4), *mask = malloc((size_t)(B * T) * 4), *labels = malloc((size_t)B * 4);
    make_batch(B, T, c.vocab_size, ids, mask, labels);
    kd_bert_input in = { B, T, ids, NULL, mask };
    size_t np;
    kd_tensor **p = kd_bert_parameters(m, &np);
    int64_t two = 2;
    kd_tensor *stats = on_dev ? kd_param_on(bench_dev, KD_F32, 1, &two, "bench stats") : NULL;   /* loss, gradient norm */
    float stats_host[2] = { 0, 0 };
    double *t = malloc(sizeof(double) * (size_t)(reps + warmup)), loss0 = 0;
    long faults0 = 0;
    double cpu0 = 0;
    kd_device_stats s0 = kd_device_get_stats(bench_dev);
    int ok = !on_dev || stats;
    if (!ok) fprintf(stderr, "bench_bert: %s\n", kd_last_error());
    for (int r = 0; r < reps + warmup && ok; r++) {
        if (r == warmup) {
            faults0 = minor_faults();
            cpu0 = cpu_seconds();
            s0 = kd_device_get_stats(bench_dev);
        }
        double t0 = bench_now();
        kd_tensor *z = kd_bert_logits(m, &in);
        kd_tensor *loss = kd_cross_entropy(z, kd_from_buffer_on(bench_dev, KD_I32, 1, &B, labels));
        if (on_dev && r == 0) ok = z && finite_all(z);   /* validation: the logits read back */
        ok = ok && loss && kd_backward(loss, NULL) == KD_OK;
        double gn = 0, lv = NAN;
        if (!on_dev) {
            if (ok) gn = sgd_host(p, np);
            kd_zero_grad(p, np);
            if (ok && r == 0) loss0 = kd_item(loss);
            lv = ok ? kd_item(loss) : NAN;
            ok = ok && isfinite(lv) && isfinite(gn);
            t[r] = bench_now() - t0;
        } else {
            ok = ok && kd_copy_into(kd_view_of(stats, 0, NULL, NULL, 0), loss) == KD_OK;
            kd_arena_reset();
            ok = ok && sgd_device(p, np, stats);
            kd_zero_grad(p, np);
            ok = ok && kd_to_host(stats, stats_host) == KD_OK && step_done();
            t[r] = bench_now() - t0;
            lv = stats_host[0];
            gn = (double)stats_host[1] * stats_host[1];
            if (r == 0) loss0 = lv;
            ok = ok && isfinite(lv) && isfinite(gn);
        }
        if (!ok) fprintf(stderr, "bench_bert: training step failed or not finite: %s\n", kd_last_error());
        else if (r == 0) printf("  step 0: loss %.4f, gradient norm %.4f\n", loss0, sqrt(gn));
        if (r == 0 && ok) report_memory("(train step)");
        kd_arena_reset();
    }
    if (ok) {
        double med = bench_median(t + warmup, reps), fl = 3.0 * forward_flops(&c, B, T);
        char ms[32], rate[48];
        printf("  %s training step %lld x %lld: median %s s over %d (after %d warm-up), %.0f tokens/s, "
               "~%s (3x forward FLOPs)\n", preset, (long long)B, (long long)T, step_time(ms, sizeof ms, med), reps,
               warmup, (double)(B * T) / med, flop_rate(rate, sizeof rate, fl, med));
        print_cost(faults0, cpu0, reps);
        report_device(s0, reps, B, T, med, fl);
    }
    free(t);
    free(ids);
    free(mask);
    free(labels);
    kd_tensor_free(stats);
    kd_bert_free(m);
    return ok ? 0 : 1;
}

/* Distillation step as train/trainer.c runs it (alpha 0.5, T 2, clipping at 1.0, AdamW at 5e-5): the
 * teacher (when given) in eval mode under kd_set_grad_enabled(0), then the student in train mode, the
 * loss, backward, clipping, one AdamW step, zeroed gradients and the arena reset. Without a teacher the
 * teacher's logits are a fixed tensor made once (as the trainer copies them from its cache). The time
 * printed is the median of the repeats after `warmup` steps (>= 2, so the arena's chunks are mapped).
 * On a device, as the trainer runs there: the loss parts and the gradient norm stay on the device (clipping
 * with kd_clip_grad_norm_dev) until one read at the end of the step.
 * *med_out gets the median (for the kd-step / student-step ratio). */
static int run_distill(const char *tpreset, const char *spreset, int64_t B, int64_t T, int reps, int warmup,
                       double *med_out)
{
    kd_bert_config cs, ct;
    kd_bert *teacher = NULL;
    if (tpreset) {
        teacher = make_model(tpreset, &ct);
        if (!teacher) return 1;
        kd_bert_set_training(teacher, 0);
    }
    kd_bert *student = make_model(spreset, &cs);
    if (!student || place_models(student, teacher) != 0) {
        kd_bert_free(student);
        kd_bert_free(teacher);
        return 1;
    }
    if (teacher && (ct.num_labels != cs.num_labels || ct.vocab_size < cs.vocab_size)) {
        fprintf(stderr, "bench_bert: the teacher %s (%d labels, vocabulary %d) cannot teach the student %s (%d labels, "
                        "vocabulary %d)\n", tpreset, ct.num_labels, ct.vocab_size, spreset, cs.num_labels, cs.vocab_size);
        kd_bert_free(student);
        kd_bert_free(teacher);
        return 1;
    }
    kd_bert_set_training(student, 1);
    kd_manual_seed(1);
    int32_t *ids = malloc((size_t)(B * T) * 4), *mask = malloc((size_t)(B * T) * 4), *labels = malloc((size_t)B * 4);
    make_batch(B, T, cs.vocab_size, ids, mask, labels);
    kd_bert_input in = { B, T, ids, NULL, mask };
    size_t np;
    kd_tensor **p = kd_bert_parameters(student, &np);
    kd_adamw_config acfg = kd_adamw_defaults();
    kd_adamw *opt = kd_adamw_new(p, np, &acfg);
    /* Cached teacher logits: what --cache-teacher reads back, a heap tensor that outlives the resets. */
    float *cached = malloc((size_t)B * (size_t)cs.num_labels * sizeof(float));
    for (int64_t i = 0; cached && i < B * cs.num_labels; i++) cached[i] = (float)((i * 37 % 11) - 5) * 0.3f;
    /* Loss, soft part, hard part, gradient norm: kept where the step runs, read back once per step. */
    int64_t four = 4;
    kd_tensor *stats = kd_param_on(bench_dev, KD_F32, 1, &four, "bench stats");
    float stats_host[4] = { 0, 0, 0, 0 };
    double *t = malloc(sizeof(double) * (size_t)(reps + warmup));
    long faults0 = 0;
    double cpu0 = 0;
    kd_device_stats s0 = kd_device_get_stats(bench_dev);
    int ok = opt && ids && mask && labels && cached && t && stats;
    if (!opt || !stats) fprintf(stderr, "bench_bert: %s\n", kd_last_error());
    for (int r = 0; r < reps + warmup && ok; r++) {
        if (r == warmup) {
            faults0 = minor_faults();
            cpu0 = cpu_seconds();
            s0 = kd_device_get_stats(bench_dev);
        }
        double t0 = bench_now();
        kd_tensor *zt;
        if (teacher) {
            int prev = kd_set_grad_enabled(0);
            zt = kd_bert_logits(teacher, &in);
            kd_set_grad_enabled(prev);
        } else {
            int64_t shape[2] = { B, cs.num_labels };
            zt = kd_from_buffer_on(bench_dev, KD_F32, 2, shape, cached);
        }
        kd_tensor *zs = kd_bert_logits(student, &in);
        kd_tensor *y = kd_from_buffer_on(bench_dev, KD_I32, 1, &B, labels);
        kd_loss_parts lp;
        memset(&lp, 0, sizeof lp);
        double norm = 0, lv = NAN, soft = NAN, hard = NAN;
        ok = zt && zs && y && kd_distill_loss(zs, zt, y, NULL, 0.5, 2.0, &lp) == KD_OK;
        if (ok && r == 0) ok = finite_all(zt) && finite_all(zs);   /* validation: the logits read back */
        ok = ok && kd_copy_into(kd_view_of(stats, 0, NULL, NULL, 0), lp.total) == KD_OK &&
             kd_copy_into(kd_view_of(stats, 0, NULL, NULL, 2), lp.hard) == KD_OK;
        if (ok && lp.soft) ok = kd_copy_into(kd_view_of(stats, 0, NULL, NULL, 1), lp.soft) == KD_OK;
        else if (ok) kd_fill(kd_view_of(stats, 0, NULL, NULL, 1), 0.0);
        ok = ok && kd_backward(lp.total, NULL) == KD_OK;
        kd_arena_reset();
        kd_tensor *nt = NULL;
        ok = ok && kd_clip_grad_norm(p, np, 1.0, &nt) == KD_OK &&
             kd_copy_into(kd_view_of(stats, 0, NULL, NULL, 3), nt) == KD_OK && kd_adamw_step(opt, 5e-5) == KD_OK;
        ok = ok && kd_to_host(stats, stats_host) == KD_OK && step_done();
        kd_zero_grad(p, np);
        t[r] = bench_now() - t0;
        kd_arena_reset();
        lv = stats_host[0];
        soft = stats_host[1];
        hard = stats_host[2];
        norm = stats_host[3];
        ok = ok && isfinite(lv) && isfinite(norm);
        if (!ok) fprintf(stderr, "bench_bert: distillation step failed or not finite: %s\n", kd_last_error());
        else if (r == 0)
            printf("  step 0: loss %.4f (soft %.4f, hard %.4f), gradient norm %.4f\n", lv, soft, hard, norm);
    }
    if (ok) {
        double med = bench_median(t + warmup, reps), fl = 3.0 * forward_flops(&cs, B, T);
        if (teacher) fl += forward_flops(&ct, B, T);
        char ms[32], rate[48], what[160];
        if (teacher) snprintf(what, sizeof what, "%s teacher forward + %s student step, AdamW", tpreset, spreset);
        else snprintf(what, sizeof what, "cached teacher logits, %s student step, AdamW", spreset);
        printf("  %s %lld x %lld (%s): median %s s over %d (after %d warm-up), %.0f tokens/s, ~%s (%s3x student "
               "forward FLOPs)\n", teacher ? "KD step" : "student step", (long long)B, (long long)T, what,
               step_time(ms, sizeof ms, med), reps, warmup, (double)(B * T) / med, flop_rate(rate, sizeof rate, fl, med),
               teacher ? "teacher forward + " : "");
        report_memory(teacher ? "(KD step)" : "(student step)");
        /* AdamW's m and v: heap buffers on the CPU (counted here and in the RSS above), heap tensors on a
         * device (in its peak below). */
        double state = 0;
        for (size_t i = 0; i < np; i++) state += 2.0 * (double)kd_numel(p[i]) * sizeof(float);
        print_cost(faults0, cpu0, reps);
        printf("  memory (optimizer)     AdamW m and v %.2f GiB\n", state / (1 << 30));
        report_device(s0, reps, B, T, med, fl);
        if (med_out) *med_out = med;
    }
    free(t);
    free(cached);
    free(ids);
    free(mask);
    free(labels);
    kd_tensor_free(stats);
    kd_adamw_free(opt);
    kd_bert_free(student);
    kd_bert_free(teacher);
    return ok ? 0 : 1;
}

/* A case's median step time goes here when the parent wants it (the kd-step / student-step ratio). */
static int median_fd = -1;

/* Open the device of --device and set its GEMM precision (models are moved there by each case). */
static int open_device(const opts *o)
{
    if (kd_device_parse(o->device, &bench_dev) != KD_OK) {
        fprintf(stderr, "bench_bert: --device: %s\n", kd_last_error());
        return 1;
    }
    if (bench_dev == KD_CPU && !o->precision) return 0;
    kd_precision prec;
    if (kd_device_open(bench_dev) != KD_OK || kd_precision_parse(o->precision, &prec) != KD_OK ||
        kd_device_set_precision(bench_dev, prec) != KD_OK) {
        fprintf(stderr, "bench_bert: --device %s%s%s: %s\n", o->device, o->precision ? " --precision " : "",
                o->precision ? o->precision : "", kd_last_error());
        return 1;
    }
    return 0;
}

static int run_case(const char *name, const opts *o)
{
    if (kd_backend_select(o->kernels) != KD_OK) {
        fprintf(stderr, "bench_bert: %s\n", kd_last_error());
        return 1;
    }
    if (open_device(o) != 0) return 1;
    if (o->threads > 0) kd_set_threads(o->threads);
    bench_case = name;
    if (bench_dev == KD_CPU) printf("[%s] kernels %s, %d threads\n", name, kd_backend_name(), kd_threads());
    else
        printf("[%s] device %s (%s matrix products), host kernels %s, %d threads\n", name, kd_device_name(bench_dev),
               kd_precision_name(kd_device_precision(bench_dev)), kd_backend_name(), kd_threads());
    fflush(stdout);
    /* On a device the first steps also pay for the arena's first allocations and the kernels' first launches. */
    const int dw = bench_dev == KD_CPU ? 0 : 2;
    const int64_t B = o->batch, T = o->seq;
    int rc = 1;
    if (strcmp(name, "large-forward") == 0) rc = run_forward(o->teacher, B, T, o->large_reps, o->warmup >= 0 ? o->warmup : dw);
    else if (strcmp(name, "base-train") == 0) rc = run_train(o->student, B, T, o->reps, dw > 1 ? dw : 1);
    else if (strcmp(name, "base-latency") == 0) rc = run_forward(o->student, 1, T, 5 * o->reps, 2);
    else if (strcmp(name, "kd-step") == 0 || strcmp(name, "student-step") == 0) {
        double med = 0;
        rc = run_distill(strcmp(name, "kd-step") == 0 ? o->teacher : NULL, o->student, B, T, o->reps, 2, &med);
        if (rc == 0 && median_fd >= 0 && write(median_fd, &med, sizeof med) != (ssize_t)sizeof med) rc = 1;
    } else fprintf(stderr, "bench_bert: unknown case '%s'\n", name);
    kd_shutdown();
    fflush(stdout);
    return rc;
}

static int usage(const char *prog)
{
    fprintf(stderr, "usage: %s [--case large-forward|base-train|base-latency|kd-step|student-step|all] [--reps N] "
                    "[--large-reps N] [--threads N] [--kernels ref|avx2|avx512|best] [--device cpu|cuda|sim] "
                    "[--precision f32|tf32|bf16] [--batch N] [--seq T] [--teacher-preset P] [--student-preset P] "
                    "[--layers N] [--warmup N] [--int8]\n",
            prog);
    return 2;
}

int main(int argc, char **argv)
{
    opts o = { "all", "best", "cpu", NULL, "bert-large", "bert-base", 3, 1, 0, 16, 128, -1 };
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--case") == 0 && i + 1 < argc) o.which = argv[++i];
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) o.reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--large-reps") == 0 && i + 1 < argc) o.large_reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) o.threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--kernels") == 0 && i + 1 < argc) o.kernels = argv[++i];
        else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) o.device = argv[++i];
        else if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc) o.precision = argv[++i];
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) o.batch = atoll(argv[++i]);
        else if (strcmp(argv[i], "--seq") == 0 && i + 1 < argc) o.seq = atoll(argv[++i]);
        else if (strcmp(argv[i], "--teacher-preset") == 0 && i + 1 < argc) o.teacher = argv[++i];
        else if (strcmp(argv[i], "--student-preset") == 0 && i + 1 < argc) o.student = argv[++i];
        else if (strcmp(argv[i], "--int8") == 0) bench_int8 = 1;
        else if (strcmp(argv[i], "--layers") == 0 && i + 1 < argc) bench_layers = atoi(argv[++i]);
        else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc) o.warmup = atoi(argv[++i]);
        else return usage(argv[0]);
    }
    if (bench_layers < 0 || bench_layers > 48) {
        fprintf(stderr, "bench_bert: --layers %d: expected 1 to 48 (0: the preset's)\n", bench_layers);
        return 2;
    }
    if (o.reps < 1 || o.large_reps < 1) {
        fprintf(stderr, "bench_bert: --reps and --large-reps must be >= 1\n");
        return 2;
    }
    if (o.batch < 1 || o.batch > 4096 || o.seq < 2 || o.seq > 512) {
        fprintf(stderr, "bench_bert: --batch %lld --seq %lld: expected a batch from 1 to 4096 and from 2 to 512 tokens\n",
                (long long)o.batch, (long long)o.seq);
        return 2;
    }
    kd_device dev;
    if (kd_device_parse(o.device, &dev) != KD_OK) {
        fprintf(stderr, "bench_bert: --device: %s\n", kd_last_error());
        return 2;
    }
    if (o.precision && strcmp(o.precision, "f32") != 0 && strcmp(o.precision, "bf16") != 0 &&
        (strcmp(o.precision, "tf32") != 0 || dev != KD_CUDA)) {
        fprintf(stderr, "bench_bert: --precision %s: expected f32 or bf16 (tf32: only with --device cuda)\n",
                o.precision);
        return 2;
    }
    if (strcmp(o.which, "all") != 0) return run_case(o.which, &o);
    /* Each case in a child: peak memory figures are per case, and nothing (threads, arena, the device) is
     * shared. The distillation cases send their median back through a pipe for the ratio. */
    const char *cases[5] = { "base-latency", "base-train", "large-forward", "kd-step", "student-step" };
    double med[5] = { 0, 0, 0, 0, 0 };
    int failed = 0;
    for (int i = 0; i < 5; i++) {
        int fds[2];
        if (pipe(fds) != 0) {
            perror("pipe");
            return 1;
        }
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            close(fds[0]);
            median_fd = fds[1];
            _exit(run_case(cases[i], &o));
        }
        close(fds[1]);
        if (read(fds[0], &med[i], sizeof med[i]) != (ssize_t)sizeof med[i]) med[i] = 0;
        close(fds[0]);
        int st = 0;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "bench_bert: case %s failed\n", cases[i]);
            failed = 1;
        }
    }
    if (med[3] > 0 && med[4] > 0)
        printf("[kd-step / student-step] %.3f s / %.3f s = %.2fx: the speed-up of caching the teacher's logits\n",
               med[3], med[4], med[3] / med[4]);
    return failed;
}
