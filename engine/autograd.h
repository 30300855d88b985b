/* engine/autograd.h — the define-by-run graph and reverse-mode differentiation.
 *
 * An op that runs while grad mode is on and with any input that requires a gradient records a node:
 * its inputs, its output, a backward function and what that function needs (saved tensors and scalars).
 * kd_backward() orders the nodes reachable from the root (iteratively: deep graphs do not recurse) and
 * calls each backward once, outputs before inputs; each backward adds its inputs' gradients into their
 * grad buffers. Leaves (no node) keep their gradient across calls until kd_zero_grad(). */
#ifndef KD_AUTOGRAD_H
#define KD_AUTOGRAD_H

#include "engine/tensor.h"

#define KD_NODE_MAX_IN 6

typedef struct kd_node {
    const char *op;
    int n_in;
    kd_tensor *in[KD_NODE_MAX_IN];
    kd_tensor *out;
    void (*backward)(struct kd_node *n);
    void *state;             /* what the backward needs beyond inputs and output: the op's own struct */
    uint64_t seq;            /* creation order */
} kd_node;

/* Grad mode. kd_set_grad_enabled returns the previous mode, to restore it. */
int kd_grad_enabled(void);
int kd_set_grad_enabled(int on);

/* Mark a leaf as requiring a gradient (an error on a tensor made by an op). */
kd_status kd_set_requires_grad(kd_tensor *t, int on);
/* A view of t's storage with no graph and no gradient. */
kd_tensor *kd_detach(const kd_tensor *t);

/* Reverse-mode from root. upstream: the gradient of the final quantity w.r.t. root (same shape), or NULL
 * when root has one element (then 1). Fails with KD_ERR_STATE when root has more than one element and no
 * upstream is given, or root does not require a gradient. Calling it twice on one graph adds the leaves'
 * gradients twice (intermediate gradients start from zero each call). */
kd_status kd_backward(kd_tensor *root, const kd_tensor *upstream);

/* kd_backward that tells `hook` when a leaf's gradient is final: once for every leaf that requires a
 * gradient and is an input of the graph, right after the backward of the last node that reads it, so that
 * leaf->grad then holds everything this call adds (NULL when nothing flowed to it and it had none). Leaves
 * come in the order the walk finishes them: the last used first. A hook that returns an error stops the
 * walk, and kd_backward_hooked returns that error. kd_backward is this without a hook, and pays nothing
 * for it. (A data-parallel trainer starts reducing a bucket of gradients while the walk goes on.) */
typedef kd_status (*kd_grad_final_fn)(kd_tensor *leaf, void *ctx);
kd_status kd_backward_hooked(kd_tensor *root, const kd_tensor *upstream, kd_grad_final_fn hook, void *ctx);

void kd_zero_grad(kd_tensor *const *params, size_t n);

/* For op authors. kd_record: the node for `out` if grad mode is on and an input requires a gradient,
 * else NULL (and nothing is recorded). kd_grad_buf: t's gradient buffer (contiguous, t's dtype), zeroed
 * on first use: heap for persistent leaves, arena otherwise. */
kd_node *kd_record(kd_tensor *out, const char *op, void (*backward)(kd_node *), int n_in, kd_tensor *const *in);
void *kd_grad_buf(kd_tensor *t);
/* The op's typed state for n's backward (size bytes, zeroed, in the arena: it lives as long as the node);
 * NULL when n is NULL (nothing was recorded) or memory ran out. Written by the forward, read by the backward
 * as n->state. */
void *kd_node_state(kd_node *n, size_t size);
/* Gradient aliasing, to keep a step's memory down. When an op's backward would hand its output gradient
 * to input `in` unchanged (a view, an add) or could compute the input gradient in place (dropout, GELU),
 * and `in` is an intermediate (made by an op: its own node runs later and nothing else reads the output
 * gradient after this node) with no gradient yet, the input takes the output gradient's buffer instead
 * of a fresh one. kd_grad_alias returns 1 when it did so (the gradient is then already in place for the
 * plain hand-over); 0 means: accumulate as usual. kd_grad_can_alias only asks. */
int kd_grad_can_alias(const kd_tensor *in, const kd_tensor *out);
int kd_grad_alias(kd_tensor *in, kd_tensor *out);
/* Does input i of n want a gradient? */
static inline int kd_wants_grad(const kd_node *n, int i) { return n->in[i] && n->in[i]->requires_grad; }

#endif
