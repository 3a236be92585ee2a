/* crossentropy.cu: the summed token loss over a vocabulary cut in slices (see ops.h), each
   rank's logits (T, V) in bf16, softmax statistics in fp32; when asked, the gradient is written
   over the logits in bf16, with no fp32 copy of them kept. One block per token row: the stats
   kernel makes one pass for the slice's online max and sum of exponentials; the loss kernel
   combines every slice's statistics and makes one pass writing the gradient; the rows' losses
   are summed in fp64 by a last one-block kernel. */
#include "kernels/cuda/cuda.cuh"

#define CE_THREADS 256

template <int VEC>
__global__ void crossentropy_stats_kernel(double *stats, const bf16 *logits, const int32_t *targets, int V, int v0)
{
    __shared__ float sh[32];
    const int t = blockIdx.x, y = targets[t] - v0;
    const bf16 *row = logits + (size_t)t * V;
    float m = -INFINITY, s = 0;
    for (int i = threadIdx.x * VEC; i < V; i += blockDim.x * VEC) {
        float x[VEC];
        load_bf<VEC>(x, row + i);
#pragma unroll
        for (int e = 0; e < VEC; e++) {
            if (x[e] > m) {
                s = s * __expf(m - x[e]) + 1.0f;
                m = x[e];
            } else {
                s += __expf(x[e] - m);
            }
        }
    }
    /* block max, then rescale each thread's sum to it */
    float M = warp_max(m);
    __syncthreads();
    if (threadIdx.x % 32 == 0)
        sh[threadIdx.x / 32] = M;
    __syncthreads();
    M = threadIdx.x % 32 < blockDim.x / 32 ? sh[threadIdx.x % 32] : -INFINITY;
    M = warp_max(M);
    const float total = block_sum(m == -INFINITY ? 0.0f : s * __expf(m - M), sh);
    if (threadIdx.x == 0) {
        stats[3 * (size_t)t] = M;
        stats[3 * (size_t)t + 1] = total;
        stats[3 * (size_t)t + 2] = y >= 0 && y < V ? bf(row[y]) : 0.0f;
    }
}

template <int VEC>
__global__ void crossentropy_kernel(bf16 *logits, float *losses, double *bad, const int32_t *targets,
                                    const double *all, int n, int T, int V, int v0, float grad_scale)
{
    const int t = blockIdx.x, y = targets[t];
    bf16 *row = logits + (size_t)t * V;
    if (y >= (long long)n * V) {
        if (threadIdx.x == 0) {
            *bad = t + 1;
            losses[t] = 0.0f;
        }
        return;
    }
    if (y < 0) { /* ignored: no loss, zero gradient */
        if (threadIdx.x == 0)
            losses[t] = 0.0f;
        if (grad_scale != 0.0f)
            for (int i = threadIdx.x; i < V; i += blockDim.x)
                row[i] = tobf(0.0f);
        return;
    }
    /* every thread combines the slices' statistics (n is small) */
    float M = -INFINITY, S = 0, target = 0;
    for (int j = 0; j < n; j++)
        M = fmaxf(M, (float)all[3 * ((size_t)j * T + t)]);
    for (int j = 0; j < n; j++) {
        const double *s = all + 3 * ((size_t)j * T + t);
        S += (float)s[1] * expf((float)s[0] - M); /* exactly the slice's sum where its max is M */
        target += (float)s[2];
    }
    const float lse = M + logf(S);
    if (threadIdx.x == 0)
        losses[t] = lse - target;
    if (grad_scale == 0.0f)
        return;
    for (int i = threadIdx.x * VEC; i < V; i += blockDim.x * VEC) {
        float x[VEC];
        load_bf<VEC>(x, row + i);
#pragma unroll
        for (int e = 0; e < VEC; e++)
            x[e] = grad_scale * (__expf(x[e] - lse) - (i + e == y - v0 ? 1.0f : 0.0f));
        store_bf<VEC>(row + i, x);
    }
}

/* one block: out[0] += sum of x (n floats) in fp64 */
__global__ void add_sum_f64_kernel(double *out, const float *x, size_t n)
{
    __shared__ double sh[32];
    double s = 0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x)
        s += x[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0)
        *out += s;
}

void cuda_crossentropy_stats(double *stats, const void *logits, const int32_t *targets, int T, int V, int v0)
{
    const cudaStream_t s = cuda_stream();
    if (V % 8 == 0 && aligned16(logits))
        crossentropy_stats_kernel<8><<<T, CE_THREADS, 0, s>>>(stats, (const bf16 *)logits, targets, V, v0);
    else
        crossentropy_stats_kernel<1><<<T, CE_THREADS, 0, s>>>(stats, (const bf16 *)logits, targets, V, v0);
    LAUNCH_CHECK();
}

void cuda_crossentropy(double *loss, void *logits, const int32_t *targets, const double *all, int n, int T, int V,
                       int v0, float grad_scale)
{
    float *losses = (float *)cuda_scratch(SCRATCH_REDUCE, (size_t)T * sizeof(float));
    const cudaStream_t s = cuda_stream();
    if (V % 8 == 0 && aligned16(logits))
        crossentropy_kernel<8>
            <<<T, CE_THREADS, 0, s>>>((bf16 *)logits, losses, loss + 1, targets, all, n, T, V, v0, grad_scale);
    else
        crossentropy_kernel<1>
            <<<T, CE_THREADS, 0, s>>>((bf16 *)logits, losses, loss + 1, targets, all, n, T, V, v0, grad_scale);
    LAUNCH_CHECK();
    add_sum_f64_kernel<<<1, 1024, 0, s>>>(loss, losses, (size_t)T);
    LAUNCH_CHECK();
}
