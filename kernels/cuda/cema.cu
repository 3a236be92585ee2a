/* cema.cu: complex EMA (spec section 3) on tensor cores. Per channel, N <= 16 states k with real p_k,
   complex q_k and g_k (unused states have zero coefficients):
     h_t = q h_{t-1} + p u_t,   y_t = omega u_t + sum_k Re(g_k h_{k,t}).
   Within a chunk of CM_C = 16 steps the recurrence is a convolution plus the state that entered it:
     y_{c,i} = omega u_{c,i} + sum_{j<=i} K_{i-j} u_{c,j} + sum_k Re(g_k q_k^{i+1} H_{c,k}),
     H_{c+1} = q^16 H_c + E_c,  E_{c,k} = sum_j p_k q_k^{15-j} u_{c,j},  K_m = sum_k Re(g_k p_k q_k^m),
   with H_c the state before chunk c. Backward, with R_c the carry entering chunk c's last step (conj(q)
   times dL/dh of the step after it):
     R_{c-1} = conj(q)^16 R_c + F_c,  F_{c,k} = sum_i conj(g_k q_k^{i+1}) dy_{c,i},
     du_{c,j} = omega dy_{c,j} + sum_{i>=j} K_{i-j} dy_{c,i} + sum_k p_k Re(conj(q_k)^{15-j} R_{c,k}),
   and the parameters' sums follow from four sums over the chunks (cema_part_sums).

   A warp owns one channel and takes its steps a segment (16 chunks) at a time: the chunks are the 16
   rows of bf16 MMAs (m16n8k16, fp32 sums), and H and R follow from E and F by scans over the rows in
   registers. u and dy are exact in bf16; fp32 coefficients and states enter as hi + lo pairs of bf16,
   so a product loses about 2^-17 of its size (a float64 emulation of these kernels gave relative
   errors of at most 2e-5 in the fp32 outputs). A block of 16 warps stages a segment of its 16
   channels through shared memory, transposed so that a channel's steps are contiguous.

   Across segments and parts: forward, (1) each part's end state from a zero start (and, for the
   backward, each segment's local start state), (2) one thread per (b, d, k) chains the parts, (3) each
   part from its start state. Backward, (1) and (2) again unless the forward kept their results (saved),
   (1') each part's carry out from a zero carry at its end, (2') the chain in reverse (which gives dh0),
   (3') each part's segments backwards: du and the sums, which a last kernel adds up and takes to the
   raw parameters. The backward's segment kernel holds its sums' B fragments in registers (the scans'
   values transposed by movmatrix) and its A and B sums in shared memory: 128 registers, no spills. A
   last chunk shorter than 16 (L % 16) is exact: h_out by plain steps, and its carry enters at its own
   last step. */
#include "kernels/cuda/cuda.cuh"

#define CEMA_BATCH 8 /* parts whose states one chain thread loads at once */
#define CM_C 16      /* steps per chunk: one k-block of the MMA */
#define CM_CH 16     /* channels per block, one warp each */
#define CM_THREADS (32 * CM_CH)
#define CM_PER (CM_CH / 8)     /* threads staging a step, 8 channels each */
#define CM_BLOCKS (16 / CM_CH) /* blocks per SM: 16 warps */
#define CM_ROW (CEMA_SEG + 2)  /* a channel's staged steps (bf16): rows start 129 words apart */
static_assert(CEMA_SEG == 16 * CM_C, "a segment is the MMA's 16 rows of chunks");
static_assert(CEMA_NK == 16, "a warp's fragments cover 16 states");
static_assert(CM_THREADS == CM_PER * CEMA_SEG, "the block stages a segment's steps in one pass");
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

/* q^n = r^n e^{i n th}, zero for an unused state */
__device__ __forceinline__ float2 qpow(float r, float th, int n)
{
    if (r == 0.0f)
        return make_float2(0.0f, 0.0f);
    float rn = expf((float)n * logf(r)), sn, cs;
    sincosf((float)n * th, &sn, &cs);
    return make_float2(rn * cs, rn * sn);
}
__device__ __forceinline__ float2 cema_qpow(const Coef &c, int n) { return qpow(c.r, c.th, n); }

__device__ __forceinline__ float2 cmul(float2 a, float2 b)
{
    return make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}
__device__ __forceinline__ float2 conj2(float2 a) { return make_float2(a.x, -a.y); }
__device__ __forceinline__ float2 cfma(float2 a, float2 b, float2 c) /* a b + c */
{
    return make_float2(fmaf(a.x, b.x, fmaf(-a.y, b.y, c.x)), fmaf(a.x, b.y, fmaf(a.y, b.x, c.y)));
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

/* ---- the MMA and its fragments ----
   m16n8k16 (lane = 4 g + t): A's registers hold (row, columns) (g, 2t..2t+1), (g + 8, 2t..), (g, 2t + 8..),
   (g + 8, 2t + 8..); B's (rows 2t..2t+1, column g), (rows 2t + 8.., column g); C's (g, 2t..2t+1),
   (g + 8, 2t..). So a segment's C fragments of 32 columns (state k, re / im) are, two n-blocks at a
   time, A fragments: thread (g, t) holds chunks g and g + 8 of states 4 nb + t, nb = 0..3. */
typedef struct {
    uint32_t r[2];
} Frag; /* a B fragment (16 x 8) */

__device__ __forceinline__ uint32_t bf2_bits(__nv_bfloat162 v) { return *reinterpret_cast<uint32_t *>(&v); }

/* (a, b) as bf16 pairs hi and lo = (a, b) - hi */
__device__ __forceinline__ void split2(float a, float b, uint32_t &hi, uint32_t &lo)
{
    const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
    hi = bf2_bits(h);
    lo = bf2_bits(__floats2bfloat162_rn(a - __low2float(h), b - __high2float(h)));
}

/* the hi and lo B fragments of the block whose element (row, column) is f(row, column), rows
   0..15, columns 0..7 */
template <class F> __device__ __forceinline__ void frag_split(Frag &hi, Frag &lo, F f)
{
    const int g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
    split2(f(2 * t, g), f(2 * t + 1, g), hi.r[0], lo.r[0]);
    split2(f(2 * t + 8, g), f(2 * t + 9, g), hi.r[1], lo.r[1]);
}

/* A fragments (hi, lo) of a segment's per-chunk states v[s][nb] (chunk 8 s + g, state 4 nb + t),
   columns 16 kb .. 16 kb + 15 (states 8 kb .. 8 kb + 7) */
__device__ __forceinline__ void frag_states(uint32_t hi[4], uint32_t lo[4], const float2 v[2][4], int kb)
{
    split2(v[0][2 * kb].x, v[0][2 * kb].y, hi[0], lo[0]);
    split2(v[1][2 * kb].x, v[1][2 * kb].y, hi[1], lo[1]);
    split2(v[0][2 * kb + 1].x, v[0][2 * kb + 1].y, hi[2], lo[2]);
    split2(v[1][2 * kb + 1].x, v[1][2 * kb + 1].y, hi[3], lo[3]);
}

/* an 8x8 block of bf16 pairs in A / C layout (lane (g, t): row g, columns 2t, 2t + 1) transposed, which
   is a B fragment's register (rows 2t, 2t + 1, column g) */
__device__ __forceinline__ uint32_t mov_trans(uint32_t a)
{
    uint32_t d;
    asm("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;" : "=r"(d) : "r"(a));
    return d;
}

/* the hi and lo B fragments of a segment's per-chunk values v0, v1 (chunks g and 8 + g, state 4 nb + t,
   as the scans leave them): rows chunks, columns (state 4 nb + c / 2).(re, im), conjugated with CONJ */
template <bool CONJ> __device__ __forceinline__ void frag_chunks(Frag &hi, Frag &lo, float2 v0, float2 v1)
{
    uint32_t h0, l0, h1, l1;
    split2(v0.x, CONJ ? -v0.y : v0.y, h0, l0);
    split2(v1.x, CONJ ? -v1.y : v1.y, h1, l1);
    hi.r[0] = mov_trans(h0), hi.r[1] = mov_trans(h1);
    lo.r[0] = mov_trans(l0), lo.r[1] = mov_trans(l1);
}

/* c += a b: a 16x16 (row), b 16x8 (col), bf16, fp32 sums */
__device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], const Frag &b)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b.r[0]), "r"(b.r[1]));
}
/* c += a (hi + lo) */
__device__ __forceinline__ void mma_split(float c[4], const uint32_t a[4], const Frag &hi, const Frag &lo)
{
    mma_bf16(c, a, hi);
    mma_bf16(c, a, lo);
}

/* c += a (hi + lo), c in shared memory */
__device__ __forceinline__ void mma_acc(float4 &c, const uint32_t a[4], const Frag &hi, const Frag &lo)
{
    float v[4] = {c.x, c.y, c.z, c.w};
    mma_split(v, a, hi, lo);
    c = make_float4(v[0], v[1], v[2], v[3]);
}

/* acc (two 8-column blocks) += v b, v a segment's per-chunk states (A layout, 32 columns: hi + lo)
   and b(kb, nb, 0 / 1) the hi and lo B fragments of k-block kb, column block nb; lo x lo is left out */
template <class BF> __device__ __forceinline__ void mma_states(float acc[2][4], const float2 v[2][4], BF b)
{
#pragma unroll
    for (int kb = 0; kb < 2; kb++) {
        uint32_t hi[4], lo[4];
        frag_states(hi, lo, v, kb);
#pragma unroll
        for (int nb = 0; nb < 2; nb++) {
            const Frag bh = b(kb, nb, 0);
            mma_split(acc[nb], hi, bh, b(kb, nb, 1));
            mma_bf16(acc[nb], lo, bh);
        }
    }
}

/* A fragment of a staged row (a channel's segment): rows chunks, columns steps; with TRANS rows steps
   and columns chunks */
template <bool TRANS> __device__ __forceinline__ void frag_row(uint32_t a[4], const bf16 *row)
{
    const int g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
    if (!TRANS) {
        const uint32_t *r32 = reinterpret_cast<const uint32_t *>(row);
        a[0] = r32[(g * CM_C + 2 * t) / 2];
        a[1] = r32[((g + 8) * CM_C + 2 * t) / 2];
        a[2] = r32[(g * CM_C + 2 * t + 8) / 2];
        a[3] = r32[((g + 8) * CM_C + 2 * t + 8) / 2];
        return;
    }
    const unsigned short *r16 = reinterpret_cast<const unsigned short *>(row);
#pragma unroll
    for (int e = 0; e < 4; e++) { /* (row, column) (g, 2t), (g + 8, 2t), (g, 2t + 8), (g + 8, 2t + 8) */
        const int i = g + 8 * (e & 1), c = 2 * t + 8 * (e >> 1);
        a[e] = r16[c * CM_C + i] | (uint32_t)r16[(c + 1) * CM_C + i] << 16;
    }
}

/* B fragment of a staged row: rows chunks 2t.. (+ 8), column steps 8 nb + g */
__device__ __forceinline__ Frag frag_row_b(const bf16 *row, int nb)
{
    const int g = threadIdx.x % 32 / 4, t = threadIdx.x % 4, i = nb * 8 + g;
    const unsigned short *r16 = reinterpret_cast<const unsigned short *>(row);
    Frag f;
    f.r[0] = r16[2 * t * CM_C + i] | (uint32_t)r16[(2 * t + 1) * CM_C + i] << 16;
    f.r[1] = r16[(2 * t + 8) * CM_C + i] | (uint32_t)r16[(2 * t + 9) * CM_C + i] << 16;
    return f;
}

__device__ __forceinline__ float2 shfl2(float2 v, int src)
{
    return make_float2(__shfl_sync(0xffffffffu, v.x, src), __shfl_sync(0xffffffffu, v.y, src));
}

/* one channel's coefficients, per warp in shared memory */
typedef struct {
    float2 q[CM_C + 1][CEMA_NK]; /* q_k^n, n = 0 .. CM_C */
    float2 g[CEMA_NK];
    float p[CEMA_NK];
    float K[CM_C]; /* K_m = sum_k Re(g_k p_k q_k^m) */
} CemaTab;

__device__ void cema_tab_fill(CemaTab &T, CemaParams P, int d, int D, int N)
{
    const int lane = threadIdx.x % 32, k = lane % CEMA_NK;
    const Coef c = cema_coef(P, d, k, D, N);
    for (int n = lane / CEMA_NK; n <= CM_C; n += 32 / CEMA_NK)
        T.q[n][k] = cema_qpow(c, n);
    if (lane < CEMA_NK) {
        T.g[k] = make_float2(c.gr, c.gi);
        T.p[k] = c.p;
    }
    __syncwarp();
    if (lane < CM_C) {
        float s = 0.0f;
        for (int j = 0; j < CEMA_NK; j++)
            s = fmaf(T.p[j], T.g[j].x * T.q[lane][j].x - T.g[j].y * T.q[lane][j].y, s);
        T.K[lane] = s;
    }
    __syncwarp();
}

/* the convolution's B fragments (hi, lo) for i-block nb: B[j][i] = K_{i-j}; with TRANS B[i][j] = K_{i-j}
   for j-block nb (du = dy's convolution with the reversed kernel); zero where i < j */
template <bool TRANS> __device__ __forceinline__ void frag_conv(Frag &hi, Frag &lo, const CemaTab &T, int nb)
{
    frag_split(hi, lo, [&](int r, int c) {
        const int m = TRANS ? r - (nb * 8 + c) : nb * 8 + c - r;
        return m >= 0 ? T.K[m] : 0.0f;
    });
}

/* E's B fragments for the block nb of columns (k, re / im): B[j][2k + c] = (p_k q_k^(15-j)).(re, im) */
__device__ __forceinline__ void frag_e(Frag &hi, Frag &lo, const CemaTab &T, int nb)
{
    frag_split(hi, lo, [&](int j, int c) {
        const int k = nb * 4 + c / 2;
        const float2 q = T.q[CM_C - 1 - j][k];
        return T.p[k] * (c & 1 ? q.y : q.x);
    });
}

/* The states before each of a segment's chunks, h[s][nb] = H of chunk 8 s + g, state 4 nb + t, from a =
   the segment's inputs (A fragment, rows chunks) and hs = the state before the segment, which becomes
   the state after it. e(nb, 0 / 1): E's B fragments (hi, lo). */
template <class EF>
__device__ __forceinline__ void cema_seg_states(float2 h[2][4], float2 hs[4], const uint32_t a[4], EF e,
                                                const CemaTab &T)
{
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
#pragma unroll
    for (int nb = 0; nb < 4; nb++) {
        float c[4] = {};
        mma_split(c, a, e(nb, 0), e(nb, 1));
        const float2 Q = T.q[CM_C][nb * 4 + t];
        /* inclusive scan over the 16 chunks: v_c = sum_{c' <= c} Q^(c-c') E_c' (Hillis-Steele), the
           state before the segment entering with chunk 0 */
        float2 v0 = make_float2(c[0], c[1]), v1 = make_float2(c[2], c[3]), Qd = Q;
        if (g == 0)
            v0 = cfma(Q, hs[nb], v0);
#pragma unroll
        for (int by = 1; by < 8; by *= 2) {
            const float2 a0 = shfl2(v0, (lane - 4 * by) & 31), a1 = shfl2(v1, (lane - 4 * by) & 31);
            v1 = cfma(Qd, g >= by ? a1 : a0, v1);
            if (g >= by)
                v0 = cfma(Qd, a0, v0);
            Qd = cmul(Qd, Qd);
        }
        v1 = cfma(Qd, v0, v1); /* Q^8 */
        /* v_c is the state after chunk c */
        const float2 p0 = shfl2(v0, (lane - 4) & 31), p1 = shfl2(v1, (lane - 4) & 31);
        h[0][nb] = g ? p0 : hs[nb];
        h[1][nb] = g ? p1 : p0;
        hs[nb] = shfl2(v1, 28 + t);
    }
}

/* The carries entering each of a segment's chunks' last step, r[s][nb] (chunk 8 s + g, state 4 nb + t),
   from f = F of the chunks and re = the carry entering the segment's last step, which becomes the one
   entering the step before the segment. */
__device__ __forceinline__ void cema_seg_carries(float2 r[2][4], float2 re[4], const float2 f[2][4], const CemaTab &T)
{
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
#pragma unroll
    for (int nb = 0; nb < 4; nb++) {
        const float2 Qc = conj2(T.q[CM_C][nb * 4 + t]);
        /* suffix scan: v_c = sum_{c' >= c} conj(Q)^(c'-c) F_c', the carry leaving chunk c, the carry
           into the segment entering with chunk 15 */
        float2 v0 = f[0][nb], v1 = f[1][nb], Qd = Qc;
        if (g == 7)
            v1 = cfma(Qc, re[nb], v1);
#pragma unroll
        for (int by = 1; by < 8; by *= 2) {
            const float2 b0 = shfl2(v0, (lane + 4 * by) & 31), b1 = shfl2(v1, (lane + 4 * by) & 31);
            v0 = cfma(Qd, g + by < 8 ? b0 : b1, v0);
            if (g + by < 8)
                v1 = cfma(Qd, b1, v1);
            Qd = cmul(Qd, Qd);
        }
        v0 = cfma(Qd, v1, v0); /* conj(Q)^8 */
        /* the carry entering chunk c's last step leaves chunk c + 1 */
        const float2 n0 = shfl2(v0, (lane + 4) & 31), n1 = shfl2(v1, (lane + 4) & 31);
        r[0][nb] = g < 7 ? n0 : n1;
        r[1][nb] = g < 7 ? n1 : re[nb];
        re[nb] = shfl2(v0, t);
    }
}

/* ---- staging a segment ----
   Steps [t0, t0 + CEMA_SEG) of the block's CM_CH channels, zero from t_end or D: thread i loads step
   i / CM_PER, channels 8 (i % CM_PER) .. + 7 (one 16-byte load with vec: D % 8 == 0 and 16-byte
   aligned rows),
   then stages them in the tile, a channel's steps in a row. */
__device__ __forceinline__ void seg_load(uint4 &r, const bf16 *x, int b, int t0, int t_end, int L, int D, bool vec)
{
    const int s = t0 + threadIdx.x / CM_PER, c0 = blockIdx.x * CM_CH + threadIdx.x % CM_PER * 8;
    const bf16 *src = x + ((size_t)b * L + s) * D + c0;
    if (vec && s < t_end && c0 + 8 <= D) {
        r = *reinterpret_cast<const uint4 *>(src);
        return;
    }
    bf16 v[8];
#pragma unroll
    for (int e = 0; e < 8; e++)
        v[e] = s < t_end && c0 + e < D ? src[e] : tobf(0.0f);
    r = *reinterpret_cast<uint4 *>(v);
}

__device__ __forceinline__ void seg_stage(bf16 *tile, const uint4 &r)
{
    const bf16 *v = reinterpret_cast<const bf16 *>(&r);
    const int s = threadIdx.x / CM_PER, c0 = threadIdx.x % CM_PER * 8;
#pragma unroll
    for (int e = 0; e < 8; e++)
        tile[(c0 + e) * CM_ROW + s] = v[e];
}

/* the tile's rows to y (B, L, D) for steps below t_end, with add plus prior (what seg_load read from
   y, early); the ragged columns by constant indices, so that v stays in registers */
__device__ __forceinline__ void seg_store(bf16 *y, const bf16 *tile, int b, int t0, int t_end, int L, int D, bool vec,
                                          const uint4 &prior, bool add)
{
    const int s = threadIdx.x / CM_PER, cl = threadIdx.x % CM_PER * 8, c0 = blockIdx.x * CM_CH + cl;
    if (t0 + s >= t_end)
        return;
    bf16 *dst = y + ((size_t)b * L + t0 + s) * D + c0;
    const __nv_bfloat162 *old = reinterpret_cast<const __nv_bfloat162 *>(&prior);
    float v[8];
#pragma unroll
    for (int e = 0; e < 8; e += 2) {
        const float2 o = add ? __bfloat1622float2(old[e / 2]) : make_float2(0.0f, 0.0f);
        v[e] = bf(tile[(cl + e) * CM_ROW + s]) + o.x;
        v[e + 1] = bf(tile[(cl + e + 1) * CM_ROW + s]) + o.y;
    }
    if (vec && c0 + 8 <= D) {
        store_bf<8>(dst, v);
        return;
    }
#pragma unroll
    for (int e = 0; e < 8; e++)
        if (c0 + e < D)
            dst[e] = tobf(v[e]);
}

/* a staged row x (one channel's segment) becomes omega x + acc, acc in the MMA's C layout (rows
   chunks, columns steps: 2 blocks of 8) */
__device__ __forceinline__ void row_out(bf16 *row, float om, const float acc[2][4])
{
    const int g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
    __syncwarp(); /* the lanes' reads of the row come before its overwrite */
#pragma unroll
    for (int nb = 0; nb < 2; nb++)
#pragma unroll
        for (int s = 0; s < 2; s++) {
            __nv_bfloat162 *p = reinterpret_cast<__nv_bfloat162 *>(row + (g + 8 * s) * CM_C + nb * 8 + 2 * t);
            const float2 x = __bfloat1622float2(*p);
            *p = __floats2bfloat162_rn(fmaf(om, x.x, acc[nb][2 * s]), fmaf(om, x.y, acc[nb][2 * s + 1]));
        }
}

/* the state after step t_end - 1 when the segment at t0 ends there early: from the state before chunk
   cf, the rem steps of it that remain (T's powers and p, the staged row's inputs) */
__device__ __forceinline__ void cema_tail(float2 hs[4], const float2 h[2][4], const CemaTab &T, const bf16 *row, int n)
{
    const int t = threadIdx.x % 4, cf = n / CM_C, rem = n % CM_C;
#pragma unroll
    for (int nb = 0; nb < 4; nb++) {
        const int k = nb * 4 + t;
        float2 s = cmul(T.q[rem][k], shfl2(cf < 8 ? h[0][nb] : h[1][nb], cf % 8 * 4 + t));
        for (int j = 0; j < rem; j++)
            s = cfma(make_float2(T.p[k] * bf(row[cf * CM_C + j]), 0.0f), T.q[rem - 1 - j][k], s);
        hs[nb] = s;
    }
}

/* ---- forward, and the backward's states ---- */

/* state k of channel d of sequence b: at parts[at + k], or with parts NULL from a chunk state h (B, D,
   N, 2; NULL: zero); and into a chunk state where put */
__device__ __forceinline__ float2 cema_state_get(const float2 *parts, size_t at, const float *h, int b, int d, int D,
                                                 int N, int k)
{
    if (parts)
        return parts[at + k];
    const size_t i = (((size_t)b * D + d) * N + k) * 2;
    return h && k < N ? make_float2(h[i], h[i + 1]) : make_float2(0.0f, 0.0f);
}
__device__ __forceinline__ void cema_state_put(bool put, float *h, int b, int d, int D, int N, int k, float2 v)
{
    if (put && k < N) {
        const size_t i = (((size_t)b * D + d) * N + k) * 2;
        h[i] = v.x, h[i + 1] = v.y;
    }
}

/* (1) with OUT false: each part's end state from a zero start into parts (B, P, D, NK), and with segs
   each segment's local start state (B, P, segments per part, D, NK); (3) with OUT true: y from each
   part's start state in parts. One block per (16 channels, part, b). With OUT true and parts NULL,
   the sequence is one part from h0 (B, D, N, 2; NULL: zero): segs gets each segment's whole start
   state and h_out (when not NULL) the last state, so passes (1) and (2) are not needed. */
template <bool OUT>
__global__ void __launch_bounds__(CM_THREADS, OUT ? CM_BLOCKS : 2 * CM_BLOCKS)
    cema_seg_kernel(bf16 *y, float2 *parts, float2 *segs, const bf16 *u, CemaParams P, const float *h0, float *h_out,
                    int L, int D, int N, int part_len, bool vec)
{
    __shared__ bf16 tile[CM_CH * CM_ROW];
    __shared__ CemaTab tabs[CM_CH];
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int d = blockIdx.x * CM_CH + w, b = blockIdx.z, t_begin = blockIdx.y * part_len;
    const int t_end = min(L, t_begin + part_len), spp = part_len / CEMA_SEG;
    const size_t at = (((size_t)b * gridDim.y + blockIdx.y) * D + d) * CEMA_NK;
    CemaTab &T = tabs[w];
    cema_tab_fill(T, P, d, D, N);
    Frag e[4][2], kc[2][2], st[2][2][2]; /* E's; the convolution's; the state's part of y: B[2k + c][i] */
    float2 hs[4];
#pragma unroll
    for (int nb = 0; nb < 4; nb++) {
        frag_e(e[nb][0], e[nb][1], T, nb);
        hs[nb] = OUT && d < D ? cema_state_get(parts, at, h0, b, d, D, N, nb * 4 + t) : make_float2(0.0f, 0.0f);
    }
#pragma unroll
    for (int nb = 0; nb < 2; nb++) {
        frag_conv<false>(kc[nb][0], kc[nb][1], T, nb);
#pragma unroll
        for (int kb = 0; kb < 2; kb++)
            frag_split(st[kb][nb][0], st[kb][nb][1], [&](int r, int i) { /* (g_k q_k^(i+1)).(re, -im) */
                                                                         const int k = kb * 8 + r / 2;
                                                                         const float2 z =
                                                                             cmul(T.g[k], T.q[nb * 8 + i + 1][k]);
                                                                         return r & 1 ? -z.y : z.x;
            });
    }
    const float om = OUT && d < D ? bf(((const bf16 *)P.omega)[d]) : 0.0f;
    bf16 *row = tile + w * CM_ROW;
    uint4 r;
    seg_load(r, u, b, t_begin, t_end, L, D, vec);
    for (int t0 = t_begin; t0 < t_end; t0 += CEMA_SEG) {
        __syncthreads();
        seg_stage(tile, r);
        __syncthreads();
        if (t0 + CEMA_SEG < t_end)
            seg_load(r, u, b, t0 + CEMA_SEG, t_end, L, D, vec);
        if (segs && g == 0 && d < D)
#pragma unroll
            for (int nb = 0; nb < 4; nb++)
                segs[(((size_t)b * gridDim.y + blockIdx.y) * spp + (t0 - t_begin) / CEMA_SEG) * D * CEMA_NK +
                     (size_t)d * CEMA_NK + nb * 4 + t] = hs[nb];
        uint32_t a[4];
        frag_row<false>(a, row);
        float2 h[2][4];
        cema_seg_states(
            h, hs, a, [&](int nb, int lo) { return e[nb][lo]; }, T);
        if (OUT) {
            float acc[2][4] = {};
#pragma unroll
            for (int nb = 0; nb < 2; nb++)
                mma_split(acc[nb], a, kc[nb][0], kc[nb][1]);
            mma_states(acc, h, [&](int kb, int nb, int lo) { return st[kb][nb][lo]; });
            if (h_out && t_end - t0 < CEMA_SEG) /* before the row holds y */
                cema_tail(hs, h, T, row, t_end - t0);
            row_out(row, om, acc);
            __syncthreads();
            seg_store(y, tile, b, t0, t_end, L, D, vec, make_uint4(0, 0, 0, 0), false);
        } else if (t_end - t0 < CEMA_SEG) {
            cema_tail(hs, h, T, row, t_end - t0);
        }
    }
    if (g == 0 && d < D)
#pragma unroll
        for (int nb = 0; nb < 4; nb++) {
            if (!OUT)
                parts[at + nb * 4 + t] = hs[nb];
            else
                cema_state_put(h_out, h_out, b, d, D, N, nb * 4 + t, hs[nb]);
        }
}

static void cema_check(int N)
{
    if (N < 1 || N > CEMA_NK)
        fail("cema: N = %d states per channel (the CUDA kernels hold at most %d)", N, CEMA_NK);
}

/* passes (1) and (2): every part's start state into starts (B, P, D, NK), with segs every segment's
   local start state */
static void cema_starts(float2 *starts, float2 *segs, float *h_out, const bf16 *u, CemaParams P, const float *h0, int B,
                        int L, int D, int N, int part_len, bool vec)
{
    const int nparts = (L + part_len - 1) / part_len;
    cema_seg_kernel<false><<<dim3(ceil_div(D, CM_CH), nparts, B), CM_THREADS, 0, cuda_stream()>>>(
        NULL, starts, segs, u, P, NULL, NULL, L, D, N, part_len, vec);
    LAUNCH_CHECK();
    cema_part_chain_kernel<false><<<ceil_div((size_t)B * D * CEMA_NK, 128), 128, 0, cuda_stream()>>>(
        starts, h_out, h0, P, B, L, D, N, nparts, part_len);
    LAUNCH_CHECK();
}

void cuda_cema_forward(void *y, void *saved, const void *u, CemaParams p, ChunkState chunk, int B, int L, int D,
                       int N)
{
    cema_check(N);
    const int part_len = scratch_cema_part_len(B, L, D), nparts = (L + part_len - 1) / part_len;
    const bool vec = D % 8 == 0 && aligned16(u, y);
    const size_t nstarts = (size_t)B * nparts * D * CEMA_NK;
    float2 *starts = saved ? (float2 *)saved : (float2 *)cuda_scratch(SCRATCH_STATE_B, nstarts * sizeof(float2));
    float2 *segs = saved ? starts + nstarts : NULL;
    if (nparts == 1) { /* the output pass keeps whole states itself: the kept part start stays unwritten */
        starts = NULL;
    } else {
        cema_starts(starts, segs, chunk.h_out, (const bf16 *)u, p, chunk.h_in, B, L, D, N, part_len, vec);
        segs = NULL;
    }
    cema_seg_kernel<true><<<dim3(ceil_div(D, CM_CH), nparts, B), CM_THREADS, 0, cuda_stream()>>>(
        (bf16 *)y, starts, segs, (const bf16 *)u, p, chunk.h_in, starts ? NULL : chunk.h_out, L, D, N, part_len, vec);
    LAUNCH_CHECK();
}

/* ---- backward ---- */

/* A warp's shared memory in the backward: the coefficients, its constant B fragments in lane order
   (F's: B[i][2k + c] = conj(g_k q_k^(i+1)).(re, im), E's, and the carries' part of du: B[2k + c][j] =
   p_k (q_k^(15-j)).(re, im)), and the segments' A and B sums. The carries' pass (FULL false) has only
   the table and F's fragments: a smaller area, two blocks an SM. */
enum { FR_F = 0, FR_E = 8, FR_DU = 16, FR_N = 24 };
typedef struct {
    CemaTab tab;
    Frag frag[FR_N][32];
    float r[CEMA_NK], th[CEMA_NK];   /* |q|, arg q */
    float2 xr[CEMA_NK], xq[CEMA_NK]; /* a ragged last chunk: its carry; its term of G_q */
    union { /* the segments' A and B sums as the MMAs hold them (acc[nb], acc[4 + nb] by lane), in
               shared memory to spare registers; at the part's end by chunk and state */
        float4 acc[8][32];
        struct {
            float2 hs[16][CEMA_NK], rs[16][CEMA_NK];
        } end;
    } ab;
} CemaBack;
template <bool FULL> __host__ __device__ constexpr size_t cb_warp() /* a warp's area */
{
    return FULL ? sizeof(CemaBack) : offsetof(CemaBack, frag) + FR_E * 32 * sizeof(Frag);
}
template <bool FULL> __host__ __device__ constexpr size_t cb_tiles() /* dy's, and u's with FULL */
{
    return (FULL ? 2 : 1) * CM_CH * CM_ROW * sizeof(bf16);
}
template <bool FULL> __host__ __device__ constexpr size_t cb_smem()
{
    return cb_tiles<FULL>() + CM_CH * cb_warp<FULL>();
}
static_assert(cb_tiles<false>() % 16 == 0 && cb_warp<false>() % 16 == 0 && cb_warp<true>() % 16 == 0,
              "the warps' areas start aligned");

/* the four sums of a part (M (steps x steps), A (steps x states), B (steps x states), X (states)) to
   the per-state sums: dp = sum u Re G, G_q = sum conj(h_{t-1}) G_t, G_g = sum dy conj(h), into
   sums (CEMA_NSUM per state), and M's diagonal 0 (sum u dy) into somega */
__device__ void cema_part_sums(float *sums, float *somega, CemaBack &W, const float m[2][4], const float a[4][4],
                               const float bs[4][4], float2 x[4])
{
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    float *Ms = reinterpret_cast<float *>(W.frag), *Md = Ms + 256;
    float2 *Xs = reinterpret_cast<float2 *>(Md + 16), (*hs)[CEMA_NK] = W.ab.end.hs, (*rs)[CEMA_NK] = W.ab.end.rs;
    __syncwarp();
#pragma unroll
    for (int nb = 0; nb < 2; nb++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            Ms[(g + 8 * (e >> 1)) * 16 + nb * 8 + 2 * t + (e & 1)] = m[nb][e];
#pragma unroll
    for (int nb = 0; nb < 4; nb++) {
        hs[g][nb * 4 + t] = make_float2(a[nb][0], a[nb][1]);
        hs[g + 8][nb * 4 + t] = make_float2(a[nb][2], a[nb][3]);
        rs[g][nb * 4 + t] = make_float2(bs[nb][0], bs[nb][1]);
        rs[g + 8][nb * 4 + t] = make_float2(bs[nb][2], bs[nb][3]);
#pragma unroll
        for (int o = 4; o < 32; o *= 2) {
            x[nb].x += __shfl_xor_sync(0xffffffffu, x[nb].x, o);
            x[nb].y += __shfl_xor_sync(0xffffffffu, x[nb].y, o);
        }
        if (g == 0)
            Xs[nb * 4 + t] = x[nb];
    }
    __syncwarp();
    if (lane < CM_C) { /* M_m = sum_{i - j = m} M[i][j] */
        float s = 0.0f;
        for (int i = lane; i < CM_C; i++)
            s += Ms[i * 16 + i - lane];
        Md[lane] = s;
    }
    __syncwarp();
    if (lane >= CEMA_NK || !sums)
        return;
    const int k = lane;
    const CemaTab &T = W.tab;
    const float p = T.p[k];
    const float2 g_ = T.g[k];
    float2 S = {}, SM = {}, A1 = {}, A2 = {}, B1 = {}, B2 = {};
    for (int n = 0; n < CM_C; n++) {
        const float2 cq = conj2(T.q[n][k]), cq1 = conj2(T.q[n + 1][k]);
        S = cfma(make_float2(Md[n], 0.0f), cq, S); /* sum_m cq^m M_m */
        if (n + 1 < CM_C)
            SM = cfma(make_float2((n + 1) * Md[n + 1], 0.0f), cq, SM);          /* sum_m m cq^(m-1) M_m */
        A1 = cfma(cq1, hs[n][k], A1);                                         /* sum_i cq^(i+1) A_i */
        A2 = cfma(make_float2((float)(n + 1), 0.0f), cmul(cq, hs[n][k]), A2); /* sum_i (i+1) cq^i A_i */
        B1 = cfma(conj2(T.q[CM_C - 1 - n][k]), rs[n][k], B1);                 /* sum_j cq^(15-j) B_j */
        if (n < CM_C - 1)                                                       /* sum_j (15-j) cq^(14-j) B_j */
            B2 = cfma(make_float2((float)(CM_C - 1 - n), 0.0f), cmul(conj2(T.q[CM_C - 2 - n][k]), rs[n][k]), B2);
    }
    const float2 gc = conj2(g_);
    const float2 Gg = make_float2(p * S.x + A1.x, p * S.y + A1.y);
    const float dp = cmul(gc, S).x + B1.x;
    float2 Gq = cmul(gc, make_float2(p * SM.x + A2.x, p * SM.y + A2.y));
    Gq = make_float2(Gq.x + p * B2.x, Gq.y + p * B2.y);
    Gq = cfma(make_float2((float)CM_C, 0.0f), cmul(conj2(T.q[CM_C - 1][k]), Xs[k]), Gq);
    Gq = make_float2(Gq.x + W.xq[k].x, Gq.y + W.xq[k].y);
    float *s = sums + k * CEMA_NSUM;
    s[0] = dp, s[1] = Gq.x, s[2] = Gq.y, s[3] = Gg.x, s[4] = Gg.y;
    if (k == 0)
        *somega = Md[0];
}

/* (1') with FULL false: each part's carry out (what it passes before its first step) from a zero carry
   at its end into carries (B, P, D, NK); (3') with FULL true: from the carry entering each part's last
   step (carries), its segments backwards: du (+)= omega dy + dy's convolution + the carries' part,
   and the part's sums into sums (B, P, D, NK, CEMA_NSUM) and somega (B, P, D). The segments' states
   come from starts (the part's; NULL: zero) and segs (each segment's local start, or its whole start
   state where the forward kept one part's from h0, and starts is NULL). With FULL and carries NULL,
   the sequence is one part: its carry comes from dh_out (B, D, N, 2; NULL: zero) and the one it
   passes before its first step goes to dh_in (when not NULL), so passes (1') and (2') are not
   needed. */
template <bool FULL>
__global__ void __launch_bounds__(CM_THREADS, FULL ? CM_BLOCKS : 2 * CM_BLOCKS)
    cema_seg_back_kernel(bf16 *du, float *sums, float *somega, float2 *carries, const float2 *starts,
                         const float2 *segs, const bf16 *u, const bf16 *dy, CemaParams P, const float *dh_out,
                         float *dh_in, int L, int D, int N, int part_len, bool vec, bool acc)
{
    extern __shared__ uint4 smem_[];
    bf16 *gtile = reinterpret_cast<bf16 *>(smem_), *utile = gtile + CM_CH * CM_ROW;
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    CemaBack &W =
        *reinterpret_cast<CemaBack *>(reinterpret_cast<char *>(smem_) + cb_tiles<FULL>() + w * cb_warp<FULL>());
    const int d = blockIdx.x * CM_CH + w, b = blockIdx.z, t_begin = blockIdx.y * part_len;
    const int t_end = min(L, t_begin + part_len), spp = part_len / CEMA_SEG;
    const int nseg = (t_end - t_begin + CEMA_SEG - 1) / CEMA_SEG;
    const size_t row_at = (size_t)b * gridDim.y + blockIdx.y, at = (row_at * D + d) * CEMA_NK;
    const CemaTab &T = W.tab;
    cema_tab_fill(W.tab, P, d, D, N);
#pragma unroll
    for (int nb = 0; nb < 4; nb++)
        frag_split(W.frag[FR_F + 2 * nb][lane], W.frag[FR_F + 2 * nb + 1][lane], [&](int i, int c) {
            const int k = nb * 4 + c / 2;
            const float2 z = cmul(T.g[k], T.q[i + 1][k]);
            return c & 1 ? -z.y : z.x;
        });
    if constexpr (FULL) {
        if (lane < CEMA_NK) {
            const Coef c = cema_coef(P, d, lane, D, N);
            W.r[lane] = c.r, W.th[lane] = c.th;
            W.xq[lane] = make_float2(0.0f, 0.0f);
        }
#pragma unroll
        for (int nb = 0; nb < 4; nb++)
            frag_e(W.frag[FR_E + 2 * nb][lane], W.frag[FR_E + 2 * nb + 1][lane], T, nb);
#pragma unroll
        for (int nb = 0; nb < 2; nb++)
#pragma unroll
            for (int kb = 0; kb < 2; kb++)
                frag_split(W.frag[FR_DU + 4 * kb + 2 * nb][lane], W.frag[FR_DU + 4 * kb + 2 * nb + 1][lane],
                           [&](int r, int j) {
                               const int k = kb * 8 + r / 2;
                               const float2 q = T.q[CM_C - 1 - (nb * 8 + j)][k];
                               return T.p[k] * (r & 1 ? q.y : q.x);
                           });
#pragma unroll
        for (int i = 0; i < 8; i++)
            W.ab.acc[i][lane] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
    __syncwarp();
    float2 re[4];
#pragma unroll
    for (int nb = 0; nb < 4; nb++) {
        re[nb] = FULL && d < D ? cema_state_get(carries, at, dh_out, b, d, D, N, nb * 4 + t) : make_float2(0.0f, 0.0f);
    }
    const float om = FULL && d < D ? bf(((const bf16 *)P.omega)[d]) : 0.0f;
    float m[2][4] = {};
    float2 x[4] = {};
    bf16 *grow = gtile + w * CM_ROW, *urow = utile + w * CM_ROW;
    uint4 rg, ru;
    const int t_last = t_begin + (nseg - 1) * CEMA_SEG;
    float2 h_start = make_float2(0.0f, 0.0f), h_seg = h_start; /* the part's start state, a segment's own */
    if (FULL && d < D) {
        if (starts)
            h_start = starts[at + lane % CEMA_NK];
        h_seg = segs[((row_at * spp + nseg - 1) * D + d) * CEMA_NK + lane % CEMA_NK];
    }
    seg_load(rg, dy, b, t_last, t_end, L, D, vec);
    if (FULL)
        seg_load(ru, u, b, t_last, t_end, L, D, vec);
    for (int si = nseg - 1; si >= 0; si--) {
        const int t0 = t_begin + si * CEMA_SEG, n = min(CEMA_SEG, t_end - t0);
        __syncthreads();
        seg_stage(gtile, rg);
        if (FULL)
            seg_stage(utile, ru);
        __syncthreads();
        if (si > 0) {
            seg_load(rg, dy, b, t0 - CEMA_SEG, t_end, L, D, vec);
            if (FULL)
                seg_load(ru, u, b, t0 - CEMA_SEG, t_end, L, D, vec);
        }
        /* The carries. The sequence's end inside the segment (the last part): the carry into its last
           step enters chunk lc, of len steps, as conj(q)^len R into F of lc (and as R_lc when lc is
           whole); a ragged lc (len < 16) is left out of the carries' MMAs and added here exactly. */
        uint32_t ga[4];
        frag_row<false>(ga, grow);
        const bool edge = n < CEMA_SEG && t0 + n == L;
        const int lc = (n - 1) / CM_C, len = n - lc * CM_C;
        float2 f[2][4], r[2][4], rin[4];
#pragma unroll
        for (int nb = 0; nb < 4; nb++) {
            float c[4] = {};
            mma_split(c, ga, W.frag[FR_F + 2 * nb][lane], W.frag[FR_F + 2 * nb + 1][lane]);
            f[0][nb] = make_float2(c[0], c[1]), f[1][nb] = make_float2(c[2], c[3]);
            rin[nb] = edge ? make_float2(0.0f, 0.0f) : re[nb];
            if (edge && g == lc % 8) {
                const float2 in = cmul(conj2(T.q[len][nb * 4 + t]), re[nb]);
                f[0][nb] = lc < 8 ? make_float2(f[0][nb].x + in.x, f[0][nb].y + in.y) : f[0][nb];
                f[1][nb] = lc < 8 ? f[1][nb] : make_float2(f[1][nb].x + in.x, f[1][nb].y + in.y);
            }
        }
        cema_seg_carries(r, rin, f, T);
        if (FULL && edge && len == CM_C && g == lc % 8)
#pragma unroll
            for (int nb = 0; nb < 4; nb++) {
                r[0][nb] = lc < 8 ? re[nb] : r[0][nb];
                r[1][nb] = lc < 8 ? r[1][nb] : re[nb];
            }
        /* the states before each chunk (after the carries: fewer values live at once) */
        float2 h[2][4];
        if (FULL) {
            uint32_t ua[4];
            frag_row<false>(ua, urow);
            /* the state before the segment, q^(t0 - t_begin) times the part's start plus the segment's
               own, once per state (lane k and k + 16), then to the lanes that hold it */
            const int k = lane % CEMA_NK;
            float2 hs[4];
            const float2 hk = cfma(qpow(W.r[k], W.th[k], t0 - t_begin), h_start, h_seg);
            if (si > 0 && d < D) /* the next one's, loaded early */
                h_seg = segs[((row_at * spp + si - 1) * D + d) * CEMA_NK + k];
#pragma unroll
            for (int nb = 0; nb < 4; nb++)
                hs[nb] = shfl2(hk, nb * 4 + t);
            cema_seg_states(
                h, hs, ua, [&](int nb, int lo) { return W.frag[FR_E + 2 * nb + lo][lane]; }, T);
        }
        if (FULL && edge && len < CM_C) {
#pragma unroll
            for (int nb = 0; nb < 4; nb++) { /* G_q's term len cq^(len-1) conj(H_lc) R; B with u right-aligned */
                const int k = nb * 4 + t;
                const float2 hf = shfl2(lc < 8 ? h[0][nb] : h[1][nb], lc % 8 * 4 + t);
                if (g == 0) {
                    W.xr[k] = re[nb];
                    W.xq[k] =
                        cmul(make_float2((float)len, 0.0f), cmul(conj2(T.q[len - 1][k]), cmul(conj2(hf), re[nb])));
                }
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int j = g + 8 * e - (CM_C - len);
                    if (j >= 0) {
                        const float v = bf(urow[lc * CM_C + j]);
                        float *sb = reinterpret_cast<float *>(&W.ab.acc[4 + nb][lane]) + 2 * e;
                        sb[0] = fmaf(v, re[nb].x, sb[0]);
                        sb[1] = fmaf(v, re[nb].y, sb[1]);
                    }
                }
            }
        }
#pragma unroll
        for (int nb = 0; nb < 4; nb++) {
            re[nb] = rin[nb];
            /* the carry before the part */
            cema_state_put(FULL && si == 0 && dh_in && g == 0 && d < D, dh_in, b, d, D, N, nb * 4 + t, re[nb]);
        }
        if constexpr (FULL) {
#pragma unroll
            for (int nb = 0; nb < 4; nb++) {
                x[nb] = cfma(conj2(h[0][nb]), r[0][nb], cfma(conj2(h[1][nb]), r[1][nb], x[nb]));
            }
            __syncwarp(); /* W.xr before the ragged chunk's du reads it */
            /* the sums: M += dy^T u, A += dy^T conj(H), B += u^T R (rows steps, columns chunks; A and B's
               B fragments are the scans' values transposed in registers) */
            {
                uint32_t gT[4], uT[4];
                frag_row<true>(gT, grow);
                frag_row<true>(uT, urow);
#pragma unroll
                for (int nb = 0; nb < 2; nb++)
                    mma_bf16(m[nb], gT, frag_row_b(urow, nb));
#pragma unroll
                for (int nb = 0; nb < 4; nb++) {
                    Frag hi, lo;
                    frag_chunks<true>(hi, lo, h[0][nb], h[1][nb]);
                    mma_acc(W.ab.acc[nb][lane], gT, hi, lo);
                    frag_chunks<false>(hi, lo, r[0][nb], r[1][nb]);
                    mma_acc(W.ab.acc[4 + nb][lane], uT, hi, lo);
                }
            }
            /* du = omega dy + dy's convolution + sum_k p_k Re(conj(q_k)^(15-j) R_k), added to what du
               holds with acc (loaded now, while the MMAs run) */
            uint4 prior = {};
            if (acc)
                seg_load(prior, du, b, t0, t_end, L, D, vec);
            float da[2][4] = {};
#pragma unroll
            for (int nb = 0; nb < 2; nb++) { /* dy's convolution: its fragments from K each time */
                Frag hi, lo;
                frag_conv<true>(hi, lo, T, nb);
                mma_split(da[nb], ga, hi, lo);
            }
            mma_states(da, r, [&](int kb, int nb, int lo) { return W.frag[FR_DU + 4 * kb + 2 * nb + lo][lane]; });
            if (edge && len < CM_C && g == lc % 8) /* the ragged chunk's carry, at its own last step */
#pragma unroll
                for (int nb = 0; nb < 2; nb++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        const int j = nb * 8 + 2 * t + e;
                        float v = 0.0f;
                        for (int k = 0; j < len && k < CEMA_NK; k++) {
                            const float2 q = T.q[len - 1 - j][k];
                            v += T.p[k] * (q.x * W.xr[k].x + q.y * W.xr[k].y);
                        }
                        da[nb][e] += lc < 8 ? v : 0.0f;
                        da[nb][2 + e] += lc < 8 ? 0.0f : v;
                    }
            row_out(grow, om, da);
            __syncthreads();
            seg_store(du, gtile, b, t0, t_end, L, D, vec, prior, acc);
        }
    }
    if constexpr (!FULL) {
        if (g == 0 && d < D)
#pragma unroll
            for (int nb = 0; nb < 4; nb++)
                carries[at + nb * 4 + t] = re[nb];
    } else {
        float sa[4][4], sb[4][4];
#pragma unroll
        for (int nb = 0; nb < 4; nb++) {
            const float4 a = W.ab.acc[nb][lane], c = W.ab.acc[4 + nb][lane];
            sa[nb][0] = a.x, sa[nb][1] = a.y, sa[nb][2] = a.z, sa[nb][3] = a.w;
            sb[nb][0] = c.x, sb[nb][1] = c.y, sb[nb][2] = c.z, sb[nb][3] = c.w;
        }
        cema_part_sums(d < D ? sums + at * CEMA_NSUM : NULL, somega + row_at * D + d, W, m, sa, sb, x);
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
        const float dr = s[1] * cs + s[2] * sn;           /* Re(G_q e^{-i th}) */
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

void cuda_cema_backward(void *du, CemaGrads g, const void *dy, const void *saved, const void *u, CemaParams p,
                        ChunkState chunk, int B, int L, int D, int N, int mode)
{
    static bool sized; /* the backward's kernels take more than 48 KiB of shared memory */
    if (!sized) {
        CUDA_CHECK(cudaFuncSetAttribute(cema_seg_back_kernel<false>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)cb_smem<false>()));
        CUDA_CHECK(cudaFuncSetAttribute(cema_seg_back_kernel<true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)cb_smem<true>()));
        sized = true;
    }
    cema_check(N);
    const int part_len = scratch_cema_part_len(B, L, D), nparts = (L + part_len - 1) / part_len;
    const size_t per_part = (size_t)B * nparts * D * CEMA_NK;
    const dim3 grid(ceil_div(D, CM_CH), nparts, B);
    const bool vec = D % 8 == 0 && aligned16(u, dy, du);
    /* one buffer: part starts (unless saved), part carries, then the sums (CEMA_NSUM per state, one
       per channel) */
    float2 *work = (float2 *)cuda_scratch(SCRATCH_STATE_B, scratch_cema_back(B, L, D));
    float2 *carries = work + per_part;
    float *sums = (float *)(carries + per_part), *somega = sums + per_part * CEMA_NSUM;
    const float2 *segs = (const float2 *)saved + per_part;
    const float2 *starts = nparts > 1 ? (const float2 *)saved : NULL; /* one part kept whole states */
    if (!saved) { /* the forward's pass (1) and (2) again */
        float2 *seg_out = (float2 *)cuda_scratch(SCRATCH_STATE_A, scratch_cema_segs(B, L, D));
        cema_starts(work, seg_out, NULL, (const bf16 *)u, p, chunk.h_in, B, L, D, N, part_len, vec);
        starts = work, segs = seg_out;
    }
    if (nparts > 1) { /* one part takes its carry from dh_out and gives dh_in itself */
        cema_seg_back_kernel<false><<<grid, CM_THREADS, cb_smem<false>(), cuda_stream()>>>(
            NULL, NULL, NULL, carries, NULL, NULL, NULL, (const bf16 *)dy, p, NULL, NULL, L, D, N, part_len, vec, false);
        LAUNCH_CHECK();
        cema_part_chain_kernel<true><<<ceil_div((size_t)B * D * CEMA_NK, 128), 128, 0, cuda_stream()>>>(
            carries, chunk.dh_in, chunk.dh_out, p, B, L, D, N, nparts, part_len);
        LAUNCH_CHECK();
    }
    cema_seg_back_kernel<true><<<grid, CM_THREADS, cb_smem<true>(), cuda_stream()>>>(
        (bf16 *)du, sums, somega, nparts > 1 ? carries : NULL, starts, segs, (const bf16 *)u, (const bf16 *)dy, p,
        chunk.dh_out, nparts > 1 ? NULL : chunk.dh_in, L, D, N, part_len, vec, mode & GRAD_ADD);
    LAUNCH_CHECK();
    cema_param_kernel<<<ceil_div((size_t)D * CEMA_NK, 256), 256, 0, cuda_stream()>>>(g, sums, somega, B * nparts, p, D,
                                                                                     N, mode);
    LAUNCH_CHECK();
}
