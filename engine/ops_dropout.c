/* engine/ops_dropout.c — inverted dropout: y = x * keep / (1 - p), keep ~ Bernoulli(1 - p) from the
 * counter-based generator; the backward replays the same keep decisions on the gradient. */
#include "engine/internal.h"
#include "engine/rng.h"

/* The backward redraws the forward's mask: the same stream (seed, offset) and rate. */
typedef struct dropout_state {
    double p;
    uint64_t seed, offset;
} dropout_state;

static void dropout_backward(kd_node *n)
{
    kd_tensor *x = n->in[0], *y = n->out;
    int in_place = kd_grad_can_alias(x, y);
    void *gx = in_place ? kd_data(y->grad) : kd_grad_buf(x);
    if (!gx) return;
    const dropout_state *s = n->state;
    kd_dropout_args a = { .n = kd_numel(x), .p = s->p, .seed = s->seed, .offset = s->offset,
                          .accumulate = !in_place, .x = kd_data(y->grad), .out = gx };
    kd_k_dropout(x->device, x->dtype, &a);
    if (in_place) kd_grad_alias(x, y);
}

kd_tensor *kd_dropout(kd_tensor *x, double p, int training)
{
    if (!x || !kd_need_float("dropout", "x", x) || !kd_need_device("dropout", "x", x, x->device)) return NULL;
    if (!(p >= 0.0 && p < 1.0)) {
        kd_fail(KD_ERR_ARG, "dropout: p is %g, expected 0 <= p < 1", p);
        return NULL;
    }
    if (!training || p == 0.0) return x;
    x = kd_contiguous(x);
    if (!x) return NULL;
    kd_tensor *y = kd_empty_like(x);
    if (!y) return NULL;
    kd_generator g = kd_generator_get();
    uint64_t offset = kd_generator_take((uint64_t)kd_numel(x));
    kd_dropout_args a = { .n = kd_numel(x), .p = p, .seed = g.seed, .offset = offset, .x = kd_data(x), .out = kd_data(y) };
    kd_k_dropout(x->device, x->dtype, &a);
    dropout_state *s = kd_node_state(kd_record(y, "dropout", dropout_backward, 1, &x), sizeof *s);
    if (s) *s = (dropout_state){ .p = p, .seed = g.seed, .offset = offset };
    return y;
}
