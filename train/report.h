/* train/report.h — report pages: OUT/report.html for a training run (what the run was, how it went, where
 * the student stands against the teacher) and `kd compare --report FILE` (teacher and students side by
 * side, accuracy against latency and against size). Each page is one self-contained HTML file: inline CSS
 * and SVG, no script, nothing fetched; every text that comes from the user (paths, flags, label names) is
 * escaped. Written to a temporary name and renamed. */
#ifndef KD_TRAIN_REPORT_H
#define KD_TRAIN_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "models/bert.h"
#include "train/checkpoint.h"
#include "train/svg_chart.h"

/* The command line as given and every flag's value (given or the default), kept by the command. */
typedef struct kd_report_flag {
    char *name, *value;
    int given;
} kd_report_flag;

typedef struct kd_run_info {
    char *command_line;          /* "kd distill --teacher ...", shell-quoted */
    kd_report_flag *flags;
    int nflags;
} kd_run_info;

void kd_run_info_free(kd_run_info *info);

/* A training run as its report shows it. */
typedef struct kd_run_report {
    const kd_run_info *info;     /* NULL: run from the library, no command line */
    const char *command;         /* "finetune" or "distill" */
    const char *out_dir;
    int finished;                /* 0: the run is still going or was stopped (--max-steps) */
    size_t n_train, n_transfer, n_dev;
    int num_labels;
    const char *const *label_names;   /* num_labels, may hold NULLs (shown as ids) */
    const kd_bert_config *student, *teacher;   /* teacher NULL: fine-tuning */
    int64_t student_params, teacher_params;
    const kd_train_state *state;
    const kd_chart_data *chart;
} kd_run_report;

kd_status kd_report_write_run(const char *path, const kd_run_report *r);

/* A model of `kd compare` as its report shows it. */
typedef struct kd_report_model {
    const char *name, *dir;
    const kd_bert_config *cfg;
    int64_t params, file_bytes;  /* file_bytes < 0: not on disk */
    double accuracy, macro_f1, p50_ms, p95_ms, throughput;
    const int64_t *confusion;    /* [true][predicted], num_labels^2; NULL: not shown */
} kd_report_model;

typedef struct kd_compare_report {
    const kd_run_info *info;
    const char *data;            /* the labelled set */
    size_t n_examples;
    int num_labels;
    const char *const *label_names;
    int threads, max_len, latency_samples;
    const kd_report_model *models;   /* the teacher first */
    int n;
} kd_compare_report;

kd_status kd_report_write_compare(const char *path, const kd_compare_report *r);

#endif
