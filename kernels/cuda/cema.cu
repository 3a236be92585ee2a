/* cema.cu: complex EMA (spec section 3) as a chunked scan with the complex state in registers (no
   FFT): per (b, d, k) the recurrence h_t = p u_t + q h_{t-1} is linear, so L is cut into segments
   that run in parallel.

   Forward, segments of CEMA_SEG_F steps: (1) each segment's end state from a zero start; (2) one
   thread per (b, d, k) chains them, h_end = q^len h_start + local end, from h0, giving each
   segment's start state and h_out; (3) each segment re-runs from its start state and writes
   y = Re(sum_k g h) + omega u. A thread holds one (b, d, segment) with all N <= 16 states.

   Backward, segments of CEMA_SEG_B steps: the same two passes give every segment's start state;
   the reverse carry of G_h (G_t = conj(g) dy_t + conj(q) G_{t+1}, from dh_out) is chained the same
   way backwards, which also gives dh0; then each segment, per k, recomputes its states h_t into
   registers, runs G backwards beside them and sums du, dp = sum u Re G, G_q = sum conj(h_{t-1}) G,
   G_g = sum dy conj(h) (spec section 3's backward). Parameter sums go through shared memory per
   block and partial rows per block to a last kernel that applies the chain rule to the raw
   parameters. Coefficients, states and sums are fp32 throughout. */
#include "kernels/cuda/cuda.cuh"

#define CEMA_NK 16     /* states per channel held in registers: N <= 16 */
#define CEMA_SEG_F 128 /* forward segment */
#define CEMA_SEG_B 32  /* backward segment: states of one k kept in registers */
#define CEMA_BY 4      /* backward: segments per block row */
#define CEMA_NSUM 5    /* per (d, k): dp, G_q (re, im), G_g (re, im) */
#define TWO_PI_F 6.283185307179586f

typedef struct {
    float p, s, r, th, qr, qi, gr, gi;
} Coef;

/* coefficients of (d, k); all zero for k >= N so padded states stay zero */
__device__ __forceinline__ Coef cema_coef(CemaParams P, int d, int k, int N)
{
    Coef c = {};
    if (k >= N)
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

__device__ __forceinline__ size_t seg_index(int b, int seg, int d, int k, int nseg, int D)
{
    return (((size_t)b * nseg + seg) * D + d) * CEMA_NK + k;
}

/* (1) ends[b, seg, d, k] = the state at the segment's end from a zero start (grid: d, seg, b) */
template <int SEG> __global__ void cema_seg_end_kernel(float2 *ends, const bf16 *u, CemaParams P, int L, int D, int N)
{
    const int d = blockIdx.x * blockDim.x + threadIdx.x, seg = blockIdx.y, b = blockIdx.z, nseg = gridDim.y;
    if (d >= D)
        return;
    float p[CEMA_NK], qr[CEMA_NK], qi[CEMA_NK], hr[CEMA_NK] = {}, hi[CEMA_NK] = {};
#pragma unroll
    for (int k = 0; k < CEMA_NK; k++) {
        Coef c = cema_coef(P, d, k, N);
        p[k] = c.p, qr[k] = c.qr, qi[k] = c.qi;
    }
    const int t0 = seg * SEG, t1 = min(L, t0 + SEG);
    for (int t = t0; t < t1; t++) {
        const float x = bf(u[((size_t)b * L + t) * D + d]);
#pragma unroll
        for (int k = 0; k < CEMA_NK; k++) {
            float nr = fmaf(qr[k], hr[k], fmaf(-qi[k], hi[k], p[k] * x));
            hi[k] = fmaf(qr[k], hi[k], qi[k] * hr[k]);
            hr[k] = nr;
        }
    }
#pragma unroll
    for (int k = 0; k < CEMA_NK; k++)
        ends[seg_index(b, seg, d, k, nseg, D)] = make_float2(hr[k], hi[k]);
}

/* (2) one thread per (b, d, k): replaces each segment's end by its start state, from h0; the
   final state to h_out */
template <int SEG>
__global__ void cema_seg_chain_kernel(float2 *ends, float *h_out, const float *h0, CemaParams P, int B, int L, int D,
                                      int N, int nseg)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= B * D * CEMA_NK)
        return;
    const int k = i % CEMA_NK, d = i / CEMA_NK % D, b = i / CEMA_NK / D;
    const Coef c = cema_coef(P, d, k, N);
    const float2 qs = cema_qpow(c, SEG), ql = cema_qpow(c, L - (nseg - 1) * SEG);
    const size_t hk = (((size_t)b * D + d) * N + k) * 2;
    float2 h = h0 && k < N ? make_float2(h0[hk], h0[hk + 1]) : make_float2(0.0f, 0.0f);
    for (int seg = 0; seg < nseg; seg++) {
        const size_t at = seg_index(b, seg, d, k, nseg, D);
        const float2 e = ends[at], q = seg == nseg - 1 ? ql : qs;
        ends[at] = h;
        h = make_float2(q.x * h.x - q.y * h.y + e.x, q.x * h.y + q.y * h.x + e.y);
    }
    if (h_out && k < N) {
        h_out[hk] = h.x;
        h_out[hk + 1] = h.y;
    }
}

/* (3) y = Re(sum_k g h_t) + omega u_t from each segment's start state */
template <int SEG>
__global__ void cema_seg_out_kernel(bf16 *y, const float2 *starts, const bf16 *u, CemaParams P, int L, int D, int N)
{
    const int d = blockIdx.x * blockDim.x + threadIdx.x, seg = blockIdx.y, b = blockIdx.z, nseg = gridDim.y;
    if (d >= D)
        return;
    float p[CEMA_NK], qr[CEMA_NK], qi[CEMA_NK], gr[CEMA_NK], gi[CEMA_NK], hr[CEMA_NK], hi[CEMA_NK];
#pragma unroll
    for (int k = 0; k < CEMA_NK; k++) {
        Coef c = cema_coef(P, d, k, N);
        p[k] = c.p, qr[k] = c.qr, qi[k] = c.qi, gr[k] = c.gr, gi[k] = c.gi;
        float2 h = starts[seg_index(b, seg, d, k, nseg, D)];
        hr[k] = h.x, hi[k] = h.y;
    }
    const float om = bf(((const bf16 *)P.omega)[d]);
    const int t0 = seg * SEG, t1 = min(L, t0 + SEG);
    for (int t = t0; t < t1; t++) {
        const size_t at = ((size_t)b * L + t) * D + d;
        const float x = bf(u[at]);
        float acc = om * x;
#pragma unroll
        for (int k = 0; k < CEMA_NK; k++) {
            float nr = fmaf(qr[k], hr[k], fmaf(-qi[k], hi[k], p[k] * x));
            hi[k] = fmaf(qr[k], hi[k], qi[k] * hr[k]);
            hr[k] = nr;
            acc = fmaf(gr[k], hr[k], fmaf(-gi[k], hi[k], acc));
        }
        y[at] = tobf(acc);
    }
}

static void cema_check(int N)
{
    if (N < 1 || N > CEMA_NK)
        fail("cema: N = %d states per channel (the CUDA kernels hold at most %d)", N, CEMA_NK);
}

/* passes (1) and (2): every segment's start state into starts (B, nseg, D, NK) */
template <int SEG>
static void cema_starts(float2 *starts, float *h_out, const bf16 *u, CemaParams P, const float *h0, int B, int L,
                        int D, int N, int nseg)
{
    cema_seg_end_kernel<SEG><<<dim3(ceil_div(D, 64), nseg, B), 64>>>(starts, u, P, L, D, N);
    LAUNCH_CHECK();
    cema_seg_chain_kernel<SEG><<<ceil_div((size_t)B * D * CEMA_NK, 128), 128>>>(starts, h_out, h0, P, B, L, D, N,
                                                                                 nseg);
    LAUNCH_CHECK();
}

void cuda_cema_forward(void *y, float *h_out, const void *u, CemaParams p, const float *h0, int B, int L, int D,
                       int N)
{
    cema_check(N);
    const int nseg = (L + CEMA_SEG_F - 1) / CEMA_SEG_F;
    float2 *starts = (float2 *)cuda_scratch(SCRATCH_STATE_A, (size_t)B * nseg * D * CEMA_NK * sizeof(float2));
    cema_starts<CEMA_SEG_F>(starts, h_out, (const bf16 *)u, p, h0, B, L, D, N, nseg);
    cema_seg_out_kernel<CEMA_SEG_F><<<dim3(ceil_div(D, 64), nseg, B), 64>>>((bf16 *)y, starts, (const bf16 *)u, p, L,
                                                                            D, N);
    LAUNCH_CHECK();
}

/* ---- backward ---- */

/* (1') the carry a segment passes to the one before it, conj(q) G_{t0}, from a zero carry */
template <int SEG>
__global__ void cema_seg_gend_kernel(float2 *gends, const bf16 *dy, CemaParams P, int L, int D, int N)
{
    const int d = blockIdx.x * blockDim.x + threadIdx.x, seg = blockIdx.y, b = blockIdx.z, nseg = gridDim.y;
    if (d >= D)
        return;
    float qr[CEMA_NK], qi[CEMA_NK], gr[CEMA_NK], gi[CEMA_NK], cr[CEMA_NK] = {}, ci[CEMA_NK] = {};
#pragma unroll
    for (int k = 0; k < CEMA_NK; k++) {
        Coef c = cema_coef(P, d, k, N);
        qr[k] = c.qr, qi[k] = c.qi, gr[k] = c.gr, gi[k] = c.gi;
    }
    const int t0 = seg * SEG, t1 = min(L, t0 + SEG);
    for (int t = t1 - 1; t >= t0; t--) {
        const float g = bf(dy[((size_t)b * L + t) * D + d]);
#pragma unroll
        for (int k = 0; k < CEMA_NK; k++) {
            float Gr = fmaf(gr[k], g, cr[k]), Gi = fmaf(-gi[k], g, ci[k]);
            cr[k] = fmaf(qr[k], Gr, qi[k] * Gi);
            ci[k] = fmaf(qr[k], Gi, -qi[k] * Gr);
        }
    }
#pragma unroll
    for (int k = 0; k < CEMA_NK; k++)
        gends[seg_index(b, seg, d, k, nseg, D)] = make_float2(cr[k], ci[k]);
}

/* (2') one thread per (b, d, k), from the last segment back: each entry becomes the carry entering
   its segment's last step (dh_out for the last); what leaves segment 0 is dh0 */
template <int SEG>
__global__ void cema_seg_gchain_kernel(float2 *gends, float *dh0, const float *dh_out, CemaParams P, int B, int L,
                                       int D, int N, int nseg)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= B * D * CEMA_NK)
        return;
    const int k = i % CEMA_NK, d = i / CEMA_NK % D, b = i / CEMA_NK / D;
    const Coef c = cema_coef(P, d, k, N);
    const float2 qs = cema_qpow(c, SEG), ql = cema_qpow(c, L - (nseg - 1) * SEG);
    const size_t hk = (((size_t)b * D + d) * N + k) * 2;
    float2 C = dh_out && k < N ? make_float2(dh_out[hk], dh_out[hk + 1]) : make_float2(0.0f, 0.0f);
    for (int seg = nseg - 1; seg >= 0; seg--) {
        const size_t at = seg_index(b, seg, d, k, nseg, D);
        const float2 e = gends[at], q = seg == nseg - 1 ? ql : qs;
        gends[at] = C;
        C = make_float2(q.x * C.x + q.y * C.y + e.x, q.x * C.y - q.y * C.x + e.y); /* conj(q^n) C + e */
    }
    if (dh0 && k < N) {
        dh0[hk] = C.x;
        dh0[hk + 1] = C.y;
    }
}

/* (3') per (b, d, segment), k by k: states h_t into registers, then G backwards beside them.
   Block (32 channels, CEMA_BY segment rows); block row y handles segments
   seg0 + y + CEMA_BY * j, j < per. Sums: part[(b, group), d] = [k][dp, Gq re, Gq im, Gg re, Gg im],
   then sum u dy (omega) last: CEMA_NK * CEMA_NSUM + 1 floats. */
#define CEMA_PART (CEMA_NK * CEMA_NSUM + 1)
__global__ void __launch_bounds__(32 * CEMA_BY)
    cema_seg_back_kernel(bf16 *du, float *part, const float2 *starts, const float2 *carries, const bf16 *u,
                         const bf16 *dy, CemaParams P, int L, int D, int N, int nseg, int per)
{
    __shared__ float su[CEMA_SEG_B][32 * CEMA_BY], sdy[CEMA_SEG_B][32 * CEMA_BY];
    __shared__ float sums[CEMA_PART][32];
    const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 32 + tx, d = blockIdx.x * 32 + tx, b = blockIdx.z;
    for (int i = tid; i < CEMA_PART * 32; i += 32 * CEMA_BY)
        sums[i / 32][i % 32] = 0.0f;
    __syncthreads();
    const float om = d < D ? bf(((const bf16 *)P.omega)[d]) : 0.0f;
    float domega = 0;
    for (int j = 0; j < per; j++) {
        const int seg = blockIdx.y * per * CEMA_BY + j * CEMA_BY + ty;
        if (d >= D || seg >= nseg)
            continue;
        const int t0 = seg * CEMA_SEG_B, n = min(CEMA_SEG_B, L - t0);
        float dus[CEMA_SEG_B];
#pragma unroll
        for (int t = 0; t < CEMA_SEG_B; t++) {
            float x = 0, g = 0;
            if (t < n) {
                const size_t at = ((size_t)b * L + t0 + t) * D + d;
                x = bf(u[at]);
                g = bf(dy[at]);
            }
            su[t][tid] = x;
            sdy[t][tid] = g;
            dus[t] = om * g;
            domega += x * g;
        }
        for (int k = 0; k < N; k++) {
            const Coef c = cema_coef(P, d, k, N);
            const float2 h0 = starts[seg_index(b, seg, d, k, nseg, D)], cin = carries[seg_index(b, seg, d, k, nseg, D)];
            float hr[CEMA_SEG_B], hi[CEMA_SEG_B];
            float pr = h0.x, pi = h0.y;
#pragma unroll
            for (int t = 0; t < CEMA_SEG_B; t++) {
                const float x = su[t][tid];
                hr[t] = fmaf(c.qr, pr, fmaf(-c.qi, pi, c.p * x));
                hi[t] = fmaf(c.qr, pi, c.qi * pr);
                pr = hr[t], pi = hi[t];
            }
            float cr = cin.x, ci = cin.y, dp = 0, gqr = 0, gqi = 0, ggr = 0, ggi = 0;
#pragma unroll
            for (int t = CEMA_SEG_B - 1; t >= 0; t--) {
                if (t >= n)
                    continue;
                const float g = sdy[t][tid], x = su[t][tid];
                const float Gr = fmaf(c.gr, g, cr), Gi = fmaf(-c.gi, g, ci);
                const float hpr = t > 0 ? hr[t - 1] : h0.x, hpi = t > 0 ? hi[t - 1] : h0.y;
                dus[t] = fmaf(c.p, Gr, dus[t]);
                dp = fmaf(x, Gr, dp);
                gqr += hpr * Gr + hpi * Gi; /* conj(h_{t-1}) G_t */
                gqi += hpr * Gi - hpi * Gr;
                ggr = fmaf(g, hr[t], ggr); /* dy_t conj(h_t) */
                ggi = fmaf(-g, hi[t], ggi);
                cr = fmaf(c.qr, Gr, c.qi * Gi); /* conj(q) G_t */
                ci = fmaf(c.qr, Gi, -c.qi * Gr);
            }
            atomicAdd(&sums[k * CEMA_NSUM + 0][tx], dp);
            atomicAdd(&sums[k * CEMA_NSUM + 1][tx], gqr);
            atomicAdd(&sums[k * CEMA_NSUM + 2][tx], gqi);
            atomicAdd(&sums[k * CEMA_NSUM + 3][tx], ggr);
            atomicAdd(&sums[k * CEMA_NSUM + 4][tx], ggi);
        }
#pragma unroll
        for (int t = 0; t < CEMA_SEG_B; t++)
            if (t < n) {
                const size_t at = ((size_t)b * L + t0 + t) * D + d;
                du[at] = tobf(bf(du[at]) + dus[t]);
            }
    }
    atomicAdd(&sums[CEMA_PART - 1][tx], domega);
    __syncthreads();
    if (d < D)
        for (int i = ty; i < CEMA_PART; i += CEMA_BY)
            part[(((size_t)b * gridDim.y + blockIdx.y) * D + d) * CEMA_PART + i] = sums[i][tx];
}

/* the chain rule from (p, G_q, G_g) to the raw parameters, summing the partial rows; one thread
   per channel */
__global__ void cema_param_kernel(CemaGrads g, const float *part, int rows, CemaParams P, int D, int N)
{
    const int d = blockIdx.x * blockDim.x + threadIdx.x;
    if (d >= D)
        return;
    const float st = 1.0f / (1.0f + expf(-bf(((const bf16 *)P.theta)[d]))), gs = rsqrtf((float)N);
    float dth = 0, dom = 0;
    for (int r = 0; r < rows; r++)
        dom += part[((size_t)r * D + d) * CEMA_PART + CEMA_PART - 1];
    for (int k = 0; k < N; k++) {
        float s[CEMA_NSUM] = {};
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < CEMA_NSUM; j++)
                s[j] += part[((size_t)r * D + d) * CEMA_PART + k * CEMA_NSUM + j];
        const Coef c = cema_coef(P, d, k, N);
        float sn, cs;
        sincosf(c.th, &sn, &cs);
        const float dr = s[1] * cs + s[2] * sn;          /* Re(G_q e^{-i th}) */
        const float dthk = c.r * (s[2] * cs - s[1] * sn); /* r Im(G_q e^{-i th}) */
        const float dp = s[0] - c.s * dr, ds = -c.p * dr;
        const size_t i = (size_t)d * N + k;
        g.alpha[i] += dp * c.p * (1.0f - c.p);
        g.delta[i] += ds * c.s * (1.0f - c.s);
        g.gamma[2 * i] += s[3] * gs;
        g.gamma[2 * i + 1] += s[4] * gs;
        dth += dthk * (float)(k + 1);
    }
    g.theta[d] += dth * TWO_PI_F / (float)N * st * (1.0f - st);
    g.omega[d] += dom;
}

void cuda_cema_backward(void *du, CemaGrads g, float *dh0, const void *dy, const float *dh_out, const void *u,
                        CemaParams p, const float *h0, int B, int L, int D, int N)
{
    cema_check(N);
    const int nseg = (L + CEMA_SEG_B - 1) / CEMA_SEG_B;
    const size_t states = (size_t)B * nseg * D * CEMA_NK * sizeof(float2);
    float2 *starts = (float2 *)cuda_scratch(SCRATCH_STATE_A, states);
    float2 *carries = (float2 *)cuda_scratch(SCRATCH_STATE_B, states);
    cema_starts<CEMA_SEG_B>(starts, NULL, (const bf16 *)u, p, h0, B, L, D, N, nseg);
    cema_seg_gend_kernel<CEMA_SEG_B><<<dim3(ceil_div(D, 64), nseg, B), 64>>>(carries, (const bf16 *)dy, p, L, D, N);
    LAUNCH_CHECK();
    cema_seg_gchain_kernel<CEMA_SEG_B><<<ceil_div((size_t)B * D * CEMA_NK, 128), 128>>>(carries, dh0, dh_out, p, B,
                                                                                         L, D, N, nseg);
    LAUNCH_CHECK();
    /* about 32 segment groups per (b, channel block): enough blocks, few partial rows */
    const int per = (nseg + 32 * CEMA_BY - 1) / (32 * CEMA_BY), groups = (nseg + per * CEMA_BY - 1) / (per * CEMA_BY);
    float *part = (float *)cuda_scratch(SCRATCH_PARTIALS, (size_t)B * groups * D * CEMA_PART * sizeof(float));
    cema_seg_back_kernel<<<dim3(ceil_div(D, 32), groups, B), dim3(32, CEMA_BY)>>>(
        (bf16 *)du, part, starts, carries, (const bf16 *)u, (const bf16 *)dy, p, L, D, N, nseg, per);
    LAUNCH_CHECK();
    cema_param_kernel<<<ceil_div(D, 64), 64>>>(g, part, B * groups, p, D, N);
    LAUNCH_CHECK();
}
