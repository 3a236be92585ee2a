/* cuda.cuh: what the CUDA backend's files share: the error-check macros, bf16 <-> fp32 helpers,
   vector loads, block reductions, the context (the backend's state and its compute stream), the
   scratch buffers (sized on first use, then reused), the cuBLASLt entry point and the
   declarations of every op (kernels/cuda/table.cu gathers them into the Ops table). Everything
   runs on the context's compute stream, in issue order: every launch names cuda_stream(). */
#ifndef MEGATRAIN_CUDA_CUH
#define MEGATRAIN_CUDA_CUH

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <type_traits>

/* base/util.h is C11 (noreturn from stdnoreturn.h); give it C++'s attribute */
#include <stdnoreturn.h>
#define noreturn [[noreturn]]
extern "C" {
#include "kernels/ops.h"
#include "kernels/scratch.h"
#include "base/util.h"
}
#undef noreturn
#include "kernels/cuda/check.h"

typedef __nv_bfloat16 bf16;

#define CUBLAS_CHECK(call)                                                                                     \
    do {                                                                                                       \
        cublasStatus_t st_ = (call);                                                                           \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                                      \
            fail("%s:%d: %s: %s", __FILE__, __LINE__, #call, cublasLtGetStatusString(st_));                    \
    } while (0)
/* after every kernel launch */
#define LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

static inline unsigned ceil_div(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }
/* grid for a grid-stride loop over n items, capped so each thread does several */
static inline unsigned grid_for(size_t n, int threads)
{
    size_t g = (n + threads - 1) / threads;
    return (unsigned)(g < 1 ? 1 : g > 65536 ? 65536 : g);
}

/* ---- scalars ---- */
__device__ __forceinline__ float bf(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ bf16 tobf(float x) { return __float2bfloat16_rn(x); }
__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + __expf(-x)); }
/* RoPE: cos, sin of the rotation of pair j (of dz/2) at position pos */
__device__ __forceinline__ float2 rope_cs(int pos, int j, int dz, float log2_base)
{
    float inv = exp2f(-2.0f * (float)j / (float)dz * log2_base), sn, cs;
    sincosf((float)pos * inv, &sn, &cs);
    return make_float2(cs, sn);
}

/* ---- VEC consecutive bf16 as floats: one 16-byte access when VEC == 8, one 8-byte access when
   VEC == 4 (the caller guarantees alignment), scalar accesses when VEC == 1 ---- */
template <int VEC> __device__ __forceinline__ void load_bf(float *dst, const bf16 *src)
{
    if constexpr (VEC == 8 || VEC == 4) {
        typedef typename std::conditional<VEC == 8, uint4, uint2>::type Raw;
        Raw raw = *reinterpret_cast<const Raw *>(src);
        const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&raw);
#pragma unroll
        for (int i = 0; i < VEC / 2; i++) {
            float2 f = __bfloat1622float2(h[i]);
            dst[2 * i] = f.x;
            dst[2 * i + 1] = f.y;
        }
    } else {
#pragma unroll
        for (int i = 0; i < VEC; i++)
            dst[i] = bf(src[i]);
    }
}

template <int VEC> __device__ __forceinline__ void store_bf(bf16 *dst, const float *src)
{
    if constexpr (VEC == 8 || VEC == 4) {
        typedef typename std::conditional<VEC == 8, uint4, uint2>::type Raw;
        Raw raw;
        __nv_bfloat162 *h = reinterpret_cast<__nv_bfloat162 *>(&raw);
#pragma unroll
        for (int i = 0; i < VEC / 2; i++)
            h[i] = __floats2bfloat162_rn(src[2 * i], src[2 * i + 1]);
        *reinterpret_cast<Raw *>(dst) = raw;
    } else {
#pragma unroll
        for (int i = 0; i < VEC; i++)
            dst[i] = tobf(src[i]);
    }
}

/* VEC consecutive floats: one 16-byte access when VEC == 4 (aligned by the caller), else scalar */
template <int VEC> __device__ __forceinline__ void load_f32(float *dst, const float *src)
{
    if constexpr (VEC == 4) {
        const float4 f = *reinterpret_cast<const float4 *>(src);
        dst[0] = f.x, dst[1] = f.y, dst[2] = f.z, dst[3] = f.w;
    } else {
#pragma unroll
        for (int i = 0; i < VEC; i++)
            dst[i] = src[i];
    }
}

template <int VEC> __device__ __forceinline__ void store_f32(float *dst, const float *src)
{
    if constexpr (VEC == 4) {
        *reinterpret_cast<float4 *>(dst) = make_float4(src[0], src[1], src[2], src[3]);
    } else {
#pragma unroll
        for (int i = 0; i < VEC; i++)
            dst[i] = src[i];
    }
}

/* whether every pointer is 16-byte aligned (the 8-wide bf16 path) */
static inline int aligned16(const void *a, const void *b = NULL, const void *c = NULL, const void *d = NULL)
{
    return !(((uintptr_t)a | (uintptr_t)b | (uintptr_t)c | (uintptr_t)d) & 15);
}

/* ---- reductions ---- */
template <typename T> __device__ __forceinline__ T warp_sum(T v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* two sums in one reduction: block_sum of a float2 syncs once for both */
__device__ __forceinline__ float2 warp_sum(float2 v) { return make_float2(warp_sum(v.x), warp_sum(v.y)); }

__device__ __forceinline__ float warp_max(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
   sh: 32 values of shared memory; the function syncs before reusing it. */
template <typename T> __device__ __forceinline__ T block_sum(T v, T *sh)
{
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0)
        sh[warp] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : T{};
    return warp_sum(v);
}

/* ---- scratch: backend-owned temporaries, one buffer per slot, grown only when a larger size is
   asked for (so after the first step no allocation happens) ---- */
typedef enum {
    SCRATCH_LT_WORKSPACE, /* cuBLASLt */
    SCRATCH_PARTIALS,     /* per-block partial sums of parameter gradients */
    SCRATCH_REDUCE,       /* losses, sums of squares, flags */
    SCRATCH_ATTN_S,       /* attention scores / dP, fp32 */
    SCRATCH_ATTN_P,       /* attention probabilities / dS, bf16 */
    SCRATCH_STATE_A,      /* CEMA / TimestepNorm chunk states */
    SCRATCH_STATE_B,
    SCRATCH_SLOTS
} ScratchSlot;
void *cuda_scratch(ScratchSlot slot, size_t bytes);

/* ---- the context: all of the backend's state, one per process (a rank drives one device, and
   the Ops signatures carry no context), made by the first call that needs it on the device
   select_device chose (context.cu) ---- */
typedef struct {
    void *p;
    size_t bytes;
} CudaAllocation;

typedef struct GemmCache GemmCache; /* matmul.cu: the cuBLASLt handle and plans */

typedef struct {
    int device;
    cudaStream_t stream;          /* compute: every kernel, GEMM, fill and copy (non-blocking) */
    CudaAllocation *allocs;       /* (n_allocs) live allocations (few: the model takes one arena) */
    size_t n_allocs, cap_allocs;
    size_t bytes_now, bytes_peak; /* allocations plus scratch */
    void *scratch[SCRATCH_SLOTS]; /* (scratch_bytes) */
    size_t scratch_bytes[SCRATCH_SLOTS];
    unsigned scratch_epoch;       /* counts the scratch's moves: a graph captured before is stale */
    int capturing;                /* inside a graph capture (graph.cu): no host round trips */
    GemmCache *gemm; /* made by the first GEMM */
} CudaCtx;

CudaCtx *cuda_ctx(void);
static inline cudaStream_t cuda_stream(void) { return cuda_ctx()->stream; }

/* A parameter gradient's element gets v: added, or stored with GRAD_NEW (ops.h) */
__device__ __forceinline__ void param_put(float *g, float v, int mode) { *g = mode & GRAD_NEW ? v : *g + v; }

/* dst[i] += sum over rows r of part[r * stride + i] (i < n), = with GRAD_NEW: the second stage of
   every parameter gradient that blocks sum in parallel (deterministic: fixed order) */
void cuda_add_partials(float *dst, const float *part, int rows, int n, size_t stride, int mode);

/* ---- cuBLASLt: D (m x n, column-major, ldd) = alpha op(A) op(B) + beta C (+ bias[m] per row),
   batched with strides; A and B bf16, C and D bf16 or fp32 (dtype_d, one layout), fp32
   accumulation; C is D unless given ---- */
typedef struct {
    int m, n, k;
    int transa, transb;
    const void *a;
    int lda;
    long long stride_a;
    const void *b;
    int ldb;
    long long stride_b;
    void *d;
    int ldd;
    long long stride_d;
    cudaDataType_t dtype_d;
    int batch;
    float beta;
    const void *bias; /* bf16 (m), or NULL */
    float *bgrad;     /* fp32 (n): written with op(B)'s sums over k (cuBLASLt's BGRADB; D fp32), or NULL */
    const void *c;    /* C, laid out as D, or NULL: D */
} Gemm;
int cuda_gemm(const Gemm *g); /* 0 (nothing ran) only where cuBLASLt has no GEMM with g->bgrad */

/* ---- the ops (signatures as in kernels/ops.h) ---- */
void *cuda_alloc(size_t bytes);
void cuda_release(void *p);
void cuda_upload(void *dst, const void *src, size_t bytes);
/* fails with what was asked for when a graph capture is on (ops.h: graph_run forbids it) */
void cuda_outside_graph(CudaCtx *x, const char *what);
void cuda_graph_run(void **graph, void (*fn)(void *ctx), void *ctx);
void cuda_graph_free(void *graph);
void cuda_download(void *dst, const void *src, size_t bytes);
void cuda_zero(void *p, size_t bytes);
void cuda_sync(void);
void cuda_f32_to_act(void *dst, const float *src, size_t n);
void cuda_act_to_f32(float *dst, const void *src, size_t n);
size_t cuda_peak_memory(void);
size_t cuda_device_memory(void);

void cuda_copy(void *dst, const void *src, size_t n);
void cuda_join_columns(void *dst, const void *src, int n, int T, int w);
void cuda_split_columns(void *dst, const void *src, int n, int T, int w);
void cuda_select_device(int local_rank);
void cuda_accumulate(void *dst, const void *src, size_t n);
void cuda_silu_forward(void *out, const void *in, size_t n);
void cuda_silu_backward(void *din, const void *dout, const void *in, size_t n, int accumulate, void *refwd);
void cuda_swiglu_forward(void *out, const void *a, const void *b, size_t n);
void cuda_swiglu_backward(void *da, void *db, const void *dout, const void *a, const void *b, size_t n, int accumulate,
                          void *refwd);

void cuda_embedding_forward(void *out, const int32_t *tok, const void *table, int T, int D, int v0, int V,
                            float scale);
void cuda_embedding_backward(float *dtable, const void *dout, const int32_t *tok, int T, int D, int v0, int V,
                             float scale, int mode);

void cuda_matmul_forward(void *out, const void *inp, const void *w, const void *bias, const void *res, int T, int IC,
                         int OC);
void cuda_matmul_backward(void *dinp, float *dw, float *dbias, const void *dout, const void *inp, const void *w,
                          int T, int IC, int OC, int mode);

void cuda_rmsnorm_forward(void *y, float *rrms, const void *x, const void *w, int T, int D, float eps);
void cuda_rmsnorm_backward(void *dx, float *dw, const void *dy, const void *x, const float *rrms, const void *w,
                           int T, int D, int mode);
void cuda_layernorm_forward(void *y, float *mean, float *rstd, const void *x, const void *w, const void *b, int T,
                            int D, float eps);
void cuda_layernorm_backward(void *dx, float *dw, float *db, const void *dy, const void *x, const float *mean,
                             const float *rstd, const void *w, int T, int D, int mode);

void cuda_tsnorm_forward(void *y, float *mean, float *rstd, const void *x, const void *w, const void *b,
                         ChunkState chunk, int B, int L, int D, int G, float eps);
void cuda_tsnorm_backward(void *dx, float *dw, float *db, const void *dy, const void *x, const float *mean,
                          const float *rstd, const void *w, ChunkState chunk, int B, int L, int D, int G,
                          int mode);

void cuda_cema_forward(void *y, void *saved, const void *u, CemaParams p, ChunkState chunk, int B, int L, int D,
                       int N);
void cuda_cema_backward(void *du, CemaGrads g, const void *dy, const void *saved, const void *u, CemaParams p,
                        ChunkState chunk, int B, int L, int D, int N, int mode);

void cuda_qk_forward(void *q, void *k, float *rstd, const void *zs, const void *gamma, const void *beta, int B,
                     int L, int H, int dz, int C, float rope_base, float eps);
void cuda_qk_backward(void *dzs, float *dgamma, float *dbeta, void *dq, void *dk, const void *zs,
                      const float *rstd, const void *gamma, int B, int L, int H, int dz, int C, float rope_base,
                      int mode);

void cuda_attention_forward(void *o, float *lse, void *saved, const void *q, const void *k, const void *v, int B,
                            int L, int H, int dz, int dv, int C);
void cuda_attention_backward(void *dq, void *dk, void *dvalue, const void *dout, const void *saved, const void *q,
                             const void *k, const void *v, const void *o, const float *lse, int B, int L, int H,
                             int dz, int dv, int C, int accumulate);

void cuda_attention_step(void *o, const void *q, const void *k, const void *v, void *kcache, void *vcache, int pos,
                         int B, int H, int dz, int dv, int C, float rope_base);

void cuda_crossentropy_stats(double *stats, const void *logits, const int32_t *targets, int T, int V, int v0);
void cuda_crossentropy(double *loss, void *logits, const int32_t *targets, const double *all, int n, int T, int V,
                       int v0, float grad_scale);

double cuda_sumsq(const float *x, size_t n);
void cuda_adamw(float *param, void *param_act, const float *grad, float *m, float *v, size_t n, float lr,
                float beta1, float beta2, float eps, float weight_decay, int step, float grad_scale);

#endif
