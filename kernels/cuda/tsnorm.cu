/* tsnorm.cu: timestep normalisation (spec section 4). The running statistics of a (b, group)
   column are a sequential recurrence over L, but what it consumes per step is only the group's
   mean and variance at that step, so the work splits into wide passes over the data and narrow
   scans over per-step statistics:

   Forward: (1) one thread per (b, t, group): the group's mean ux and population variance gv;
   (2) segments of TSN_SEG steps summarise their steps (the reference's per-step update from an
   empty state); (3) one warp per (b, group) merges the segments from the prior state in a scan,
   giving each segment's incoming state and state_out; (4) each segment re-runs its steps: mean_t,
   rstd_t; (5) y = (x - mean_t) rstd_t (1 + w) + b over the whole (T, D), 8 channels per thread.

   Backward: the reverse carry (U, W) = (dl/dmean_t, dl/dvar_t) is affine in the next step's:
   (U, W)_{t-1} = [[c1, -2 c1 c2 delta], [0, c1]] (U, W)_t + v_t. (1) per (b, t, group): ux,
   ds = sum dy (1+w)(x - mean_t), db = sum dy (1+w); (2) each segment composes its steps' maps;
   (3) one warp per (b, group) composes the maps from the last segment back in a scan: each
   segment's incoming carry, and dstate_in; (4) each segment re-runs its steps from that carry,
   leaving per step the two coefficients of dx = dy rstd (1+w) + alpha + beta x; (5) one pass
   over (T, D) writes or adds dx and sums dw, db per block (then over blocks). All in fp32. */
#include "kernels/cuda/cuda.cuh"

#define TSN_BATCH 8 /* steps whose loads a segment thread issues at once */
#define TSN_ROWS 512 /* blocks of the (T, D) backward pass: rows of partial sums */

/* ---- per (b, t, group) statistics ---- */

/* sum of x and of (x - m)^2 over the group's Dg channels at row */
template <int VEC> __device__ __forceinline__ float2 group_mean_var(const bf16 *row, int Dg)
{
    float s = 0, v = 0, x[VEC];
    for (int c = 0; c < Dg; c += VEC) {
        load_bf<VEC>(x, row + c);
#pragma unroll
        for (int e = 0; e < VEC; e++)
            s += x[e];
    }
    const float m = s / Dg;
    for (int c = 0; c < Dg; c += VEC) {
        load_bf<VEC>(x, row + c);
#pragma unroll
        for (int e = 0; e < VEC; e++)
            v += (x[e] - m) * (x[e] - m);
    }
    return make_float2(m, v / Dg);
}

/* forward (1): stats (B, L, G) = (ux, gv), one thread per cell (with a cell's loads spread over
   S lanes, as in the backward's pass, tsnorm_forward took 6.46 ms a step at 1.3B/32K against 5.20 on
   an H100: fewer loads in flight a thread, and the second read waits on the lanes' mean) */
template <int VEC> __global__ void tsn_stats_kernel(float2 *stats, const bf16 *x, size_t rows, int D, int G)
{
    const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= rows * G)
        return;
    const int Dg = D / G, g = i % G;
    stats[i] = group_mean_var<VEC>(x + i / G * D + (size_t)g * Dg, Dg);
}

/* the running update of spec section 4 with c2 = 1/n */
__device__ __forceinline__ void tsn_step(float *mu, float *var, float ux, float gv, float c2)
{
    float c1 = 1.0f - c2, d = ux - *mu;
    *mu += c2 * d;
    *var = c1 * *var + c2 * gv + c1 * c2 * d * d;
}

/* one thread per (b, segment, group), g fastest */
typedef struct {
    int b, seg, g, t0, t1;
} TsnSeg;

__device__ __forceinline__ int tsn_seg(TsnSeg *s, int B, int L, int G, int nseg)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= B * nseg * G)
        return 0;
    s->g = i % G;
    s->seg = i / G % nseg;
    s->b = i / G / nseg;
    s->t0 = s->seg * TSN_SEG;
    s->t1 = min(L, s->t0 + TSN_SEG);
    return 1;
}

/* (B, L, G) index of step t of the segment's (b, g) */
__device__ __forceinline__ size_t tsn_cell(const TsnSeg &s, int t, int L, int G)
{
    return ((size_t)s.b * L + t) * G + s.g;
}

/* c2 = 1 / count at step t after n0 steps of the prior state, rounded to float. Up to 2^24 a float
   division gives the same bits as the double one (both round correctly; test_ops_ref checks every
   count) for fewer instructions: ncu had the backward scans bound by their per-step arithmetic. */
__device__ __forceinline__ float tsn_c2(int64_t n0, int t)
{
    const int64_t n = n0 + t + 1;
    return n <= (1 << 24) ? 1.0f / (float)n : (float)(1.0 / (double)n);
}

/* the walk's k-th step */
template <bool REV> __device__ __forceinline__ int tsn_step_t(const TsnSeg &s, int k)
{
    return REV ? s.t1 - 1 - k : s.t0 + k;
}

/* in[j] = load(t) for the walk's steps k0 + j that the segment has */
template <bool REV, typename In, typename Load>
__device__ __forceinline__ void tsn_fetch(In (&in)[TSN_BATCH], const TsnSeg &s, int k0, const Load &load)
{
#pragma unroll
    for (int j = 0; j < TSN_BATCH; j++)
        if (k0 + j < s.t1 - s.t0)
            in[j] = load(tsn_step_t<REV>(s, k0 + j));
}

/* step(in[j], t) for the walk's steps k0 + j that the segment has */
template <bool REV, typename In, typename Step>
__device__ __forceinline__ void tsn_consume(const In (&in)[TSN_BATCH], const TsnSeg &s, int k0, const Step &step)
{
#pragma unroll
    for (int j = 0; j < TSN_BATCH; j++)
        if (k0 + j < s.t1 - s.t0)
            step(in[j], tsn_step_t<REV>(s, k0 + j));
}

/* A segment thread's walk over its steps, from t0 up or (REV) from t1 - 1 down: step(load(t), t). The steps are a
   recurrence but their loads are not, and too few threads run (B nseg G) to hide latency by occupancy, so a batch
   of TSN_BATCH steps' loads goes into registers before the previous batch is consumed: up to 2 TSN_BATCH steps'
   loads in flight instead of one. Batches are unrolled, guarded by the segment's length (the last may be partial). */
template <bool REV, typename Load, typename Step>
__device__ __forceinline__ void tsn_walk(const TsnSeg &s, const Load &load, const Step &step)
{
    decltype(load(0)) a[TSN_BATCH], b[TSN_BATCH];
    tsn_fetch<REV>(a, s, 0, load);
    for (int k = 0; k < s.t1 - s.t0; k += 2 * TSN_BATCH) {
        tsn_fetch<REV>(b, s, k + TSN_BATCH, load);
        tsn_consume<REV>(a, s, k, step);
        tsn_fetch<REV>(a, s, k + 2 * TSN_BATCH, load);
        tsn_consume<REV>(b, s, k + TSN_BATCH, step);
    }
}

/* forward (2): segs (B, nseg, G) = (mean, var) of each segment's steps alone */
__global__ void tsn_seg_stats_kernel(float2 *segs, const float2 *stats, int B, int L, int G, int nseg)
{
    TsnSeg s;
    if (!tsn_seg(&s, B, L, G, nseg))
        return;
    float mu = 0, var = 0;
    tsn_walk<false>(
        s, [&](int t) { return stats[tsn_cell(s, t, L, G)]; },
        [&](float2 st, int t) { tsn_step(&mu, &var, st.x, st.y, 1.0f / (float)(t - s.t0 + 1)); });
    segs[((size_t)s.b * nseg + s.seg) * G + s.g] = make_float2(mu, var);
}

/* A summary of steps: their count, mean and population variance. Merging two (Chan et al.) is
   associative, so a warp merges 32 segments at once in a scan of shuffles. */
typedef struct {
    double n;
    float mu, var;
} TsnSum;

/* a's steps then b's */
__device__ __forceinline__ TsnSum tsn_merge(TsnSum a, TsnSum b)
{
    const double n = a.n + b.n;
    if (n == 0)
        return a;
    /* in float: the counts are exact up to 2^24 steps, and a double division took most of the
       chain's time (ncu) */
    const float f = (float)b.n / (float)n, d = b.mu - a.mu;
    return {n, a.mu + d * f, a.var * (1.0f - f) + b.var * f + d * d * f * (1.0f - f)};
}

__device__ __forceinline__ TsnSum tsn_shfl(TsnSum v, int src)
{
    return {__shfl_sync(~0u, v.n, src), __shfl_sync(~0u, v.mu, src), __shfl_sync(~0u, v.var, src)};
}

/* A backward segment's map: the carry (U, W) entering its last step to [[a, b], [0, a]] (U, W) + (p, q)
   leaving its first step. Composing two is associative too. */
typedef struct {
    float a, b, p, q;
} TsnMap;

/* f, then g */
__device__ __forceinline__ TsnMap tsn_compose(TsnMap f, TsnMap g)
{
    return {g.a * f.a, g.a * f.b + g.b * f.a, g.a * f.p + g.b * f.q + g.p, g.a * f.q + g.q};
}

__device__ __forceinline__ TsnMap tsn_shfl(TsnMap v, int src)
{
    return {__shfl_sync(~0u, v.a, src), __shfl_sync(~0u, v.b, src), __shfl_sync(~0u, v.p, src),
            __shfl_sync(~0u, v.q, src)};
}

/* Lane l's inclusive scan op(v_0, ..., v_l) over the warp (Hillis-Steele, op(earlier, later)), then
   the exclusive one (lane 0: ident) into *excl; returns the warp's whole, lane 31's inclusive. */
template <typename T, typename Op> __device__ __forceinline__ T tsn_warp_scan(T v, T ident, T *excl, const Op &op)
{
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int d = 1; d < 32; d *= 2) {
        T o = tsn_shfl(v, max(lane - d, 0));
        if (lane >= d)
            v = op(o, v);
    }
    T e = tsn_shfl(v, max(lane - 1, 0));
    *excl = lane ? e : ident;
    return tsn_shfl(v, 31);
}

/* forward (3): one warp per (b, g) merges the segments in order from the prior (n0 steps of state_in), 32 at a
   time: each segment's summary is replaced by the state before it; the final state to state_out */
__global__ void tsn_seg_chain_kernel(float2 *segs, float *state_out, const float *state_in, int64_t n0, int B, int L,
                                     int G, int nseg)
{
    const int i = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
    if (i >= B * G)
        return;
    const int b = i / G, g = i % G;
    const TsnSum none = {0, 0.0f, 0.0f};
    TsnSum run = n0 ? TsnSum{(double)n0, state_in[2 * i], state_in[2 * i + 1]} : none;
    float2 *col = segs + (size_t)b * nseg * G + g; /* segment s at col[s * G] */
    float2 next = lane < nseg ? col[(size_t)lane * G] : make_float2(0.0f, 0.0f);
    for (int s0 = 0; s0 < nseg; s0 += 32) {
        const int seg = s0 + lane;
        const float2 v = next; /* the next 32 segments' loads in flight during this scan */
        if (seg + 32 < nseg)
            next = col[(size_t)(seg + 32) * G];
        TsnSum x = none, before;
        if (seg < nseg)
            x = {(double)min(TSN_SEG, L - seg * TSN_SEG), v.x, v.y};
        const TsnSum all = tsn_warp_scan(x, none, &before, tsn_merge);
        before = tsn_merge(run, before);
        if (seg < nseg)
            col[(size_t)seg * G] = make_float2(before.mu, before.var);
        run = tsn_merge(run, all);
    }
    if (state_out && lane == 0) {
        state_out[2 * i] = run.mu;
        state_out[2 * i + 1] = run.var;
    }
}

/* forward (4): each segment's steps from its incoming state: mean, rstd (B, L, G) */
__global__ void tsn_seg_apply_kernel(float *mean, float *rstd, const float2 *segs, const float2 *stats, int64_t n0,
                                     int B, int L, int G, int nseg, float eps)
{
    TsnSeg s;
    if (!tsn_seg(&s, B, L, G, nseg))
        return;
    const float2 st0 = segs[((size_t)s.b * nseg + s.seg) * G + s.g];
    float mu = st0.x, var = st0.y;
    tsn_walk<false>(
        s, [&](int t) { return stats[tsn_cell(s, t, L, G)]; },
        [&](float2 st, int t) {
            const size_t i = tsn_cell(s, t, L, G);
            tsn_step(&mu, &var, st.x, st.y, tsn_c2(n0, t));
            mean[i] = mu;
            rstd[i] = rsqrtf(var + eps);
        });
}

/* forward (5): y = (x - mean) rstd (1 + w) + b, VEC channels (of one group) per thread */
template <int VEC>
__global__ void tsn_normalize_kernel(bf16 *y, const bf16 *x, const float *mean, const float *rstd, const bf16 *w,
                                     const bf16 *bias, size_t rows, int D, int G)
{
    const size_t nv = rows * (D / VEC);
    const int Dg = D / G;
    for (size_t v = blockIdx.x * (size_t)blockDim.x + threadIdx.x; v < nv; v += (size_t)gridDim.x * blockDim.x) {
        const size_t bt = v / (D / VEC);
        const int c = (int)(v % (D / VEC)) * VEC;
        const size_t sg = bt * G + c / Dg;
        const float mu = mean[sg], r = rstd[sg];
        float xv[VEC], wv[VEC], bv[VEC];
        load_bf<VEC>(xv, x + bt * D + c);
        load_bf<VEC>(wv, w + c);
        load_bf<VEC>(bv, bias + c);
#pragma unroll
        for (int e = 0; e < VEC; e++)
            xv[e] = (xv[e] - mu) * r * (1.0f + wv[e]) + bv[e];
        store_bf<VEC>(y + bt * D + c, xv);
    }
}


/* 8 channels per thread when they always fall in one group and rows are 16-byte aligned */
static int tsn_vec(int D, int G, const void *a, const void *b, const void *c, const void *d)
{
    if (D % G)
        fail("tsnorm: G = %d groups do not divide D = %d", G, D);
    return (D / G) % 8 == 0 && aligned16(a, b, c, d) ? 8 : 1;
}

void cuda_tsnorm_forward(void *y, float *mean, float *rstd, const void *x, const void *w, const void *b,
                         ChunkState chunk, int B, int L, int D, int G, float eps)
{
    const float *state_in = chunk.tsn_in;
    float *state_out = chunk.tsn_out;
    const int64_t n0 = state_in ? chunk.n0 : 0;
    const int nseg = scratch_tsn_nseg(L), vec = tsn_vec(D, G, y, x, w, b);
    const size_t rows = (size_t)B * L, cells = rows * G;
    float2 *stats = (float2 *)cuda_scratch(SCRATCH_STATE_A, scratch_tsn_forward(B, L, G));
    float2 *segs = stats + cells;
    if (vec == 8)
        tsn_stats_kernel<8><<<ceil_div(cells, 256), 256, 0, cuda_stream()>>>(stats, (const bf16 *)x, rows, D, G);
    else
        tsn_stats_kernel<1><<<ceil_div(cells, 256), 256, 0, cuda_stream()>>>(stats, (const bf16 *)x, rows, D, G);
    LAUNCH_CHECK();
    const unsigned sb = ceil_div((size_t)B * nseg * G, 128);
    tsn_seg_stats_kernel<<<sb, 128, 0, cuda_stream()>>>(segs, stats, B, L, G, nseg);
    LAUNCH_CHECK();
    tsn_seg_chain_kernel<<<ceil_div(B * G, 4), 128, 0, cuda_stream()>>>(segs, state_out, state_in, n0, B, L, G, nseg);
    LAUNCH_CHECK();
    tsn_seg_apply_kernel<<<sb, 128, 0, cuda_stream()>>>(mean, rstd, segs, stats, n0, B, L, G, nseg, eps);
    LAUNCH_CHECK();
    if (vec == 8)
        tsn_normalize_kernel<8><<<grid_for(rows * D / 8, 256), 256, 0, cuda_stream()>>>(
            (bf16 *)y, (const bf16 *)x, mean, rstd, (const bf16 *)w, (const bf16 *)b, rows, D, G);
    else
        tsn_normalize_kernel<1><<<grid_for(rows * D, 256), 256, 0, cuda_stream()>>>(
            (bf16 *)y, (const bf16 *)x, mean, rstd, (const bf16 *)w, (const bf16 *)b, rows, D, G);
    LAUNCH_CHECK();
}

/* ---- backward ---- */

/* The backward's per-cell pass gives each (b, t, group) cell S lanes (S: a power of two up to 32
   dividing the group's VEC-wide loads), lane l loading columns l VEC, (l + S) VEC, ...: a warp's
   loads of x and dy are contiguous (one thread per cell read them 64 bytes apart: 0.44 against
   0.42 ms a call at 1.3B/32K, H100) */
static int tsn_lanes(int Dg, int vec)
{
    int s = 1;
    while (s < 32 && (Dg / vec) % (2 * s) == 0)
        s *= 2;
    return s;
}

/* v summed over the cell's S lanes (every lane of the warp calls it) */
__device__ __forceinline__ float tsn_lane_sum(float v, int S)
{
    for (int o = 1; o < S; o *= 2)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* backward (1): bst (B, L, G) = (ux, ds, db, -) */
template <int VEC>
__global__ void tsn_back_stats_kernel(float4 *bst, const bf16 *x, const bf16 *dy, const bf16 *w, const float *mean,
                                      size_t rows, int D, int G, int S)
{
    const size_t i = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / S;
    const int Dg = D / G, g = i % G;
    const size_t off = i / G * D + (size_t)g * Dg;
    const float mu = i < rows * G ? mean[i] : 0.0f; /* threads past the last cell load nothing */
    float sx = 0, ds = 0, db = 0;
    for (int c = threadIdx.x % S * VEC; i < rows * G && c < Dg; c += S * VEC) {
        float xv[VEC], gv[VEC], wv[VEC];
        load_bf<VEC>(xv, x + off + c);
        load_bf<VEC>(gv, dy + off + c);
        load_bf<VEC>(wv, w + g * Dg + c);
#pragma unroll
        for (int e = 0; e < VEC; e++) {
            const float gw = gv[e] * (1.0f + wv[e]);
            sx += xv[e];
            ds += gw * (xv[e] - mu);
            db += gw;
        }
    }
    sx = tsn_lane_sum(sx, S), ds = tsn_lane_sum(ds, S), db = tsn_lane_sum(db, S);
    if (i < rows * G && threadIdx.x % S == 0)
        bst[i] = make_float4(sx / Dg, ds, db, 0.0f);
}

/* What reverse step t of (b, g) loads, a batch ahead: bst's (ux, ds, db, -), rstd and mean_{t-1}; the step itself
   derives c2 = 1 / count, c1 = 1 - c2 and delta = ux - mean_{t-1} */
typedef struct {
    float4 v;
    float r, mu_prev;
} TsnBack;

__device__ __forceinline__ TsnBack tsn_back_load(const float4 *bst, const float *mean, const float *rstd,
                                                 const float *state_in, int64_t n0, const TsnSeg &s, int t, int L,
                                                 int G)
{
    const size_t i = tsn_cell(s, t, L, G);
    const float mu_prev = t > 0 ? mean[i - G] : n0 ? state_in[2 * ((size_t)s.b * G + s.g)] : 0.0f;
    return {bst[i], rstd[i], mu_prev};
}

/* backward (2): maps (B, nseg, G) = (a, bb, p, q): the segment takes the carry (U, W) entering its
   last step to [[a, bb], [0, a]] (U, W) + (p, q) leaving its first step */
__global__ void tsn_back_map_kernel(float4 *maps, const float4 *bst, const float *mean, const float *rstd,
                                    const float *state_in, int64_t n0, int B, int L, int G, int nseg)
{
    TsnSeg s;
    if (!tsn_seg(&s, B, L, G, nseg))
        return;
    float a = 1, bb = 0, p = 0, q = 0;
    tsn_walk<true>(
        s, [&](int t) { return tsn_back_load(bst, mean, rstd, state_in, n0, s, t, L, G); },
        [&](const TsnBack &k, int t) {
            const float c2 = tsn_c2(n0, t), c1 = 1.0f - c2, delta = k.v.x - k.mu_prev, r = k.r;
            const float beta = -2.0f * c1 * c2 * delta, e = 0.5f * r * r * r * k.v.y, f = r * k.v.z;
            const float np = c1 * p + beta * q - c1 * f - beta * e, nq = c1 * q - c1 * e;
            bb = c1 * bb + beta * a;
            a = c1 * a;
            p = np;
            q = nq;
        });
    maps[((size_t)s.b * nseg + s.seg) * G + s.g] = make_float4(a, bb, p, q);
}

/* backward (3): one warp per (b, g) runs the maps from the last segment back, 32 segments at a time: each map
   replaced by the carry entering its segment; the carry leaving segment 0 is dstate_in */
__global__ void tsn_back_chain_kernel(float4 *maps, float *dstate_in, const float *dstate_out, int B, int G, int nseg)
{
    const int i = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
    if (i >= B * G)
        return;
    const int b = i / G, g = i % G;
    const TsnMap id = {1.0f, 0.0f, 0.0f, 0.0f};
    float U = dstate_out ? dstate_out[2 * i] : 0.0f, W = dstate_out ? dstate_out[2 * i + 1] : 0.0f;
    float4 *col = maps + (size_t)b * nseg * G + g; /* segment s at col[s * G] */
    float4 next = nseg - 1 - lane >= 0 ? col[(size_t)(nseg - 1 - lane) * G] : make_float4(1.0f, 0.0f, 0.0f, 0.0f);
    for (int s1 = nseg - 1; s1 >= 0; s1 -= 32) {
        const int seg = s1 - lane; /* lane 0 the latest: its map applies first */
        const float4 v = next;     /* the next 32 segments' loads in flight during this scan */
        if (seg - 32 >= 0)
            next = col[(size_t)(seg - 32) * G];
        TsnMap m = id, after;
        if (seg >= 0)
            m = {v.x, v.y, v.z, v.w};
        const TsnMap all = tsn_warp_scan(m, id, &after, tsn_compose);
        if (seg >= 0)
            col[(size_t)seg * G] = make_float4(after.a * U + after.b * W + after.p, after.a * W + after.q, 0.0f, 0.0f);
        const float nU = all.a * U + all.b * W + all.p;
        W = all.a * W + all.q;
        U = nU;
    }
    if (dstate_in && lane == 0) {
        dstate_in[2 * i] = U;
        dstate_in[2 * i + 1] = W;
    }
}

/* backward (4): each segment's steps from its carry; bst[i] becomes (alpha, beta, -, -) with
   dx_c += dy_c rstd (1 + w_c) + alpha + beta x_c */
__global__ void tsn_back_coef_kernel(float4 *bst, const float4 *carry, const float *mean, const float *rstd,
                                     const float *state_in, int64_t n0, int B, int L, int D, int G, int nseg)
{
    TsnSeg s;
    if (!tsn_seg(&s, B, L, G, nseg))
        return;
    const float Dg = (float)(D / G);
    const float4 cin = carry[((size_t)s.b * nseg + s.seg) * G + s.g];
    float U = cin.x, W = cin.y;
    /* bst in place: a step's cell is loaded (a batch ahead) by that step alone, then overwritten */
    tsn_walk<true>(
        s, [&](int t) { return tsn_back_load(bst, mean, rstd, state_in, n0, s, t, L, G); },
        [&](const TsnBack &k, int t) {
            const float c2 = tsn_c2(n0, t), c1 = 1.0f - c2, delta = k.v.x - k.mu_prev, r = k.r;
            const float du = U - r * k.v.z, dv = W - 0.5f * r * r * r * k.v.y;
            const float dux = c2 * du + 2.0f * c1 * c2 * dv * delta, dgv = c2 * dv;
            bst[tsn_cell(s, t, L, G)] = make_float4((dux - 2.0f * dgv * k.v.x) / Dg, 2.0f * dgv / Dg, 0.0f, 0.0f);
            U = c1 * du - 2.0f * c1 * c2 * dv * delta;
            W = c1 * dv;
        });
}

/* backward (5): dx = dy rstd (1 + w) + alpha + beta x (acc: dx +=) over rows, each thread J
   groups of VEC columns (one group's); per block sums of dw = dy (x - mean) rstd and db = dy into
   part rows [dw (D) | db (D)] */
template <int VEC, int J>
__global__ void tsn_back_apply_kernel(bf16 *dx, float *part, const bf16 *dy, const bf16 *x, const bf16 *w,
                                      const float *mean, const float *rstd, const float4 *coef, size_t rows, int D,
                                      int G, int acc)
{
    const int Dg = D / G;
    float dw[J][VEC] = {}, db[J][VEC] = {}, wv[J][VEC];
#pragma unroll
    for (int j = 0; j < J; j++) {
        const int c = (j * blockDim.x + threadIdx.x) * VEC;
        if (c < D)
            load_bf<VEC>(wv[j], w + c);
    }
    for (size_t bt = blockIdx.x; bt < rows; bt += gridDim.x) {
#pragma unroll
        for (int j = 0; j < J; j++) {
            const int c = (j * blockDim.x + threadIdx.x) * VEC;
            if (c >= D)
                continue;
            const size_t sg = bt * G + c / Dg, off = bt * D + c;
            const float mu = mean[sg], r = rstd[sg];
            const float4 k = coef[sg];
            float xv[VEC], gv[VEC], o[VEC] = {};
            load_bf<VEC>(xv, x + off);
            load_bf<VEC>(gv, dy + off);
            if (acc)
                load_bf<VEC>(o, dx + off);
#pragma unroll
            for (int e = 0; e < VEC; e++) {
                o[e] += gv[e] * r * (1.0f + wv[j][e]) + k.x + k.y * xv[e];
                dw[j][e] += gv[e] * (xv[e] - mu) * r;
                db[j][e] += gv[e];
            }
            store_bf<VEC>(dx + off, o);
        }
    }
#pragma unroll
    for (int j = 0; j < J; j++) {
        const int c = (j * blockDim.x + threadIdx.x) * VEC;
        if (c < D)
#pragma unroll
            for (int e = 0; e < VEC; e++) {
                part[(size_t)blockIdx.x * 2 * D + c + e] = dw[j][e];
                part[(size_t)blockIdx.x * 2 * D + D + c + e] = db[j][e];
            }
    }
}

void cuda_tsnorm_backward(void *dx, float *dw, float *db, const void *dy, const void *x, const float *mean,
                          const float *rstd, const void *w, ChunkState chunk, int B, int L, int D, int G,
                          int mode)
{
    const float *state_in = chunk.tsn_in, *dstate_out = chunk.dtsn_out;
    float *dstate_in = chunk.dtsn_in;
    const int64_t n0 = state_in ? chunk.n0 : 0;
    const int nseg = scratch_tsn_nseg(L), vec = tsn_vec(D, G, dx, dy, x, w);
    const size_t rows = (size_t)B * L, cells = rows * G;
    float4 *bst = (float4 *)cuda_scratch(SCRATCH_STATE_A, scratch_tsn_backward(B, L, G));
    float4 *maps = bst + cells;
    const int S = tsn_lanes(D / G, vec);
    if (vec == 8)
        tsn_back_stats_kernel<8><<<ceil_div(cells * S, 256), 256, 0, cuda_stream()>>>(
            bst, (const bf16 *)x, (const bf16 *)dy, (const bf16 *)w, mean, rows, D, G, S);
    else
        tsn_back_stats_kernel<1><<<ceil_div(cells * S, 256), 256, 0, cuda_stream()>>>(
            bst, (const bf16 *)x, (const bf16 *)dy, (const bf16 *)w, mean, rows, D, G, S);
    LAUNCH_CHECK();
    const unsigned sb = ceil_div((size_t)B * nseg * G, 128);
    tsn_back_map_kernel<<<sb, 128, 0, cuda_stream()>>>(maps, bst, mean, rstd, state_in, n0, B, L, G, nseg);
    LAUNCH_CHECK();
    tsn_back_chain_kernel<<<ceil_div(B * G, 4), 128, 0, cuda_stream()>>>(maps, dstate_in, dstate_out, B, G, nseg);
    LAUNCH_CHECK();
    tsn_back_coef_kernel<<<sb, 128, 0, cuda_stream()>>>(bst, maps, mean, rstd, state_in, n0, B, L, D, G, nseg);
    LAUNCH_CHECK();

    /* (T, D) pass: threads cover a row in J <= 4 groups of VEC columns */
    const int nv = D / vec, threads = nv < 256 ? (nv + 31) / 32 * 32 : 256, J = (nv + threads - 1) / threads;
    const int nb = rows < TSN_ROWS ? (int)rows : TSN_ROWS;
    if (J > 4)
        fail("tsnorm: D = %d is too wide for the backward kernel (at most %d)", D, 1024 * vec);
    float *part = (float *)cuda_scratch(SCRATCH_PARTIALS, (size_t)nb * 2 * D * sizeof(float));
    const int acc = mode & GRAD_ADD;
#define TSN_APPLY(V, JJ)                                                                                       \
    tsn_back_apply_kernel<V, JJ><<<nb, threads, 0, cuda_stream()>>>(                                           \
        (bf16 *)dx, part, (const bf16 *)dy, (const bf16 *)x, (const bf16 *)w, mean, rstd, bst, rows, D, G, acc)
    if (vec == 8)
        J == 1 ? TSN_APPLY(8, 1) : J == 2 ? TSN_APPLY(8, 2) : TSN_APPLY(8, 4);
    else
        J == 1 ? TSN_APPLY(1, 1) : J == 2 ? TSN_APPLY(1, 2) : TSN_APPLY(1, 4);
#undef TSN_APPLY
    LAUNCH_CHECK();
    cuda_add_partials(dw, part, nb, D, 2 * (size_t)D, mode);
    cuda_add_partials(db, part + D, nb, D, 2 * (size_t)D, mode);
}
