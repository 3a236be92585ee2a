/* norms.cu: RMSNorm and LayerNorm over the last dim D with (1 + w) scales, forward and backward.
   One block per row at a time (grid-stride over rows); each thread keeps its columns of the row in
   registers (J groups of VEC columns, J <= 4), so a row is read once; statistics in fp32.
   Backward overwrites dx or adds to it (acc), and sums the parameter gradients per block in
   registers, then over blocks (cuda_add_partials). */
#include "kernels/cuda/cuda.cuh"

#define ROW_THREADS 256  /* at most */
#define ROW_BLOCKS 512   /* grid of the backward kernels: rows of partial sums */
#define ROW_BLOCKS_FWD 2048

/* The columns a thread owns: c = (j * blockDim.x + threadIdx.x) * VEC + e, for j < J. */
#define FOR_COLS(j)                                                                                            \
    _Pragma("unroll") for (int j = 0; j < J; j++) if ((j * blockDim.x + threadIdx.x) * VEC < D)
#define COL(j) ((j * blockDim.x + threadIdx.x) * VEC)

template <int VEC, int J> __device__ __forceinline__ void load_cols(float (*v)[VEC], const bf16 *row, int D)
{
    FOR_COLS(j) load_bf<VEC>(v[j], row + COL(j));
}

template <int VEC, int J>
__global__ void rmsnorm_forward_kernel(bf16 *y, float *rrms, const bf16 *x, const bf16 *w, int T, int D, float eps)
{
    __shared__ float sh[32];
    float wv[J][VEC], xv[J][VEC];
    load_cols<VEC, J>(wv, w, D);
    for (int t = blockIdx.x; t < T; t += gridDim.x) {
        load_cols<VEC, J>(xv, x + (size_t)t * D, D);
        float ss = 0;
        FOR_COLS(j) for (int e = 0; e < VEC; e++) ss += xv[j][e] * xv[j][e];
        float r = rsqrtf(block_sum(ss, sh) / D + eps);
        if (threadIdx.x == 0)
            rrms[t] = r;
        FOR_COLS(j)
        {
            float o[VEC];
            for (int e = 0; e < VEC; e++)
                o[e] = xv[j][e] * r * (1.0f + wv[j][e]);
            store_bf<VEC>(y + (size_t)t * D + COL(j), o);
        }
    }
}

template <int VEC, int J>
__global__ void rmsnorm_backward_kernel(bf16 *dx, float *part, const bf16 *dy, const bf16 *x, const float *rrms,
                                        const bf16 *w, int T, int D, int acc)
{
    __shared__ float sh[32];
    float wv[J][VEC], xv[J][VEC], gv[J][VEC], dw[J][VEC] = {};
    load_cols<VEC, J>(wv, w, D);
    for (int t = blockIdx.x; t < T; t += gridDim.x) {
        load_cols<VEC, J>(xv, x + (size_t)t * D, D);
        load_cols<VEC, J>(gv, dy + (size_t)t * D, D);
        const float r = rrms[t];
        float dot = 0; /* sum dy (1 + w) x */
        FOR_COLS(j) for (int e = 0; e < VEC; e++)
        {
            dot += gv[j][e] * (1.0f + wv[j][e]) * xv[j][e];
            dw[j][e] += gv[j][e] * xv[j][e] * r;
        }
        dot = block_sum(dot, sh);
        FOR_COLS(j)
        {
            float o[VEC] = {};
            if (acc)
                load_bf<VEC>(o, dx + (size_t)t * D + COL(j));
            for (int e = 0; e < VEC; e++)
                o[e] += r * (1.0f + wv[j][e]) * gv[j][e] - xv[j][e] * r * r * r * dot / D;
            store_bf<VEC>(dx + (size_t)t * D + COL(j), o);
        }
    }
    FOR_COLS(j) for (int e = 0; e < VEC; e++) part[(size_t)blockIdx.x * D + COL(j) + e] = dw[j][e];
}

template <int VEC, int J>
__global__ void layernorm_forward_kernel(bf16 *y, float *mean, float *rstd, const bf16 *x, const bf16 *w,
                                         const bf16 *b, int T, int D, float eps)
{
    __shared__ float sh[32];
    float wv[J][VEC], bv[J][VEC], xv[J][VEC];
    load_cols<VEC, J>(wv, w, D);
    load_cols<VEC, J>(bv, b, D);
    for (int t = blockIdx.x; t < T; t += gridDim.x) {
        load_cols<VEC, J>(xv, x + (size_t)t * D, D);
        float s = 0, v = 0;
        FOR_COLS(j) for (int e = 0; e < VEC; e++) s += xv[j][e];
        const float m = block_sum(s, sh) / D;
        FOR_COLS(j) for (int e = 0; e < VEC; e++) v += (xv[j][e] - m) * (xv[j][e] - m);
        const float rs = rsqrtf(block_sum(v, sh) / D + eps);
        if (threadIdx.x == 0) {
            mean[t] = m;
            rstd[t] = rs;
        }
        FOR_COLS(j)
        {
            float o[VEC];
            for (int e = 0; e < VEC; e++)
                o[e] = (xv[j][e] - m) * rs * (1.0f + wv[j][e]) + bv[j][e];
            store_bf<VEC>(y + (size_t)t * D + COL(j), o);
        }
    }
}

/* part rows: [dw (D) | db (D)] per block */
template <int VEC, int J>
__global__ void layernorm_backward_kernel(bf16 *dx, float *part, const bf16 *dy, const bf16 *x, const float *mean,
                                          const float *rstd, const bf16 *w, int T, int D, int acc)
{
    __shared__ float2 sh[32];
    float wv[J][VEC], xv[J][VEC], gv[J][VEC], dw[J][VEC] = {}, db[J][VEC] = {};
    load_cols<VEC, J>(wv, w, D);
    for (int t = blockIdx.x; t < T; t += gridDim.x) {
        load_cols<VEC, J>(xv, x + (size_t)t * D, D);
        load_cols<VEC, J>(gv, dy + (size_t)t * D, D);
        const float m = mean[t], rs = rstd[t];
        float mg = 0, mgx = 0; /* means of dy (1 + w) and dy (1 + w) xhat */
        FOR_COLS(j) for (int e = 0; e < VEC; e++)
        {
            float xh = (xv[j][e] - m) * rs, gi = gv[j][e] * (1.0f + wv[j][e]);
            mg += gi;
            mgx += gi * xh;
            dw[j][e] += gv[j][e] * xh;
            db[j][e] += gv[j][e];
        }
        const float2 sums = block_sum(make_float2(mg, mgx), sh); /* both in one reduction */
        mg = sums.x / D;
        mgx = sums.y / D;
        FOR_COLS(j)
        {
            float o[VEC] = {};
            if (acc)
                load_bf<VEC>(o, dx + (size_t)t * D + COL(j));
            for (int e = 0; e < VEC; e++) {
                float xh = (xv[j][e] - m) * rs;
                o[e] += rs * (gv[j][e] * (1.0f + wv[j][e]) - mg - xh * mgx);
            }
            store_bf<VEC>(dx + (size_t)t * D + COL(j), o);
        }
    }
    FOR_COLS(j) for (int e = 0; e < VEC; e++)
    {
        part[(size_t)blockIdx.x * 2 * D + COL(j) + e] = dw[j][e];
        part[(size_t)blockIdx.x * 2 * D + D + COL(j) + e] = db[j][e];
    }
}

/* launch shape: VEC = 8 when rows are 16-byte aligned; threads a multiple of 32, J groups each */
typedef struct {
    int vec, j, threads;
} RowShape;

static RowShape row_shape(int D, const void *a, const void *b, const void *c, const void *d)
{
    RowShape s;
    s.vec = D % 8 == 0 && aligned16(a, b, c, d) ? 8 : 1;
    int nv = D / s.vec;
    s.threads = nv < ROW_THREADS ? (nv + 31) / 32 * 32 : ROW_THREADS;
    s.j = (nv + s.threads - 1) / s.threads;
    s.j = s.j == 3 ? 4 : s.j;
    if (s.j > 4)
        fail("norm: D = %d is too wide for the row kernels (at most %d)", D, ROW_THREADS * 4 * s.vec);
    return s;
}

static int row_blocks(int T, int max) { return T < max ? T : max; }

/* kernel<vec, j><<<grid, threads, 0, cuda_stream()>>>(args...) for the shape s */
#define ROW_LAUNCH(kernel, grid, s, ...)                                                                       \
    do {                                                                                                       \
        switch ((s).vec * 10 + (s).j) {                                                                        \
        case 81: kernel<8, 1><<<grid, (s).threads, 0, cuda_stream()>>>(__VA_ARGS__); break;                    \
        case 82: kernel<8, 2><<<grid, (s).threads, 0, cuda_stream()>>>(__VA_ARGS__); break;                    \
        case 84: kernel<8, 4><<<grid, (s).threads, 0, cuda_stream()>>>(__VA_ARGS__); break;                    \
        case 11: kernel<1, 1><<<grid, (s).threads, 0, cuda_stream()>>>(__VA_ARGS__); break;                    \
        case 12: kernel<1, 2><<<grid, (s).threads, 0, cuda_stream()>>>(__VA_ARGS__); break;                    \
        default: kernel<1, 4><<<grid, (s).threads, 0, cuda_stream()>>>(__VA_ARGS__); break;                    \
        }                                                                                                      \
        LAUNCH_CHECK();                                                                                        \
    } while (0)

void cuda_rmsnorm_forward(void *y, float *rrms, const void *x, const void *w, int T, int D, float eps)
{
    RowShape s = row_shape(D, y, x, w, NULL);
    ROW_LAUNCH(rmsnorm_forward_kernel, row_blocks(T, ROW_BLOCKS_FWD), s, (bf16 *)y, rrms, (const bf16 *)x,
               (const bf16 *)w, T, D, eps);
}

void cuda_rmsnorm_backward(void *dx, float *dw, const void *dy, const void *x, const float *rrms, const void *w,
                           int T, int D, int mode)
{
    RowShape s = row_shape(D, dx, dy, x, w);
    int nb = row_blocks(T, ROW_BLOCKS);
    float *part = (float *)cuda_scratch(SCRATCH_PARTIALS, (size_t)nb * D * sizeof(float));
    ROW_LAUNCH(rmsnorm_backward_kernel, nb, s, (bf16 *)dx, part, (const bf16 *)dy, (const bf16 *)x, rrms,
               (const bf16 *)w, T, D, mode & GRAD_ADD);
    cuda_add_partials(dw, part, nb, D, D, mode);
}

void cuda_layernorm_forward(void *y, float *mean, float *rstd, const void *x, const void *w, const void *b, int T,
                            int D, float eps)
{
    RowShape s = row_shape(D, y, x, w, b);
    ROW_LAUNCH(layernorm_forward_kernel, row_blocks(T, ROW_BLOCKS_FWD), s, (bf16 *)y, mean, rstd, (const bf16 *)x,
               (const bf16 *)w, (const bf16 *)b, T, D, eps);
}

void cuda_layernorm_backward(void *dx, float *dw, float *db, const void *dy, const void *x, const float *mean,
                             const float *rstd, const void *w, int T, int D, int mode)
{
    RowShape s = row_shape(D, dx, dy, x, w);
    int nb = row_blocks(T, ROW_BLOCKS);
    float *part = (float *)cuda_scratch(SCRATCH_PARTIALS, (size_t)nb * 2 * D * sizeof(float));
    ROW_LAUNCH(layernorm_backward_kernel, nb, s, (bf16 *)dx, part, (const bf16 *)dy, (const bf16 *)x, mean, rstd,
               (const bf16 *)w, T, D, mode & GRAD_ADD);
    cuda_add_partials(dw, part, nb, D, 2 * (size_t)D, mode); /* partial rows are [dw | db] */
    cuda_add_partials(db, part + D, nb, D, 2 * (size_t)D, mode);
}
