/* engine/ops_linear_s8.c — the int8 linear for inference: y = x W^T + b with s8 weights (one scale per output
 * channel) and activations quantized per row at run time or with a static scale; the gemm_s8 kernel of the
 * CPU's f32 table does the work. Forward only: an int8 model is for serving, not training. */
#include <stdlib.h>

#include "engine/internal.h"

void kd_s8_weight_release(kd_s8_weight *w)
{
    if (!w) return;
    free(w->q);
    free(w->scale);
    free(w->packed);
    w->q = NULL;
    w->scale = NULL;
    w->packed = NULL;
    w->packed_for = NULL;
}

void kd_s8_weight_quantize(kd_s8_weight *w, const float *f)
{
    kd_quantize_s8_rows(w->out, w->in, f, w->in, w->q, w->scale);
    free(w->packed);   /* new values: pack again */
    w->packed = NULL;
    w->packed_for = NULL;
}

/* Pack w for table t (once; again when another table is in use). */
static int ensure_packed(kd_s8_weight *w, const kd_kernels *t)
{
    if (w->packed && w->packed_for == t) return 1;
    free(w->packed);
    w->packed = NULL;
    size_t bytes = t->gemm_s8_pack(w->out, w->in, w->q, NULL);
    w->packed = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!w->packed) {
        kd_fail(KD_ERR_NOMEM, "linear_s8: out of memory packing a [%lld, %lld] int8 weight (%zu bytes)",
                (long long)w->out, (long long)w->in, bytes);
        return 0;
    }
    t->gemm_s8_pack(w->out, w->in, w->q, w->packed);
    w->packed_for = t;
    return 1;
}

kd_tensor *kd_linear_s8(kd_tensor *x, kd_s8_weight *w, kd_tensor *bias)
{
    if (!x || !w) return NULL;
    char sx[64], sb[64];
    if (x->dtype != KD_F32 || x->device != KD_CPU) {
        kd_fail(KD_ERR_DTYPE, "linear_s8: input is %s on %s, expected f32 on the CPU (int8 models run on the CPU in f32 "
                "precision)", kd_dtype_name(x->dtype), kd_device_name(x->device));
        return NULL;
    }
    if (!w->q || !w->scale || x->ndim < 1 || x->shape[x->ndim - 1] != w->in) {
        kd_fail(KD_ERR_SHAPE, "linear_s8: input %s, int8 weight [%lld, %lld]: expected [..., %lld]", kd_shape_str(x, sx, sizeof sx),
                (long long)w->out, (long long)w->in, (long long)w->in);
        return NULL;
    }
    if (bias && (bias->ndim != 1 || bias->shape[0] != w->out || bias->dtype != KD_F32 || bias->device != KD_CPU)) {
        kd_fail(KD_ERR_SHAPE, "linear_s8: bias %s %s, expected f32 [%lld] on the CPU", kd_dtype_name(bias->dtype),
                kd_shape_str(bias, sb, sizeof sb), (long long)w->out);
        return NULL;
    }
    if (!(x = kd_contiguous(x))) return NULL;
    if (bias && !(bias = kd_contiguous(bias))) return NULL;
    const kd_kernels *t = kd_kernels_for(KD_CPU, KD_F32);
    KD_CHECK(t && t->gemm_s8 && t->gemm_s8_pack);
    if (!ensure_packed(w, t)) return NULL;
    int64_t shape[KD_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    shape[x->ndim - 1] = w->out;
    kd_tensor *out = kd_empty_on(KD_CPU, KD_F32, x->ndim, shape);
    if (!out) return NULL;
    int64_t rows = w->in ? kd_numel(x) / w->in : kd_numel(out) / (w->out ? w->out : 1);
    kd_gemm_s8_args g = { .m = rows, .n = w->out, .k = w->in, .a = kd_data(x), .lda = w->in > 0 ? w->in : 1,
                          .act_scale = w->act_scale, .w = w->packed, .w_scale = w->scale,
                          .bias = bias ? kd_data(bias) : NULL, .c = kd_data(out), .ldc = w->out };
    kd_k_gemm_s8(KD_CPU, KD_F32, &g);
    return out;
}
