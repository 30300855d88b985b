/* kernels/ref/ref_f32.c — the reference kernels in single precision (sums kept in double). */
#define real float
#define FN(name) ref_##name##_f32
#define REF_F32 1
#include "ref_table.inc"

const kd_kernels *kd_kernels_ref_f32(void) { return &FN(table); }
