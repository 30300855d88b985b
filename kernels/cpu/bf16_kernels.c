/* kernels/cpu/bf16_kernels.c — the row, element-wise, dropout and attention kernels on bf16 storage:
 * each thread widens a block of its inputs to f32 scratch (exact), runs the fast f32 kernel of a given
 * table on the block with one thread, and rounds the outputs to bf16 once (an accumulated output enters
 * the f32 kernel as its f32 value, so it too is rounded once: round(f32(out) + value)). The f32 kernels
 * compute in f32, as kernels.h allows for bf16 tables. Layouts without a fast path go to the reference
 * bf16 kernels. AVX2 code. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/bf16_avx2.h"
#include "kernels/cpu/cpu_kernels.h"

#define CHUNK 2048 /* elements per block of an element-wise kernel */

static float *scratch(int64_t n)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p) abort(); /* kernels return no status: the engine sizes its work so this does not happen */
    return p;
}

/* rows x cols values at src (row stride ld) <-> dense f32 rows at dst. */
static void widen_rows(const kd_bf16 *src, int64_t ld, int64_t rows, int64_t cols, float *dst)
{
    for (int64_t i = 0; i < rows; i++) kd_bf16_to_f32_n(src + i * ld, dst + i * cols, cols);
}
static void narrow_rows(const float *src, int64_t rows, int64_t cols, kd_bf16 *dst, int64_t ld)
{
    for (int64_t i = 0; i < rows; i++) kd_f32_to_bf16_n(src + i * cols, dst + i * ld, cols);
}
/* dst = round(f32(dst) + src) */
static void add_rows(const float *src, int64_t rows, int64_t cols, kd_bf16 *dst, int64_t ld)
{
    for (int64_t i = 0; i < rows; i++) {
        kd_bf16 *d = dst + i * ld;
        const float *s = src + i * cols;
        int64_t j = 0;
        for (; j + 8 <= cols; j += 8) kd_bf16x8_store(d + j, _mm256_add_ps(kd_bf16x8_load(d + j), _mm256_loadu_ps(s + j)));
        for (; j < cols; j++) d[j] = kd_f32_to_bf16(kd_bf16_to_f32(d[j]) + s[j]);
    }
}

/* ---------------------------------------------------------------- element-wise maps */

/* One dense run: every dim of size > 1 has the row-major stride in out, a (and b). */
static int map_dense(const kd_map_args *m, int binary, int64_t *total)
{
    int64_t n = 1;
    for (int d = m->ndim - 1; d >= 0; d--) {
        if (m->shape[d] != 1 && (m->out_stride[d] != n || m->a_stride[d] != n || (binary && m->b_stride[d] != n)))
            return 0;
        n *= m->shape[d];
    }
    *total = n;
    return 1;
}

static void map_bf16(const kd_map_args *m, int binary, int ith, int nth, const kd_kernels *f)
{
    int64_t total, lo, hi;
    if (!map_dense(m, binary, &total)) {
        if (binary) kd_kernels_ref_bf16()->binary(m, ith, nth);
        else kd_kernels_ref_bf16()->unary(m, ith, nth);
        return;
    }
    kd_split_range(total, ith, nth, &lo, &hi);
    float ta[CHUNK], tb[CHUNK], to[CHUNK];
    for (int64_t i = lo; i < hi; i += CHUNK) {
        const int64_t len = hi - i < CHUNK ? hi - i : CHUNK;
        kd_bf16_to_f32_n((const kd_bf16 *)m->a + i, ta, len);
        if (binary) kd_bf16_to_f32_n((const kd_bf16 *)m->b + i, tb, len);
        if (m->accumulate) kd_bf16_to_f32_n((const kd_bf16 *)m->out + i, to, len);
        kd_map_args c = { .op = m->op, .accumulate = m->accumulate, .ndim = 1, .shape = { len }, .out = to,
                          .out_stride = { 1 }, .a = ta, .a_stride = { 1 }, .b = tb, .b_stride = { 1 }, .alpha = m->alpha };
        if (binary) f->binary(&c, 0, 1);
        else f->unary(&c, 0, 1);
        kd_f32_to_bf16_n(to, (kd_bf16 *)m->out + i, len);
    }
}

void kd_unary_bf16(const kd_map_args *m, int ith, int nth, const kd_kernels *f) { map_bf16(m, 0, ith, nth, f); }
void kd_binary_bf16(const kd_map_args *m, int ith, int nth, const kd_kernels *f) { map_bf16(m, 1, ith, nth, f); }

/* ---------------------------------------------------------------- reductions */

/* Sum of x[0..n) in f32 (four 8-lane accumulators). */
static float sum_bf16(const kd_bf16 *x, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        s0 = _mm256_add_ps(s0, kd_bf16x8_load(x + j));
        s1 = _mm256_add_ps(s1, kd_bf16x8_load(x + j + 8));
        s2 = _mm256_add_ps(s2, kd_bf16x8_load(x + j + 16));
        s3 = _mm256_add_ps(s3, kd_bf16x8_load(x + j + 24));
    }
    for (; j + 8 <= n; j += 8) s0 = _mm256_add_ps(s0, kd_bf16x8_load(x + j));
    float t[8];
    _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    float s = ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
    for (; j < n; j++) s += kd_bf16_to_f32(x[j]);
    return s;
}

/* The layouts the engine produces, after dropping size-1 dims, with a dense [R, C] (or [N]) input:
 *   rows [R, C], out_stride (s, 0): out[r s] += alpha sum_j a[r, j]   (threads: rows)
 *   columns [R, C], out_stride (0, 1): out[j] += alpha sum_r a[r, j]  (threads: columns)
 *   all [N], out_stride 0: out += alpha sum a                         (thread 0)
 * Sums in f32, rounded once; anything else goes to the reference. */
void kd_reduce_bf16(const kd_reduce_args *m, int ith, int nth)
{
    int64_t shape[2], os[2], as[2];
    int nd = 0;
    for (int d = 0; d < m->ndim; d++) {
        if (m->shape[d] == 1) continue;
        if (nd == 2 || m->shape[d] == 0) { nd = -1; break; }
        shape[nd] = m->shape[d], os[nd] = m->out_stride[d], as[nd] = m->a_stride[d], nd++;
    }
    const kd_bf16 *a = m->a;
    kd_bf16 *out = m->out;
    const float alpha = (float)m->alpha;
    int64_t lo, hi;
    const int dense = nd == 1 ? as[0] == 1 : nd == 2 && as[1] == 1 && as[0] == shape[1];
    if (dense && os[0] == 0 && (nd == 1 || os[1] == 0)) {
        if (ith == 0) out[0] = kd_f32_to_bf16(kd_bf16_to_f32(out[0]) + alpha * sum_bf16(a, nd == 1 ? shape[0] : shape[0] * shape[1]));
    } else if (nd == 2 && dense && os[1] == 0) {
        kd_split_range(shape[0], ith, nth, &lo, &hi);
        for (int64_t r = lo; r < hi; r++)
            out[r * os[0]] = kd_f32_to_bf16(kd_bf16_to_f32(out[r * os[0]]) + alpha * sum_bf16(a + r * shape[1], shape[1]));
    } else if (nd == 2 && dense && os[0] == 0 && os[1] == 1) {
        const int64_t R = shape[0], C = shape[1];
        kd_split_range(C, ith, nth, &lo, &hi);
        float acc[CHUNK];
        for (int64_t j0 = lo; j0 < hi; j0 += CHUNK) {
            const int64_t w = hi - j0 < CHUNK ? hi - j0 : CHUNK;
            memset(acc, 0, (size_t)w * sizeof(float));
            for (int64_t r = 0; r < R; r++) {
                const kd_bf16 *x = a + r * C + j0;
                int64_t j = 0;
                for (; j + 8 <= w; j += 8) _mm256_storeu_ps(acc + j, _mm256_add_ps(_mm256_loadu_ps(acc + j), kd_bf16x8_load(x + j)));
                for (; j < w; j++) acc[j] += kd_bf16_to_f32(x[j]);
            }
            for (int64_t j = 0; j < w; j++) out[j0 + j] = kd_f32_to_bf16(kd_bf16_to_f32(out[j0 + j]) + alpha * acc[j]);
        }
    } else {
        kd_kernels_ref_bf16()->reduce(m, ith, nth);
    }
}

/* ---------------------------------------------------------------- softmax, LayerNorm, dropout */

/* Rows per block: about 8192 values, at least one row. */
static int64_t block_rows(int64_t cols) { return cols > 0 && cols < 8192 ? 8192 / cols : 1; }

void kd_softmax_bf16(const kd_softmax_args *s, int ith, int nth, const kd_kernels *f)
{
    int64_t lo, hi;
    kd_split_range(s->rows, ith, nth, &lo, &hi);
    if (lo >= hi || s->cols <= 0) return;
    const int64_t C = s->cols, rb = block_rows(C);
    float *tx = scratch(2 * rb * C), *ty = tx + rb * C;
    for (int64_t r = lo; r < hi; r += rb) {
        const int64_t n = hi - r < rb ? hi - r : rb;
        kd_bf16_to_f32_n((const kd_bf16 *)s->x + r * C, tx, n * C);
        kd_softmax_args c = { .log = s->log, .rows = n, .cols = C, .x = tx, .y = ty };
        f->softmax(&c, 0, 1);
        kd_f32_to_bf16_n(ty, (kd_bf16 *)s->y + r * C, n * C);
    }
    free(tx);
}

void kd_softmax_bwd_bf16(const kd_softmax_bwd_args *s, int ith, int nth, const kd_kernels *f)
{
    int64_t lo, hi;
    kd_split_range(s->rows, ith, nth, &lo, &hi);
    if (lo >= hi || s->cols <= 0) return;
    const int64_t C = s->cols, rb = block_rows(C);
    float *ty = scratch(3 * rb * C), *tdy = ty + rb * C, *tdx = tdy + rb * C;
    for (int64_t r = lo; r < hi; r += rb) {
        const int64_t n = hi - r < rb ? hi - r : rb;
        kd_bf16_to_f32_n((const kd_bf16 *)s->y + r * C, ty, n * C);
        kd_bf16_to_f32_n((const kd_bf16 *)s->dy + r * C, tdy, n * C);
        kd_bf16_to_f32_n((const kd_bf16 *)s->dx + r * C, tdx, n * C);
        kd_softmax_bwd_args c = { .log = s->log, .rows = n, .cols = C, .y = ty, .dy = tdy, .dx = tdx };
        f->softmax_bwd(&c, 0, 1);
        kd_f32_to_bf16_n(tdx, (kd_bf16 *)s->dx + r * C, n * C);
    }
    free(ty);
}

void kd_layernorm_bf16(const kd_layernorm_args *l, int ith, int nth, const kd_kernels *f)
{
    int64_t lo, hi;
    kd_split_range(l->rows, ith, nth, &lo, &hi);
    if (lo >= hi) return;
    const int64_t C = l->cols, rb = block_rows(C);
    float *tx = scratch(2 * rb * C), *ty = tx + rb * C;
    for (int64_t r = lo; r < hi; r += rb) {
        const int64_t n = hi - r < rb ? hi - r : rb;
        kd_bf16_to_f32_n((const kd_bf16 *)l->x + r * C, tx, n * C);
        kd_layernorm_args c = { .rows = n, .cols = C, .eps = l->eps, .x = tx, .gamma = l->gamma, .beta = l->beta,
                                .y = ty, .mean = (float *)l->mean + r, .rstd = (float *)l->rstd + r };
        f->layernorm(&c, 0, 1);
        kd_f32_to_bf16_n(ty, (kd_bf16 *)l->y + r * C, n * C);
    }
    free(tx);
}

/* dx by blocks of rows through the f32 kernel; dgamma, dbeta (f32) by this thread's slice of columns,
 * summed over all rows in f32 and added once. */
void kd_layernorm_bwd_bf16(const kd_layernorm_bwd_args *l, int ith, int nth, const kd_kernels *f)
{
    const int64_t C = l->cols, R = l->rows;
    const kd_bf16 *X = l->x, *DY = l->dy;
    const float *mean = l->mean, *rstd = l->rstd;
    int64_t lo, hi;
    if (l->dx && C > 0) {
        kd_split_range(R, ith, nth, &lo, &hi);
        const int64_t rb = block_rows(C);
        float *tx = scratch(3 * rb * C), *tdy = tx + rb * C, *tdx = tdy + rb * C;
        for (int64_t r = lo; r < hi; r += rb) {
            const int64_t n = hi - r < rb ? hi - r : rb;
            kd_bf16_to_f32_n(X + r * C, tx, n * C);
            kd_bf16_to_f32_n(DY + r * C, tdy, n * C);
            kd_bf16_to_f32_n((const kd_bf16 *)l->dx + r * C, tdx, n * C);
            kd_layernorm_bwd_args c = { .rows = n, .cols = C, .x = tx, .mean = mean + r, .rstd = rstd + r,
                                        .gamma = l->gamma, .dy = tdy, .dx = tdx };
            f->layernorm_bwd(&c, 0, 1);
            kd_f32_to_bf16_n(tdx, (kd_bf16 *)l->dx + r * C, n * C);
        }
        free(tx);
    }
    if (l->dgamma || l->dbeta) {
        kd_split_range(C, ith, nth, &lo, &hi);
        float sg[256], sb[256];
        for (int64_t j0 = lo; j0 < hi; j0 += 256) {
            const int64_t w = hi - j0 < 256 ? hi - j0 : 256;
            memset(sg, 0, sizeof sg);
            memset(sb, 0, sizeof sb);
            for (int64_t r = 0; r < R; r++) {
                const kd_bf16 *x = X + r * C + j0, *dy = DY + r * C + j0;
                const __m256 vm = _mm256_set1_ps(mean[r]), vr = _mm256_set1_ps(rstd[r]);
                int64_t j = 0;
                for (; j + 8 <= w; j += 8) {
                    const __m256 g = kd_bf16x8_load(dy + j);
                    const __m256 xh = _mm256_mul_ps(_mm256_sub_ps(kd_bf16x8_load(x + j), vm), vr);
                    _mm256_storeu_ps(sg + j, _mm256_fmadd_ps(g, xh, _mm256_loadu_ps(sg + j)));
                    _mm256_storeu_ps(sb + j, _mm256_add_ps(g, _mm256_loadu_ps(sb + j)));
                }
                for (; j < w; j++) {
                    const float g = kd_bf16_to_f32(dy[j]);
                    sg[j] += g * ((kd_bf16_to_f32(x[j]) - mean[r]) * rstd[r]);
                    sb[j] += g;
                }
            }
            for (int64_t j = 0; j < w; j++) {
                if (l->dgamma) ((float *)l->dgamma)[j0 + j] += sg[j];
                if (l->dbeta) ((float *)l->dbeta)[j0 + j] += sb[j];
            }
        }
    }
}

void kd_dropout_bf16(const kd_dropout_args *d, int ith, int nth, const kd_kernels *f)
{
    int64_t lo, hi;
    kd_split_range(d->n, ith, nth, &lo, &hi);
    float tx[CHUNK], to[CHUNK];
    for (int64_t i = lo; i < hi; i += CHUNK) {
        const int64_t len = hi - i < CHUNK ? hi - i : CHUNK;
        kd_bf16_to_f32_n((const kd_bf16 *)d->x + i, tx, len);
        if (d->accumulate) kd_bf16_to_f32_n((const kd_bf16 *)d->out + i, to, len);
        kd_dropout_args c = { .n = len, .p = d->p, .seed = d->seed, .offset = d->offset + (uint64_t)i,
                              .accumulate = d->accumulate, .x = tx, .out = to };
        f->dropout(&c, 0, 1);
        kd_f32_to_bf16_n(to, (kd_bf16 *)d->out + i, len);
    }
}

/* ---------------------------------------------------------------- attention */

/* One (batch, head) pair widened to dense f32 [t, dim] blocks; the f32 kernel's arguments for it. */
typedef struct att_block {
    float *q, *k, *v, *o, *lse, *d_o, *dq, *dk, *dv;
    kd_attention_args c;
} att_block;

static void att_block_init(att_block *w, const kd_attention_args *a)
{
    const int64_t D = a->dim, nq = a->tq * D, nk = a->tk * D;
    float *p = scratch(4 * nq + 4 * nk + a->tq);
    w->q = p, w->k = w->q + nq, w->v = w->k + nk, w->o = w->v + nk;
    w->d_o = w->o + nq, w->dq = w->d_o + nq, w->dk = w->dq + nq, w->dv = w->dk + nk, w->lse = w->dv + nk;
    kd_attention_args c = { .batch = 1, .heads = 1, .tq = a->tq, .tk = a->tk, .dim = D,
                            .q = w->q, .q_st = D, .k = w->k, .k_st = D, .v = w->v, .v_st = D, .o = w->o, .o_st = D,
                            .scale = a->scale, .dropout_p = a->dropout_p, .seed = a->seed };
    w->c = c;
}

/* Widen Q, K, V of pair bh and point the f32 arguments at its mask and dropout counters. */
static void att_block_load(att_block *w, const kd_attention_args *a, int64_t bh)
{
    const int64_t b = bh / a->heads, h = bh % a->heads, D = a->dim;
    widen_rows((const kd_bf16 *)a->q + b * a->q_sb + h * a->q_sh, a->q_st, a->tq, D, w->q);
    widen_rows((const kd_bf16 *)a->k + b * a->k_sb + h * a->k_sh, a->k_st, a->tk, D, w->k);
    widen_rows((const kd_bf16 *)a->v + b * a->v_sb + h * a->v_sh, a->v_st, a->tk, D, w->v);
    w->c.mask = a->mask ? (const float *)a->mask + b * a->mask_sb : NULL;
    /* counter of (b, h, i, j) = offset + ((b*heads + h)*tq + i)*tk + j = (offset + bh*tq*tk) + i*tk + j */
    w->c.offset = a->offset + (uint64_t)(bh * a->tq * a->tk);
}

void kd_attention_bf16(const kd_attention_args *a, int ith, int nth, const kd_attention_impl *impl)
{
    int64_t lo, hi;
    kd_split_range(a->batch * a->heads, ith, nth, &lo, &hi);
    if (lo >= hi || a->tq <= 0) return;
    att_block w;
    att_block_init(&w, a);
    for (int64_t bh = lo; bh < hi; bh++) {
        const int64_t b = bh / a->heads, h = bh % a->heads;
        att_block_load(&w, a, bh);
        w.c.lse = (float *)a->lse + bh * a->tq;
        kd_attention_gemm_f32(&w.c, 0, 1, impl);
        narrow_rows(w.o, a->tq, a->dim, (kd_bf16 *)a->o + b * a->o_sb + h * a->o_sh, a->o_st);
    }
    free(w.q);
}

/* The forward is run again in f32 for O and lse (the f32 backward takes rowsum(dO * O) from O, which must
 * not be the rounded bf16 O), then the f32 backward sums dQ, dK, dV from zero; each is added to its bf16
 * output once. */
void kd_attention_bwd_bf16(const kd_attention_args *a, int ith, int nth, const kd_attention_impl *impl)
{
    int64_t lo, hi;
    kd_split_range(a->batch * a->heads, ith, nth, &lo, &hi);
    if (lo >= hi || a->tq <= 0 || a->tk <= 0) return;
    const int64_t D = a->dim, nq = a->tq * D, nk = a->tk * D;
    att_block w;
    att_block_init(&w, a);
    for (int64_t bh = lo; bh < hi; bh++) {
        const int64_t b = bh / a->heads, h = bh % a->heads;
        att_block_load(&w, a, bh);
        w.c.lse = w.lse;
        kd_attention_gemm_f32(&w.c, 0, 1, impl);
        widen_rows((const kd_bf16 *)a->d_o + b * a->o_sb + h * a->o_sh, a->o_st, a->tq, D, w.d_o);
        memset(w.dq, 0, (size_t)(nq + 2 * nk) * sizeof(float));
        w.c.d_o = w.d_o, w.c.dq = w.dq, w.c.dk = w.dk, w.c.dv = w.dv;
        kd_attention_bwd_gemm_f32(&w.c, 0, 1, impl);
        add_rows(w.dq, a->tq, D, (kd_bf16 *)a->dq + b * a->q_sb + h * a->q_sh, a->q_st);
        add_rows(w.dk, a->tk, D, (kd_bf16 *)a->dk + b * a->k_sb + h * a->k_sh, a->k_st);
        add_rows(w.dv, a->tk, D, (kd_bf16 *)a->dv + b * a->v_sb + h * a->v_sh, a->v_st);
        w.c.d_o = NULL, w.c.dq = w.c.dk = w.c.dv = NULL;
    }
    free(w.q);
}
