/* models/bert.c — BERT for sequence classification: parameters (named as Hugging Face names them), BERT's
 * initialisation, and the forward pass built from engine ops (autograd records it when grad mode is on).
 *
 *   x   = LayerNorm(word[ids] + pos[0..T) + type[type_ids]);  dropout
 *   per layer:  a = Attention(x W_q^T + b_q, x W_k^T + b_k, x W_v^T + b_v, mask)  (heads as [B, T, H, D] views)
 *               x = LayerNorm(x + dropout(a W_o^T + b_o))
 *               x = LayerNorm(x + dropout(gelu(x W_i^T + b_i) W_out^T + b_out))
 *   pooled = tanh(x[:, 0] W_p^T + b_p);  logits = dropout(pooled) W_c^T + b_c
 *
 * Mixed precision (kd_bert_set_precision bf16): the embeddings and their LayerNorm run in f32; the encoder
 * runs on bf16 activations with bf16 copies of the weights and biases (kd_cast: with a graph, made each
 * forward and their gradients arrive in the f32 parameters; without one, made once and kept until the
 * weights change, so a frozen teacher converts its weights once per run) and f32 LayerNorm parameters;
 * the [CLS] state is cast back to f32 for the pooler and classifier, so logits and losses are f32.
 * Without a graph the linears read their weights prepacked (engine/ops_matmul.c, kd_prepack).
 *
 * Padding-free tokens (packed; kd_bert_set_packed, on unless KD_PACKED=0): a batch whose mask is a prefix of
 * ones per row runs as the [total, hidden] rows of its real tokens, sequence b at rows [off[b], off[b+1]):
 * embeddings (positions 0..len-1 per sequence), every linear, LayerNorm, GELU, dropout and residual add see
 * real tokens only; attention runs per sequence on its rows (kd_attention_varlen: the same kernels, one call
 * per sequence, so no padding is computed and no mask is needed); the pooler reads row off[b] of each.
 * Without dropout this equals the padded forward up to the order of f32 sums (test_bert_packed). States for
 * intermediate-layer losses are gathered into the padded layouts they expect ([B, T, hidden]; scores from q
 * and k gathered to [B, T, heads, dh]); kd_bert_encode keeps the padded path.
 *
 * int8 (models/bert_quant.c, kd quantize): every linear above but the classifier runs kd_linear_s8 on s8
 * weights, with activations quantized per token or with calibrated static scales. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/device.h"
#include "engine/ops.h"
#include "models/bert_internal.h"
#include "engine/rng.h"

static kd_tensor *new_param(kd_bert *m, int64_t rows, int64_t cols, const char *fmt, int layer, const char *what)
{
    char name[96];
    if (layer >= 0) snprintf(name, sizeof name, fmt, layer, what);
    else snprintf(name, sizeof name, fmt, what);
    int64_t shape[2] = { rows, cols };
    kd_tensor *t = kd_param(KD_F32, cols > 0 ? 2 : 1, shape, name);
    if (t) m->params[m->n_params++] = t;
    return t;
}

/* Models are made and loaded on the host (initialisation and checkpoint reads write their values there);
 * kd_bert_to_device moves them. */
kd_bert *kd_bert_alloc(const kd_bert_config *cfg)
{
    if (kd_bert_config_check(cfg, cfg->name[0] ? cfg->name : "config") != KD_OK) return NULL;
    kd_bert *m = calloc(1, sizeof *m);
    size_t cap = 9 + (size_t)cfg->num_layers * KD_BERT_LAYER_TENSORS;
    if (!m || !(m->params = calloc(cap, sizeof *m->params)) ||
        !(m->layers = calloc((size_t)cfg->num_layers, sizeof *m->layers))) {
        if (m) free(m->params);
        free(m);
        kd_fail(KD_ERR_NOMEM, "bert: out of memory for the parameter table");
        return NULL;
    }
    m->cfg = *cfg;
    const char *pk = getenv("KD_PACKED");
    m->packed = !(pk && strcmp(pk, "0") == 0);
    /* a new model is f32: kd_bert_quant_alloc marks it int8 (the config says so exactly when it is) */
    m->cfg.quant_activations[0] = 0;
    m->cfg.quant_calibration[0] = 0;
    int64_t V = cfg->vocab_size, H = cfg->hidden_size, F = cfg->intermediate_size;
    const char *E = "bert.embeddings.%s", *L = "bert.encoder.layer.%d.%s";
    int ok = 1;
    ok &= (m->word = new_param(m, V, H, E, -1, "word_embeddings.weight")) != NULL;
    ok &= (m->pos = new_param(m, cfg->max_position, H, E, -1, "position_embeddings.weight")) != NULL;
    ok &= (m->type = new_param(m, cfg->type_vocab_size, H, E, -1, "token_type_embeddings.weight")) != NULL;
    ok &= (m->eln_w = new_param(m, H, 0, E, -1, "LayerNorm.weight")) != NULL;
    ok &= (m->eln_b = new_param(m, H, 0, E, -1, "LayerNorm.bias")) != NULL;
    for (int l = 0; ok && l < cfg->num_layers; l++) {
        kd_bert_layer *y = &m->layers[l];
        ok &= (y->q_w = new_param(m, H, H, L, l, "attention.self.query.weight")) != NULL;
        ok &= (y->q_b = new_param(m, H, 0, L, l, "attention.self.query.bias")) != NULL;
        ok &= (y->k_w = new_param(m, H, H, L, l, "attention.self.key.weight")) != NULL;
        ok &= (y->k_b = new_param(m, H, 0, L, l, "attention.self.key.bias")) != NULL;
        ok &= (y->v_w = new_param(m, H, H, L, l, "attention.self.value.weight")) != NULL;
        ok &= (y->v_b = new_param(m, H, 0, L, l, "attention.self.value.bias")) != NULL;
        ok &= (y->ao_w = new_param(m, H, H, L, l, "attention.output.dense.weight")) != NULL;
        ok &= (y->ao_b = new_param(m, H, 0, L, l, "attention.output.dense.bias")) != NULL;
        ok &= (y->aln_w = new_param(m, H, 0, L, l, "attention.output.LayerNorm.weight")) != NULL;
        ok &= (y->aln_b = new_param(m, H, 0, L, l, "attention.output.LayerNorm.bias")) != NULL;
        ok &= (y->i_w = new_param(m, F, H, L, l, "intermediate.dense.weight")) != NULL;
        ok &= (y->i_b = new_param(m, F, 0, L, l, "intermediate.dense.bias")) != NULL;
        ok &= (y->o_w = new_param(m, H, F, L, l, "output.dense.weight")) != NULL;
        ok &= (y->o_b = new_param(m, H, 0, L, l, "output.dense.bias")) != NULL;
        ok &= (y->oln_w = new_param(m, H, 0, L, l, "output.LayerNorm.weight")) != NULL;
        ok &= (y->oln_b = new_param(m, H, 0, L, l, "output.LayerNorm.bias")) != NULL;
    }
    ok = ok && (m->pool_w = new_param(m, H, H, "bert.pooler.%s", -1, "dense.weight")) != NULL;
    ok = ok && (m->pool_b = new_param(m, H, 0, "bert.pooler.%s", -1, "dense.bias")) != NULL;
    ok = ok && (m->cls_w = new_param(m, cfg->num_labels, H, "classifier.%s", -1, "weight")) != NULL;
    ok = ok && (m->cls_b = new_param(m, cfg->num_labels, 0, "classifier.%s", -1, "bias")) != NULL;
    if (!ok) {
        kd_bert_free(m);
        kd_fail(KD_ERR_NOMEM, "bert: out of memory allocating %s parameters", cfg->name);
        return NULL;
    }
    KD_CHECK(m->n_params == cap);
    return m;
}


void kd_bert_free(kd_bert *m)
{
    if (!m) return;
    kd_bert_quant_free(m);
    for (size_t i = 0; i < m->n_params; i++) kd_tensor_free(m->params[i]);
    free(m->params);
    free(m->layers);
    free(m);
}

kd_tensor *kd_bert_param(kd_bert *m, const char *name)
{
    for (size_t i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i]->name, name) == 0) return m->params[i];
    return NULL;
}

/* --- initialisation. A parameter's values are a function of (seed, its name), so a model's layers do not
 * depend on which other tensors exist. SplitMix64 gives the bits; the polar method the normals. */
static double uniform01(uint64_t *s) { return ((double)(kd_splitmix64(s) >> 11) + 0.5) * 0x1p-53; }  /* (0, 1) */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

void kd_bert_init_param(kd_bert *m, kd_tensor *p, uint64_t seed)
{
    kd_mark_modified(p);
    float *d = kd_data(p);
    int64_t n = kd_numel(p);
    const char *name = p->name;
    int is_ln = strstr(name, "LayerNorm") != NULL;
    if (is_ln && ends_with(name, ".weight")) {
        for (int64_t i = 0; i < n; i++) d[i] = 1.0f;
        return;
    }
    if (ends_with(name, ".bias")) {
        memset(d, 0, (size_t)n * sizeof *d);
        return;
    }
    /* Truncated normal N(0, std^2) cut at +-2 std (BERT's TensorFlow initialiser), redrawn outside. */
    uint64_t s = seed;
    for (const char *c = name; *c; c++) s = (s ^ (unsigned char)*c) * 0x100000001B3ull;  /* FNV-1a of the name */
    double std = m->cfg.initializer_range;
    for (int64_t i = 0; i < n; i += 2) {
        double z0, z1;
        do {
            /* Marsaglia's polar method: a point uniform in the unit disc gives two normals, no trig. */
            double u, v, q;
            do {
                u = 2.0 * uniform01(&s) - 1.0;
                v = 2.0 * uniform01(&s) - 1.0;
                q = u * u + v * v;
            } while (q >= 1.0 || q == 0.0);
            double f = sqrt(-2.0 * log(q) / q);
            z0 = u * f;
            z1 = v * f;
        } while (fabs(z0) > 2.0 || fabs(z1) > 2.0);
        d[i] = (float)(std * z0);
        if (i + 1 < n) d[i + 1] = (float)(std * z1);
    }
    /* nn.Embedding(padding_idx) in Hugging Face's BERT keeps the padding row at zero. */
    if (p == m->word) memset(d + (int64_t)m->cfg.pad_token_id * p->shape[1], 0, (size_t)p->shape[1] * sizeof *d);
}

kd_bert *kd_bert_new(const kd_bert_config *cfg, uint64_t seed)
{
    kd_bert *m = kd_bert_alloc(cfg);
    if (!m) return NULL;
    for (size_t i = 0; i < m->n_params; i++) kd_bert_init_param(m, m->params[i], seed);
    return m;
}

const kd_bert_config *kd_bert_get_config(const kd_bert *m) { return &m->cfg; }

kd_tensor **kd_bert_parameters(kd_bert *m, size_t *n)
{
    if (n) *n = m->n_params;
    return m->params;
}

kd_status kd_bert_to_device(kd_bert *m, kd_device dev)
{
    if (m->quant && dev != KD_CPU)
        return kd_fail(KD_ERR_ARG, "bert: an int8 model (config.json kd_quantization) runs on the CPU, not on %s: use "
                       "--device cpu, or the f32 model it was quantized from", kd_device_name(dev));
    kd_status st = kd_device_open(dev);
    for (size_t i = 0; st == KD_OK && i < m->n_params; i++) st = kd_to_device(m->params[i], dev);
    return st;
}

kd_device kd_bert_device(const kd_bert *m)
{
    KD_CHECK(m->n_params > 0);   /* every model has its embeddings */
    return m->params[0]->device;
}

int64_t kd_bert_num_parameters(const kd_bert *m)
{
    int64_t s = 0;
    for (size_t i = 0; i < m->n_params; i++) s += kd_numel(m->params[i]);
    return s;
}

void kd_bert_set_training(kd_bert *m, int training) { m->training = training != 0; }

void kd_bert_set_packed(kd_bert *m, int on) { m->packed = on != 0; }

int kd_bert_packed(const kd_bert *m) { return m->packed; }

kd_status kd_bert_set_dropout(kd_bert *m, double hidden, double attention)
{
    if (!(hidden >= 0 && hidden < 1) || !(attention >= 0 && attention < 1))
        return kd_fail(KD_ERR_ARG, "dropout %g (hidden), %g (attention): expected each in [0, 1)", hidden, attention);
    m->cfg.hidden_dropout = hidden;
    m->cfg.attention_dropout = attention;
    return KD_OK;
}

kd_status kd_bert_set_precision(kd_bert *m, kd_dtype compute)
{
    if (compute != KD_F32 && compute != KD_BF16)
        return kd_fail(KD_ERR_DTYPE, "bert: compute dtype %s, expected f32 or bf16", kd_dtype_name(compute));
    if (m->quant && compute != KD_F32)
        return kd_fail(KD_ERR_DTYPE, "bert: an int8 model (config.json kd_quantization) runs with f32 activations, not "
                       "%s: use --precision f32", kd_dtype_name(compute));
    m->compute = compute;
    return KD_OK;
}

kd_dtype kd_bert_precision(const kd_bert *m) { return m->compute; }

kd_status kd_bert_set_labels(kd_bert *m, int n, const char *const *names)
{
    if (n != m->cfg.num_labels)
        return kd_fail(KD_ERR_ARG, "bert: %d label names given, but the classifier has num_labels %d", n, m->cfg.num_labels);
    for (int i = 0; i < n; i++) {
        if (!names[i] || strlen(names[i]) >= sizeof m->cfg.labels[0])
            return kd_fail(KD_ERR_ARG, "bert: label %d is %s, expected a name of at most %zu bytes", i,
                           names[i] ? "too long" : "NULL", sizeof m->cfg.labels[0] - 1);
        for (int j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return kd_fail(KD_ERR_ARG, "bert: label \"%s\" appears twice (ids %d and %d)", names[i], j, i);
    }
    for (int i = 0; i < n; i++) snprintf(m->cfg.labels[i], sizeof m->cfg.labels[i], "%s", names[i]);
    return KD_OK;
}

/* --- forward */

/* scale q k^T + mask per batch and head, [B, heads, T, T] in f32 (the attention distribution before its
 * softmax), from q and k [B, T, heads, dh]. */
static kd_tensor *attention_scores(kd_tensor *q, kd_tensor *k, kd_tensor *mask, double scale, int64_t B, int64_t T)
{
    static const int qp[4] = { 0, 2, 1, 3 }, kp[4] = { 0, 2, 3, 1 };
    kd_tensor *s = kd_matmul(kd_permute(kd_cast(q, KD_F32), qp), kd_permute(kd_cast(k, KD_F32), kp));
    int64_t mshape[4] = { B, 1, 1, T };
    s = kd_scale(s, scale);
    return mask ? kd_add(s, kd_reshape(mask, 4, mshape)) : s;
}

/* x W^T + b for linear `idx` (kd_bert_quant's order): the int8 linear in an int8 model (which runs f32 on the
 * CPU only), else the f32 (or bf16) one. While calibrating, the input's max |x| (first pass) or histogram of
 * |x| (second pass) is kept first. */
static kd_tensor *linear(const kd_bert *m, size_t idx, kd_tensor *x, kd_tensor *w, kd_tensor *b, kd_dtype dt)
{
    if (!x) return NULL;
    if (m->calib && x->device == KD_CPU && x->dtype == KD_F32) {
        kd_tensor *xc = kd_contiguous(x);
        if (!xc) return NULL;
        const float *d = kd_data(xc);
        int64_t cols = xc->shape[xc->ndim - 1], rows = cols ? kd_numel(xc) / cols : 0;
        /* token rows of padding (the batch is padded to a multiple of 8) are left out: only real tokens
         * set the scale */
        const int32_t *skip = m->calib_mask && rows == m->calib_rows ? m->calib_mask : NULL;
        if (m->calib_hist) {
            /* second pass: a histogram of |x| over [0, the first pass's max] (values above it: the last bin) */
            uint64_t *h = m->calib_hist + idx * KD_BERT_CALIB_BINS;
            const float per = m->calib[idx] > 0 ? KD_BERT_CALIB_BINS / m->calib[idx] : 0.0f;
            for (int64_t r = 0; r < rows; r++) {
                if (skip && !skip[r]) continue;
                for (int64_t c = 0; c < cols; c++) {
                    float b = fabsf(d[r * cols + c]) * per;
                    h[b < KD_BERT_CALIB_BINS - 1 ? (int64_t)b : KD_BERT_CALIB_BINS - 1]++;
                }
            }
        } else {
            float mx = m->calib[idx];
            for (int64_t r = 0; r < rows; r++) {
                if (skip && !skip[r]) continue;
                for (int64_t c = 0; c < cols; c++) mx = fmaxf(mx, fabsf(d[r * cols + c]));
            }
            m->calib[idx] = mx;
        }
    }
    if (m->quant) {
        if (x->dtype == KD_F32 && x->device == KD_CPU) return kd_linear_s8(x, &m->quant->w[idx], b);
        kd_fail(KD_ERR_DTYPE, "bert: an int8 model runs on the CPU with f32 activations, not %s on %s",
                kd_dtype_name(x->dtype), kd_device_name(x->device));
        return NULL;
    }
    return kd_linear(x, kd_cast(w, dt), kd_cast(b, dt));
}

/* A packed batch: B sequences, sequence b at rows [offsets[b], offsets[b+1]) of total rows; pad_rows (i32
 * [B * T], made when states are kept) names for each padded position (b, t) its packed row, or row offsets[b]
 * for padding (a real row whose values the losses never read). */
typedef struct packing {
    const int64_t *offsets;
    int64_t total, T;
    kd_tensor *pad_rows;
} packing;

/* A packed [total, ...] tensor in the padded layout [B, T, width] (f32), for the losses that read it. */
static kd_tensor *unpack(kd_tensor *x, const packing *pk, int64_t B)
{
    if (!x) return NULL;
    int64_t width = kd_numel(x) / pk->total, flat[2] = { pk->total, width }, shape[3] = { B, pk->T, width };
    return kd_reshape(kd_embedding(kd_cast(kd_reshape(x, 2, flat), KD_F32), pk->pad_rows), 3, shape);
}

/* One encoder layer on x [B, T, hidden], or, packed (pk), on x [total, hidden] holding B sequences. */
static kd_tensor *encoder_layer(const kd_bert *m, int l, const kd_bert_layer *y, kd_tensor *x, kd_tensor *mask,
                                int64_t B, int64_t T, kd_tensor *score_mask, kd_tensor **scores, const packing *pk)
{
    const kd_bert_config *c = &m->cfg;
    int64_t heads = c->num_heads, dh = c->hidden_size / c->num_heads;
    int64_t hshape[4] = { B, T, heads, dh }, flat[3] = { B, T, c->hidden_size };
    int nd = 4;
    const int64_t *offsets = pk ? pk->offsets : NULL;
    if (pk) {   /* [total, heads, dh] and [total, hidden] */
        hshape[0] = pk->total; hshape[1] = heads; hshape[2] = dh;
        flat[0] = pk->total; flat[1] = c->hidden_size;
        nd = 3;
    }
    /* Each projection [B, T, hidden] is viewed as [B, T, heads, dh]: no copies, the kernel reads strides. */
    const size_t q0 = (size_t)l * KD_BERT_QLINEARS_PER_LAYER;
#define LIN(in, i, w, b) linear(m, q0 + (i), in, w, b, m->compute)
    kd_tensor *q = kd_reshape(LIN(x, 0, y->q_w, y->q_b), nd, hshape);
    kd_tensor *k = kd_reshape(LIN(x, 1, y->k_w, y->k_b), nd, hshape);
    kd_tensor *v = kd_reshape(LIN(x, 2, y->v_w, y->v_b), nd, hshape);
    if (scores && pk) {
        int64_t ps[4] = { B, pk->T, heads, dh };
        *scores = attention_scores(kd_reshape(unpack(q, pk, B), 4, ps), kd_reshape(unpack(k, pk, B), 4, ps), score_mask,
                                   1.0 / sqrt((double)dh), B, pk->T);
    } else if (scores) *scores = attention_scores(q, k, score_mask, 1.0 / sqrt((double)dh), B, T);
    kd_tensor *a = offsets ? kd_attention_varlen(q, k, v, offsets, B, 1.0 / sqrt((double)dh), c->attention_dropout, m->training)
                           : kd_attention(q, k, v, mask, 1.0 / sqrt((double)dh), c->attention_dropout, m->training);
    a = LIN(kd_reshape(a, nd - 1, flat), 3, y->ao_w, y->ao_b);
    a = kd_dropout(a, c->hidden_dropout, m->training);
    x = kd_layernorm(kd_add(a, x), y->aln_w, y->aln_b, c->layer_norm_eps);
    kd_tensor *f = kd_gelu(LIN(x, 4, y->i_w, y->i_b));
    f = kd_dropout(LIN(f, 5, y->o_w, y->o_b), c->hidden_dropout, m->training);
#undef LIN
    return kd_layernorm(kd_add(f, x), y->oln_w, y->oln_b, c->layer_norm_eps);
}

/* Attention scores kept for a loss mask padding with -1e9, so that exp gives exactly 0 and a log stays
 * finite (0 * log 0 terms vanish instead of making NaN): [B, T] f32 where the model is. */
static kd_tensor *make_score_mask(const kd_bert_input *in, kd_device dev)
{
    int64_t shape[2] = { in->batch, in->seq };
    kd_tensor *sm = kd_zeros(KD_F32, 2, shape);   /* on the host, then where the model is */
    if (!sm) return NULL;
    for (int64_t i = 0; i < in->batch * in->seq; i++) ((float *)kd_data(sm))[i] = in->mask[i] ? 0.0f : -1e9f;
    return kd_to(sm, dev);
}

/* The last hidden states in the model's compute dtype; the states st asks for (may be NULL). */
static kd_tensor *encode(kd_bert *m, const kd_bert_input *in, kd_bert_states *st)
{
    const kd_bert_config *c = &m->cfg;
    int64_t B = in->batch, T = in->seq;
    if (B < 1 || T < 1 || !in->ids) {
        kd_fail(KD_ERR_ARG, "bert: input batch %lld x %lld, expected both >= 1 and ids given", (long long)B, (long long)T);
        return NULL;
    }
    if (T > c->max_position) {
        kd_fail(KD_ERR_SHAPE, "bert: sequence length %lld exceeds max_position_embeddings %d", (long long)T,
                c->max_position);
        return NULL;
    }
    int64_t shape[2] = { B, T };
    kd_device dev = kd_bert_device(m);   /* the batch goes where the model is */
    m->calib_mask = in->mask;
    m->calib_rows = B * T;
    kd_tensor *ids = kd_from_buffer_on(dev, KD_I32, 2, shape, in->ids);
    kd_tensor *types = in->type_ids ? kd_from_buffer_on(dev, KD_I32, 2, shape, in->type_ids)
                                    : kd_zeros_on(dev, KD_I32, 2, shape);
    kd_tensor *mask = NULL;
    if (!ids || !types) return NULL;
    /* Positions and the mask are made on the host and copied to where the model runs. */
    int32_t *pp = malloc((size_t)T * sizeof *pp);
    float *mp = in->mask ? malloc((size_t)(B * T) * sizeof *mp) : NULL;
    if (!pp || (in->mask && !mp)) {
        free(pp);
        free(mp);
        kd_fail(KD_ERR_NOMEM, "bert: out of memory for a batch of %lld x %lld", (long long)B, (long long)T);
        return NULL;
    }
    for (int64_t t = 0; t < T; t++) pp[t] = (int32_t)t;
    kd_tensor *pos = kd_from_buffer_on(dev, KD_I32, 1, &T, pp);
    free(pp);
    if (in->mask) {
        /* Additive mask as Hugging Face builds it: (1 - mask) * finfo(float32).min. */
        for (int64_t i = 0; i < B * T; i++) {
            if (in->mask[i] != 0 && in->mask[i] != 1) {
                kd_fail(KD_ERR_ARG, "bert: attention mask [%lld, %lld] is %d, expected 0 or 1", (long long)(i / T),
                        (long long)(i % T), (int)in->mask[i]);
                free(mp);
                return NULL;
            }
            mp[i] = in->mask[i] ? 0.0f : -FLT_MAX;
        }
        mask = kd_from_buffer_on(dev, KD_F32, 2, shape, mp);
        free(mp);
        if (!mask) return NULL;
    }
    kd_tensor *score_mask = NULL;
    if (st && st->attention && in->mask && !(score_mask = make_score_mask(in, dev))) return NULL;
    if (!pos) return NULL;
    kd_tensor *x = kd_add(kd_add(kd_embedding(m->word, ids), kd_embedding(m->type, types)), kd_embedding(m->pos, pos));
    x = kd_layernorm(x, m->eln_w, m->eln_b, c->layer_norm_eps);
    x = kd_cast(kd_dropout(x, c->hidden_dropout, m->training), m->compute);
    int keep = st && (st->hidden || st->attention);
    if (keep && (st->hidden & 1)) st->h[0] = kd_cast(x, KD_F32);
    for (int l = 0; l < c->num_layers && x; l++) {
        /* Without a graph nothing of a layer is needed after it but its output (unless states are kept):
         * reuse its memory. */
        kd_arena_mark mk = kd_arena_mark_now();
        int sc = keep && ((st->attention >> (l + 1)) & 1);
        x = encoder_layer(m, l, &m->layers[l], x, mask, B, T, score_mask, sc ? &st->scores[l + 1] : NULL, NULL);
        if (keep && ((st->hidden >> (l + 1)) & 1)) st->h[l + 1] = kd_cast(x, KD_F32);
        if (!kd_grad_enabled() && !keep) x = kd_arena_keep(x, mk);
    }
    return x;
}

/* The offsets of the real tokens when the batch can run packed: every mask row a prefix of ones (at least
 * one) and some padding. Returns the total number of tokens, with offsets[0..B] (allocated) set; 0 (and
 * offsets NULL) when the padded path runs; -1 when out of memory. */
static int64_t packed_offsets(const kd_bert *m, const kd_bert_input *in, int64_t **offsets)
{
    *offsets = NULL;
    int64_t B = in->batch, T = in->seq;
    if (!m->packed || !in->mask || !in->ids || B < 1 || T < 1) return 0;
    int64_t total = 0;
    for (int64_t b = 0; b < B; b++) {
        const int32_t *r = in->mask + b * T;
        int64_t len = 0;
        while (len < T && r[len] == 1) len++;
        for (int64_t t = len; t < T; t++)
            if (r[t] != 0) return 0;   /* not a prefix (or not 0/1): the padded path says what is wrong */
        if (len == 0) return 0;
        total += len;
    }
    if (total == B * T) return 0;   /* nothing to leave out */
    int64_t *o = malloc((size_t)(B + 1) * sizeof *o);
    if (!o) return -1;
    o[0] = 0;
    for (int64_t b = 0; b < B; b++) {
        const int32_t *r = in->mask + b * T;
        int64_t len = 0;
        while (len < T && r[len] == 1) len++;
        o[b + 1] = o[b] + len;
    }
    *offsets = o;
    return total;
}

/* The packed encoder: the last hidden states [total, hidden] of the real tokens (sequence b: rows
 * [offsets[b], offsets[b+1])) in the model's compute dtype. */
static kd_tensor *encode_packed(kd_bert *m, const kd_bert_input *in, const int64_t *offsets, int64_t total,
                                kd_bert_states *st)
{
    const kd_bert_config *c = &m->cfg;
    int64_t B = in->batch, T = in->seq;
    if (T > c->max_position) {
        kd_fail(KD_ERR_SHAPE, "bert: sequence length %lld exceeds max_position_embeddings %d", (long long)T,
                c->max_position);
        return NULL;
    }
    kd_device dev = kd_bert_device(m);
    int32_t *buf = malloc((size_t)total * 3 * sizeof *buf);
    if (!buf) {
        kd_fail(KD_ERR_NOMEM, "bert: out of memory for a packed batch of %lld tokens", (long long)total);
        return NULL;
    }
    int32_t *ids = buf, *types = buf + total, *pos = buf + 2 * total;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0, r = offsets[b]; r < offsets[b + 1]; t++, r++) {
            ids[r] = in->ids[b * T + t];
            types[r] = in->type_ids ? in->type_ids[b * T + t] : 0;
            pos[r] = (int32_t)t;
        }
    kd_tensor *ti = kd_from_buffer_on(dev, KD_I32, 1, &total, ids);
    kd_tensor *tt = kd_from_buffer_on(dev, KD_I32, 1, &total, types);
    kd_tensor *tp = kd_from_buffer_on(dev, KD_I32, 1, &total, pos);
    free(buf);
    if (!ti || !tt || !tp) return NULL;
    m->calib_mask = NULL;   /* every row is a real token */
    m->calib_rows = total;
    kd_tensor *x = kd_add(kd_add(kd_embedding(m->word, ti), kd_embedding(m->type, tt)), kd_embedding(m->pos, tp));
    x = kd_layernorm(x, m->eln_w, m->eln_b, c->layer_norm_eps);
    x = kd_cast(kd_dropout(x, c->hidden_dropout, m->training), m->compute);
    packing pk = { .offsets = offsets, .total = total, .T = T };
    int keep = st && (st->hidden || st->attention);
    kd_tensor *score_mask = NULL;
    if (keep) {
        /* States go to the losses in the padded layout: the rows of each padded position, gathered. */
        int32_t *pr = malloc((size_t)(B * T) * sizeof *pr);
        if (!pr) {
            kd_fail(KD_ERR_NOMEM, "bert: out of memory for a batch of %lld x %lld", (long long)B, (long long)T);
            return NULL;
        }
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < T; t++)
                pr[b * T + t] = (int32_t)(offsets[b] + t < offsets[b + 1] ? offsets[b] + t : offsets[b]);
        int64_t n = B * T;
        pk.pad_rows = kd_from_buffer_on(dev, KD_I32, 1, &n, pr);
        free(pr);
        if (!pk.pad_rows) return NULL;
        if (st->attention && !(score_mask = make_score_mask(in, dev))) return NULL;
        if (st->hidden & 1) st->h[0] = unpack(x, &pk, B);
    }
    for (int l = 0; l < c->num_layers && x; l++) {
        kd_arena_mark mk = kd_arena_mark_now();
        int sc = keep && ((st->attention >> (l + 1)) & 1);
        x = encoder_layer(m, l, &m->layers[l], x, NULL, B, total, score_mask, sc ? &st->scores[l + 1] : NULL, &pk);
        if (keep && ((st->hidden >> (l + 1)) & 1)) st->h[l + 1] = unpack(x, &pk, B);
        if (!kd_grad_enabled() && !keep) x = kd_arena_keep(x, mk);
    }
    return x;
}

kd_tensor *kd_bert_encode(kd_bert *m, const kd_bert_input *in) { return kd_cast(encode(m, in, NULL), KD_F32); }

kd_tensor *kd_bert_logits(kd_bert *m, const kd_bert_input *in) { return kd_bert_logits_states(m, in, NULL); }

kd_tensor *kd_bert_logits_states(kd_bert *m, const kd_bert_input *in, kd_bert_states *st)
{
    if (st) {
        memset(st->h, 0, sizeof st->h);
        memset(st->scores, 0, sizeof st->scores);
        uint64_t all = m->cfg.num_layers >= 63 ? ~0ull : (2ull << m->cfg.num_layers) - 1;
        if ((st->hidden & ~all) || (st->attention & ~all) || (st->attention & 1)) {
            kd_fail(KD_ERR_ARG, "bert: states asked of layers beyond the model's %d (hidden 0..%d, attention 1..%d)",
                    m->cfg.num_layers, m->cfg.num_layers, m->cfg.num_layers);
            return NULL;
        }
    }
    int64_t *offsets = NULL, total = packed_offsets(m, in, &offsets);
    if (total < 0) {
        kd_fail(KD_ERR_NOMEM, "bert: out of memory for the offsets of %lld sequences", (long long)in->batch);
        return NULL;
    }
    kd_tensor *cls;
    int64_t shape[2] = { in->batch, m->cfg.hidden_size };
    if (offsets) {
        /* [CLS] = each sequence's first row, gathered by a lookup of the rows offsets[0..B) */
        int32_t *first = malloc((size_t)in->batch * sizeof *first);
        kd_tensor *h = first ? encode_packed(m, in, offsets, total, st) : NULL, *fi = NULL;
        if (first) {
            for (int64_t b = 0; b < in->batch; b++) first[b] = (int32_t)offsets[b];
            fi = kd_from_buffer_on(kd_bert_device(m), KD_I32, 1, &in->batch, first);
        } else kd_fail(KD_ERR_NOMEM, "bert: out of memory for a batch of %lld", (long long)in->batch);
        free(first);
        free(offsets);
        cls = h && fi ? kd_embedding(kd_cast(h, KD_F32), fi) : NULL;
    } else {
        kd_tensor *h = encode(m, in, st);
        if (!h) return NULL;
        cls = kd_cast(kd_reshape(kd_narrow(h, 1, 0, 1), 2, shape), KD_F32);   /* [CLS] = position 0 */
    }
    if (!cls) return NULL;
    size_t pooler = (size_t)m->cfg.num_layers * KD_BERT_QLINEARS_PER_LAYER;
    kd_tensor *pooled = kd_tanh(linear(m, pooler, cls, m->pool_w, m->pool_b, KD_F32));
    pooled = kd_dropout(pooled, m->cfg.hidden_dropout, m->training);
    return kd_linear(pooled, m->cls_w, m->cls_b);
}
