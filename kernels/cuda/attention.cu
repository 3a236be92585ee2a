/* attention.cu: chunk-local causal softmax attention (spec section 5), scale 1, through strided
   batched cuBLASLt GEMMs over the chunks of one head: S = Q K^T (fp32), a fused causal softmax
   that writes P (bf16) and the log-sum-exp, O = P V. Backward recomputes S and P from the saved
   log-sum-exp, then dV (+)= P^T dO, dP = dO V^T, dS = P (dP - rowsum(P dP)) (fused with that row
   sum), dQ (+)= dS K, dK (+)= dS^T Q, each row block of dQ, dK, dV written by one GEMM (beta 1 to
   accumulate, 0 to overwrite). The C x C score and probability buffers are scratch for at most
   SCRATCH_ATTN bytes of chunks at a time (kernels/scratch.h). Given a saved buffer
   (scratch_attn_saved), the forward writes P there instead and the backward neither computes S
   nor P again. Both compute P as exp(S - lse), so a kept P has the bits of a recomputed one.

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
    float *S;     /* (nb, n, n) */
    bf16 *P;      /* (nb, n, n) */
    bf16 *saved;  /* all chunks' kept P (scratch_attn_saved's layout), or NULL */
    bf16 *kept;   /* the group's chunks in it (nb, n, n), or NULL */
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

/* ---- the score rows: one warp per row, the row in registers ----
   A lane holds ATTN_PIECE loads of RV values (RV = 4: 16 bytes of fp32, 8 of bf16), lane-interleaved,
   so a warp holds a piece of 32 RV ATTN_PIECE columns of the row (2048 for RV = 4: a whole chunk of
   the presets). A row is read from memory once when it fits one piece; longer rows are walked piece
   by piece and read again for the write. The GEMMs wrote the row up to the end of its causal block
   (ext, a multiple of RV on the wide path); the kernels read only the loads that start at or below
   the diagonal i. */
#define ATTN_PIECE 16

/* RV consecutive values of a row, one access */
template <class T, int RV> struct alignas(sizeof(T) * RV) AttnVec {
    T v[RV];
};
__device__ __forceinline__ float attn_f(float v) { return v; }
__device__ __forceinline__ float attn_f(bf16 v) { return bf(v); }

/* the piece starting at column j0: x[u] = row[j0 + (32 u + lane) RV ..], loads starting below lim */
template <class T, int RV>
__device__ __forceinline__ void attn_load(AttnVec<T, RV> (&x)[ATTN_PIECE], const T *row, int j0, int lim)
{
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int u = 0; u < ATTN_PIECE; u++) {
        const int j = j0 + (32 * u + lane) * RV;
        if (j < lim)
            x[u] = *reinterpret_cast<const AttnVec<T, RV> *>(row + j);
    }
}

/* column of value e of load u of the piece at j0 */
template <int RV> __device__ __forceinline__ int attn_col(int j0, int u, int e)
{
    return j0 + (32 * u + threadIdx.x % 32) * RV + e;
}

/* Writes row i of a score-shaped output up to column end (past i: zeros), piece by piece from the
   last; load(j0) brings the piece at j0 into the caller's registers unless it is the one still
   held there, value(u, e) is the output at load u, value e of that piece (j <= i). */
template <int RV, class Load, class Value>
__device__ __forceinline__ void attn_write_row(bf16 *out, int i, int end, int held, Load load, Value value)
{
    constexpr int W = 32 * RV * ATTN_PIECE;
    for (int pc = (end - 1) / W; pc >= 0; pc--) {
        const int j0 = pc * W;
        if (pc != held)
            load(j0);
#pragma unroll
        for (int u = 0; u < ATTN_PIECE; u++) {
            const int j = attn_col<RV>(j0, u, 0);
            if (j >= end)
                continue;
            float v[RV];
#pragma unroll
            for (int e = 0; e < RV; e++)
                v[e] = j + e <= i ? value(u, e) : 0.0f;
            store_bf<RV>(out + j, v);
        }
    }
}

/* P row i = exp(S - lse) over j <= i, zeros above up to the end of the block. FWD: lse = m +
   log(sum), the row's max and sum of exp from each lane's running pair (ml, sum), is written, and
   the last piece read is still in registers for the write; else (the backward) lse is read. The
   same formula both ways gives a recomputed P the forward's bits. Two blocks an SM (128 registers,
   a few spilled): with one (167 registers) the forward ran 10% slower than the two-read kernel it
   replaced (H100). */
template <int RV, bool FWD>
__global__ void __launch_bounds__(32 * ATTN_WARPS, 2)
    attn_softmax_kernel(bf16 *P, float *lse, const float *S, int rows, int n, int bs, int t0, int st, int L, int H,
                        int h)
{
    constexpr int W = 32 * RV * ATTN_PIECE;
    const int r = blockIdx.x * ATTN_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (r >= rows)
        return;
    const int i = r % n, ext = attn_extent(i, bs), tok = attn_token(r, n, t0, st);
    float *l = lse + ((size_t)(tok / L) * H + h) * L + tok % L;
    const float *s = S + (size_t)r * n;
    bf16 *p = P + (size_t)r * n;
    AttnVec<float, RV> x[ATTN_PIECE];
    const int held = FWD ? i / W : -1; /* the piece left in registers */
    float ml = -INFINITY, sum = 0.0f;
    for (int j0 = 0; FWD && j0 <= i; j0 += W) {
        attn_load(x, s, j0, i + 1);
        float pm = ml;
#pragma unroll
        for (int u = 0; u < ATTN_PIECE; u++)
#pragma unroll
            for (int e = 0; e < RV; e++)
                pm = attn_col<RV>(j0, u, e) <= i ? fmaxf(pm, x[u].v[e]) : pm;
        if (pm == -INFINITY) /* nothing of the row in this lane yet */
            continue;
        sum *= __expf(ml - pm);
#pragma unroll
        for (int u = 0; u < ATTN_PIECE; u++) {
            float t = 0.0f;
#pragma unroll
            for (int e = 0; e < RV; e++)
                t += attn_col<RV>(j0, u, e) <= i ? __expf(x[u].v[e] - pm) : 0.0f;
            sum += t;
        }
        ml = pm;
    }
    float m;
    if (FWD) {
        m = warp_max(ml);
        sum = warp_sum(ml == -INFINITY ? 0.0f : sum * __expf(ml - m));
        m += logf(sum);
        if (lane == 0)
            *l = m;
    } else {
        m = *l;
    }
    attn_write_row<RV>(
        p, i, ext, held, [&](int j0) { attn_load(x, s, j0, i + 1); },
        [&](int u, int e) { return __expf(x[u].v[e] - m); });
}

/* backward: dS = P (dP - D) over row i (j <= i), with D = sum_j P dP: the same as sum_e dO O
   (O = P V, dP = dO V^T) but from the row itself, so the head's dv values of dO and O (more bytes
   than the row for dv = 2048) are not read. Written over P (P's zeros past i stay), or into dS with
   zeros up to the end of the block. */
template <int RV>
__global__ void attn_dscores_kernel(bf16 *dS, const bf16 *P, const float *dP, int rows, int n, int bs)
{
    constexpr int W = 32 * RV * ATTN_PIECE;
    const int r = blockIdx.x * ATTN_WARPS + threadIdx.x / 32;
    if (r >= rows)
        return;
    const int i = r % n, held = i / W, end = dS == P ? i + 1 : attn_extent(i, bs);
    const float *dp = dP + (size_t)r * n;
    const bf16 *p = P + (size_t)r * n;
    bf16 *ds = dS + (size_t)r * n;
    AttnVec<bf16, RV> x[ATTN_PIECE]; /* P as loaded (bf16); 174 registers, one block an SM, still faster */
    AttnVec<float, RV> g[ATTN_PIECE];
    float dot = 0.0f;
    for (int j0 = 0; j0 <= i; j0 += W) {
        attn_load(x, p, j0, i + 1);
        attn_load(g, dp, j0, i + 1);
#pragma unroll
        for (int u = 0; u < ATTN_PIECE; u++)
#pragma unroll
            for (int e = 0; e < RV; e++)
                dot += attn_col<RV>(j0, u, e) <= i ? attn_f(x[u].v[e]) * g[u].v[e] : 0.0f;
    }
    dot = warp_sum(dot);
    attn_write_row<RV>(
        ds, i, end, held,
        [&](int j0) {
            attn_load(x, p, j0, i + 1);
            attn_load(g, dp, j0, i + 1);
        },
        [&](int u, int e) { return attn_f(x[u].v[e]) * (g[u].v[e] - dot); });
}

/* f(grid, block, std::integral_constant<int, RV>()) launches a row kernel over the group's rows:
   RV = 4 where the rows allow wide accesses (n a multiple of 4, 16-byte aligned S and P), else 1 */
template <class F> static void attn_rows(const AttnGroup *g, F f)
{
    const dim3 grid(ceil_div((size_t)g->nb * g->n, ATTN_WARPS)), block(32 * ATTN_WARPS);
    if (g->n % 4 == 0 && aligned16(g->S, g->P, g->kept))
        f(grid, block, std::integral_constant<int, 4>());
    else
        f(grid, block, std::integral_constant<int, 1>());
    LAUNCH_CHECK();
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

/* the group's slot in the saved P: chunk (t0 / L, (t0 % L) / c) of head h, slots of c x c */
static bf16 *attn_kept(const AttnGroup *g, int c)
{
    const size_t chunks = (g->L + c - 1) / c, first = ((size_t)g->h * g->B + g->t0 / g->L) * chunks + g->t0 % g->L / c;
    return g->saved ? g->saved + first * c * c : NULL;
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
            g.nblk = attn_nblk(c, g.nb), g.bs = c / g.nblk, g.kept = attn_kept(&g, c);
            f(&g);
        }
        if (tail) {
            AttnGroup g = base;
            g.n = tail, g.st = L, g.t0 = s * L + nfull * c, g.nb = 1;
            g.nblk = attn_nblk(tail, 1), g.bs = tail / g.nblk, g.kept = attn_kept(&g, c);
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

static AttnGroup attn_base(int B, int L, int H, int dz, int dv, int C, const void *saved)
{
    AttnGroup g = {};
    g.B = B, g.L = L, g.H = H, g.dz = dz, g.dv = dv, g.saved = (bf16 *)saved;
    g.S = (float *)cuda_scratch(SCRATCH_ATTN_S, scratch_attn_s(B, L, C));
    g.P = (bf16 *)cuda_scratch(SCRATCH_ATTN_P, scratch_attn_p(B, L, C));
    return g;
}

void cuda_attention_forward(void *o, float *lse, void *saved, const void *q, const void *k, const void *v, int B,
                            int L, int H, int dz, int dv, int C)
{
    const int V = H * dv;
    AttnGroup base = attn_base(B, L, H, dz, dv, C, saved);
    for (int h = 0; h < H; h++)
        attn_groups(B, L, C, h, base, [&](const AttnGroup *g) {
            const int rows = g->nb * g->n, n = g->n, bs = g->bs;
            const size_t voff = (size_t)g->t0 * V + (size_t)h * dv;
            const long long sv = (long long)g->st * V, sp = (long long)n * n;
            bf16 *P = g->kept ? g->kept : g->P;
            attn_scores(g, (const bf16 *)q, (const bf16 *)k);
            attn_rows(g, [&](dim3 grid, dim3 block, auto rv) {
                attn_softmax_kernel<decltype(rv)::value, true>
                    <<<grid, block, 0, cuda_stream()>>>(P, lse, g->S, rows, n, bs, g->t0, g->st, L, H, h);
            });
            /* O' (query block i) = V' (keys to the block's end) P' */
            for (int i = 0; i < g->nblk; i++)
                attn_gemm(g, dv, bs, (i + 1) * bs, 0, (const bf16 *)v + voff, V, sv, 0, P + (size_t)i * bs * n, n, sp,
                          (bf16 *)o + voff + (size_t)i * bs * V, V, sv, CUDA_R_16BF, 0.0f);
        });
}

/* o: the CPU reference's row sum reads it; here dS takes the row sum from P and dP */
void cuda_attention_backward(void *dq, void *dk, void *dvalue, const void *dout, const void *saved, const void *q,
                             const void *k, const void *v, const void *o, const float *lse, int B, int L, int H,
                             int dz, int dv, int C, int accumulate)
{
    const int V = H * dv, Z = H * dz;
    const float beta = accumulate ? 1.0f : 0.0f;
    AttnGroup base = attn_base(B, L, H, dz, dv, C, saved);
    for (int h = 0; h < H; h++)
        attn_groups(B, L, C, h, base, [&](const AttnGroup *g) {
            const int rows = g->nb * g->n, n = g->n, bs = g->bs, nblk = g->nblk;
            const size_t voff = (size_t)g->t0 * V + (size_t)h * dv, zoff = (size_t)g->t0 * Z + (size_t)h * dz;
            const long long sv = (long long)g->st * V, sz = (long long)g->st * Z, sp = (long long)n * n;
            const bf16 *Q = (const bf16 *)q + zoff, *K = (const bf16 *)k + zoff, *Vv = (const bf16 *)v + voff;
            const bf16 *dO = (const bf16 *)dout + voff;
            bf16 *dQ = (bf16 *)dq + zoff, *dK = (bf16 *)dk + zoff, *dV = (bf16 *)dvalue + voff;
            const bf16 *P = g->kept ? g->kept : g->P;
            if (!g->kept) {
                attn_scores(g, (const bf16 *)q, (const bf16 *)k);
                attn_rows(g, [&](dim3 grid, dim3 block, auto rv) { /* P again, from lse (only read) */
                    attn_softmax_kernel<decltype(rv)::value, false><<<grid, block, 0, cuda_stream()>>>(
                        g->P, (float *)lse, g->S, rows, n, bs, g->t0, g->st, L, H, h);
                });
            }
            for (int j = 0; j < nblk; j++) {
                /* dV' (key block j) (+)= dO' (queries from the block on) P'^T */
                const size_t pj = (size_t)j * bs * n + (size_t)j * bs;
                attn_gemm(g, dv, bs, n - j * bs, 0, dO + (size_t)j * bs * V, V, sv, 1, P + pj, n, sp,
                          dV + (size_t)j * bs * V, V, sv, CUDA_R_16BF, beta);
            }
            for (int i = 0; i < nblk; i++) /* dP' (query block i) = V'^T dO' (into S) */
                attn_gemm(g, (i + 1) * bs, bs, dv, 1, Vv, V, sv, 0, dO + (size_t)i * bs * V, V, sv,
                          g->S + (size_t)i * bs * n, n, sp, CUDA_R_32F, 0.0f);
            attn_rows(g, [&](dim3 grid, dim3 block, auto rv) { /* dS into the scratch P */
                attn_dscores_kernel<decltype(rv)::value>
                    <<<grid, block, 0, cuda_stream()>>>(g->P, P, g->S, rows, n, bs);
            });

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
