/* engine/autograd.c — recording nodes, the iterative topological order, and backward(). */
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"

static int grad_mode = 1;
static uint64_t node_seq;
static uint64_t walk_epoch;

int kd_grad_enabled(void) { return grad_mode; }

int kd_set_grad_enabled(int on)
{
    int prev = grad_mode;
    grad_mode = on ? 1 : 0;
    return prev;
}

kd_status kd_set_requires_grad(kd_tensor *t, int on)
{
    if (!t) return kd_fail(KD_ERR_ARG, "set_requires_grad: NULL tensor");
    if (t->node) return kd_fail(KD_ERR_STATE, "set_requires_grad: '%s' was made by op %s; only leaves can be marked",
                                t->name[0] ? t->name : "tensor", t->node->op);
    if (on && t->dtype == KD_I32) return kd_fail(KD_ERR_DTYPE, "set_requires_grad: i32 tensors have no gradient");
    t->requires_grad = on ? 1 : 0;
    return KD_OK;
}

kd_tensor *kd_detach(const kd_tensor *t)
{
    if (!t) return NULL;
    kd_tensor *v = kd_view_of(t, t->ndim, t->shape, t->stride, t->offset);
    if (v) snprintf(v->name, sizeof v->name, "%s", t->name);
    return v;
}

void *kd_node_state(kd_node *n, size_t size)
{
    if (!n) return NULL;
    n->state = kd_arena_alloc(size);
    if (n->state) memset(n->state, 0, size);
    return n->state;
}

kd_node *kd_record(kd_tensor *out, const char *op, void (*backward)(kd_node *), int n_in, kd_tensor *const *in)
{
    if (!grad_mode) return NULL;
    int any = 0;
    for (int i = 0; i < n_in; i++)
        if (in[i] && in[i]->requires_grad) any = 1;
    if (!any) return NULL;
    KD_CHECK(n_in <= KD_NODE_MAX_IN);
    kd_node *n = kd_arena_alloc(sizeof *n);
    if (!n) return NULL;
    memset(n, 0, sizeof *n);
    n->op = op;
    n->n_in = n_in;
    for (int i = 0; i < n_in; i++) n->in[i] = in[i];
    n->out = out;
    n->backward = backward;
    n->seq = ++node_seq;
    out->node = n;
    out->requires_grad = 1;
    return n;
}

void *kd_grad_buf(kd_tensor *t)
{
    if (!t->grad) {
        kd_tensor *g = t->persistent && !t->node ? kd_param_on(t->device, t->dtype, t->ndim, t->shape, NULL)
                                                  : kd_zeros_on(t->device, t->dtype, t->ndim, t->shape);
        if (!g) return NULL;
        g->requires_grad = 0;
        t->grad = g;
    }
    return kd_data(t->grad);
}

int kd_grad_can_alias(const kd_tensor *in, const kd_tensor *out)
{
    return in && out && out->grad && in->node && !in->grad && !in->persistent && in->dtype == out->dtype &&
           kd_numel(in) == kd_numel(out) && kd_is_contiguous(out->grad);
}

int kd_grad_alias(kd_tensor *in, kd_tensor *out)
{
    if (!kd_grad_can_alias(in, out)) return 0;
    int64_t st[KD_MAX_DIMS];
    kd_contiguous_strides(in->ndim, in->shape, st);
    kd_tensor *g = kd_view_of(out->grad, in->ndim, in->shape, st, out->grad->offset);
    if (!g) return 0;
    in->grad = g;
    return 1;
}

void kd_zero_grad(kd_tensor *const *params, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (params[i] && params[i]->grad) kd_fill(params[i]->grad, 0.0);
}

/* Post-order DFS from root with an explicit stack: a node is emitted after all nodes it depends on, so the
 * reversed list visits every output before its inputs. */
static kd_node **topo_order(kd_tensor *root, size_t *count)
{
    size_t cap = 256, len = 0, sp = 0, scap = 256;
    kd_node **order = malloc(cap * sizeof *order);
    struct frame { kd_node *n; int next; } *stack = malloc(scap * sizeof *stack);
    if (!order || !stack) {
        free(order);
        free(stack);
        return NULL;
    }
    uint64_t epoch = ++walk_epoch;
    root->visit = epoch;
    stack[sp++] = (struct frame){ root->node, 0 };
    while (sp) {
        struct frame *f = &stack[sp - 1];
        if (f->next < f->n->n_in) {
            kd_tensor *in = f->n->in[f->next++];
            if (!in || !in->node || in->visit == epoch) continue;
            in->visit = epoch;
            if (sp == scap) {
                scap *= 2;
                void *p = realloc(stack, scap * sizeof *stack);
                if (!p) goto fail;
                stack = p;
            }
            stack[sp++] = (struct frame){ in->node, 0 };
        } else {
            if (len == cap) {
                cap *= 2;
                void *p = realloc(order, cap * sizeof *order);
                if (!p) goto fail;
                order = p;
            }
            order[len++] = f->n;
            sp--;
        }
    }
    free(stack);
    *count = len;
    return order;
fail:
    free(order);
    free(stack);
    kd_fail(KD_ERR_NOMEM, "backward: cannot allocate the graph order");
    return NULL;
}

kd_status kd_backward(kd_tensor *root, const kd_tensor *upstream)
{
    return kd_backward_hooked(root, upstream, NULL, NULL);
}

/* For the hook: which leaves are final after which node. A leaf's last contribution comes from the last of
 * its consumers to run, which is the first of them in `order` (the walk runs it backwards). Scanning
 * `order` from the front and keeping each leaf's first appearance lists (node index, leaf) in ascending
 * node index: the walk, going down, pops them from the end. */
typedef struct leaf_final { size_t node; kd_tensor *leaf; } leaf_final;

static leaf_final *final_leaves(kd_node **order, size_t n, size_t *count)
{
    leaf_final *f = malloc((n * KD_NODE_MAX_IN + 1) * sizeof *f);
    if (!f) {
        kd_fail(KD_ERR_NOMEM, "backward: cannot allocate the leaves' list");
        return NULL;
    }
    uint64_t epoch = ++walk_epoch;
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < order[i]->n_in; k++) {
            kd_tensor *in = order[i]->in[k];
            if (!in || in->node || !in->requires_grad || in->visit == epoch) continue;
            in->visit = epoch;
            f[len++] = (leaf_final){ i, in };
        }
    *count = len;
    return f;
}

kd_status kd_backward_hooked(kd_tensor *root, const kd_tensor *upstream, kd_grad_final_fn hook, void *ctx)
{
    char a[64], b[64];
    if (!root) return kd_fail(KD_ERR_ARG, "backward: NULL root (an earlier op failed: %s)", kd_last_error());
    if (!root->requires_grad)
        return kd_fail(KD_ERR_STATE, "backward: the root %s does not require a gradient (no input requires one, "
                       "or it was computed in no-grad mode)", kd_shape_str(root, a, sizeof a));
    if (!upstream && kd_numel(root) != 1)
        return kd_fail(KD_ERR_STATE, "backward: the root has shape %s; a non-scalar root needs an upstream gradient",
                       kd_shape_str(root, a, sizeof a));
    if (upstream && (!kd_same_shape(root, upstream) || upstream->dtype != root->dtype))
        return kd_fail(KD_ERR_SHAPE, "backward: upstream gradient %s %s does not match the root %s %s",
                       kd_dtype_name(upstream->dtype), kd_shape_str(upstream, b, sizeof b),
                       kd_dtype_name(root->dtype), kd_shape_str(root, a, sizeof a));
    if (!root->node) {
        /* A leaf: its gradient is the upstream itself. */
        if (!kd_grad_buf(root)) return kd_last_status();
        kd_tensor *g = kd_view_of(root->grad, root->ndim, root->shape, root->grad->stride, root->grad->offset);
        if (!g) return kd_last_status();
        if (upstream) {
            kd_accumulate_strided(root->device, root->dtype, root->ndim, root->shape, kd_data(g), g->stride,
                                  kd_data(upstream), upstream->stride);
        } else {
            /* grad += 1, in place where the gradient lives. */
            kd_map_args m;
            kd_map_setup(&m, KD_UN_ADD_SCALAR, g);
            m.out = kd_data(g);
            m.a = kd_data(g);
            for (int d = 0; d < g->ndim; d++) m.out_stride[d] = m.a_stride[d] = g->stride[d];
            m.alpha = 1.0;
            kd_k_unary(g->device, g->dtype, &m);
        }
        return hook ? hook(root, ctx) : KD_OK;
    }

    size_t n = 0;
    kd_node **order = topo_order(root, &n);
    if (!order) return kd_last_status();
    /* Intermediate gradients start from zero on every call. */
    for (size_t i = 0; i < n; i++) order[i]->out->grad = NULL;

    if (!kd_grad_buf(root)) {
        free(order);
        return kd_last_status();
    }
    if (upstream) {
        kd_accumulate_strided(root->device, root->dtype, root->ndim, root->shape, kd_data(root->grad), root->grad->stride,
                              kd_data(upstream), upstream->stride);
    } else {
        kd_fill(root->grad, 1.0);
    }
    size_t nfin = 0;
    leaf_final *fin = hook ? final_leaves(order, n, &nfin) : NULL;
    if (hook && !fin) {
        free(order);
        return kd_last_status();
    }
    kd_clear_error();
    kd_status hst = KD_OK;
    int prev = kd_set_grad_enabled(0);   /* backward passes build no graph */
    for (size_t i = n; i-- > 0;) {
        kd_node *node = order[i];
        if (node->out->grad) node->backward(node);   /* else nothing flowed into it */
        if (kd_last_status() == KD_ERR_NOMEM) break;
        while (nfin && fin[nfin - 1].node == i && hst == KD_OK) hst = hook(fin[--nfin].leaf, ctx);
        if (hst != KD_OK) break;
    }
    kd_set_grad_enabled(prev);
    free(fin);
    free(order);
    if (hst != KD_OK) return hst;
    return kd_last_status() == KD_ERR_NOMEM ? KD_ERR_NOMEM : KD_OK;
}
