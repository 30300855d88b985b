/* engine/ops_cast.c — conversion between f32 and bf16, the edge of mixed precision.
 *   forward:  y = round_bf16(x) (f32 -> bf16) or y = f32(x) (bf16 -> f32)
 *   backward: the gradient crosses back the other way: dx += f32(dy), or dx = round_bf16(f32(dx) + dy).
 * The kernel is the f32 table's `convert` on the tensors' device. In no-grad mode a heap tensor's cast is
 * kept with it (kd_derived_cast) and reused while its values stay the same. */
#include "engine/internal.h"

static void convert(kd_device dev, const void *x, void *y, int64_t n, int to_bf16, int accumulate)
{
    kd_convert_args a = { .n = n, .to_bf16 = to_bf16, .accumulate = accumulate, .x = x, .y = y };
    kd_k_convert(dev, KD_F32, &a);
}

static void cast_backward(kd_node *n)
{
    kd_tensor *x = n->in[0], *y = n->out;
    void *gx = kd_grad_buf(x);
    if (!gx) return;
    convert(x->device, kd_data(y->grad), gx, kd_numel(y), x->dtype == KD_BF16, 1);
}

static kd_tensor *cast_op(kd_tensor *x, kd_dtype dt)
{
    if (!x || !kd_need_device("cast", "x", x, x->device)) return NULL;
    if (x->dtype == dt) return x;
    int ok = (x->dtype == KD_F32 && dt == KD_BF16) || (x->dtype == KD_BF16 && dt == KD_F32);
    if (!ok) {
        kd_fail(KD_ERR_DTYPE, "cast: %s to %s is not supported; casts go between f32 and bf16",
                kd_dtype_name(x->dtype), kd_dtype_name(dt));
        return NULL;
    }
    x = kd_contiguous(x);
    if (!x) return NULL;
    kd_tensor *y = kd_empty_on(x->device, dt, x->ndim, x->shape);
    if (!y) return NULL;
    convert(x->device, kd_data(x), kd_data(y), kd_numel(x), dt == KD_BF16, 0);
    kd_record(y, "cast", cast_backward, 1, &x);
    return y;
}

/* Without a graph, a heap tensor's copy is made once and kept with it until its values change
 * (engine/derived.c): a frozen teacher's bf16 weights cost one conversion per run, not one per forward. */
kd_tensor *kd_cast(kd_tensor *x, kd_dtype dt)
{
    if (x && x->dtype != dt && !kd_grad_enabled()) {
        kd_tensor *kept = kd_derived_cast(x, dt, cast_op);
        if (kept) return kept;
    }
    return cast_op(x, dt);
}
