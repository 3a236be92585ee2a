/* memory.cu: device memory for the CUDA backend, kept in its context: allocation (zero-filled,
   counted for the peak memory the metrics report), copies to and from the host, the fp32 <-> bf16
   conversions, the scratch slots and the partial-sum reduction that parameter gradients share. */
#include "kernels/cuda/cuda.cuh"

#include <stdlib.h>

/* device memory taken (+) or given back (-) */
static void track(CudaCtx *x, ptrdiff_t bytes)
{
    x->bytes_now += bytes;
    if (x->bytes_now > x->bytes_peak)
        x->bytes_peak = x->bytes_now;
}

size_t cuda_peak_memory(void) { return cuda_ctx()->bytes_peak; }

size_t cuda_device_memory(void)
{
    size_t free_b = 0, total_b = 0;
    cuda_ctx(); /* on the device select_device chose */
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    return total_b;
}

void cuda_outside_graph(CudaCtx *x, const char *what)
{
    if (x->capturing)
        fail("cuda: %s inside a graph capture (ops.h: graph_run): a graphed step queues device work only, the same "
             "every time",
             what);
}

static void *device_alloc(CudaCtx *x, size_t bytes)
{
    cuda_outside_graph(x, "an allocation");
    void *p = NULL;
    cudaError_t err = cudaMalloc(&p, bytes ? bytes : 1);
    if (err != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        cudaGetLastError();
        cudaMemGetInfo(&free_b, &total_b);
        fail("cuda alloc: cannot allocate %.2f GiB (%.2f GiB free of %.2f, %.2f GiB held by megatrain): %s",
             bytes / 1073741824.0, free_b / 1073741824.0, total_b / 1073741824.0, x->bytes_now / 1073741824.0,
             cudaGetErrorString(err));
    }
    track(x, (ptrdiff_t)bytes);
    return p;
}

/* Kernels queued on the compute stream may still use p. The communication streams' last use of
   a buffer comes before compute that waits for it (comm_wait), so this wait covers theirs too. */
static void device_free(CudaCtx *x, void *p, size_t bytes)
{
    cuda_outside_graph(x, "a release");
    CUDA_CHECK(cudaStreamSynchronize(x->stream));
    CUDA_CHECK(cudaFree(p));
    track(x, -(ptrdiff_t)bytes);
}

/* zero-filled on the compute stream: every use of p is ordered after it */
void *cuda_alloc(size_t bytes)
{
    CudaCtx *x = cuda_ctx();
    void *p = device_alloc(x, bytes);
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, x->stream));
    if (x->n_allocs == x->cap_allocs) {
        x->cap_allocs = x->cap_allocs ? 2 * x->cap_allocs : 64;
        x->allocs = (CudaAllocation *)realloc(x->allocs, x->cap_allocs * sizeof *x->allocs);
        if (!x->allocs)
            fail("cuda alloc: out of host memory");
    }
    x->allocs[x->n_allocs++] = (CudaAllocation){p, bytes};
    return p;
}

void cuda_release(void *p)
{
    if (!p)
        return;
    CudaCtx *x = cuda_ctx();
    for (size_t i = 0; i < x->n_allocs; i++)
        if (x->allocs[i].p == p) {
            device_free(x, p, x->allocs[i].bytes);
            x->allocs[i] = x->allocs[--x->n_allocs];
            return;
        }
    fail("cuda release: %p was not allocated by the CUDA backend", p);
}

/* In order with the compute, and complete on return: the host's buffer holds the data
   (download) or may be reused (upload). */
static void host_copy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    CudaCtx *x = cuda_ctx();
    cuda_outside_graph(x, kind == cudaMemcpyHostToDevice ? "an upload" : "a download");
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, x->stream));
    CUDA_CHECK(cudaStreamSynchronize(x->stream));
}

void cuda_upload(void *dst, const void *src, size_t bytes) { host_copy(dst, src, bytes, cudaMemcpyHostToDevice); }

void cuda_download(void *dst, const void *src, size_t bytes) { host_copy(dst, src, bytes, cudaMemcpyDeviceToHost); }

void cuda_zero(void *p, size_t bytes) { CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cuda_stream())); }

/* ---- scratch ---- */

void *cuda_scratch(ScratchSlot slot, size_t bytes)
{
    CudaCtx *x = cuda_ctx();
    if (bytes > x->scratch_bytes[slot]) { /* only while sizes still grow: the first step */
        if (x->scratch[slot])
            device_free(x, x->scratch[slot], x->scratch_bytes[slot]);
        bytes = scratch_round(bytes);
        x->scratch[slot] = device_alloc(x, bytes);
        x->scratch_bytes[slot] = bytes;
        x->scratch_epoch++;
    }
    return x->scratch[slot];
}

/* ---- conversions ---- */

__global__ void f32_to_bf16_kernel(bf16 *dst, const float *src, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = tobf(src[i]);
}

__global__ void bf16_to_f32_kernel(float *dst, const bf16 *src, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = bf(src[i]);
}

void cuda_f32_to_act(void *dst, const float *src, size_t n)
{
    if (!n)
        return;
    f32_to_bf16_kernel<<<grid_for(n, 256), 256, 0, cuda_stream()>>>((bf16 *)dst, src, n);
    LAUNCH_CHECK();
}

void cuda_act_to_f32(float *dst, const void *src, size_t n)
{
    if (!n)
        return;
    bf16_to_f32_kernel<<<grid_for(n, 256), 256, 0, cuda_stream()>>>(dst, (const bf16 *)src, n);
    LAUNCH_CHECK();
}

/* ---- partial sums ---- */

/* dst (n) += (= with GRAD_NEW) the column sums of part (rows x n, row stride `stride`). A block
   takes 32 columns: warp w adds rows w, w + warps, ... (a warp reads 128 contiguous bytes a row),
   then the warps' sums meet in shared memory in a fixed order (one thread per column walking all
   the rows left a norm's 512 rows of 1024 columns to 8 blocks, each thread waiting on 512 loads in
   turn). */
#define PART_WARPS 32
__global__ void __launch_bounds__(32 * PART_WARPS)
    add_partials_kernel(float *dst, const float *part, int rows, int n, size_t stride, int mode)
{
    __shared__ float sh[PART_WARPS][33];
    const int lane = threadIdx.x % 32, w = threadIdx.x / 32, warps = blockDim.x / 32, c = blockIdx.x * 32 + lane;
    float s = 0;
    if (c < n)
#pragma unroll 8
        for (int r = w; r < rows; r += warps)
            s += part[(size_t)r * stride + c];
    sh[w][lane] = s;
    __syncthreads();
    if (w == 0 && c < n) {
        for (int i = 1; i < warps; i++)
            s += sh[i][lane];
        param_put(&dst[c], s, mode);
    }
}

void cuda_add_partials(float *dst, const float *part, int rows, int n, size_t stride, int mode)
{
    const int warps = rows < PART_WARPS ? (rows > 0 ? rows : 1) : PART_WARPS;
    add_partials_kernel<<<ceil_div(n, 32), 32 * warps, 0, cuda_stream()>>>(dst, part, rows, n, stride, mode);
    LAUNCH_CHECK();
}
