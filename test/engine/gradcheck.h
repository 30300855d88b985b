/* test/engine/gradcheck.h — central finite differences in double precision against kd_backward.
 *
 * For a function f of some f64 leaves and a random upstream gradient U (never all ones: a backward that
 * ignores or mis-indexes dout must fail), the scalar S(x) = sum(U * f(x)) has dS/dx = the vector-Jacobian
 * product that backward computes. Each input element is nudged by +-h and
 * (S(x + h) - S(x - h)) / 2h is compared with the analytic gradient: |num - ana| <= atol + rtol |num|. */
#ifndef KD_GRADCHECK_H
#define KD_GRADCHECK_H

#include "engine/backend.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "test/testutil.h"

#define GC_MAX_IN 5

typedef kd_tensor *(*gc_fn)(kd_tensor **in, void *ctx);

static double gc_dot(const kd_tensor *out, const kd_tensor *u)
{
    kd_tensor *c = kd_contiguous((kd_tensor *)out);
    const double *a = kd_data(c), *b = kd_data(u);
    double s = 0.0;
    for (int64_t i = 0; i < kd_numel(c); i++) s += a[i] * b[i];
    return s;
}

/* Check every element of every input with requires_grad. Returns the number of mismatches. */
static int gradcheck(const char *name, gc_fn f, void *ctx, kd_tensor **in, int n_in, uint64_t seed)
{
    const double h = 1e-6, atol = 1e-7, rtol = 1e-5;
    kd_generator gen = kd_generator_get();
    kd_zero_grad(in, (size_t)n_in);   /* inputs may be shared between checks */
    kd_tensor *out = f(in, ctx);
    if (!out) {
        CHECK(0, "%s: forward failed: %s", name, kd_last_error());
        return 1;
    }
    kd_tensor *u = kd_persist(kd_randn(KD_F64, out->ndim, out->shape, 0.0, 1.0, seed));
    kd_status st = kd_backward(out, u);
    CHECK(st == KD_OK, "%s: backward failed: %s", name, kd_last_error());
    int bad = 0, checked = 0;
    double worst = 0.0;
    int prev = kd_set_grad_enabled(0);
    for (int t = 0; t < n_in; t++) {
        if (!in[t] || !in[t]->requires_grad) continue;
        if (!in[t]->grad) {
            CHECK(0, "%s: input %d got no gradient", name, t);
            bad++;
            continue;
        }
        double *x = kd_data(in[t]);
        const double *g = kd_data(in[t]->grad);
        for (int64_t i = 0; i < kd_numel(in[t]); i++) {
            double keep = x[i];
            x[i] = keep + h;
            kd_generator_set(gen);
            double sp = gc_dot(f(in, ctx), u);
            x[i] = keep - h;
            kd_generator_set(gen);
            double sm = gc_dot(f(in, ctx), u);
            x[i] = keep;
            double num = (sp - sm) / (2 * h);
            double err = fabs(num - g[i]);
            if (err > worst) worst = err;
            checked++;
            if (!kd_close(g[i], num, atol, rtol)) {
                if (bad < 5)
                    fprintf(stderr, "  %s: input %d element %lld: analytic %.10g, numeric %.10g\n", name, t,
                            (long long)i, g[i], num);
                bad++;
            }
        }
    }
    kd_set_grad_enabled(prev);
    kd_generator_set(gen);
    CHECK(bad == 0, "%s: %d of %d gradient elements differ from finite differences", name, bad, checked);
    CHECK(checked > 0, "%s: nothing was checked", name);
    printf("grad %-34s %5d elements, max |analytic - numeric| %.2e\n", name, checked, worst);
    kd_tensor_free(u);
    return bad;
}

#endif
