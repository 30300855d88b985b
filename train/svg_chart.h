/* train/svg_chart.h — the run's chart: training loss (left axis) and dev accuracy (right axis) against
 * the optimizer step, as a self-contained SVG file written atomically. */
#ifndef KD_TRAIN_SVG_CHART_H
#define KD_TRAIN_SVG_CHART_H

#include "train/checkpoint.h"

kd_status kd_svg_chart_write(const char *path, const char *title, const kd_series *loss, const kd_series *dev);

#endif
