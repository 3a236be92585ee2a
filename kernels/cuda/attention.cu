/* attention.cu: chunk-local causal softmax attention (spec section 5), scale 1, through strided
   batched cuBLASLt GEMMs over the chunks of one head: S = Q K^T (fp32), a fused causal softmax
   that writes P (bf16) and the log-sum-exp, O = P V. Backward recomputes S and P from the saved
   log-sum-exp, then dV (+)= P^T dO, dP = dO V^T, dS = P (dP - rowsum(P dP)) (fused with that row
   sum), dQ (+)= dS K, dK (+)= dS^T Q, each row block of dQ, dK, dV written by one GEMM (beta 1 to
   accumulate, 0 to overwrite). The C x C score and probability buffers are scratch for at most
   SCRATCH_ATTN bytes of chunks at a time (kernels/scratch.h).

   Causal blocks: a chunk's n rows are cut into nblk blocks of bs rows; query block i only sees key
   blocks 0..i, so each GEMM runs per block over just that triangle (for nblk = 4, 10 of 16
   blocks), and the softmax kernels touch only those blocks (zeros above the diagonal inside the
   diagonal blocks). Blocks that would leave the GPU's SMs idle are not cut (attn_nblk).

   Column-major views (cuBLASLt): a chunk's rows of Q (n x dz, row stride Z) are the matrix
   Q' (dz x n, ld Z); S' (n x n) holds S transposed (rows are keys, columns queries), i.e. the
   scores of one query are contiguous. */
#include "kernels/cuda/cuda.cuh"

#define ATTN_WARPS 8
#define ATTN_BLOCK 512 /* causal block rows, when they divide the chunk */

/* nb chunks of n rows of one head: chunk c starts at token t0 + c * st */
typedef struct {
    int nb, n, t0, st, h, nblk, bs;
    int B, L, H, dz, dv;
    float *S; /* (nb, n, n) */
    bf16 *P;  /* (nb, n, n) */
} AttnGroup;

/* the GEMM over a group's chunks: operands given by base pointer, leading dim and per-chunk stride */
static void attn_gemm(const AttnGroup *g, int m, int n, int k, int ta, const void *a, int lda, long long sa, int tb,
                      const void *b, int ldb, long long sb, void *d, int ldd, long long sd, cudaDataType_t dt,
                      float beta)
{
    Gemm gm = {.m = m, .n = n, .k = k, .transa = ta, .transb = tb, .a = a, .lda = lda, .stride_a = sa, .b = b,
               .ldb = ldb, .stride_b = sb, .d = d, .ldd = ldd, .stride_d = sd, .dtype_d = dt, .batch = g->nb,
               .beta = beta, .bias = NULL};
    cuda_gemm(&gm);
}

/* token of row r of the group */
__device__ __forceinline__ int attn_token(int r, int n, int t0, int st) { return t0 + r / n * st + r % n; }

/* the keys a query row's GEMMs read: up to the end of its causal block */
__device__ __forceinline__ int attn_extent(int i, int bs) { return (i / bs + 1) * bs; }

/* one warp per row: causal softmax of S row i (j <= i) into P, zeros above up to the end of the
   block; lse per row */
__global__ void attn_softmax_kernel(bf16 *P, float *lse, const float *S, int rows, int n, int bs, int t0, int st,
                                    int L, int H, int h)
{
    const int r = blockIdx.x * ATTN_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (r >= rows)
        return;
    const int i = r % n, ext = attn_extent(i, bs);
    const float *s = S + (size_t)r * n;
    bf16 *p = P + (size_t)r * n;
    float m = -INFINITY;
    for (int j = lane; j <= i; j += 32)
        m = fmaxf(m, s[j]);
    m = warp_max(m);
    float sum = 0;
    for (int j = lane; j <= i; j += 32)
        sum += __expf(s[j] - m);
    sum = warp_sum(sum);
    const float inv = 1.0f / sum;
    for (int j = lane; j < ext; j += 32)
        p[j] = tobf(j <= i ? __expf(s[j] - m) * inv : 0.0f);
    if (lane == 0) {
        int tok = attn_token(r, n, t0, st);
        lse[((size_t)(tok / L) * H + h) * L + tok % L] = m + logf(sum);
    }
}

/* backward: P = exp(S - lse) recomputed (j <= i), zeros above up to the end of the block */
__global__ void attn_probs_kernel(bf16 *P, const float *S, const float *lse, int rows, int n, int bs, int t0, int st,
                                  int L, int H, int h)
{
    const int r = blockIdx.x * ATTN_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (r >= rows)
        return;
    const int i = r % n, ext = attn_extent(i, bs), tok = attn_token(r, n, t0, st);
    const float l = lse[((size_t)(tok / L) * H + h) * L + tok % L];
    const float *s = S + (size_t)r * n;
    bf16 *p = P + (size_t)r * n;
    for (int j = lane; j < ext; j += 32)
        p[j] = tobf(j <= i ? __expf(s[j] - l) : 0.0f);
}

/* backward: dS = P (dP - D) over row i (j <= i), written over P, with D = sum_j P dP: the same as
   sum_e dO O (O = P V, dP = dO V^T) but from the row itself, so the head's dv values of dO and O
   (more bytes than the row for dv = 2048) are not read. One warp per row, which it reads twice (the
   second time from cache), RV values per load (4: 16 bytes of dP and 8 of P, when n is a multiple
   of 4). Rows are P's and dP's up to the end of the causal block, a multiple of 4 on that path, so
   the last load of a row stays inside it; the values past i (P's zeros) are written back unchanged. */
template <int RV> __device__ __forceinline__ void attn_row_load(float (&x)[RV], float (&g)[RV], const bf16 *p, const float *dp)
{
    load_bf<RV>(x, p);
    if constexpr (RV == 4) {
        const float4 d = *reinterpret_cast<const float4 *>(dp);
        g[0] = d.x, g[1] = d.y, g[2] = d.z, g[3] = d.w;
    } else {
        g[0] = dp[0];
    }
}

template <int RV> __global__ void attn_dscores_kernel(bf16 *P, const float *dP, int rows, int n)
{
    const int r = blockIdx.x * ATTN_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (r >= rows)
        return;
    const int i = r % n;
    const float *dp = dP + (size_t)r * n;
    bf16 *p = P + (size_t)r * n;
    float dot = 0;
    for (int j = lane * RV; j <= i; j += 32 * RV) {
        float x[RV], g[RV];
        attn_row_load<RV>(x, g, p + j, dp + j);
#pragma unroll
        for (int k = 0; k < RV; k++)
            dot += x[k] * g[k]; /* P is zero past i */
    }
    dot = warp_sum(dot);
    for (int j = lane * RV; j <= i; j += 32 * RV) {
        float x[RV], g[RV];
        attn_row_load<RV>(x, g, p + j, dp + j);
#pragma unroll
        for (int k = 0; k < RV; k++)
            if (j + k <= i)
                x[k] = x[k] * (g[k] - dot);
        store_bf<RV>(p + j, x);
    }
}

/* Causal blocks of a chunk of n rows in a batch of nb chunks: 4 or 2 when they are ATTN_BLOCK-
   aligned and large, and the first block's GEMMs (bs x bs per chunk) still have ATTN_FILL output
   elements. Fewer blocks compute more of the masked triangle (all of it with one block), but in
   larger GEMMs: at one sequence of 4K (2 chunks of 2048 per head) blocks of 512 made GEMMs of 16 to
   64 tiles of 128 x 128 for the GPU's 132 SMs. */
#define ATTN_FILL (128 * 128 * 128)
static int attn_nblk(int n, int nb)
{
    for (int b = 4; b > 1; b /= 2)
        if (n % b == 0 && n / b >= ATTN_BLOCK / 2 && (n / b) % 64 == 0 &&
            (long long)nb * (n / b) * (n / b) >= ATTN_FILL)
            return b;
    return 1;
}

/* Calls f(group) for every batch of chunks of head h that share a length and a stride: all
   B * L / c chunks when c divides L, else per sequence the whole chunks, then the tail. */
template <class F> static void attn_groups(int B, int L, int C, int h, AttnGroup base, F f)
{
    const int c = L < C ? L : C, nfull = L / c, tail = L % c, maxb = scratch_attn_maxb(c);
    base.h = h;
    const int seqs = tail ? B : 1, per = tail ? nfull : B * nfull; /* chunk runs of uniform stride */
    for (int s = 0; s < seqs; s++) {
        for (int c0 = 0; c0 < per; c0 += maxb) {
            AttnGroup g = base;
            g.n = c, g.st = c, g.t0 = s * L + c0 * c, g.nb = per - c0 < maxb ? per - c0 : maxb;
            g.nblk = attn_nblk(c, g.nb), g.bs = c / g.nblk;
            f(&g);
        }
        if (tail) {
            AttnGroup g = base;
            g.n = tail, g.st = L, g.t0 = s * L + nfull * c, g.nb = 1;
            g.nblk = attn_nblk(tail, 1), g.bs = tail / g.nblk;
            f(&g);
        }
    }
}

/* S' = K'^T Q' for the group into g->S, query block by block (keys up to the block's end) */
static void attn_scores(const AttnGroup *g, const bf16 *q, const bf16 *k)
{
    const int Z = g->H * g->dz, n = g->n, bs = g->bs;
    const size_t off = (size_t)g->t0 * Z + (size_t)g->h * g->dz;
    const long long sz = (long long)g->st * Z, sp = (long long)n * n;
    for (int i = 0; i < g->nblk; i++)
        attn_gemm(g, (i + 1) * bs, bs, g->dz, 1, k + off, Z, sz, 0, q + off + (size_t)i * bs * Z, Z, sz,
                  g->S + (size_t)i * bs * n, n, sp, CUDA_R_32F, 0.0f);
}

static AttnGroup attn_base(int B, int L, int H, int dz, int dv, int C)
{
    AttnGroup g = {};
    g.B = B, g.L = L, g.H = H, g.dz = dz, g.dv = dv;
    g.S = (float *)cuda_scratch(SCRATCH_ATTN_S, scratch_attn_s(B, L, C));
    g.P = (bf16 *)cuda_scratch(SCRATCH_ATTN_P, scratch_attn_p(B, L, C));
    return g;
}

void cuda_attention_forward(void *o, float *lse, const void *q, const void *k, const void *v, int B, int L, int H,
                            int dz, int dv, int C)
{
    const int V = H * dv;
    AttnGroup base = attn_base(B, L, H, dz, dv, C);
    for (int h = 0; h < H; h++)
        attn_groups(B, L, C, h, base, [&](const AttnGroup *g) {
            const int rows = g->nb * g->n, n = g->n, bs = g->bs;
            const size_t voff = (size_t)g->t0 * V + (size_t)h * dv;
            const long long sv = (long long)g->st * V, sp = (long long)n * n;
            attn_scores(g, (const bf16 *)q, (const bf16 *)k);
            attn_softmax_kernel<<<ceil_div(rows, ATTN_WARPS), 32 * ATTN_WARPS, 0, cuda_stream()>>>(
                g->P, lse, g->S, rows, n, bs, g->t0, g->st, L, H, h);
            LAUNCH_CHECK();
            /* O' (query block i) = V' (keys to the block's end) P' */
            for (int i = 0; i < g->nblk; i++)
                attn_gemm(g, dv, bs, (i + 1) * bs, 0, (const bf16 *)v + voff, V, sv, 0, g->P + (size_t)i * bs * n, n,
                          sp, (bf16 *)o + voff + (size_t)i * bs * V, V, sv, CUDA_R_16BF, 0.0f);
        });
}

/* dS over the group's rows (attn_dscores_kernel), with wide loads where the rows allow */
static void attn_dscores(const AttnGroup *g, int rows)
{
    const dim3 grid(ceil_div(rows, ATTN_WARPS)), block(32 * ATTN_WARPS);
    if (g->n % 4 == 0 && aligned16(g->S, g->P))
        attn_dscores_kernel<4><<<grid, block, 0, cuda_stream()>>>(g->P, g->S, rows, g->n);
    else
        attn_dscores_kernel<1><<<grid, block, 0, cuda_stream()>>>(g->P, g->S, rows, g->n);
    LAUNCH_CHECK();
}

/* o: the CPU reference's row sum reads it; here dS takes the row sum from P and dP */
void cuda_attention_backward(void *dq, void *dk, void *dvalue, const void *dout, const void *q, const void *k,
                             const void *v, const void *o, const float *lse, int B, int L, int H, int dz, int dv,
                             int C, int accumulate)
{
    const int V = H * dv, Z = H * dz;
    const float beta = accumulate ? 1.0f : 0.0f;
    AttnGroup base = attn_base(B, L, H, dz, dv, C);
    for (int h = 0; h < H; h++)
        attn_groups(B, L, C, h, base, [&](const AttnGroup *g) {
            const int rows = g->nb * g->n, n = g->n, bs = g->bs, nblk = g->nblk;
            const size_t voff = (size_t)g->t0 * V + (size_t)h * dv, zoff = (size_t)g->t0 * Z + (size_t)h * dz;
            const long long sv = (long long)g->st * V, sz = (long long)g->st * Z, sp = (long long)n * n;
            const bf16 *Q = (const bf16 *)q + zoff, *K = (const bf16 *)k + zoff, *Vv = (const bf16 *)v + voff;
            const bf16 *dO = (const bf16 *)dout + voff;
            bf16 *dQ = (bf16 *)dq + zoff, *dK = (bf16 *)dk + zoff, *dV = (bf16 *)dvalue + voff;
            attn_scores(g, (const bf16 *)q, (const bf16 *)k);
            attn_probs_kernel<<<ceil_div(rows, ATTN_WARPS), 32 * ATTN_WARPS, 0, cuda_stream()>>>(
                g->P, g->S, lse, rows, n, bs, g->t0, g->st, L, H, h);
            LAUNCH_CHECK();
            for (int j = 0; j < nblk; j++) {
                /* dV' (key block j) (+)= dO' (queries from the block on) P'^T */
                const size_t pj = (size_t)j * bs * n + (size_t)j * bs;
                attn_gemm(g, dv, bs, n - j * bs, 0, dO + (size_t)j * bs * V, V, sv, 1, g->P + pj, n, sp,
                          dV + (size_t)j * bs * V, V, sv, CUDA_R_16BF, beta);
            }
            for (int i = 0; i < nblk; i++) /* dP' (query block i) = V'^T dO' (into S) */
                attn_gemm(g, (i + 1) * bs, bs, dv, 1, Vv, V, sv, 0, dO + (size_t)i * bs * V, V, sv,
                          g->S + (size_t)i * bs * n, n, sp, CUDA_R_32F, 0.0f);
            attn_dscores(g, rows);

            for (int i = 0; i < nblk; i++) /* dQ' (query block i) (+)= K' dS' */
                attn_gemm(g, dz, bs, (i + 1) * bs, 0, K, Z, sz, 0, g->P + (size_t)i * bs * n, n, sp,
                          dQ + (size_t)i * bs * Z, Z, sz, CUDA_R_16BF, beta);
            for (int j = 0; j < nblk; j++) { /* dK' (key block j) (+)= Q' (queries from the block on) dS'^T */
                const size_t pj = (size_t)j * bs * n + (size_t)j * bs;
                attn_gemm(g, dz, bs, n - j * bs, 0, Q + (size_t)j * bs * Z, Z, sz, 1, g->P + pj, n, sp,
                          dK + (size_t)j * bs * Z, Z, sz, CUDA_R_16BF, beta);
            }
        });
}
