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
 * Usage: bench_bert [--case large-forward|base-train|base-latency|kd-step|student-step|all] [--reps N]
 *                   [--large-reps N] [--threads N] [--kernels ref|avx2|avx512|best] */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "engine/backend.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "models/bert.h"
#include "train/adamw.h"
#include "train/loss.h"

typedef struct opts {
    const char *which, *kernels;
    int reps, large_reps, threads;
} opts;

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
    kd_bert_preset(preset, c);
    double t0 = bench_now();
    kd_bert *m = kd_bert_new(c, 1);
    if (!m) {
        fprintf(stderr, "bench_bert: %s\n", kd_last_error());
        return NULL;
    }
    printf("  %s: %.1f M parameters, initialised in %.1f s\n", preset, (double)kd_bert_num_parameters(m) / 1e6,
           bench_now() - t0);
    return m;
}

static int finite_all(const kd_tensor *t)
{
    const float *d = kd_data(t);
    for (int64_t i = 0; i < kd_numel(t); i++)
        if (!isfinite(d[i])) return 0;
    return 1;
}

/* Inference: eval mode, no graph. */
static int run_forward(const char *preset, int64_t B, int64_t T, int reps, int warmup)
{
    kd_bert_config c;
    kd_bert *m = make_model(preset, &c);
    if (!m) return 1;
    int32_t *ids = malloc((size_t)(B * T) * 4), *mask = malloc((size_t)(B * T) * 4), *labels = malloc((size_t)B * 4);
    make_batch(B, T, c.vocab_size, ids, mask, labels);
    kd_bert_input in = { B, T, ids, NULL, mask };
    kd_set_grad_enabled(0);
    double *t = malloc(sizeof(double) * (size_t)(reps + warmup));
    long faults0 = 0;
    double cpu0 = 0;
    int ok = 1;
    for (int r = 0; r < reps + warmup && ok; r++) {
        if (r == warmup) {
            faults0 = minor_faults();
            cpu0 = cpu_seconds();
        }
        double t0 = bench_now();
        kd_tensor *z = kd_bert_logits(m, &in);
        t[r] = bench_now() - t0;
        ok = z && finite_all(z);
        if (!ok) fprintf(stderr, "bench_bert: forward failed or not finite: %s\n", kd_last_error());
        kd_arena_reset();
    }
    if (ok) {
        double med = bench_median(t + warmup, reps), fl = forward_flops(&c, B, T);
        printf("  %s forward %lld x %lld: median %.3f s over %d (after %d warm-up), %.0f tokens/s, %.1f GFLOP/s\n",
               preset, (long long)B, (long long)T, med, reps, warmup, (double)(B * T) / med, fl / med * 1e-9);
        report_memory("(forward)");
        print_cost(faults0, cpu0, reps);
    }
    free(t);
    free(ids);
    free(mask);
    free(labels);
    kd_bert_free(m);
    return ok ? 0 : 1;
}

/* Training step: train mode (dropout), forward, cross-entropy, backward, SGD, zero grads, arena reset. */
static int run_train(const char *preset, int64_t B, int64_t T, int reps, int warmup)
{
    kd_bert_config c;
    kd_bert *m = make_model(preset, &c);
    if (!m) return 1;
    kd_bert_set_training(m, 1);
    kd_manual_seed(1);
    int32_t *ids = malloc((size_t)(B * T) * 4), *mask = malloc((size_t)(B * T) * 4), *labels = malloc((size_t)B * 4);
    make_batch(B, T, c.vocab_size, ids, mask, labels);
    kd_bert_input in = { B, T, ids, NULL, mask };
    size_t np;
    kd_tensor **p = kd_bert_parameters(m, &np);
    double *t = malloc(sizeof(double) * (size_t)(reps + warmup)), loss0 = 0;
    long faults0 = 0;
    double cpu0 = 0;
    int ok = 1;
    for (int r = 0; r < reps + warmup && ok; r++) {
        if (r == warmup) {
            faults0 = minor_faults();
            cpu0 = cpu_seconds();
        }
        double t0 = bench_now();
        kd_tensor *z = kd_bert_logits(m, &in);
        kd_tensor *loss = kd_cross_entropy(z, kd_from_buffer(KD_I32, 1, &B, labels));
        ok = loss && kd_backward(loss, NULL) == KD_OK;
        /* The update and the squared gradient norm, on four independent sums (one dependency chain of
         * double adds would cost more than the update itself). */
        double gn = 0;
        for (size_t i = 0; ok && i < np; i++) {
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
        }
        kd_zero_grad(p, np);
        if (ok && r == 0) loss0 = kd_item(loss);
        ok = ok && isfinite(kd_item(loss)) && isfinite(gn);
        t[r] = bench_now() - t0;
        if (!ok) fprintf(stderr, "bench_bert: training step failed or not finite: %s\n", kd_last_error());
        else if (r == 0) printf("  step 0: loss %.4f, gradient norm %.4f\n", loss0, sqrt(gn));
        if (r == 0 && ok) report_memory("(train step)");
        kd_arena_reset();
    }
    if (ok) {
        double med = bench_median(t + warmup, reps), fl = 3.0 * forward_flops(&c, B, T);
        printf("  %s training step %lld x %lld: median %.3f s over %d (after %d warm-up), %.0f tokens/s, "
               "~%.1f GFLOP/s (3x forward FLOPs)\n", preset, (long long)B, (long long)T, med, reps, warmup,
               (double)(B * T) / med, fl / med * 1e-9);
        print_cost(faults0, cpu0, reps);
    }
    free(t);
    free(ids);
    free(mask);
    free(labels);
    kd_bert_free(m);
    return ok ? 0 : 1;
}

/* Distillation step as train/trainer.c runs it (alpha 0.5, T 2, clipping at 1.0, AdamW at 5e-5): the
 * teacher (when given) in eval mode under kd_set_grad_enabled(0), then the student in train mode, the
 * loss, backward, clipping, one AdamW step, zeroed gradients and the arena reset. Without a teacher the
 * teacher's logits are a fixed tensor made once (as the trainer copies them from its cache). The time
 * printed is the median of the repeats after `warmup` steps (>= 2, so the arena's chunks are mapped).
 * *med_out gets the median (for the kd-step / student-step ratio). */
static int run_distill(int with_teacher, int64_t B, int64_t T, int reps, int warmup, double *med_out)
{
    kd_bert_config cs, ct;
    kd_bert *teacher = NULL;
    if (with_teacher) {
        teacher = make_model("bert-large", &ct);
        if (!teacher) return 1;
        kd_bert_set_training(teacher, 0);
    }
    kd_bert *student = make_model("bert-base", &cs);
    if (!student) {
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
    for (int64_t i = 0; i < B * cs.num_labels; i++) cached[i] = (float)((i * 37 % 11) - 5) * 0.3f;
    double *t = malloc(sizeof(double) * (size_t)(reps + warmup));
    long faults0 = 0;
    double cpu0 = 0;
    int ok = opt && ids && mask && labels && cached && t;
    if (!opt) fprintf(stderr, "bench_bert: %s\n", kd_last_error());
    for (int r = 0; r < reps + warmup && ok; r++) {
        if (r == warmup) {
            faults0 = minor_faults();
            cpu0 = cpu_seconds();
        }
        double t0 = bench_now();
        kd_tensor *zt;
        if (teacher) {
            int prev = kd_set_grad_enabled(0);
            zt = kd_bert_logits(teacher, &in);
            kd_set_grad_enabled(prev);
        } else {
            int64_t shape[2] = { B, cs.num_labels };
            zt = kd_from_buffer(KD_F32, 2, shape, cached);
        }
        kd_tensor *zs = kd_bert_logits(student, &in);
        kd_tensor *y = kd_from_buffer(KD_I32, 1, &B, labels);
        kd_loss_parts lp;
        double norm = 0, lv = NAN;
        ok = zt && zs && y && kd_distill_loss(zs, zt, y, 0.5, 2.0, &lp) == KD_OK;
        if (ok) lv = kd_item(lp.total);
        ok = ok && isfinite(lv) && kd_backward(lp.total, NULL) == KD_OK;
        kd_arena_reset();
        ok = ok && kd_clip_grad_norm(p, np, 1.0, &norm) == KD_OK && kd_adamw_step(opt, 5e-5) == KD_OK;
        kd_zero_grad(p, np);
        ok = ok && isfinite(norm);
        t[r] = bench_now() - t0;
        if (!ok) fprintf(stderr, "bench_bert: distillation step failed or not finite: %s\n", kd_last_error());
        else if (r == 0)
            printf("  step 0: loss %.4f (soft %.4f, hard %.4f), gradient norm %.4f\n", lv, lp.soft, lp.hard, norm);
    }
    if (ok) {
        double med = bench_median(t + warmup, reps), fl = 3.0 * forward_flops(&cs, B, T);
        if (teacher) fl += forward_flops(&ct, B, T);
        printf("  %s %lld x %lld (%sbert-base student step, AdamW): median %.3f s over %d (after %d warm-up), "
               "%.0f tokens/s, ~%.1f GFLOP/s (%s3x student forward FLOPs)\n",
               teacher ? "KD step" : "student step", (long long)B, (long long)T,
               teacher ? "bert-large teacher forward + " : "cached teacher logits, ", med, reps, warmup,
               (double)(B * T) / med, fl / med * 1e-9, teacher ? "teacher forward + " : "");
        report_memory(teacher ? "(KD step)" : "(student step)");
        /* AdamW's m and v are plain heap buffers, not tensors: counted here, and in the RSS above. */
        double state = 0;
        for (size_t i = 0; i < np; i++) state += 2.0 * (double)kd_numel(p[i]) * sizeof(float);
        print_cost(faults0, cpu0, reps);
        printf("  memory (optimizer)     AdamW m and v %.2f GiB\n", state / (1 << 30));
        if (med_out) *med_out = med;
    }
    free(t);
    free(cached);
    free(ids);
    free(mask);
    free(labels);
    kd_adamw_free(opt);
    kd_bert_free(student);
    kd_bert_free(teacher);
    return ok ? 0 : 1;
}

/* A case's median step time goes here when the parent wants it (the kd-step / student-step ratio). */
static int median_fd = -1;

static int run_case(const char *name, const opts *o)
{
    if (kd_backend_select(o->kernels) != KD_OK) {
        fprintf(stderr, "bench_bert: %s\n", kd_last_error());
        return 1;
    }
    if (o->threads > 0) kd_set_threads(o->threads);
    printf("[%s] kernels %s, %d threads\n", name, kd_backend_name(), kd_threads());
    fflush(stdout);
    int rc = 1;
    if (strcmp(name, "large-forward") == 0) rc = run_forward("bert-large", 16, 128, o->large_reps, 0);
    else if (strcmp(name, "base-train") == 0) rc = run_train("bert-base", 16, 128, o->reps, 1);
    else if (strcmp(name, "base-latency") == 0) rc = run_forward("bert-base", 1, 128, 5 * o->reps, 2);
    else if (strcmp(name, "kd-step") == 0 || strcmp(name, "student-step") == 0) {
        double med = 0;
        rc = run_distill(strcmp(name, "kd-step") == 0, 16, 128, o->reps, 2, &med);
        if (rc == 0 && median_fd >= 0 && write(median_fd, &med, sizeof med) != (ssize_t)sizeof med) rc = 1;
    } else fprintf(stderr, "bench_bert: unknown case '%s'\n", name);
    kd_shutdown();
    fflush(stdout);
    return rc;
}

int main(int argc, char **argv)
{
    opts o = { "all", "best", 3, 1, 0 };
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--case") == 0 && i + 1 < argc) o.which = argv[++i];
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) o.reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--large-reps") == 0 && i + 1 < argc) o.large_reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) o.threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--kernels") == 0 && i + 1 < argc) o.kernels = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--case large-forward|base-train|base-latency|kd-step|student-step|all] [--reps N] "
                            "[--large-reps N] [--threads N] [--kernels ref|avx2|avx512|best]\n", argv[0]);
            return 2;
        }
    }
    if (o.reps < 1 || o.large_reps < 1) {
        fprintf(stderr, "bench_bert: --reps and --large-reps must be >= 1\n");
        return 2;
    }
    if (strcmp(o.which, "all") != 0) return run_case(o.which, &o);
    /* Each case in a child: peak memory figures are per case, and nothing (threads, arena) is shared. The
     * distillation cases send their median back through a pipe for the ratio. */
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
