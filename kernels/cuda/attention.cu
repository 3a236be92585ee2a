/* attention.cu: chunk-local causal softmax attention (spec section 5), scale 1, through strided
   batched cuBLASLt GEMMs over the chunks of one head: S = Q K^T (fp32), a fused causal softmax
   that writes P (bf16, zero above the diagonal) and the log-sum-exp, O = P V. Backward recomputes
   S and P from the saved log-sum-exp, then dV += P^T dO, dP = dO V^T, dS = P (dP - rowsum(dO O))
   (fused with that row sum), dQ += dS K, dK += dS^T Q. The C x C score and probability buffers are
   scratch for at most ATTN_SCRATCH bytes of chunks at a time.

   Column-major views (cuBLASLt): a chunk's rows of Q (n x dz, row stride Z) are the matrix
   Q' (dz x n, ld Z); S' (n x n) holds S transposed, i.e. S row i is contiguous. */
#include "kernels/cuda/cuda.cuh"

#define ATTN_SCRATCH ((size_t)512 << 20) /* bytes of S (fp32) + P (bf16) per batch of chunks */
#define ATTN_WARPS 8

/* nb chunks of n rows of one head: chunk c starts at token t0 + c * st */
typedef struct {
    int nb, n, t0, st, h;
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

/* one warp per row: causal softmax of S row i (j <= i) into P, zeros above; lse per row */
__global__ void attn_softmax_kernel(bf16 *P, float *lse, const float *S, int rows, int n, int t0, int st, int L,
                                    int H, int h)
{
    const int r = blockIdx.x * ATTN_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (r >= rows)
        return;
    const int i = r % n;
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
    for (int j = lane; j < n; j += 32)
        p[j] = tobf(j <= i ? __expf(s[j] - m) * inv : 0.0f);
    if (lane == 0) {
        int tok = attn_token(r, n, t0, st);
        lse[((size_t)(tok / L) * H + h) * L + tok % L] = m + logf(sum);
    }
}

/* backward: P = exp(S - lse) recomputed (j <= i), zeros above */
__global__ void attn_probs_kernel(bf16 *P, const float *S, const float *lse, int rows, int n, int t0, int st, int L,
                                  int H, int h)
{
    const int r = blockIdx.x * ATTN_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (r >= rows)
        return;
    const int i = r % n, tok = attn_token(r, n, t0, st);
    const float l = lse[((size_t)(tok / L) * H + h) * L + tok % L];
    const float *s = S + (size_t)r * n;
    bf16 *p = P + (size_t)r * n;
    for (int j = lane; j < n; j += 32)
        p[j] = tobf(j <= i ? __expf(s[j] - l) : 0.0f);
}

/* backward: dS = P (dP - sum_e dO O) over row i, written over P */
__global__ void attn_dscores_kernel(bf16 *P, const float *dP, const bf16 *dO, const bf16 *O, int rows, int n, int t0,
                                    int st, int V, int dv, int h)
{
    const int r = blockIdx.x * ATTN_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (r >= rows)
        return;
    const int i = r % n, tok = attn_token(r, n, t0, st);
    const bf16 *go = dO + (size_t)tok * V + (size_t)h * dv, *o = O + (size_t)tok * V + (size_t)h * dv;
    float dot = 0;
    if (dv % 2 == 0)
        for (int e = 2 * lane; e < dv; e += 64) {
            float2 a = __bfloat1622float2(*(const __nv_bfloat162 *)(go + e)),
                   b = __bfloat1622float2(*(const __nv_bfloat162 *)(o + e));
            dot += a.x * b.x + a.y * b.y;
        }
    else
        for (int e = lane; e < dv; e += 32)
            dot += bf(go[e]) * bf(o[e]);
    dot = warp_sum(dot);
    const float *dp = dP + (size_t)r * n;
    bf16 *p = P + (size_t)r * n;
    for (int j = lane; j <= i; j += 32)
        p[j] = tobf(bf(p[j]) * (dp[j] - dot));
}

/* chunks of c rows whose S and P fit in ATTN_SCRATCH (at least one) */
static int attn_maxb(int c)
{
    size_t m = ATTN_SCRATCH / ((size_t)c * c * (sizeof(float) + sizeof(bf16)));
    return m < 1 ? 1 : m > 65535 ? 65535 : (int)m;
}

/* Calls f(group) for every batch of chunks of head h that share a length and a stride: all
   B * L / c chunks when c divides L, else per sequence the whole chunks, then the tail. */
template <class F> static void attn_groups(int B, int L, int C, int h, AttnGroup base, F f)
{
    const int c = L < C ? L : C, nfull = L / c, tail = L % c, maxb = attn_maxb(c);
    base.h = h;
    const int seqs = tail ? B : 1, per = tail ? nfull : B * nfull; /* chunk runs of uniform stride */
    for (int s = 0; s < seqs; s++) {
        for (int c0 = 0; c0 < per; c0 += maxb) {
            AttnGroup g = base;
            g.n = c, g.st = c, g.t0 = s * L + c0 * c, g.nb = per - c0 < maxb ? per - c0 : maxb;
            f(&g);
        }
        if (tail) {
            AttnGroup g = base;
            g.n = tail, g.st = L, g.t0 = s * L + nfull * c, g.nb = 1;
            f(&g);
        }
    }
}

/* S = Q K^T for the group into g->S */
static void attn_scores(const AttnGroup *g, const bf16 *q, const bf16 *k)
{
    const int Z = g->H * g->dz;
    const size_t off = (size_t)g->t0 * Z + (size_t)g->h * g->dz;
    attn_gemm(g, g->n, g->n, g->dz, 1, k + off, Z, (long long)g->st * Z, 0, q + off, Z, (long long)g->st * Z, g->S,
              g->n, (long long)g->n * g->n, CUDA_R_32F, 0.0f);
}

static AttnGroup attn_base(int B, int L, int H, int dz, int dv, int C)
{
    const int c = L < C ? L : C;
    AttnGroup g = {};
    g.B = B, g.L = L, g.H = H, g.dz = dz, g.dv = dv;
    size_t per = (size_t)c * c, nb = attn_maxb(c), total = (size_t)B * ((L + c - 1) / c);
    nb = nb < total ? nb : total;
    g.S = (float *)cuda_scratch(SCRATCH_ATTN_S, nb * per * sizeof(float));
    g.P = (bf16 *)cuda_scratch(SCRATCH_ATTN_P, nb * per * sizeof(bf16));
    return g;
}

void cuda_attention_forward(void *o, float *lse, const void *q, const void *k, const void *v, int B, int L, int H,
                            int dz, int dv, int C)
{
    const int V = H * dv;
    AttnGroup base = attn_base(B, L, H, dz, dv, C);
    for (int h = 0; h < H; h++)
        attn_groups(B, L, C, h, base, [&](const AttnGroup *g) {
            const int rows = g->nb * g->n;
            const size_t voff = (size_t)g->t0 * V + (size_t)h * dv;
            attn_scores(g, (const bf16 *)q, (const bf16 *)k);
            attn_softmax_kernel<<<ceil_div(rows, ATTN_WARPS), 32 * ATTN_WARPS>>>(g->P, lse, g->S, rows, g->n, g->t0,
                                                                                  g->st, L, H, h);
            LAUNCH_CHECK();
            attn_gemm(g, dv, g->n, g->n, 0, (const bf16 *)v + voff, V, (long long)g->st * V, 0, g->P, g->n,
                      (long long)g->n * g->n, (bf16 *)o + voff, V, (long long)g->st * V, CUDA_R_16BF, 0.0f);
        });
}

void cuda_attention_backward(void *dq, void *dk, void *dvalue, const void *dout, const void *q, const void *k,
                             const void *v, const void *o, const float *lse, int B, int L, int H, int dz, int dv,
                             int C)
{
    const int V = H * dv, Z = H * dz;
    AttnGroup base = attn_base(B, L, H, dz, dv, C);
    for (int h = 0; h < H; h++)
        attn_groups(B, L, C, h, base, [&](const AttnGroup *g) {
            const int rows = g->nb * g->n, n = g->n;
            const size_t voff = (size_t)g->t0 * V + (size_t)h * dv, zoff = (size_t)g->t0 * Z + (size_t)h * dz;
            const long long sv = (long long)g->st * V, sz = (long long)g->st * Z, sp = (long long)n * n;
            attn_scores(g, (const bf16 *)q, (const bf16 *)k);
            attn_probs_kernel<<<ceil_div(rows, ATTN_WARPS), 32 * ATTN_WARPS>>>(g->P, g->S, lse, rows, n, g->t0, g->st,
                                                                                L, H, h);
            LAUNCH_CHECK();
            /* dV' += dO' P'^T */
            attn_gemm(g, dv, n, n, 0, (const bf16 *)dout + voff, V, sv, 1, g->P, n, sp, (bf16 *)dvalue + voff, V, sv,
                      CUDA_R_16BF, 1.0f);
            /* dP' = V'^T dO' (into S) */
            attn_gemm(g, n, n, dv, 1, (const bf16 *)v + voff, V, sv, 0, (const bf16 *)dout + voff, V, sv, g->S, n,
                      sp, CUDA_R_32F, 0.0f);
            attn_dscores_kernel<<<ceil_div(rows, ATTN_WARPS), 32 * ATTN_WARPS>>>(
                g->P, g->S, (const bf16 *)dout, (const bf16 *)o, rows, n, g->t0, g->st, V, dv, h);
            LAUNCH_CHECK();
            /* dQ' += K' dS'; dK' += Q' dS'^T */
            attn_gemm(g, dz, n, n, 0, (const bf16 *)k + zoff, Z, sz, 0, g->P, n, sp, (bf16 *)dq + zoff, Z, sz,
                      CUDA_R_16BF, 1.0f);
            attn_gemm(g, dz, n, n, 0, (const bf16 *)q + zoff, Z, sz, 1, g->P, n, sp, (bf16 *)dk + zoff, Z, sz,
                      CUDA_R_16BF, 1.0f);
        });
}
