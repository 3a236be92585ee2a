/* crossentropy.cu: the summed token loss over bf16 logits (T, V), softmax statistics in fp32, and
   when asked its gradient written over the logits in bf16; no fp32 copy of the logits is kept.
   One block per token row: one pass for the row's online max and sum of exponentials, one pass
   writing the gradient; per-row losses are summed in fp64 by a last one-block kernel. */
#include "kernels/cuda/cuda.cuh"

#define CE_THREADS 256

template <int VEC>
__global__ void crossentropy_kernel(bf16 *logits, float *losses, int *bad, const int32_t *targets, int V,
                                    float grad_scale)
{
    __shared__ float sh[32];
    const int t = blockIdx.x, y = targets[t];
    bf16 *row = logits + (size_t)t * V;
    if (y >= V) {
        if (threadIdx.x == 0)
            *bad = t + 1;
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
    const float lse = M + logf(total);
    if (threadIdx.x == 0)
        losses[t] = lse - bf(row[y]);
    __syncthreads(); /* row[y] is read before anyone overwrites it */
    if (grad_scale == 0.0f)
        return;
    for (int i = threadIdx.x * VEC; i < V; i += blockDim.x * VEC) {
        float x[VEC];
        load_bf<VEC>(x, row + i);
#pragma unroll
        for (int e = 0; e < VEC; e++)
            x[e] = grad_scale * (__expf(x[e] - lse) - (i + e == y ? 1.0f : 0.0f));
        store_bf<VEC>(row + i, x);
    }
}

/* one block: out[0] = sum of x (n floats) in fp64 */
__global__ void sum_f64_kernel(double *out, const float *x, size_t n)
{
    __shared__ double sh[32];
    double s = 0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x)
        s += x[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0)
        *out = s;
}

double cuda_crossentropy(void *logits, const int32_t *targets, int T, int V, float grad_scale)
{
    /* scratch: [sum (double) | bad-target flag | pad] then T losses */
    char *scr = (char *)cuda_scratch(SCRATCH_REDUCE, 16 + (size_t)T * sizeof(float));
    double *sum = (double *)scr;
    int *bad = (int *)(scr + 8);
    float *losses = (float *)(scr + 16);
    const cudaStream_t s = cuda_stream();
    CUDA_CHECK(cudaMemsetAsync(bad, 0, sizeof(int), s));
    if (V % 8 == 0 && aligned16(logits))
        crossentropy_kernel<8><<<T, CE_THREADS, 0, s>>>((bf16 *)logits, losses, bad, targets, V, grad_scale);
    else
        crossentropy_kernel<1><<<T, CE_THREADS, 0, s>>>((bf16 *)logits, losses, bad, targets, V, grad_scale);
    LAUNCH_CHECK();
    sum_f64_kernel<<<1, 1024, 0, s>>>(sum, losses, (size_t)T);
    LAUNCH_CHECK();
    struct {
        double sum;
        int bad;
    } host;
    cuda_download(&host, scr, 12);
    if (host.bad)
        fail("crossentropy: the target at token %d is outside the vocabulary of %d", host.bad - 1, V);
    return host.sum;
}
