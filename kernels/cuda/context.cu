/* context.cu: the CUDA backend's context (cuda.cuh): its device and compute stream, and the state
   the other files keep in it (allocations and scratch in memory.cu, cuBLASLt plans in matmul.cu).
   One per process, made by the first call that needs it: select_device when the caller picks a
   device, else the first op, on the current device. */
#include "kernels/cuda/cuda.cuh"

static CudaCtx *ctx; /* the process's context; NULL until the first call */

CudaCtx *cuda_ctx(void)
{
    if (!ctx) {
        ctx = (CudaCtx *)xcalloc(1, sizeof *ctx);
        CUDA_CHECK(cudaGetDevice(&ctx->device));
        /* non-blocking: no implicit ordering with the legacy default stream; the communication
           streams order against this one with events (parallel/comm_nccl.c) */
        CUDA_CHECK(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking));
    }
    return ctx;
}

void cuda_select_device(int local_rank)
{
    int n = 0;
    CUDA_CHECK(cudaGetDeviceCount(&n));
    const int dev = local_rank % n;
    if (ctx && ctx->device != dev)
        fail("cuda: device %d selected after the backend started on device %d", dev, ctx->device);
    CUDA_CHECK(cudaSetDevice(dev));
    cuda_ctx();
}

/* The compute stream: communication that compute has waited for (a collective, a receive,
   whatever comm_wait completed) is complete too. */
void cuda_sync(void)
{
    cuda_outside_graph(cuda_ctx(), "a sync");
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
}
