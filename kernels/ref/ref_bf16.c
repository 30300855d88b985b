/* kernels/ref/ref_bf16.c — the reference kernels on bf16 storage: every value is read as f32, computed
 * in double and rounded to bf16 once per output element (LayerNorm's parameters and statistics, the
 * attention mask and log-sum-exp stay f32; kernels.h). No embedding, loss or optimizer entries. */
#include "kernels/bf16.h"

#define real kd_bf16
#define sreal float
#define LD(x) ((double)kd_bf16_to_f32(x))
#define RND(v) kd_f32_to_bf16((float)(v))
#define REF_BF16 1
#define FN(name) ref_##name##_bf16
#include "ref_table.inc"

const kd_kernels *kd_kernels_ref_bf16(void) { return &FN(table); }
