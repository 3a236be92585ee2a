/* table.cu: the CUDA backend's Ops table: bf16 activations and compute copies of parameters, fp32
   master weights, gradients, optimizer moments and saved statistics, all in device memory. */
#include "kernels/cuda/cuda.cuh"

#include <stdio.h>
#include <stdlib.h>

static void *compute_stream(void) { return cuda_stream(); }

static const Ops table = {
    .name = "cuda",
    .act = DTYPE_BF16,
    .act_size = sizeof(bf16),
    .on_device = 1,
    .alloc = cuda_alloc,
    .release = cuda_release,
    .upload = cuda_upload,
    .download = cuda_download,
    .zero = cuda_zero,
    .sync = cuda_sync,
    .f32_to_act = cuda_f32_to_act,
    .act_to_f32 = cuda_act_to_f32,
    .f32_to_bf16 = cuda_f32_to_act, /* the act dtype is bf16 */
    .bf16_to_f32 = cuda_act_to_f32,
    .copy = cuda_copy,
    .accumulate = cuda_accumulate,
    .silu_forward = cuda_silu_forward,
    .silu_backward = cuda_silu_backward,
    .swiglu_forward = cuda_swiglu_forward,
    .swiglu_backward = cuda_swiglu_backward,
    .join_columns = cuda_join_columns,
    .split_columns = cuda_split_columns,
    .embedding_forward = cuda_embedding_forward,
    .embedding_backward = cuda_embedding_backward,
    .matmul_forward = cuda_matmul_forward,
    .matmul_backward = cuda_matmul_backward,
    .rmsnorm_forward = cuda_rmsnorm_forward,
    .rmsnorm_backward = cuda_rmsnorm_backward,
    .layernorm_forward = cuda_layernorm_forward,
    .layernorm_backward = cuda_layernorm_backward,
    .tsnorm_forward = cuda_tsnorm_forward,
    .tsnorm_backward = cuda_tsnorm_backward,
    .cema_saved_size = scratch_cema_saved,
    .cema_forward = cuda_cema_forward,
    .cema_backward = cuda_cema_backward,
    .qk_forward = cuda_qk_forward,
    .qk_backward = cuda_qk_backward,
    .attention_saved_size = scratch_attn_saved,
    .attention_forward = cuda_attention_forward,
    .attention_backward = cuda_attention_backward,
    .attention_step = cuda_attention_step,
    .crossentropy_stats = cuda_crossentropy_stats,
    .crossentropy = cuda_crossentropy,
    .sumsq = cuda_sumsq,
    .adamw = cuda_adamw,
    .peak_memory = cuda_peak_memory,
    .device_memory = cuda_device_memory,
    .scratch_plan = scratch_plan,
    .select_device = cuda_select_device,
    .stream = compute_stream,
    .graph_run = cuda_graph_run,
    .graph_free = cuda_graph_free,
};

static char missing[256]; /* why ops_cuda gave NULL */

/* NULL when no GPU is visible, so callers can say so instead of failing inside a kernel */
extern "C" const Ops *ops_cuda(void)
{
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess || n == 0) {
        cudaGetLastError();
        const char *vis = getenv("CUDA_VISIBLE_DEVICES");
        snprintf(missing, sizeof missing, "no GPU is visible to this process (%s; CUDA_VISIBLE_DEVICES %s%s)",
                 err != cudaSuccess ? cudaGetErrorString(err) : "the CUDA runtime counts 0 devices",
                 vis ? "is " : "is not set", vis ? vis : "");
        return NULL;
    }
    return &table;
}

extern "C" const char *ops_cuda_missing(void) { return ops_cuda() ? "" : missing; }
