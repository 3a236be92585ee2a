/* adamw.cu: the fused AdamW step on fp32 master weights (decay first, then the bias-corrected
   Adam update, as the CPU reference and torch.optim.AdamW), refreshing the bf16 compute copy in
   the same pass; and the fp64 sum of squares for the gradient norm. */
#include "kernels/cuda/cuda.cuh"

#include <math.h>

__global__ void adamw_kernel(float *param, bf16 *act, const float *grad, float *m, float *v, size_t n, float lr,
                             float beta1, float beta2, float eps, float decay, float step_size, float bc2_sqrt,
                             float grad_scale)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float g = grad[i] * grad_scale;
        const float mi = beta1 * m[i] + (1.0f - beta1) * g;
        const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        float p = param[i] * decay;
        p -= step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
        m[i] = mi;
        v[i] = vi;
        param[i] = p;
        if (act)
            act[i] = tobf(p);
    }
}

void cuda_adamw(float *param, void *param_act, const float *grad, float *m, float *v, size_t n, float lr,
                float beta1, float beta2, float eps, float weight_decay, int step, float grad_scale)
{
    if (!n)
        return;
    const double bc1 = 1 - pow(beta1, step), bc2_sqrt = sqrt(1 - pow(beta2, step));
    adamw_kernel<<<grid_for(n, 256), 256, 0, cuda_stream()>>>(param, (bf16 *)param_act, grad, m, v, n, lr, beta1, beta2,
                                                              eps, (float)(1 - (double)lr * weight_decay),
                                                              (float)(lr / bc1), (float)bc2_sqrt, grad_scale);
    LAUNCH_CHECK();
}

#define SUMSQ_BLOCKS 1024

/* per-block fp64 partial sums (added on the host) */
__global__ void sumsq_kernel(double *part, const float *x, size_t n)
{
    __shared__ double sh[32];
    double s = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        s += (double)x[i] * x[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0)
        part[blockIdx.x] = s;
}

double cuda_sumsq(const float *x, size_t n)
{
    double *part = (double *)cuda_scratch(SCRATCH_REDUCE, SUMSQ_BLOCKS * sizeof(double));
    sumsq_kernel<<<SUMSQ_BLOCKS, 256, 0, cuda_stream()>>>(part, x, n);
    LAUNCH_CHECK();
    double host[SUMSQ_BLOCKS];
    cuda_download(host, part, sizeof host);
    double s = 0;
    for (int i = 0; i < SUMSQ_BLOCKS; i++)
        s += host[i];
    return s;
}
