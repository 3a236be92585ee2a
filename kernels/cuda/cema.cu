/* cema.cu: complex EMA (spec section 3) as a chunked scan with the complex state in registers (no
   FFT). Per (b, d, k) the recurrence h_t = p u_t + q h_{t-1} is linear, so L is cut into P parts
   that run in parallel: one thread owns one (b, channel d, state k, part), a block 16 channels x
   16 states (N <= 16; unused states have zero coefficients), and the part's inputs go through
   shared memory in tiles of CEMA_TILE steps, so all 16 state threads of a channel read one load.

   Forward: (1) each part's end state from a zero start; (2) one thread per (b, d, k) chains the
   few parts, h_end = q^len h_start + local end, from h0: each part's start state and h_out;
   (3) each part re-runs from its start; per tile the 16 states' Re(g h_t) meet in shared memory
   and y = omega u + their sum is written row by row.

   Backward: the same two passes, also keeping every tile's local start state; the reverse carry
   of G_h (G_t = conj(g) dy_t + conj(q) G_{t+1}, from dh_out) chained the same way backwards, which
   also gives dh0; then each thread walks its part's tiles backwards: the tile's states h_t into
   registers (from its start state), G backwards beside them, summing dp = sum u Re G,
   G_q = sum conj(h_{t-1}) G, G_g = sum dy conj(h) and, through shared memory per tile,
   du = omega dy + sum_k p Re G. A last kernel sums the parts and applies the chain rule to the raw
   parameters. Coefficients, states and sums in fp32. */
#include "kernels/cuda/cuda.cuh"

#define CEMA_CH 16       /* channels per block */
#define CEMA_THREADS (CEMA_NK * CEMA_CH)
#define CEMA_RED (CEMA_NK * (CEMA_CH + 1)) /* a tile row of per-state values, padded */
#define CEMA_BATCH 8 /* parts whose states one chain thread loads at once */
#define CEMA_PER (CEMA_TILE * CEMA_CH / CEMA_THREADS) /* a tile's elements per thread */
static_assert(CEMA_PER >= 1 && CEMA_PER * CEMA_THREADS == CEMA_TILE * CEMA_CH,
              "a tile is a whole number of block loads");
static_assert(32 % CEMA_NK == 0, "a channel's state threads share one warp (cema_param_kernel's shuffles)");
static_assert(CEMA_THREADS <= CEMA_RED, "a block's per-thread values fit one row of red (cema_part_back_kernel)");
#define TWO_PI_F 6.283185307179586f

typedef struct {
    float p, s, r, th, qr, qi, gr, gi;
} Coef;

/* coefficients of (d, k); all zero for k >= N or d >= D, so padded states stay zero */
__device__ __forceinline__ Coef cema_coef(CemaParams P, int d, int k, int D, int N)
{
    Coef c = {};
    if (k >= N || d >= D)
        return c;
    const bf16 *alpha = (const bf16 *)P.alpha, *delta = (const bf16 *)P.delta, *theta = (const bf16 *)P.theta,
               *gamma = (const bf16 *)P.gamma;
    const size_t i = (size_t)d * N + k;
    const float gs = rsqrtf((float)N);
    c.p = 1.0f / (1.0f + expf(-bf(alpha[i])));
    c.s = 1.0f / (1.0f + expf(-bf(delta[i])));
    c.r = 1.0f - c.p * c.s;
    c.th = (float)(k + 1) * (1.0f / (1.0f + expf(-bf(theta[d])))) * TWO_PI_F / (float)N;
    float sn, cs;
    sincosf(c.th, &sn, &cs);
    c.qr = c.r * cs;
    c.qi = c.r * sn;
    c.gr = bf(gamma[2 * i]) * gs;
    c.gi = bf(gamma[2 * i + 1]) * gs;
    return c;
}

/* q^n = r^n e^{i n th} */
__device__ __forceinline__ float2 cema_qpow(const Coef &c, int n)
{
    if (c.r == 0.0f)
        return make_float2(0.0f, 0.0f);
    float rn = expf((float)n * logf(c.r)), sn, cs;
    sincosf((float)n * c.th, &sn, &cs);
    return make_float2(rn * cs, rn * sn);
}

__device__ __forceinline__ float2 cmul(float2 a, float2 b) { return make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x); }

/* The layout of a part's tiles: the block's (b, part), its first step and its tiles. */
typedef struct {
    int b, part, nparts, d, k, cl, t_begin, t_end, ntiles;
} CemaThread;

__device__ __forceinline__ CemaThread cema_thread(int L, int D, int part_len)
{
    CemaThread w;
    w.k = threadIdx.x % CEMA_NK;
    w.cl = threadIdx.x / CEMA_NK;
    w.d = blockIdx.x * CEMA_CH + w.cl;
    w.part = blockIdx.y;
    w.nparts = gridDim.y;
    w.b = blockIdx.z;
    w.t_begin = w.part * part_len;
    w.t_end = min(L, w.t_begin + part_len);
    w.ntiles = (w.t_end - w.t_begin + CEMA_TILE - 1) / CEMA_TILE;
    return w;
}

/* per (b, part, d, k) */
__device__ __forceinline__ size_t part_index(const CemaThread &w, int D)
{
    return (((size_t)w.b * w.nparts + w.part) * D + w.d) * CEMA_NK + w.k;
}

/* Stages a tile (CEMA_TILE steps x CEMA_CH channels) of x, starting at step t0, in two steps: the
   global loads into registers (CEMA_PER per thread, issued early), then the store to shared memory.
   Zero beyond L or D. */
__device__ __forceinline__ void tile_load(float *r, const bf16 *x, int b, int t0, int L, int D)
{
#pragma unroll
    for (int i = 0; i < CEMA_PER; i++) {
        const int e = threadIdx.x + i * CEMA_THREADS, t = e / CEMA_CH, d = blockIdx.x * CEMA_CH + e % CEMA_CH;
        r[i] = t0 + t < L && d < D ? bf(x[((size_t)b * L + t0 + t) * D + d]) : 0.0f;
    }
}

__device__ __forceinline__ void tile_store(float (*s)[CEMA_CH], const float *r)
{
#pragma unroll
    for (int i = 0; i < CEMA_PER; i++) {
        const int e = threadIdx.x + i * CEMA_THREADS;
        s[e / CEMA_CH][e % CEMA_CH] = r[i];
    }
}

/* Makes the staged registers r the shared tile s and, when more, issues the loads of the tile at
   next_t0 (the barriers keep the tile's last readers and its writers apart). */
__device__ __forceinline__ void tile_next(float (*s)[CEMA_CH], float *r, const bf16 *x, int b, int next_t0, bool more,
                                          int L, int D)
{
    __syncthreads();
    tile_store(s, r);
    __syncthreads();
    if (more)
        tile_load(r, x, b, next_t0, L, D);
}

/* forward step: h = q h + p x */
__device__ __forceinline__ void cema_step(const Coef &c, float x, float &hr, float &hi)
{
    const float nr = fmaf(c.qr, hr, fmaf(-c.qi, hi, c.p * x));
    hi = fmaf(c.qr, hi, c.qi * hr);
    hr = nr;
}

/* reverse step: G = conj(g) dy + carry, then the carry into the step before, conj(q) G */
__device__ __forceinline__ float2 cema_gstep(const Coef &c, float dy, float &cr, float &ci)
{
    const float Gr = fmaf(c.gr, dy, cr), Gi = fmaf(-c.gi, dy, ci);
    cr = fmaf(c.qr, Gr, c.qi * Gi);
    ci = fmaf(c.qr, Gi, -c.qi * Gr);
    return make_float2(Gr, Gi);
}

/* (1) each part's end state from a zero start into ends (B, P, D, NK); with tiles != NULL also the
   local state before each tile, tiles (B, P, tiles per part, D, NK) */
__global__ void __launch_bounds__(CEMA_THREADS)
    cema_part_end_kernel(float2 *ends, float2 *tiles, const bf16 *u, CemaParams P, int L, int D, int N, int part_len)
{
    __shared__ float su[CEMA_TILE][CEMA_CH];
    const CemaThread w = cema_thread(L, D, part_len);
    const Coef c = cema_coef(P, w.d, w.k, D, N);
    const int tpp = part_len / CEMA_TILE;
    float hr = 0, hi = 0, ru[CEMA_PER];
    tile_load(ru, u, w.b, w.t_begin, L, D);
    for (int j = 0; j < w.ntiles; j++) {
        const int t0 = w.t_begin + j * CEMA_TILE, n = min(CEMA_TILE, w.t_end - t0);
        if (tiles && w.d < D)
            tiles[((((size_t)w.b * w.nparts + w.part) * tpp + j) * D + w.d) * CEMA_NK + w.k] = make_float2(hr, hi);
        tile_next(su, ru, u, w.b, t0 + CEMA_TILE, j + 1 < w.ntiles, L, D);
#pragma unroll
        for (int t = 0; t < CEMA_TILE; t++)
            if (t < n)
                cema_step(c, su[t][w.cl], hr, hi);
    }
    if (w.d < D)
        ends[part_index(w, D)] = make_float2(hr, hi);
}

/* (2) and (2') one thread per (b, d, k) chains the parts, forwards from h0 (each part's end state
   becomes its start state; the final state to h_out: h = q^len h + end), or with REV from the last
   part back from dh_out (each entry becomes the carry entering its part's last step; what leaves
   part 0 is dh0: C = conj(q^len) C + carry out of the part) */
template <bool REV>
__global__ void cema_part_chain_kernel(float2 *parts, float *out, const float *in, CemaParams P, int B, int L, int D,
                                       int N, int nparts, int part_len)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= B * D * CEMA_NK)
        return;
    const int k = i % CEMA_NK, d = i / CEMA_NK % D, b = i / CEMA_NK / D;
    const Coef c = cema_coef(P, d, k, D, N);
    float2 qs = cema_qpow(c, part_len), ql = cema_qpow(c, L - (nparts - 1) * part_len);
    if (REV)
        qs.y = -qs.y, ql.y = -ql.y;
    const size_t hk = (((size_t)b * D + d) * N + k) * 2;
    float2 h = in && k < N ? make_float2(in[hk], in[hk + 1]) : make_float2(0.0f, 0.0f);
    for (int n0 = 0; n0 < nparts; n0 += CEMA_BATCH) {
        float2 e[CEMA_BATCH]; /* loads issued together: the chain is latency-bound */
#pragma unroll
        for (int j = 0; j < CEMA_BATCH; j++) {
            const int part = REV ? nparts - 1 - n0 - j : n0 + j;
            e[j] = n0 + j < nparts ? parts[(((size_t)b * nparts + part) * D + d) * CEMA_NK + k] : h;
        }
#pragma unroll
        for (int j = 0; j < CEMA_BATCH; j++) {
            if (n0 + j >= nparts)
                break;
            const int part = REV ? nparts - 1 - n0 - j : n0 + j;
            const float2 hq = cmul(part == nparts - 1 ? ql : qs, h);
            parts[(((size_t)b * nparts + part) * D + d) * CEMA_NK + k] = h;
            h = make_float2(hq.x + e[j].x, hq.y + e[j].y);
        }
    }
    if (out && k < N) {
        out[hk] = h.x;
        out[hk + 1] = h.y;
    }
}

/* (3) y = omega u + Re(sum_k g h_t), from each part's start state */
__global__ void __launch_bounds__(CEMA_THREADS)
    cema_part_out_kernel(bf16 *y, const float2 *starts, const bf16 *u, CemaParams P, int L, int D, int N,
                         int part_len)
{
    __shared__ float su[CEMA_TILE][CEMA_CH], red[CEMA_TILE][CEMA_RED], som[CEMA_CH];
    const CemaThread w = cema_thread(L, D, part_len);
    const Coef c = cema_coef(P, w.d, w.k, D, N);
    if (threadIdx.x < CEMA_CH) {
        const int d = blockIdx.x * CEMA_CH + threadIdx.x;
        som[threadIdx.x] = d < D ? bf(((const bf16 *)P.omega)[d]) : 0.0f;
    }
    float2 h = w.d < D ? starts[part_index(w, D)] : make_float2(0.0f, 0.0f);
    float hr = h.x, hi = h.y, ru[CEMA_PER];
    tile_load(ru, u, w.b, w.t_begin, L, D);
    for (int j = 0; j < w.ntiles; j++) {
        const int t0 = w.t_begin + j * CEMA_TILE, n = min(CEMA_TILE, w.t_end - t0);
        tile_next(su, ru, u, w.b, t0 + CEMA_TILE, j + 1 < w.ntiles, L, D);
#pragma unroll
        for (int t = 0; t < CEMA_TILE; t++)
            if (t < n) {
                cema_step(c, su[t][w.cl], hr, hi);
                red[t][w.k * (CEMA_CH + 1) + w.cl] = fmaf(c.gr, hr, -c.gi * hi);
            }
        __syncthreads();
#pragma unroll
        for (int i = 0; i < CEMA_PER; i++) {
            const int e = threadIdx.x + i * CEMA_THREADS, t = e / CEMA_CH, cl = e % CEMA_CH;
            const int d = blockIdx.x * CEMA_CH + cl;
            if (t < n && d < D) {
                float s = som[cl] * su[t][cl];
#pragma unroll
                for (int k = 0; k < CEMA_NK; k++)
                    s += red[t][k * (CEMA_CH + 1) + cl];
                y[((size_t)w.b * L + t0 + t) * D + d] = tobf(s);
            }
        }
    }
}

static void cema_check(int N)
{
    if (N < 1 || N > CEMA_NK)
        fail("cema: N = %d states per channel (the CUDA kernels hold at most %d)", N, CEMA_NK);
}

/* passes (1) and (2): every part's start state into starts (B, P, D, NK) */
static void cema_starts(float2 *starts, float2 *tiles, float *h_out, const bf16 *u, CemaParams P, const float *h0,
                        int B, int L, int D, int N, int nparts, int part_len)
{
    cema_part_end_kernel<<<dim3(ceil_div(D, CEMA_CH), nparts, B), CEMA_THREADS, 0, cuda_stream()>>>(starts, tiles, u, P,
                                                                                                    L, D, N, part_len);
    LAUNCH_CHECK();
    cema_part_chain_kernel<false><<<ceil_div((size_t)B * D * CEMA_NK, 128), 128, 0, cuda_stream()>>>(
        starts, h_out, h0, P, B, L, D, N, nparts, part_len);
    LAUNCH_CHECK();
}

void cuda_cema_forward(void *y, const void *u, CemaParams p, ChunkState chunk, int B, int L, int D, int N)
{
    const float *h0 = chunk.h_in;
    float *h_out = chunk.h_out;
    cema_check(N);
    const int part_len = scratch_cema_part_len(B, L, D), nparts = (L + part_len - 1) / part_len;
    float2 *starts = (float2 *)cuda_scratch(SCRATCH_STATE_B, scratch_cema_starts(B, L, D));
    cema_starts(starts, NULL, h_out, (const bf16 *)u, p, h0, B, L, D, N, nparts, part_len);
    cema_part_out_kernel<<<dim3(ceil_div(D, CEMA_CH), nparts, B), CEMA_THREADS, 0, cuda_stream()>>>(
        (bf16 *)y, starts, (const bf16 *)u, p, L, D, N, part_len);
    LAUNCH_CHECK();
}

/* ---- backward ---- */

/* (1') the carry a part passes to the one before it, conj(q) G_{t_begin}, from a zero carry at its
   end (tiles walked backwards) */
__global__ void __launch_bounds__(CEMA_THREADS)
    cema_part_gend_kernel(float2 *gends, const bf16 *dy, CemaParams P, int L, int D, int N, int part_len)
{
    __shared__ float sg[CEMA_TILE][CEMA_CH];
    const CemaThread w = cema_thread(L, D, part_len);
    const Coef c = cema_coef(P, w.d, w.k, D, N);
    float cr = 0, ci = 0, rg[CEMA_PER];
    tile_load(rg, dy, w.b, w.t_begin + (w.ntiles - 1) * CEMA_TILE, L, D);
    for (int j = w.ntiles - 1; j >= 0; j--) {
        const int t0 = w.t_begin + j * CEMA_TILE, n = min(CEMA_TILE, w.t_end - t0);
        tile_next(sg, rg, dy, w.b, t0 - CEMA_TILE, j > 0, L, D);
#pragma unroll
        for (int t = CEMA_TILE - 1; t >= 0; t--)
            if (t < n)
                cema_gstep(c, sg[t][w.cl], cr, ci);
    }
    if (w.d < D)
        gends[part_index(w, D)] = make_float2(cr, ci);
}

/* (3') per (b, d, k, part), tiles backwards: h_t of the tile into registers from its start state,
   then G backwards beside them. Sums per thread into sums (B, P, D, NK, CEMA_NSUM) and
   sum u dy per channel into somega (B, P, D); du (+)= omega dy + sum_k p Re G (acc: add). Three
   blocks per SM: with tiles of 16 steps that is 79 registers and no spill. */
__global__ void __launch_bounds__(CEMA_THREADS, 3)
    cema_part_back_kernel(bf16 *du, float *sums, float *somega, const float2 *starts, const float2 *tiles,
                          const float2 *carries, const bf16 *u, const bf16 *dy, CemaParams P, int L, int D, int N,
                          int part_len, int acc)
{
    __shared__ float su[CEMA_TILE][CEMA_CH], sg[CEMA_TILE][CEMA_CH], red[CEMA_TILE][CEMA_RED];
    const CemaThread w = cema_thread(L, D, part_len);
    const Coef c = cema_coef(P, w.d, w.k, D, N);
    const int tpp = part_len / CEMA_TILE, ocl = threadIdx.x % CEMA_CH; /* the channel this thread writes */
    const float om = blockIdx.x * CEMA_CH + ocl < D ? bf(((const bf16 *)P.omega)[blockIdx.x * CEMA_CH + ocl]) : 0.0f;
    const size_t at = part_index(w, D);
    const float2 S = w.d < D ? starts[at] : make_float2(0.0f, 0.0f), cin = w.d < D ? carries[at] : S;
    float cr = cin.x, ci = cin.y, dp = 0, gqr = 0, gqi = 0, ggr = 0, ggi = 0, om_acc = 0;
    float ru[CEMA_PER], rg[CEMA_PER];
    tile_load(ru, u, w.b, w.t_begin + (w.ntiles - 1) * CEMA_TILE, L, D);
    tile_load(rg, dy, w.b, w.t_begin + (w.ntiles - 1) * CEMA_TILE, L, D);
    for (int j = w.ntiles - 1; j >= 0; j--) {
        const int t0 = w.t_begin + j * CEMA_TILE, n = min(CEMA_TILE, w.t_end - t0);
        __syncthreads();
        tile_store(su, ru);
        tile_store(sg, rg);
        __syncthreads();
        if (j > 0) {
            tile_load(ru, u, w.b, t0 - CEMA_TILE, L, D);
            tile_load(rg, dy, w.b, t0 - CEMA_TILE, L, D);
        }
        /* the tile's start state: its local start plus q^(steps before it) times the part's start */
        float2 hs = make_float2(0.0f, 0.0f);
        if (w.d < D) {
            const float2 loc = tiles[((((size_t)w.b * w.nparts + w.part) * tpp + j) * D + w.d) * CEMA_NK + w.k];
            const float2 carry = cmul(cema_qpow(c, j * CEMA_TILE), S);
            hs = make_float2(loc.x + carry.x, loc.y + carry.y);
        }
        float hr[CEMA_TILE], hi[CEMA_TILE], pr = hs.x, pi = hs.y;
#pragma unroll
        for (int t = 0; t < CEMA_TILE; t++) {
            cema_step(c, su[t][w.cl], pr, pi);
            hr[t] = pr, hi[t] = pi;
        }
#pragma unroll
        for (int t = CEMA_TILE - 1; t >= 0; t--)
            if (t < n) {
                const float g = sg[t][w.cl], x = su[t][w.cl];
                const float2 G = cema_gstep(c, g, cr, ci); /* G_t; the carry becomes conj(q) G_t */
                const float Gr = G.x, Gi = G.y;
                const float hpr = t > 0 ? hr[t - 1] : hs.x, hpi = t > 0 ? hi[t - 1] : hs.y;
                red[t][w.k * (CEMA_CH + 1) + w.cl] = c.p * Gr;
                dp = fmaf(x, Gr, dp);
                gqr = fmaf(hpr, Gr, fmaf(hpi, Gi, gqr)); /* conj(h_{t-1}) G_t */
                gqi = fmaf(hpr, Gi, fmaf(-hpi, Gr, gqi));
                ggr = fmaf(g, hr[t], ggr); /* dy_t conj(h_t) */
                ggi = fmaf(-g, hi[t], ggi);
            }
        __syncthreads();
#pragma unroll
        for (int i = 0; i < CEMA_PER; i++) {
            const int e = threadIdx.x + i * CEMA_THREADS, t = e / CEMA_CH, d = blockIdx.x * CEMA_CH + ocl;
            if (t < n && d < D) {
                const float g = sg[t][ocl];
                float s = om * g;
#pragma unroll
                for (int k = 0; k < CEMA_NK; k++)
                    s += red[t][k * (CEMA_CH + 1) + ocl];
                om_acc = fmaf(su[t][ocl], g, om_acc);
                const size_t a = ((size_t)w.b * L + t0 + t) * D + d;
                du[a] = tobf(acc ? bf(du[a]) + s : s);
            }
        }
    }
    if (w.d < D) {
        float *s = sums + at * CEMA_NSUM;
        s[0] = dp, s[1] = gqr, s[2] = gqi, s[3] = ggr, s[4] = ggi;
    }
    /* a channel's sum u dy over its threads in a fixed order (an atomic add made omega's gradient
       differ in the last bits from run to run) */
    __syncthreads();
    red[0][threadIdx.x] = om_acc;
    __syncthreads();
    if (threadIdx.x < CEMA_CH && blockIdx.x * CEMA_CH + threadIdx.x < D) {
        float so = 0.0f;
        for (int i = 0; i < CEMA_THREADS / CEMA_CH; i++)
            so += red[0][i * CEMA_CH + threadIdx.x];
        somega[((size_t)w.b * w.nparts + w.part) * D + blockIdx.x * CEMA_CH + threadIdx.x] = so;
    }
}

/* the chain rule from (p, G_q, G_g) to the raw parameters, summing the rows (b, part): one thread
   per (d, k), reading its sums beside its neighbours' (one thread per channel read 320-byte strides
   and took 0.24 ms per layer at 200M, 4K, one sequence); a channel's 16 threads (aligned lanes of
   a warp) add theta's and omega's terms by shuffles, in a fixed order */
__global__ void cema_param_kernel(CemaGrads g, const float *sums, const float *somega, int rows, CemaParams P, int D,
                                  int N, int mode)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x, k = i % CEMA_NK, d = i / CEMA_NK;
    float s[CEMA_NSUM] = {}, dom = 0, dth = 0;
    if (d < D) { /* no early return: every lane takes part in the shuffles */
#pragma unroll 4
        for (int r = 0; r < rows; r++) {
            const float *x = sums + (((size_t)r * D + d) * CEMA_NK + k) * CEMA_NSUM;
#pragma unroll
            for (int j = 0; j < CEMA_NSUM; j++)
                s[j] += x[j];
        }
        for (int r = k; r < rows; r += CEMA_NK)
            dom += somega[(size_t)r * D + d];
    }
    if (d < D && k < N) {
        const Coef c = cema_coef(P, d, k, D, N);
        float sn, cs;
        sincosf(c.th, &sn, &cs);
        const float dr = s[1] * cs + s[2] * sn;          /* Re(G_q e^{-i th}) */
        const float dthk = c.r * (s[2] * cs - s[1] * sn); /* r Im(G_q e^{-i th}) */
        const float dp = s[0] - c.s * dr, ds = -c.p * dr;
        const size_t at = (size_t)d * N + k;
        param_put(&g.alpha[at], dp * c.p * (1.0f - c.p), mode);
        param_put(&g.delta[at], ds * c.s * (1.0f - c.s), mode);
        param_put(&g.gamma[2 * at], s[3] * rsqrtf((float)N), mode);
        param_put(&g.gamma[2 * at + 1], s[4] * rsqrtf((float)N), mode);
        dth = dthk * (float)(k + 1);
    }
#pragma unroll
    for (int m = CEMA_NK / 2; m > 0; m /= 2) {
        dth += __shfl_xor_sync(0xffffffffu, dth, m);
        dom += __shfl_xor_sync(0xffffffffu, dom, m);
    }
    if (d < D && k == 0) {
        const float st = 1.0f / (1.0f + expf(-bf(((const bf16 *)P.theta)[d])));
        param_put(&g.theta[d], dth * TWO_PI_F / (float)N * st * (1.0f - st), mode);
        param_put(&g.omega[d], dom, mode);
    }
}

void cuda_cema_backward(void *du, CemaGrads g, const void *dy, const void *u, CemaParams p, ChunkState chunk, int B,
                        int L, int D, int N, int mode)
{
    const float *h0 = chunk.h_in, *dh_out = chunk.dh_out;
    float *dh0 = chunk.dh_in;
    cema_check(N);
    const int part_len = scratch_cema_part_len(B, L, D), nparts = (L + part_len - 1) / part_len;
    const size_t per_part = (size_t)B * nparts * D * CEMA_NK;
    const dim3 grid(ceil_div(D, CEMA_CH), nparts, B);
    float2 *tiles = (float2 *)cuda_scratch(SCRATCH_STATE_A, scratch_cema_tiles(B, L, D));
    /* one buffer: part starts, part carries, then the sums (CEMA_NSUM per state, one per channel) */
    float2 *starts = (float2 *)cuda_scratch(SCRATCH_STATE_B, scratch_cema_back(B, L, D));
    float2 *carries = starts + per_part;
    float *sums = (float *)(carries + per_part), *somega = sums + per_part * CEMA_NSUM;
    cema_starts(starts, tiles, NULL, (const bf16 *)u, p, h0, B, L, D, N, nparts, part_len);
    cema_part_gend_kernel<<<grid, CEMA_THREADS, 0, cuda_stream()>>>(carries, (const bf16 *)dy, p, L, D, N, part_len);
    LAUNCH_CHECK();
    cema_part_chain_kernel<true><<<ceil_div((size_t)B * D * CEMA_NK, 128), 128, 0, cuda_stream()>>>(
        carries, dh0, dh_out, p, B, L, D, N, nparts, part_len);
    LAUNCH_CHECK();
    cema_part_back_kernel<<<grid, CEMA_THREADS, 0, cuda_stream()>>>((bf16 *)du, sums, somega, starts, tiles, carries,
                                                                    (const bf16 *)u, (const bf16 *)dy, p, L, D, N,
                                                                    part_len, mode & GRAD_ADD);
    LAUNCH_CHECK();
    cema_param_kernel<<<ceil_div((size_t)D * CEMA_NK, 256), 256, 0, cuda_stream()>>>(g, sums, somega, B * nparts, p, D,
                                                                                      N, mode);
    LAUNCH_CHECK();
}
