/* qk.cu: queries and keys from the shared projection (spec section 2 steps 4, 5, 8): per-head RMS
   norm, affine (1 + gamma) / sqrt(dz) + beta (row 0 q, row 1 k), RoPE on pairs (2i, 2i+1) at the
   position inside the chunk. One warp per (token, head), a lane per RoPE pair (QK_P pairs each),
   fp32 in between. Backward overwrites dzs or adds to it (acc), and sums dgamma, dbeta per warp
   in registers, then over the block's warps in shared memory (in a fixed order), then over blocks. */
#include "kernels/cuda/cuda.cuh"

#define QK_P 4     /* pairs per lane: dz <= 256 */
#define QK_WARPS 8 /* warps per block */
#define QK_GRID 256 /* the backward's blocks over all heads at most (a row of partial sums each): two an
                       SM. 128 per head left one head's per-token latency exposed (8 warps an SM, 6x
                       its memory floor at H = 1), 1024 per head ran 15% slower at H = 2 (H100) */

__global__ void qk_forward_kernel(bf16 *q, bf16 *k, float *rstd, const bf16 *zs, const bf16 *gamma,
                                  const bf16 *beta, int T, int L, int H, int dz, int C, float log2_base, float eps)
{
    const int lane = threadIdx.x % 32, h = blockIdx.y, Z = H * dz, np = dz / 2;
    const float sq = rsqrtf((float)dz);
    for (int tok = blockIdx.x * QK_WARPS + threadIdx.x / 32; tok < T; tok += gridDim.x * QK_WARPS) {
        const size_t off = (size_t)tok * Z + (size_t)h * dz;
        float2 z[QK_P];
        float ss = 0;
#pragma unroll
        for (int i = 0; i < QK_P; i++) {
            int j = lane + 32 * i;
            z[i] = j < np ? __bfloat1622float2(*(const __nv_bfloat162 *)(zs + off + 2 * j)) : make_float2(0, 0);
            ss += z[i].x * z[i].x + z[i].y * z[i].y;
        }
        const float r = rsqrtf(warp_sum(ss) / dz + eps);
        if (lane == 0)
            rstd[(size_t)tok * H + h] = r;
        const int pos = tok % L % C;
#pragma unroll
        for (int i = 0; i < QK_P; i++) {
            int j = lane + 32 * i;
            if (j >= np)
                continue;
            const float2 cs = rope_cs(pos, j, dz, log2_base);
            const float z0 = z[i].x * r, z1 = z[i].y * r;
            for (int row = 0; row < 2; row++) {
                const int e = row * Z + h * dz + 2 * j;
                float a = z0 * (1.0f + bf(gamma[e])) * sq + bf(beta[e]);
                float b = z1 * (1.0f + bf(gamma[e + 1])) * sq + bf(beta[e + 1]);
                *(__nv_bfloat162 *)((row ? k : q) + off + 2 * j) = __floats2bfloat162_rn(a * cs.x - b * cs.y,
                                                                                          a * cs.y + b * cs.x);
            }
        }
    }
}

/* what a lane reads for one (token, head) of the backward: its pairs of zs, dq and dk */
struct QkBackIn {
    __nv_bfloat162 z[QK_P], g[2][QK_P];
};

__device__ __forceinline__ void qk_back_load(QkBackIn &in, const bf16 *zs, const bf16 *dq, const bf16 *dk, size_t off,
                                             int lane, int np)
{
#pragma unroll
    for (int i = 0; i < QK_P; i++) {
        const int j = lane + 32 * i;
        if (j < np) {
            in.z[i] = *(const __nv_bfloat162 *)(zs + off + 2 * j);
            in.g[0][i] = *(const __nv_bfloat162 *)(dq + off + 2 * j);
            in.g[1][i] = *(const __nv_bfloat162 *)(dk + off + 2 * j);
        }
    }
}

/* part: one row per block, [dgamma (2, Z) | dbeta (2, Z)]. A warp walks its tokens with the next
   token's loads issued before the current one's arithmetic: each step's chain (loads, the warp's
   sum, the store) left the kernel latency-bound at a few warps an SM. */
__global__ void qk_backward_kernel(bf16 *dzs, float *part, const bf16 *dq, const bf16 *dk, const bf16 *zs,
                                   const float *rstd, const bf16 *gamma, int T, int L, int H, int dz, int C,
                                   float log2_base, int acc)
{
    __shared__ float red[QK_WARPS][4][64 * QK_P]; /* each warp's dgamma (2 rows), dbeta (2 rows) */
    const int lane = threadIdx.x % 32, w = threadIdx.x / 32, h = blockIdx.y, Z = H * dz, np = dz / 2;
    const int stride = gridDim.x * QK_WARPS;
    const float sq = rsqrtf((float)dz);
    float dg[2][QK_P][2] = {}, db[2][QK_P][2] = {};
    QkBackIn cur, next;
    int tok = blockIdx.x * QK_WARPS + w;
    if (tok < T)
        qk_back_load(cur, zs, dq, dk, (size_t)tok * Z + (size_t)h * dz, lane, np);
    for (; tok < T; tok += stride) {
        const size_t off = (size_t)tok * Z + (size_t)h * dz;
        if (tok + stride < T)
            qk_back_load(next, zs, dq, dk, off + (size_t)stride * Z, lane, np);
        const float r = rstd[(size_t)tok * H + h];
        const int pos = tok % L % C;
        float2 zn[QK_P], dzn[QK_P];
        float dot = 0;
#pragma unroll
        for (int i = 0; i < QK_P; i++) {
            int j = lane + 32 * i;
            zn[i] = dzn[i] = make_float2(0, 0);
            if (j >= np)
                continue;
            float2 z = __bfloat1622float2(cur.z[i]);
            zn[i] = make_float2(z.x * r, z.y * r);
            const float2 cs = rope_cs(pos, j, dz, log2_base);
#pragma unroll
            for (int row = 0; row < 2; row++) {
                const int e = row * Z + h * dz + 2 * j;
                float2 g = __bfloat1622float2(cur.g[row][i]);
                /* un-rotate: the gradient of the pre-RoPE pair */
                float ga = g.x * cs.x + g.y * cs.y, gb = -g.x * cs.y + g.y * cs.x;
                db[row][i][0] += ga;
                db[row][i][1] += gb;
                dg[row][i][0] += ga * zn[i].x * sq;
                dg[row][i][1] += gb * zn[i].y * sq;
                dzn[i].x += ga * (1.0f + bf(gamma[e])) * sq;
                dzn[i].y += gb * (1.0f + bf(gamma[e + 1])) * sq;
            }
            dot += dzn[i].x * zn[i].x + dzn[i].y * zn[i].y;
        }
        dot = warp_sum(dot) / dz;
#pragma unroll
        for (int i = 0; i < QK_P; i++) {
            int j = lane + 32 * i;
            if (j >= np)
                continue;
            __nv_bfloat162 *p = (__nv_bfloat162 *)(dzs + off + 2 * j);
            const float2 old = acc ? __bfloat1622float2(*p) : make_float2(0, 0);
            *p = __floats2bfloat162_rn(old.x + r * (dzn[i].x - zn[i].x * dot), old.y + r * (dzn[i].y - zn[i].y * dot));
        }
        cur = next;
    }
#pragma unroll
    for (int i = 0; i < QK_P; i++) {
        int j = lane + 32 * i;
        if (j >= np)
            continue;
        for (int rw = 0; rw < 2; rw++)
            for (int e = 0; e < 2; e++) {
                red[w][rw][2 * j + e] = dg[rw][i][e];
                red[w][2 + rw][2 * j + e] = db[rw][i][e];
            }
    }
    __syncthreads();
    float *row = part + (size_t)blockIdx.x * 4 * Z + (size_t)h * dz;
    for (int c = threadIdx.x; c < 4 * dz; c += blockDim.x) {
        float sum = 0;
        for (int v = 0; v < QK_WARPS; v++)
            sum += red[v][c / dz][c % dz];
        row[(size_t)(c / dz) * Z + c % dz] = sum;
    }
}

static void qk_check(int dz)
{
    if (dz % 2 || dz > 64 * QK_P)
        fail("qk: head dim dz = %d (RoPE needs it even; the CUDA kernel takes at most %d)", dz, 64 * QK_P);
}

static int qk_blocks(int T, int H)
{
    const int n = (T + QK_WARPS - 1) / QK_WARPS, most = QK_GRID / H > 0 ? QK_GRID / H : 1;
    return n < most ? n : most;
}

void cuda_qk_forward(void *q, void *k, float *rstd, const void *zs, const void *gamma, const void *beta, int B,
                     int L, int H, int dz, int C, float rope_base, float eps)
{
    qk_check(dz);
    const int T = B * L;
    qk_forward_kernel<<<dim3(ceil_div(T, QK_WARPS), H), 32 * QK_WARPS, 0, cuda_stream()>>>(
        (bf16 *)q, (bf16 *)k, rstd, (const bf16 *)zs, (const bf16 *)gamma, (const bf16 *)beta, T, L, H, dz, C,
        log2f(rope_base), eps);
    LAUNCH_CHECK();
}

void cuda_qk_backward(void *dzs, float *dgamma, float *dbeta, void *dq, void *dk, const void *zs,
                      const float *rstd, const void *gamma, int B, int L, int H, int dz, int C, float rope_base,
                      int mode)
{
    qk_check(dz);
    const int T = B * L, Z = H * dz, nb = qk_blocks(T, H);
    float *part = (float *)cuda_scratch(SCRATCH_PARTIALS, (size_t)nb * 4 * Z * sizeof(float));
    qk_backward_kernel<<<dim3(nb, H), 32 * QK_WARPS, 0, cuda_stream()>>>(
        (bf16 *)dzs, part, (const bf16 *)dq, (const bf16 *)dk, (const bf16 *)zs, rstd, (const bf16 *)gamma, T, L, H, dz,
        C, log2f(rope_base), mode & GRAD_ADD);
    LAUNCH_CHECK();
    cuda_add_partials(dgamma, part, nb, 2 * Z, 4 * (size_t)Z, mode);
    cuda_add_partials(dbeta, part + 2 * Z, nb, 2 * Z, 4 * (size_t)Z, mode);
}
