/* embedding.cu: token embedding lookup over a slice of the vocabulary, out (T, D) = table[tok -
   v0] * scale, 0 for tokens outside the slice (one block row per token), and its backward into
   the fp32 table gradient with atomic adds (tokens repeat). */
#include "kernels/cuda/cuda.cuh"

template <int VEC>
__global__ void embedding_forward_kernel(bf16 *out, const int32_t *tok, const bf16 *table, int T, int D, int v0,
                                         int V, float scale)
{
    const int t = blockIdx.x, r = tok[t] - v0, in = r >= 0 && r < V;
    const bf16 *row = table + (size_t)(in ? r : 0) * D;
    for (int i = threadIdx.x * VEC; i < D; i += blockDim.x * VEC) {
        float v[VEC] = {0};
        if (in)
            load_bf<VEC>(v, row + i);
#pragma unroll
        for (int e = 0; e < VEC; e++)
            v[e] *= scale;
        store_bf<VEC>(out + (size_t)t * D + i, v);
    }
}

template <int VEC>
__global__ void embedding_backward_kernel(float *dtable, const bf16 *dout, const int32_t *tok, int T, int D, int v0,
                                          int V, float scale)
{
    const int t = blockIdx.x, r = tok[t] - v0;
    if (r < 0 || r >= V)
        return;
    float *row = dtable + (size_t)r * D;
    for (int i = threadIdx.x * VEC; i < D; i += blockDim.x * VEC) {
        float v[VEC];
        load_bf<VEC>(v, dout + (size_t)t * D + i);
#pragma unroll
        for (int e = 0; e < VEC; e++)
            atomicAdd(row + i + e, v[e] * scale);
    }
}

void cuda_embedding_forward(void *out, const int32_t *tok, const void *table, int T, int D, int v0, int V,
                            float scale)
{
    if (D % 8 == 0 && aligned16(out, table))
        embedding_forward_kernel<8>
            <<<T, 128, 0, cuda_stream()>>>((bf16 *)out, tok, (const bf16 *)table, T, D, v0, V, scale);
    else
        embedding_forward_kernel<1>
            <<<T, 128, 0, cuda_stream()>>>((bf16 *)out, tok, (const bf16 *)table, T, D, v0, V, scale);
    LAUNCH_CHECK();
}

void cuda_embedding_backward(float *dtable, const void *dout, const int32_t *tok, int T, int D, int v0, int V,
                             float scale)
{
    if (D % 8 == 0 && aligned16(dout))
        embedding_backward_kernel<8>
            <<<T, 128, 0, cuda_stream()>>>(dtable, (const bf16 *)dout, tok, T, D, v0, V, scale);
    else
        embedding_backward_kernel<1>
            <<<T, 128, 0, cuda_stream()>>>(dtable, (const bf16 *)dout, tok, T, D, v0, V, scale);
    LAUNCH_CHECK();
}
