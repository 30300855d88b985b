/* kernels/ref/ref_f64.c — the reference kernels in double precision, used by the gradient checks. */
#define real double
#define FN(name) ref_##name##_f64
#include "ref_table.inc"

const kd_kernels *kd_kernels_ref_f64(void) { return &FN(table); }
