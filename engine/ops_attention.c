/* engine/ops_attention.c — fused scaled dot-product attention with an additive key mask and dropout on
 * the probabilities, forward and backward (see kernels/kernels.h for the exact definition). q, k, v are
 * [B, T, H, D] so the heads of a [B, T, H*D] projection are read in place; the kernel keeps the
 * log-sum-exp of each score row and the backward recomputes the probabilities from it. */
#include <string.h>

#include "engine/internal.h"
#include "engine/rng.h"

static void fill_args(kd_attention_args *a, const kd_tensor *q, const kd_tensor *k, const kd_tensor *v,
                      const kd_tensor *o, const kd_tensor *mask)
{
    a->batch = q->shape[0];
    a->tq = q->shape[1];
    a->heads = q->shape[2];
    a->dim = q->shape[3];
    a->tk = k->shape[1];
    a->q = kd_data(q); a->q_sb = q->stride[0]; a->q_st = q->stride[1]; a->q_sh = q->stride[2];
    a->k = kd_data(k); a->k_sb = k->stride[0]; a->k_st = k->stride[1]; a->k_sh = k->stride[2];
    a->v = kd_data(v); a->v_sb = v->stride[0]; a->v_st = v->stride[1]; a->v_sh = v->stride[2];
    a->o = kd_data(o); a->o_sb = o->stride[0]; a->o_st = o->stride[1]; a->o_sh = o->stride[2];
    a->mask = mask ? kd_data(mask) : NULL;
    a->mask_sb = mask ? mask->stride[0] : 0;
}

/* A view of t's gradient buffer with t's strides, when t's strides describe a compact layout; the
 * gradient buffer is contiguous, so q/k/v views get contiguous-stride gradient args. */
/* What the backward needs: the forward's log-sum-exp per row, its scale and its dropout stream. */
typedef struct attention_state {
    kd_tensor *lse;
    double scale, dropout_p;
    uint64_t seed, offset;
} attention_state;

static void attention_backward(kd_node *n)
{
    const attention_state *s = n->state;
    kd_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *mask = n->in[3], *o = n->out;
    kd_attention_args a = {0};
    fill_args(&a, q, k, v, o, mask);
    a.scale = s->scale;
    a.dropout_p = s->dropout_p;
    a.seed = s->seed;
    a.offset = s->offset;
    a.lse = kd_data(s->lse);
    a.d_o = kd_data(o->grad);
    /* The kernel writes dq/dk/dv with q/k/v strides; gradients are contiguous [B, T, H, D], so route
     * through contiguous scratch when an input is a strided view. */
    kd_tensor *t[3] = { q, k, v };
    void *g[3];
    kd_tensor *scratch[3] = { NULL, NULL, NULL };
    for (int i = 0; i < 3; i++) {
        if (!kd_wants_grad(n, i) || kd_is_contiguous(t[i])) {
            g[i] = kd_wants_grad(n, i) ? kd_grad_buf(t[i]) : NULL;
            if (kd_wants_grad(n, i) && !g[i]) return;
            if (!g[i]) {  /* the kernel writes all three: give it a throwaway buffer */
                scratch[i] = kd_zeros_on(t[i]->device, t[i]->dtype, t[i]->ndim, t[i]->shape);
                if (!scratch[i]) return;
                g[i] = kd_data(scratch[i]);
            }
        } else {
            scratch[i] = kd_zeros_on(t[i]->device, t[i]->dtype, t[i]->ndim, t[i]->shape);
            if (!scratch[i]) return;
            g[i] = kd_data(scratch[i]);
        }
    }
    /* With contiguous gradient buffers the strides are the contiguous ones of [B, T, H, D]. */
    int64_t st[3][KD_MAX_DIMS];
    for (int i = 0; i < 3; i++) kd_contiguous_strides(4, t[i]->shape, st[i]);
    a.q_sb = st[0][0]; a.q_st = st[0][1]; a.q_sh = st[0][2];
    a.k_sb = st[1][0]; a.k_st = st[1][1]; a.k_sh = st[1][2];
    a.v_sb = st[2][0]; a.v_st = st[2][1]; a.v_sh = st[2][2];
    kd_tensor *qc = kd_contiguous(q), *kc = kd_contiguous(k), *vc = kd_contiguous(v);
    if (!qc || !kc || !vc) return;
    a.q = kd_data(qc); a.k = kd_data(kc); a.v = kd_data(vc);
    a.dq = g[0]; a.dk = g[1]; a.dv = g[2];
    kd_k_attention_bwd(q->device, q->dtype, &a);
    for (int i = 0; i < 3; i++) {
        if (scratch[i] && kd_wants_grad(n, i) && !kd_is_contiguous(t[i])) {
            void *gi = kd_grad_buf(t[i]);
            if (!gi) return;
            kd_accumulate_strided(t[i]->device, t[i]->dtype, 4, t[i]->shape, gi, st[i], kd_data(scratch[i]), st[i]);
        }
    }
}

kd_tensor *kd_attention(kd_tensor *q, kd_tensor *k, kd_tensor *v, kd_tensor *mask, double scale, double dropout_p,
                        int training)
{
    if (!q || !k || !v) return NULL;
    if (!kd_need_device("attention", "q", q, q->device) || !kd_need_device("attention", "k", k, q->device) ||
        !kd_need_device("attention", "v", v, q->device) || !kd_need_device("attention", "mask", mask, q->device))
        return NULL;
    char s1[64], s2[64], s3[64], s4[64];
    if (!kd_need_float("attention", "q", q) || !kd_need_same_dtype("attention", q, k) || !kd_need_same_dtype("attention", q, v))
        return NULL;
    int ok = q->ndim == 4 && k->ndim == 4 && v->ndim == 4 && q->shape[0] == k->shape[0] && k->shape[0] == v->shape[0] &&
             q->shape[2] == k->shape[2] && k->shape[2] == v->shape[2] && q->shape[3] == k->shape[3] &&
             k->shape[3] == v->shape[3] && k->shape[1] == v->shape[1];
    if (!ok) {
        kd_fail(KD_ERR_SHAPE, "attention: q %s, k %s, v %s: expected q [B, Tq, H, D] and k, v [B, Tk, H, D]",
                kd_shape_str(q, s1, sizeof s1), kd_shape_str(k, s2, sizeof s2), kd_shape_str(v, s3, sizeof s3));
        return NULL;
    }
    if (mask && (mask->dtype != kd_stat_dtype(q->dtype) || mask->ndim != 2 || mask->shape[0] != q->shape[0] || mask->shape[1] != k->shape[1])) {
        kd_fail(KD_ERR_SHAPE, "attention: mask is %s %s, expected %s [B, Tk] = [%lld, %lld] for q %s",
                kd_dtype_name(mask->dtype), kd_shape_str(mask, s4, sizeof s4), kd_dtype_name(kd_stat_dtype(q->dtype)),
                (long long)q->shape[0], (long long)k->shape[1], kd_shape_str(q, s1, sizeof s1));
        return NULL;
    }
    if (!(dropout_p >= 0.0 && dropout_p < 1.0)) {
        kd_fail(KD_ERR_ARG, "attention: dropout p is %g, expected 0 <= p < 1", dropout_p);
        return NULL;
    }
    /* The kernel needs a unit stride along D; anything else is copied. */
    if (q->stride[3] != 1) q = kd_contiguous(q);
    if (k->stride[3] != 1) k = kd_contiguous(k);
    if (v->stride[3] != 1) v = kd_contiguous(v);
    if (mask && mask->stride[1] != 1) mask = kd_contiguous(mask);
    if (!q || !k || !v || (mask && !mask)) return NULL;
    double p = training ? dropout_p : 0.0;
    kd_tensor *o = kd_empty_on(q->device, q->dtype, 4, q->shape);
    int64_t lshape[3] = { q->shape[0], q->shape[2], q->shape[1] };
    kd_tensor *lse = kd_empty_on(q->device, kd_stat_dtype(q->dtype), 3, lshape);
    if (!o || !lse) return NULL;
    kd_attention_args a = {0};
    fill_args(&a, q, k, v, o, mask);
    a.scale = scale;
    a.dropout_p = p;
    kd_generator g = kd_generator_get();
    a.seed = g.seed;
    a.offset = p > 0 ? kd_generator_take((uint64_t)(a.batch * a.heads * a.tq * a.tk)) : 0;
    a.lse = kd_data(lse);
    kd_k_attention(q->device, q->dtype, &a);
    kd_tensor *in[4] = { q, k, v, mask };
    attention_state *s = kd_node_state(kd_record(o, "attention", attention_backward, 4, in), sizeof *s);
    if (s) *s = (attention_state){ .lse = lse, .scale = scale, .dropout_p = p, .seed = a.seed, .offset = a.offset };
    return o;
}

/* --- attention over packed sequences. q, k, v [total, H, D] hold the rows of nseq sequences one after
 * another, sequence s being rows [offsets[s], offsets[s+1]); each attends to its own rows only. The kernels
 * are the padded op's, called once per sequence with batch 1 and pointers to its rows, so no padding row is
 * ever computed and no mask is needed. Dropout: sequence s uses the counters
 * base + H * sum_{r<s} len_r^2 + ((h * len_s) + i) * len_s + j (one contiguous range per call). */
typedef struct varlen_state {
    kd_tensor *lse;          /* [H, total]: sequence s's [H, len_s] block starts at H * offsets[s] */
    double scale, dropout_p;
    uint64_t seed, offset;
    int64_t nseq;
    int64_t *offsets;        /* nseq + 1, in the arena */
} varlen_state;

/* The kernel's arguments for sequence s of contiguous packed [total, H, D] tensors. */
static void varlen_args(kd_attention_args *a, const kd_tensor *q, int64_t s, const int64_t *offsets, const void *qd,
                        const void *kd, const void *vd, void *od, void *lse, const varlen_state *st, uint64_t offset)
{
    int64_t H = q->shape[1], D = q->shape[2], row = H * D, t0 = offsets[s], len = offsets[s + 1] - offsets[s];
    size_t es = kd_dtype_size(q->dtype), ls = kd_dtype_size(kd_stat_dtype(q->dtype));
    size_t at = (size_t)t0 * (size_t)row * es;
    *a = (kd_attention_args){ .batch = 1, .heads = H, .tq = len, .tk = len, .dim = D };
    a->q = (const char *)qd + at; a->q_sb = len * row; a->q_st = row; a->q_sh = D;
    a->k = (const char *)kd + at; a->k_sb = len * row; a->k_st = row; a->k_sh = D;
    a->v = (const char *)vd + at; a->v_sb = len * row; a->v_st = row; a->v_sh = D;
    a->o = (char *)od + at;       a->o_sb = len * row; a->o_st = row; a->o_sh = D;
    a->lse = (char *)lse + (size_t)(H * t0) * ls;
    a->scale = st->scale;
    a->dropout_p = st->dropout_p;
    a->seed = st->seed;
    a->offset = offset;
}

static void attention_varlen_backward(kd_node *n)
{
    const varlen_state *s = n->state;
    kd_tensor *t[3] = { n->in[0], n->in[1], n->in[2] }, *o = n->out;
    void *g[3];
    for (int i = 0; i < 3; i++) {
        if (kd_wants_grad(n, i)) g[i] = kd_grad_buf(t[i]);
        else {  /* the kernel writes all three: give it a throwaway buffer */
            kd_tensor *z = kd_zeros_on(t[i]->device, t[i]->dtype, 3, t[i]->shape);
            g[i] = z ? kd_data(z) : NULL;
        }
        if (!g[i]) return;
    }
    int64_t H = t[0]->shape[1];
    uint64_t offset = s->offset;
    for (int64_t q = 0; q < s->nseq; q++) {
        int64_t len = s->offsets[q + 1] - s->offsets[q];
        kd_attention_args a;
        varlen_args(&a, t[0], q, s->offsets, kd_data(t[0]), kd_data(t[1]), kd_data(t[2]), kd_data(o), kd_data(s->lse),
                    s, offset);
        size_t at = (size_t)(a.o_st * s->offsets[q]) * kd_dtype_size(o->dtype);
        a.d_o = (const char *)kd_data(o->grad) + at;
        a.dq = (char *)g[0] + at;
        a.dk = (char *)g[1] + at;
        a.dv = (char *)g[2] + at;
        if (len > 0) kd_k_attention_bwd(o->device, o->dtype, &a);
        if (s->dropout_p > 0) offset += (uint64_t)(H * len * len);
    }
}

kd_tensor *kd_attention_varlen(kd_tensor *q, kd_tensor *k, kd_tensor *v, const int64_t *offsets, int64_t nseq,
                               double scale, double dropout_p, int training)
{
    if (!q || !k || !v) return NULL;
    if (!kd_need_device("attention_varlen", "k", k, q->device) || !kd_need_device("attention_varlen", "v", v, q->device))
        return NULL;
    if (!kd_need_float("attention_varlen", "q", q) || !kd_need_same_dtype("attention_varlen", q, k) ||
        !kd_need_same_dtype("attention_varlen", q, v))
        return NULL;
    char s1[64], s2[64], s3[64];
    if (q->ndim != 3 || k->ndim != 3 || v->ndim != 3 || !kd_same_shape(q, k) || !kd_same_shape(q, v)) {
        kd_fail(KD_ERR_SHAPE, "attention_varlen: q %s, k %s, v %s: expected all three [total, H, D]",
                kd_shape_str(q, s1, sizeof s1), kd_shape_str(k, s2, sizeof s2), kd_shape_str(v, s3, sizeof s3));
        return NULL;
    }
    if (nseq < 1 || !offsets || offsets[0] != 0 || offsets[nseq] != q->shape[0]) {
        kd_fail(KD_ERR_ARG, "attention_varlen: %lld sequences with offsets from %lld to %lld, expected >= 1 "
                "sequence, offsets from 0 to the %lld rows of q", (long long)nseq, offsets ? (long long)offsets[0] : -1LL,
                offsets && nseq >= 0 ? (long long)offsets[nseq] : -1LL, (long long)q->shape[0]);
        return NULL;
    }
    for (int64_t s = 0; s < nseq; s++)
        if (offsets[s + 1] < offsets[s]) {
            kd_fail(KD_ERR_ARG, "attention_varlen: offsets[%lld] = %lld > offsets[%lld] = %lld, expected ascending",
                    (long long)s, (long long)offsets[s], (long long)(s + 1), (long long)offsets[s + 1]);
            return NULL;
        }
    if (!(dropout_p >= 0.0 && dropout_p < 1.0)) {
        kd_fail(KD_ERR_ARG, "attention_varlen: dropout p is %g, expected 0 <= p < 1", dropout_p);
        return NULL;
    }
    /* Sequences are addressed by row: the kernel reads contiguous [total, H, D] (a reshaped projection is). */
    q = kd_contiguous(q);
    k = kd_contiguous(k);
    v = kd_contiguous(v);
    if (!q || !k || !v) return NULL;
    int64_t total = q->shape[0], H = q->shape[1];
    double p = training ? dropout_p : 0.0;
    kd_tensor *o = kd_empty_on(q->device, q->dtype, 3, q->shape);
    int64_t lshape[2] = { H, total };
    kd_tensor *lse = kd_empty_on(q->device, kd_stat_dtype(q->dtype), 2, lshape);
    if (!o || !lse) return NULL;
    uint64_t draws = 0;
    for (int64_t s = 0; s < nseq; s++) {
        int64_t len = offsets[s + 1] - offsets[s];
        draws += (uint64_t)(H * len * len);
    }
    varlen_state st = { .lse = lse, .scale = scale, .dropout_p = p, .seed = kd_generator_get().seed, .nseq = nseq };
    st.offset = p > 0 ? kd_generator_take(draws) : 0;
    uint64_t offset = st.offset;
    for (int64_t s = 0; s < nseq; s++) {
        int64_t len = offsets[s + 1] - offsets[s];
        kd_attention_args a;
        varlen_args(&a, q, s, offsets, kd_data(q), kd_data(k), kd_data(v), kd_data(o), kd_data(lse), &st, offset);
        if (len > 0) kd_k_attention(q->device, q->dtype, &a);
        if (p > 0) offset += (uint64_t)(H * len * len);
    }
    kd_tensor *in[3] = { q, k, v };
    kd_node *n = kd_record(o, "attention_varlen", attention_varlen_backward, 3, in);
    varlen_state *s = kd_node_state(n, sizeof *s + (size_t)(nseq + 1) * sizeof(int64_t));
    if (s) {
        *s = st;
        s->offsets = (int64_t *)(s + 1);
        memcpy(s->offsets, offsets, (size_t)(nseq + 1) * sizeof(int64_t));
    }
    return o;
}
