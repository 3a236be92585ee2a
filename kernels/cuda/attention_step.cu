/* attention_step.cu: one token of chunk attention for recurrent decoding (spec section 13). One
   block per (head, sequence): RoPE of q and k at the token's place in the chunk (each rounded to
   bf16 as qk_forward stores them), k and v into row pos of the caches, then the scores of rows
   0..pos (a warp per row) and their softmax in fp32 shared memory, and the weighted sum of the
   value rows (a thread per value feature). */
#include "kernels/cuda/cuda.cuh"

#define STEP_THREADS 128
#define STEP_SHARED (48 << 10) /* bytes of dynamic shared memory: q and the scores, (dz + C) floats */

__global__ void attention_step_kernel(bf16 *o, const bf16 *q, const bf16 *k, const bf16 *v, bf16 *kc, bf16 *vc,
                                      int pos, int H, int dz, int dv, int C, float log2_base)
{
    extern __shared__ float sh[]; /* q (dz) | scores, then probabilities (pos + 1) */
    __shared__ float red[32];
    float *qs = sh, *p = sh + dz;
    const int h = blockIdx.x, b = blockIdx.y, Z = H * dz, V = H * dv;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    const bf16 *qi = q + (size_t)b * Z + (size_t)h * dz, *ki = k + (size_t)b * Z + (size_t)h * dz;
    const bf16 *vi = v + (size_t)b * V + (size_t)h * dv;
    bf16 *kcb = kc + (size_t)b * C * Z + (size_t)h * dz, *vcb = vc + (size_t)b * C * V + (size_t)h * dv;
    for (int j = threadIdx.x; j < dz / 2; j += blockDim.x) {
        const float2 cs = rope_cs(pos, j, dz, log2_base);
        float a = bf(qi[2 * j]), c = bf(qi[2 * j + 1]);
        qs[2 * j] = bf(tobf(a * cs.x - c * cs.y));
        qs[2 * j + 1] = bf(tobf(a * cs.y + c * cs.x));
        a = bf(ki[2 * j]), c = bf(ki[2 * j + 1]);
        kcb[(size_t)pos * Z + 2 * j] = tobf(a * cs.x - c * cs.y);
        kcb[(size_t)pos * Z + 2 * j + 1] = tobf(a * cs.y + c * cs.x);
    }
    for (int e = threadIdx.x; e < dv; e += blockDim.x)
        vcb[(size_t)pos * V + e] = vi[e];
    __syncthreads(); /* the new rows of the caches and q are visible to the whole block */
    for (int j = warp; j <= pos; j += nw) {
        const bf16 *kr = kcb + (size_t)j * Z;
        float s = 0;
        for (int i = lane; i < dz; i += 32)
            s += qs[i] * bf(kr[i]);
        s = warp_sum(s);
        if (lane == 0)
            p[j] = s;
    }
    __syncthreads();
    float m = -INFINITY;
    for (int j = threadIdx.x; j <= pos; j += blockDim.x)
        m = fmaxf(m, p[j]);
    m = warp_max(m);
    if (lane == 0)
        red[warp] = m;
    __syncthreads();
    m = warp_max(lane < nw ? red[lane] : -INFINITY);
    float s = 0;
    for (int j = threadIdx.x; j <= pos; j += blockDim.x)
        s += p[j] = __expf(p[j] - m);
    const float inv = 1.0f / block_sum(s, red); /* syncs: every p[j] is written */
    for (int e = threadIdx.x; e < dv; e += blockDim.x) {
        float acc = 0;
        for (int j = 0; j <= pos; j++)
            acc += p[j] * bf(vcb[(size_t)j * V + e]);
        o[(size_t)b * V + (size_t)h * dv + e] = tobf(acc * inv);
    }
}

void cuda_attention_step(void *o, const void *q, const void *k, const void *v, void *kcache, void *vcache, int pos,
                         int B, int H, int dz, int dv, int C, float rope_base)
{
    const size_t shared = ((size_t)dz + C) * sizeof(float);
    if (pos < 0 || pos >= C || dz % 2 || shared > STEP_SHARED)
        fail("attention_step: position %d of a chunk of %d, head dim %d (even, and dz + C at most %zu)", pos, C, dz,
             STEP_SHARED / sizeof(float));
    attention_step_kernel<<<dim3(H, B), STEP_THREADS, shared, cuda_stream()>>>(
        (bf16 *)o, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, (bf16 *)kcache, (bf16 *)vcache, pos, H, dz, dv,
        C, log2f(rope_base));
    LAUNCH_CHECK();
}
