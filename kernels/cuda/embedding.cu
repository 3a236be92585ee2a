/* embedding.cu: token embedding lookup over a slice of the vocabulary, out (T, D) = table[tok -
   v0] * scale, 0 for tokens outside the slice (one block row per token), and its backward into
   the fp32 table gradient, each id's rows summed in position order (tokens repeat). */
#include "kernels/cuda/cuda.cuh"

#include <cub/device/device_radix_sort.cuh>

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

/* backward, (1): the sort's keys (the row in the slice, V for tokens outside it) and values (the
   positions) */
__global__ void embedding_keys_kernel(unsigned *keys, int *pos, const int32_t *tok, int T, int v0, int V)
{
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= T)
        return;
    const int r = tok[t] - v0;
    keys[t] = (unsigned)(r >= 0 && r < V ? r : V);
    pos[t] = t;
}

/* (3): after the stable sort, the first position of each id's run adds the run's rows in the order
   of their positions (the run's end found by binary search); the other positions return */
template <int VEC>
__global__ void embedding_rows_kernel(float *dtable, const bf16 *dout, const unsigned *keys, const int *pos, int T,
                                      int D, int V, float scale)
{
    const int i = blockIdx.x;
    const unsigned r = keys[i];
    if (r == (unsigned)V || (i > 0 && keys[i - 1] == r))
        return;
    int end = i + 1, hi = T; /* the first j with keys[j] != r */
    while (end < hi) {
        const int mid = end + (hi - end) / 2;
        if (keys[mid] == r)
            end = mid + 1;
        else
            hi = mid;
    }
    float *row = dtable + (size_t)r * D;
    for (int c = threadIdx.x * VEC; c < D; c += blockDim.x * VEC) {
        float s[VEC] = {};
#pragma unroll 4
        for (int j = i; j < end; j++) {
            float v[VEC];
            load_bf<VEC>(v, dout + (size_t)pos[j] * D + c);
#pragma unroll
            for (int e = 0; e < VEC; e++)
                s[e] += v[e] * scale;
        }
#pragma unroll
        for (int e = 0; e < VEC; e++)
            row[c + e] += s[e];
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

/* The rows of one id are added in the order of their positions, so the gradient has the same bits
   on every run (atomic adds, before, summed in whatever order the blocks ran): the positions
   sorted by id (CUB's radix sort is stable), then one block per id adds its rows in turn. */
void cuda_embedding_backward(float *dtable, const void *dout, const int32_t *tok, int T, int D, int v0, int V,
                             float scale, int mode)
{
    if (mode & GRAD_NEW)
        cuda_zero(dtable, (size_t)V * D * sizeof(float));
    char *base = (char *)cuda_scratch(SCRATCH_STATE_A, scratch_embedding(T));
    unsigned *keys = (unsigned *)base;
    int *pos = (int *)(keys + 2 * (size_t)T);
    void *temp = base + scratch_embedding(T) - EMB_SORT_TEMP; /* 256-byte aligned */
    cub::DoubleBuffer<unsigned> k(keys, keys + T);
    cub::DoubleBuffer<int> p(pos, pos + T);
    int bits = 1; /* keys 0 .. V */
    while (bits < 31 && (1 << bits) <= V)
        bits++;
    size_t need = 0;
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(NULL, need, k, p, T, 0, bits, cuda_stream()));
    if (need > EMB_SORT_TEMP)
        fail("embedding: the radix sort of %d ids wants %zu bytes of temporaries, more than the %zu kept for it", T,
             need, EMB_SORT_TEMP);
    embedding_keys_kernel<<<ceil_div(T, 256), 256, 0, cuda_stream()>>>(k.Current(), p.Current(), tok, T, v0, V);
    LAUNCH_CHECK();
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, need, k, p, T, 0, bits, cuda_stream()));
    if (D % 8 == 0 && aligned16(dout))
        embedding_rows_kernel<8><<<T, 128, 0, cuda_stream()>>>(dtable, (const bf16 *)dout, k.Current(), p.Current(), T,
                                                               D, V, scale);
    else
        embedding_rows_kernel<1><<<T, 128, 0, cuda_stream()>>>(dtable, (const bf16 *)dout, k.Current(), p.Current(), T,
                                                               D, V, scale);
    LAUNCH_CHECK();
}
