/* kernels/cuda/gemm_wgmma.cu — the Hopper bf16 GEMM slot (wgmma fed by TMA), compiled for sm_90a only.
 * Not written yet: kd_cuda_has_wgmma() says 0 and KD_CUDA_GEMM_BF16_WGMMA runs the mma.sync kernel. */
#include "kernels/cuda/gemm_internal.h"

int kd_cu_wgmma_built(void) { return 0; }

kd_status kd_cu_gemm_wgmma(const kd_gemm_args *g, int gelu)
{
    (void)g; (void)gelu;
    return kd_fail(KD_ERR_ARG, "%s:%d: the wgmma GEMM is not built", __FILE__, __LINE__);
}

extern "C" int kd_cuda_has_wgmma(void) { return kd_cu_wgmma_built(); }
