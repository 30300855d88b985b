/* engine/dtype.c — element types: their sizes and names. */
#include "engine/tensor.h"

size_t kd_dtype_size(kd_dtype dt)
{
    switch (dt) {
    case KD_F32: return 4;
    case KD_F64: return 8;
    case KD_I32: return 4;
    case KD_BF16: return 2;
    }
    return 0;
}

const char *kd_dtype_name(kd_dtype dt)
{
    switch (dt) {
    case KD_F32: return "f32";
    case KD_F64: return "f64";
    case KD_I32: return "i32";
    case KD_BF16: return "bf16";
    }
    return "?";
}
