/* elementwise.cu: copy, the tensor-parallel column layouts, accumulate, SiLU and the SwiGLU gate,
   forward and backward, on n bf16 elements. One grid-stride kernel template serves them
   all: NIN inputs, NOUT outputs of which the first ACC are added to (accumulate, backward
   accumulating) and the others written, 8 elements per thread and 16-byte accesses when every
   pointer allows it, fp32 arithmetic in between. */
#include "kernels/cuda/cuda.cuh"

template <int NIN, int NOUT> struct Ptrs {
    const bf16 *in[NIN];
    bf16 *out[NOUT];
};

template <int VEC, int NIN, int NOUT, int ACC, class Op>
__device__ __forceinline__ void map_at(const Ptrs<NIN, NOUT> &p, size_t i, Op op)
{
    float x[NIN][VEC], y[NOUT][VEC];
#pragma unroll
    for (int a = 0; a < NIN; a++)
        load_bf<VEC>(x[a], p.in[a] + i);
#pragma unroll
    for (int e = 0; e < VEC; e++) {
        float xi[NIN], yi[NOUT];
#pragma unroll
        for (int a = 0; a < NIN; a++)
            xi[a] = x[a][e];
        op(xi, yi);
#pragma unroll
        for (int a = 0; a < NOUT; a++)
            y[a][e] = yi[a];
    }
#pragma unroll
    for (int a = 0; a < NOUT; a++) {
        if (a < ACC) {
            float old[VEC];
            load_bf<VEC>(old, p.out[a] + i);
#pragma unroll
            for (int e = 0; e < VEC; e++)
                y[a][e] += old[e];
        }
        store_bf<VEC>(p.out[a] + i, y[a]);
    }
}

template <int VEC, int NIN, int NOUT, int ACC, class Op>
__global__ void map_kernel(Ptrs<NIN, NOUT> p, size_t n, Op op)
{
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t nv = n / VEC;
    for (size_t v = blockIdx.x * (size_t)blockDim.x + threadIdx.x; v < nv; v += stride)
        map_at<VEC, NIN, NOUT, ACC>(p, v * VEC, op);
    for (size_t i = nv * VEC + blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += stride)
        map_at<1, NIN, NOUT, ACC>(p, i, op);
}

template <int NIN, int NOUT, int ACC, class Op> static void map(Ptrs<NIN, NOUT> p, size_t n, Op op)
{
    if (!n)
        return;
    int vec = 1;
    for (int a = 0; a < NIN; a++)
        vec &= aligned16(p.in[a]);
    for (int a = 0; a < NOUT; a++)
        vec &= aligned16(p.out[a]);
    if (vec)
        map_kernel<8, NIN, NOUT, ACC><<<grid_for(n / 8 + 1, 256), 256, 0, cuda_stream()>>>(p, n, op);
    else
        map_kernel<1, NIN, NOUT, ACC><<<grid_for(n, 256), 256, 0, cuda_stream()>>>(p, n, op);
    LAUNCH_CHECK();
}

/* A backward: inputs in, NG input gradients overwritten or added to with accumulate (ops.h), and
   with refwd the forward's output after them (written). Op<1> computes that output too, by the
   forward's own fp32 expression, so its bits are the forward's. */
template <template <int> class Op, int NIN, int NG>
static void map_back(const bf16 *const (&in)[NIN], bf16 *const (&grad)[NG], bf16 *refwd, size_t n, int accumulate)
{
    Ptrs<NIN, NG> p;
    Ptrs<NIN, NG + 1> r;
    for (int a = 0; a < NIN; a++)
        p.in[a] = r.in[a] = in[a];
    for (int a = 0; a < NG; a++)
        p.out[a] = r.out[a] = grad[a];
    r.out[NG] = refwd;
    if (refwd && accumulate)
        map<NIN, NG + 1, NG>(r, n, Op<1>());
    else if (refwd)
        map<NIN, NG + 1, 0>(r, n, Op<1>());
    else if (accumulate)
        map<NIN, NG, NG>(p, n, Op<0>());
    else
        map<NIN, NG, 0>(p, n, Op<0>());
}

/* d silu(x) / dx with s = sigmoid(x) */
__device__ __forceinline__ float silu_grad(float x, float s) { return s * (1.0f + x * (1.0f - s)); }

struct OpIdentity {
    __device__ void operator()(const float *x, float *y) const { y[0] = x[0]; }
};
/* the forward outputs from s = sigmoid(x): one expression for the forward and a backward's refwd */
__device__ __forceinline__ float silu_f(float x, float s) { return x * s; }
__device__ __forceinline__ float swiglu_f(float a, float s, float b) { return a * s * b; }

struct OpSilu {
    __device__ void operator()(const float *x, float *y) const { y[0] = silu_f(x[0], sigmoidf_(x[0])); }
};
template <int RE> struct OpSiluBack { /* (dout, x) -> dx, and silu(x) with RE */
    __device__ void operator()(const float *x, float *y) const
    {
        float s = sigmoidf_(x[1]);
        y[0] = x[0] * silu_grad(x[1], s);
        if constexpr (RE)
            y[1] = silu_f(x[1], s);
    }
};
struct OpSwiglu { /* (a, b) */
    __device__ void operator()(const float *x, float *y) const { y[0] = swiglu_f(x[0], sigmoidf_(x[0]), x[1]); }
};
template <int RE> struct OpSwigluBack { /* (dout, a, b) -> (da, db), and silu(a) b with RE */
    __device__ void operator()(const float *x, float *y) const
    {
        float s = sigmoidf_(x[1]);
        y[0] = x[0] * x[2] * silu_grad(x[1], s);
        y[1] = x[0] * x[1] * s;
        if constexpr (RE)
            y[2] = swiglu_f(x[1], s, x[2]);
    }
};

void cuda_copy(void *dst, const void *src, size_t n)
{
    CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(bf16), cudaMemcpyDeviceToDevice, cuda_stream()));
}

/* between n blocks (n, T, w) and rows (T, n w): one strided copy per block */
void cuda_join_columns(void *dst, const void *src, int n, int T, int w)
{
    const size_t row = (size_t)w * sizeof(bf16);
    for (int j = 0; j < n; j++)
        CUDA_CHECK(cudaMemcpy2DAsync((bf16 *)dst + (size_t)j * w, n * row, (const bf16 *)src + (size_t)j * T * w, row,
                                     row, (size_t)T, cudaMemcpyDeviceToDevice, cuda_stream()));
}

void cuda_split_columns(void *dst, const void *src, int n, int T, int w)
{
    const size_t row = (size_t)w * sizeof(bf16);
    for (int j = 0; j < n; j++)
        CUDA_CHECK(cudaMemcpy2DAsync((bf16 *)dst + (size_t)j * T * w, row, (const bf16 *)src + (size_t)j * w, n * row,
                                     row, (size_t)T, cudaMemcpyDeviceToDevice, cuda_stream()));
}

void cuda_accumulate(void *dst, const void *src, size_t n)
{
    map<1, 1, 1>(Ptrs<1, 1>{{(const bf16 *)src}, {(bf16 *)dst}}, n, OpIdentity());
}

void cuda_silu_forward(void *out, const void *in, size_t n)
{
    map<1, 1, 0>(Ptrs<1, 1>{{(const bf16 *)in}, {(bf16 *)out}}, n, OpSilu());
}

void cuda_silu_backward(void *din, const void *dout, const void *in, size_t n, int accumulate, void *refwd)
{
    map_back<OpSiluBack>({(const bf16 *)dout, (const bf16 *)in}, {(bf16 *)din}, (bf16 *)refwd, n, accumulate);
}

void cuda_swiglu_forward(void *out, const void *a, const void *b, size_t n)
{
    map<2, 1, 0>(Ptrs<2, 1>{{(const bf16 *)a, (const bf16 *)b}, {(bf16 *)out}}, n, OpSwiglu());
}

void cuda_swiglu_backward(void *da, void *db, const void *dout, const void *a, const void *b, size_t n, int accumulate,
                          void *refwd)
{
    map_back<OpSwigluBack>({(const bf16 *)dout, (const bf16 *)a, (const bf16 *)b}, {(bf16 *)da, (bf16 *)db},
                           (bf16 *)refwd, n, accumulate);
}
