/* kernels/cuda/adamw.cu — AdamW (torch.optim.AdamW) in one fused pass over f32 parameters, gradients and
 * moments. */
#include <math.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"

/* ---- AdamW (torch.optim.AdamW), one fused pass: read w, g, m, v once, write w, m, v once ---- */

static __global__ void adamw_kernel(int64_t n, float *__restrict__ w, const float *__restrict__ g, float *__restrict__ m,
                                    float *__restrict__ v, float lr, float beta1, float beta2, float eps, float decay,
                                    float inv_bias1, float inv_bias2)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float gi = g[i];
        float wi = w[i] * decay;
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        wi -= lr * (mi * inv_bias1) / (sqrtf(vi * inv_bias2) + eps);
        w[i] = wi;
        m[i] = mi;
        v[i] = vi;
    }
}

extern "C" void kd_cu_adamw(const kd_adamw_args *o, int ith, int nth)
{
    (void)ith; (void)nth;
    if (o->n <= 0) return;
    adamw_kernel<<<kd_cu_grid(o->n, 256), 256, 0, kd_cu_stream()>>>(
        o->n, (float *)o->param, (const float *)o->grad, (float *)o->m, (float *)o->v, (float)o->lr,
        (float)o->beta1, (float)o->beta2, (float)o->eps, (float)(1.0 - o->lr * o->weight_decay),
        (float)(1.0 / o->bias1), (float)(1.0 / o->bias2));
    KD_CU_LAUNCH_VOID();
}
