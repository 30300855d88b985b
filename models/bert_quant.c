/* models/bert_quant.c — int8 BERT for CPU inference (kd quantize): every encoder linear (query, key, value,
 * attention output, intermediate, output dense) and the pooler hold s8 weights with one f32 scale per output
 * channel (symmetric: w ~ scale[o] * q[o, i], scale = max |w[o, :]| / 127); their inputs are quantized per
 * token at run time (dynamic) or with one scale per tensor found by running the f32 model over calibration
 * text (static: max |x| / 127). Embeddings, LayerNorm, attention, softmax, GELU and the classifier stay f32.
 * The f32 weights of the quantized linears give back their memory: an int8 model holds its s8 weights (and
 * the kernel's packed copy), runs on the CPU in f32 activations only, and is never trained. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/bert_internal.h"

size_t kd_bert_qlinears(const kd_bert *m) { return (size_t)m->cfg.num_layers * KD_BERT_QLINEARS_PER_LAYER + 1; }

void kd_bert_qlinear(kd_bert *m, size_t i, kd_tensor **w, kd_tensor **b)
{
    size_t pooler = (size_t)m->cfg.num_layers * KD_BERT_QLINEARS_PER_LAYER;
    KD_CHECK(i <= pooler);
    if (i == pooler) {
        *w = m->pool_w;
        *b = m->pool_b;
        return;
    }
    kd_bert_layer *y = &m->layers[i / KD_BERT_QLINEARS_PER_LAYER];
    kd_tensor *const ws[KD_BERT_QLINEARS_PER_LAYER] = { y->q_w, y->k_w, y->v_w, y->ao_w, y->i_w, y->o_w };
    kd_tensor *const bs[KD_BERT_QLINEARS_PER_LAYER] = { y->q_b, y->k_b, y->v_b, y->ao_b, y->i_b, y->o_b };
    *w = ws[i % KD_BERT_QLINEARS_PER_LAYER];
    *b = bs[i % KD_BERT_QLINEARS_PER_LAYER];
}

int kd_bert_is_quantized(const kd_bert *m) { return m->quant != NULL; }

void kd_bert_quant_free(kd_bert *m)
{
    if (m->quant) {
        for (size_t i = 0; i < m->quant->n; i++) kd_s8_weight_release(&m->quant->w[i]);
        free(m->quant->w);
        free(m->quant);
        m->quant = NULL;
        m->cfg.quant_activations[0] = 0;
        m->cfg.quant_calibration[0] = 0;
    }
    free(m->calib);
    m->calib = NULL;
    free(m->calib_hist);
    m->calib_hist = NULL;
}

kd_status kd_bert_quant_alloc(kd_bert *m, int static_act)
{
    KD_CHECK(!m->quant);
    size_t n = kd_bert_qlinears(m);
    kd_bert_quant *q = calloc(1, sizeof *q);
    if (!q || !(q->w = calloc(n, sizeof *q->w))) {
        free(q);
        return kd_fail(KD_ERR_NOMEM, "bert: out of memory for the int8 linears");
    }
    q->n = n;
    q->static_act = static_act;
    m->quant = q;
    snprintf(m->cfg.quant_activations, sizeof m->cfg.quant_activations, "%s",
             static_act ? "static-per-tensor" : "dynamic-per-token");
    for (size_t i = 0; i < n; i++) {
        kd_tensor *w, *b;
        kd_bert_qlinear(m, i, &w, &b);
        kd_s8_weight *s = &q->w[i];
        s->out = w->shape[0];
        s->in = w->shape[1];
        size_t bytes = (size_t)(s->out * s->in);
        s->q = malloc(bytes ? bytes : 1);
        s->scale = malloc((size_t)s->out * sizeof *s->scale);
        if (!s->q || !s->scale) {
            kd_bert_quant_free(m);
            return kd_fail(KD_ERR_NOMEM, "bert: out of memory for the int8 weight %s", w->name);
        }
    }
    return KD_OK;
}

/* Linear i's f32 weight gives back its memory: the int8 form is the weight now (the tensor keeps its name
 * and shape, for the parameter table and the file). */
void kd_bert_quant_release_f32(kd_bert *m, size_t i)
{
    kd_tensor *w, *b;
    kd_bert_qlinear(m, i, &w, &b);
    kd_tensor_release_storage(w);
}

kd_status kd_bert_calibrate_begin(kd_bert *m)
{
    if (m->quant) return kd_fail(KD_ERR_ARG, "bert: the model is already int8; calibrate its f32 form");
    free(m->calib);
    free(m->calib_hist);
    m->calib_hist = NULL;
    m->calib = calloc(kd_bert_qlinears(m), sizeof *m->calib);
    if (!m->calib) return kd_fail(KD_ERR_NOMEM, "bert: out of memory for calibration");
    return KD_OK;
}

kd_status kd_bert_calibrate_histograms(kd_bert *m)
{
    if (!m->calib || m->calib_hist) return kd_fail(KD_ERR_ARG, "bert: histograms follow one max-abs calibration pass");
    m->calib_hist = calloc(kd_bert_qlinears(m) * KD_BERT_CALIB_BINS, sizeof *m->calib_hist);
    if (!m->calib_hist) return kd_fail(KD_ERR_NOMEM, "bert: out of memory for calibration histograms");
    return KD_OK;
}

/* The clipping threshold of linear i: max |x|, or the upper edge of the histogram bin where `percentile` per
 * cent of the values counted lie at or below it. */
static float calib_threshold(const kd_bert *m, size_t i, double percentile)
{
    float mx = m->calib[i];
    if (!m->calib_hist || percentile >= 100.0 || !(mx > 0)) return mx;
    const uint64_t *h = m->calib_hist + i * KD_BERT_CALIB_BINS;
    uint64_t total = 0, run = 0;
    for (int b = 0; b < KD_BERT_CALIB_BINS; b++) total += h[b];
    double want = percentile / 100.0 * (double)total;
    for (int b = 0; b < KD_BERT_CALIB_BINS; b++) {
        run += h[b];
        if ((double)run >= want) return mx * (float)(b + 1) / KD_BERT_CALIB_BINS;
    }
    return mx;
}

kd_status kd_bert_quantize(kd_bert *m, int static_act, double percentile, const char *calibration)
{
    if (m->quant) return kd_fail(KD_ERR_ARG, "bert: the model is already int8 (config.json kd_quantization)");
    if (kd_bert_device(m) != KD_CPU) return kd_fail(KD_ERR_ARG, "bert: quantize a model on the CPU");
    if (static_act && !m->calib)
        return kd_fail(KD_ERR_ARG, "bert: static activation scales need a calibration pass (kd_bert_calibrate_begin)");
    if (static_act && percentile < 100.0 && !(percentile > 0 && m->calib_hist))
        return kd_fail(KD_ERR_ARG, "bert: a percentile %g needs a histogram pass (kd_bert_calibrate_histograms), and "
                       "a value in (0, 100]", percentile);
    size_t n = kd_bert_qlinears(m);
    float *scale = calloc(n, sizeof *scale);
    if (!scale) return kd_fail(KD_ERR_NOMEM, "bert: out of memory");
    /* an input never seen above 0 (a layer of zeros): any scale gives q = 0 */
    for (size_t i = 0; static_act && i < n; i++) {
        float t = calib_threshold(m, i, percentile);
        scale[i] = t > 0.0f ? t / 127.0f : 1.0f;
    }
    free(m->calib);
    free(m->calib_hist);
    m->calib = NULL;
    m->calib_hist = NULL;
    kd_status st = kd_bert_quant_alloc(m, static_act);
    if (st != KD_OK) {
        free(scale);
        return st;
    }
    for (size_t i = 0; i < m->quant->n; i++) {
        kd_tensor *w, *b;
        kd_bert_qlinear(m, i, &w, &b);
        kd_s8_weight *s = &m->quant->w[i];
        kd_s8_weight_quantize(s, kd_data(w));
        s->act_scale = scale[i];
        kd_bert_quant_release_f32(m, i);
    }
    free(scale);
    snprintf(m->cfg.quant_calibration, sizeof m->cfg.quant_calibration, "%s", static_act && calibration ? calibration : "");
    return KD_OK;
}
