/* train/metrics.c — confusion matrix to accuracy and macro figures (see metrics.h).
 *   precision_c = TP_c / (TP_c + FP_c),  recall_c = TP_c / (TP_c + FN_c),  F1_c = 2 P R / (P + R),
 *   macro = the unweighted mean over classes. */
#include <stdlib.h>
#include <string.h>

#include "train/metrics.h"

kd_status kd_metrics_init(kd_metrics *m, int num_labels)
{
    memset(m, 0, sizeof *m);
    if (num_labels < 1) return kd_fail(KD_ERR_ARG, "metrics: %d labels, expected at least 1", num_labels);
    size_t k = (size_t)num_labels;
    m->num_labels = num_labels;
    m->confusion = calloc(k * k, sizeof *m->confusion);
    m->precision = calloc(k, sizeof(double));
    m->recall = calloc(k, sizeof(double));
    m->f1 = calloc(k, sizeof(double));
    m->support = calloc(k, sizeof *m->support);
    if (!m->confusion || !m->precision || !m->recall || !m->f1 || !m->support) {
        kd_metrics_free(m);
        return kd_fail(KD_ERR_NOMEM, "metrics: out of memory for %d labels", num_labels);
    }
    return KD_OK;
}

void kd_metrics_free(kd_metrics *m)
{
    free(m->confusion);
    free(m->precision);
    free(m->recall);
    free(m->f1);
    free(m->support);
    memset(m, 0, sizeof *m);
}

void kd_metrics_reset(kd_metrics *m)
{
    size_t k = (size_t)m->num_labels;
    memset(m->confusion, 0, k * k * sizeof *m->confusion);
    m->count = 0;
    m->accuracy = m->macro_f1 = m->macro_recall = m->loss = 0.0;
}

kd_status kd_metrics_add(kd_metrics *m, int truth, int predicted)
{
    if (truth < 0 || truth >= m->num_labels || predicted < 0 || predicted >= m->num_labels)
        return kd_fail(KD_ERR_INDEX, "metrics: label %d / prediction %d outside [0, %d)", truth, predicted,
                       m->num_labels);
    m->confusion[(size_t)truth * (size_t)m->num_labels + (size_t)predicted]++;
    m->count++;
    return KD_OK;
}

static double ratio(double a, double b) { return b > 0.0 ? a / b : 0.0; }

void kd_metrics_finish(kd_metrics *m)
{
    size_t k = (size_t)m->num_labels;
    int64_t correct = 0;
    double sf1 = 0.0, srec = 0.0;
    for (size_t c = 0; c < k; c++) {
        int64_t tp = m->confusion[c * k + c], row = 0, col = 0;
        for (size_t j = 0; j < k; j++) {
            row += m->confusion[c * k + j];
            col += m->confusion[j * k + c];
        }
        correct += tp;
        m->support[c] = row;
        m->precision[c] = ratio((double)tp, (double)col);
        m->recall[c] = ratio((double)tp, (double)row);
        m->f1[c] = ratio(2.0 * m->precision[c] * m->recall[c], m->precision[c] + m->recall[c]);
        sf1 += m->f1[c];
        srec += m->recall[c];
    }
    m->accuracy = ratio((double)correct, (double)m->count);
    m->macro_f1 = sf1 / (double)k;
    m->macro_recall = srec / (double)k;
}

void kd_metrics_print(const kd_metrics *m, const char *const *label_names, FILE *out)
{
    fprintf(out, "  %-20s %9s %9s %9s %9s\n", "label", "precision", "recall", "f1", "support");
    for (int c = 0; c < m->num_labels; c++) {
        char id[16];
        snprintf(id, sizeof id, "%d", c);
        const char *name = label_names && label_names[c] ? label_names[c] : id;
        fprintf(out, "  %-20.20s %9.4f %9.4f %9.4f %9lld\n", name, m->precision[c], m->recall[c], m->f1[c],
                (long long)m->support[c]);
    }
    fprintf(out, "  accuracy %.4f  macro-F1 %.4f  macro-recall %.4f  (%lld examples)\n", m->accuracy, m->macro_f1,
            m->macro_recall, (long long)m->count);
}
