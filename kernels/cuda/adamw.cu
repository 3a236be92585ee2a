/* adamw.cu: the fused AdamW step on fp32 master weights (decay first, then the bias-corrected
   Adam update, as the CPU reference and torch.optim.AdamW), refreshing the bf16 compute copy in
   the same pass; and the fp64 sum of squares for the gradient norm. */
#include "kernels/cuda/cuda.cuh"

#include <math.h>

/* the step's constants: decay 1 - lr wd, step size lr / (1 - beta1^t), sqrt(1 - beta2^t) */
typedef struct {
    float beta1, beta2, eps, decay, step_size, bc2_sqrt, grad_scale;
} AdamwStep;

__device__ __forceinline__ void adamw_one(float &p, float &m, float &v, float grad, const AdamwStep &a)
{
    const float g = grad * a.grad_scale;
    m = a.beta1 * m + (1.0f - a.beta1) * g;
    v = a.beta2 * v + (1.0f - a.beta2) * g * g;
    p *= a.decay;
    p -= a.step_size * m / (sqrtf(v) / a.bc2_sqrt + a.eps);
}

/* W consecutive elements from i: one 16-byte access each when W == 4 (aligned by the caller) */
template <int W>
__device__ __forceinline__ void adamw_at(float *param, bf16 *act, const float *grad, float *m, float *v, size_t i,
                                         const AdamwStep &a)
{
    float p[W], g[W], mi[W], vi[W];
    load_f32<W>(p, param + i);
    load_f32<W>(g, grad + i);
    load_f32<W>(mi, m + i);
    load_f32<W>(vi, v + i);
#pragma unroll
    for (int e = 0; e < W; e++)
        adamw_one(p[e], mi[e], vi[e], g[e], a);
    store_f32<W>(m + i, mi);
    store_f32<W>(v + i, vi);
    store_f32<W>(param + i, p);
    if (act)
        store_bf<W>(act + i, p);
}

/* VEC elements per thread and iteration (VEC == 4: the step is bound by its 30 bytes per
   parameter); the last n % VEC by the first threads of block 0 */
template <int VEC>
__global__ void adamw_kernel(float *param, bf16 *act, const float *grad, float *m, float *v, size_t n, AdamwStep a)
{
    const size_t groups = n / VEC;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < groups; i += (size_t)gridDim.x * blockDim.x)
        adamw_at<VEC>(param, act, grad, m, v, i * VEC, a);
    const size_t t = groups * VEC + threadIdx.x;
    if (VEC > 1 && blockIdx.x == 0 && t < n)
        adamw_at<1>(param, act, grad, m, v, t, a);
}

void cuda_adamw(float *param, void *param_act, const float *grad, float *m, float *v, size_t n, float lr,
                float beta1, float beta2, float eps, float weight_decay, int step, float grad_scale)
{
    if (!n)
        return;
    const double bc1 = 1 - pow(beta1, step), bc2_sqrt = sqrt(1 - pow(beta2, step));
    const AdamwStep a = {beta1, beta2, eps, (float)(1 - (double)lr * weight_decay), (float)(lr / bc1), (float)bc2_sqrt,
                         grad_scale};
    bf16 *act = (bf16 *)param_act;
    const cudaStream_t s = cuda_stream();
    if (aligned16(param, grad, m, v) && !((uintptr_t)act & 7))
        adamw_kernel<4><<<grid_for(n / 4, 256), 256, 0, s>>>(param, act, grad, m, v, n, a);
    else
        adamw_kernel<1><<<grid_for(n, 256), 256, 0, s>>>(param, act, grad, m, v, n, a);
    LAUNCH_CHECK();
}

#define SUMSQ_BLOCKS 1024

/* per-block fp64 partial sums (added on the host), VEC floats per load; the last n % VEC by the
   first threads of block 0 */
template <int VEC> __global__ void sumsq_kernel(double *part, const float *x, size_t n)
{
    __shared__ double sh[32];
    double s = 0;
    const size_t groups = n / VEC;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < groups; i += (size_t)gridDim.x * blockDim.x) {
        float f[VEC];
        load_f32<VEC>(f, x + i * VEC);
#pragma unroll
        for (int e = 0; e < VEC; e++)
            s += (double)f[e] * f[e];
    }
    const size_t t = groups * VEC + threadIdx.x;
    if (VEC > 1 && blockIdx.x == 0 && t < n)
        s += (double)x[t] * x[t];
    s = block_sum(s, sh);
    if (threadIdx.x == 0)
        part[blockIdx.x] = s;
}

double cuda_sumsq(const float *x, size_t n)
{
    double *part = (double *)cuda_scratch(SCRATCH_REDUCE, SUMSQ_BLOCKS * sizeof(double));
    if (aligned16(x))
        sumsq_kernel<4><<<SUMSQ_BLOCKS, 256, 0, cuda_stream()>>>(part, x, n);
    else
        sumsq_kernel<1><<<SUMSQ_BLOCKS, 256, 0, cuda_stream()>>>(part, x, n);
    LAUNCH_CHECK();
    double host[SUMSQ_BLOCKS];
    cuda_download(host, part, sizeof host);
    double s = 0;
    for (int i = 0; i < SUMSQ_BLOCKS; i++)
        s += host[i];
    return s;
}
