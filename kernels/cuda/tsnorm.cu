/* tsnorm.cu: timestep normalisation (spec section 4) as segmented scans, since one (b, group)
   column is a sequential recurrence over L but there are few columns. L is cut into segments of
   TSN_SEG timesteps; a warp owns one (b, group, segment) and its lanes the group's channels.

   Forward: (A) each segment's own statistics (mean and population variance of all its elements,
   by the same per-timestep update as the reference); (B) one thread per (b, group) merges them in
   order, starting from the prior state, giving every segment's incoming state and the final one;
   (C) each segment re-runs its timesteps from that state and writes y, mean, rstd.

   Backward: the reverse carry (U, W) = (dl/dmean_t, dl/dvar_t) is affine in the carry of the next
   step: (U, W)_{t-1} = [[c1, -2 c1 c2 delta], [0, c1]] (U, W)_t + v_t. (A) each segment composes its
   steps' maps; (B) one thread per (b, group) runs the composed maps from the last segment back,
   giving every segment's incoming carry and dstate_in; (C) each segment re-runs its steps from
   that carry and writes dx and per-segment sums of dw, db. All in fp32. */
#include "kernels/cuda/cuda.cuh"

#define TSN_SEG 64
#define TSN_CH 4 /* channels per lane: Dg <= 128 */
#define TSN_WARPS 4

/* one warp's (b, group, segment); segments of a timestep range are adjacent in g */
typedef struct {
    int b, g, seg, t0, t1;
} TsnWarp;

__device__ __forceinline__ int tsn_warp(TsnWarp *w, int B, int L, int G, int nseg)
{
    int id = blockIdx.x * TSN_WARPS + threadIdx.x / 32;
    if (id >= B * nseg * G)
        return 0;
    w->g = id % G;
    w->seg = id / G % nseg;
    w->b = id / G / nseg;
    w->t0 = w->seg * TSN_SEG;
    w->t1 = min(L, w->t0 + TSN_SEG);
    return 1;
}

/* the group's mean ux and population variance gv at one timestep; xv gets the lane's channels */
__device__ __forceinline__ void tsn_group_stats(float *xv, const bf16 *row, int Dg, float *ux, float *gv)
{
    const int lane = threadIdx.x % 32;
    float s = 0;
#pragma unroll
    for (int i = 0; i < TSN_CH; i++) {
        int c = lane + 32 * i;
        xv[i] = c < Dg ? bf(row[c]) : 0.0f;
        s += xv[i];
    }
    float m = warp_sum(s) / Dg, v = 0;
#pragma unroll
    for (int i = 0; i < TSN_CH; i++)
        if (lane + 32 * i < Dg)
            v += (xv[i] - m) * (xv[i] - m);
    *ux = m;
    *gv = warp_sum(v) / Dg;
}

/* the running update of spec section 4 with c2 = 1/n */
__device__ __forceinline__ void tsn_step(float *mu, float *var, float ux, float gv, float c2)
{
    float c1 = 1.0f - c2, d = ux - *mu;
    *mu += c2 * d;
    *var = c1 * *var + c2 * gv + c1 * c2 * d * d;
}

/* (A) stats: (B, G, nseg) float2 = (mean, var) of each segment alone */
__global__ void tsnorm_seg_stats_kernel(float2 *stats, const bf16 *x, int B, int L, int D, int G, int nseg)
{
    TsnWarp w;
    if (!tsn_warp(&w, B, L, G, nseg))
        return;
    const int Dg = D / G;
    float mu = 0, var = 0, xv[TSN_CH];
    for (int t = w.t0; t < w.t1; t++) {
        float ux, gv;
        tsn_group_stats(xv, x + ((size_t)w.b * L + t) * D + (size_t)w.g * Dg, Dg, &ux, &gv);
        tsn_step(&mu, &var, ux, gv, 1.0f / (float)(t - w.t0 + 1));
    }
    if (threadIdx.x % 32 == 0)
        stats[((size_t)w.b * G + w.g) * nseg + w.seg] = make_float2(mu, var);
}

/* (B) merge in order from the prior (n0 steps of state_in), replacing each segment's stats by the
   state before it; the final state to state_out */
__global__ void tsnorm_seg_scan_kernel(float2 *stats, float *state_out, const float *state_in, int64_t n0, int B,
                                       int L, int G, int nseg)
{
    int s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= B * G)
        return;
    double n = (double)n0;
    float mu = n0 ? state_in[2 * s] : 0.0f, var = n0 ? state_in[2 * s + 1] : 0.0f;
    for (int seg = 0; seg < nseg; seg++) {
        float2 st = stats[(size_t)s * nseg + seg];
        stats[(size_t)s * nseg + seg] = make_float2(mu, var);
        double len = min(TSN_SEG, L - seg * TSN_SEG);
        float f = (float)(len / (n + len)), d = st.x - mu;
        mu += d * f;
        var = var * (1.0f - f) + st.y * f + d * d * f * (1.0f - f);
        n += len;
    }
    if (state_out) {
        state_out[2 * s] = mu;
        state_out[2 * s + 1] = var;
    }
}

/* (C) re-run each segment from its incoming state: y, mean, rstd */
__global__ void tsnorm_seg_apply_kernel(bf16 *y, float *mean, float *rstd, const float2 *start, const bf16 *x,
                                        const bf16 *w, const bf16 *bias, int64_t n0, int B, int L, int D, int G,
                                        int nseg, float eps)
{
    TsnWarp wp;
    if (!tsn_warp(&wp, B, L, G, nseg))
        return;
    const int Dg = D / G, lane = threadIdx.x % 32;
    float sc[TSN_CH], sh[TSN_CH], xv[TSN_CH];
#pragma unroll
    for (int i = 0; i < TSN_CH; i++) {
        int c = lane + 32 * i;
        sc[i] = c < Dg ? 1.0f + bf(w[wp.g * Dg + c]) : 0.0f;
        sh[i] = c < Dg ? bf(bias[wp.g * Dg + c]) : 0.0f;
    }
    float2 st = start[((size_t)wp.b * G + wp.g) * nseg + wp.seg];
    float mu = st.x, var = st.y;
    for (int t = wp.t0; t < wp.t1; t++) {
        const size_t off = ((size_t)wp.b * L + t) * D + (size_t)wp.g * Dg, sg = ((size_t)wp.b * L + t) * G + wp.g;
        float ux, gv;
        tsn_group_stats(xv, x + off, Dg, &ux, &gv);
        tsn_step(&mu, &var, ux, gv, (float)(1.0 / (double)(n0 + t + 1)));
        float r = rsqrtf(var + eps);
        if (lane == 0) {
            mean[sg] = mu;
            rstd[sg] = r;
        }
#pragma unroll
        for (int i = 0; i < TSN_CH; i++)
            if (lane + 32 * i < Dg)
                y[off + lane + 32 * i] = tobf((xv[i] - mu) * r * sc[i] + sh[i]);
    }
}

static int tsn_nseg(int L) { return (L + TSN_SEG - 1) / TSN_SEG; }

static void tsn_check(int D, int G)
{
    if (D % G || D / G > 32 * TSN_CH)
        fail("tsnorm: groups of D/G = %d/%d channels (at most %d, and G must divide D)", D, G, 32 * TSN_CH);
}

void cuda_tsnorm_forward(void *y, float *mean, float *rstd, float *state_out, const void *x, const void *w,
                         const void *b, const float *state_in, int64_t n0, int B, int L, int D, int G, float eps)
{
    tsn_check(D, G);
    n0 = state_in ? n0 : 0;
    const int nseg = tsn_nseg(L), warps = B * G * nseg;
    float2 *stats = (float2 *)cuda_scratch(SCRATCH_STATE_A, (size_t)B * G * nseg * sizeof(float2));
    tsnorm_seg_stats_kernel<<<ceil_div(warps, TSN_WARPS), 32 * TSN_WARPS>>>(stats, (const bf16 *)x, B, L, D, G,
                                                                             nseg);
    LAUNCH_CHECK();
    tsnorm_seg_scan_kernel<<<ceil_div(B * G, 64), 64>>>(stats, state_out, state_in, n0, B, L, G, nseg);
    LAUNCH_CHECK();
    tsnorm_seg_apply_kernel<<<ceil_div(warps, TSN_WARPS), 32 * TSN_WARPS>>>(
        (bf16 *)y, mean, rstd, stats, (const bf16 *)x, (const bf16 *)w, (const bf16 *)b, n0, B, L, D, G, nseg, eps);
    LAUNCH_CHECK();
}

/* ---- backward ---- */

/* What one reverse step needs, from its timestep's row: the lane's x and dy, the group mean ux,
   ds = sum dy (1+w)(x - mu_t), db = sum dy (1+w); the constants of the step. */
typedef struct {
    float xv[TSN_CH], gv[TSN_CH];
    float ux, ds, dbt, r, c1, c2, delta;
} TsnBack;

/* the constants and sums of step t of group g (warp-wide) */
__device__ __forceinline__ void tsn_back_load(TsnBack *s, const bf16 *x, const bf16 *dy, const float *sc,
                                              const float *mean, const float *rstd, const float *state_in,
                                              int64_t n0, int b, int g, int t, int L, int D, int G)
{
    const int Dg = D / G, lane = threadIdx.x % 32;
    const size_t off = ((size_t)b * L + t) * D + (size_t)g * Dg, sg = ((size_t)b * L + t) * G + g;
    const float mu = mean[sg];
    float sx = 0, ds = 0, db = 0;
#pragma unroll
    for (int i = 0; i < TSN_CH; i++) {
        int c = lane + 32 * i;
        s->xv[i] = c < Dg ? bf(x[off + c]) : 0.0f;
        s->gv[i] = c < Dg ? bf(dy[off + c]) : 0.0f;
        sx += s->xv[i];
        ds += s->gv[i] * sc[i] * (s->xv[i] - mu);
        db += s->gv[i] * sc[i];
    }
    s->ux = warp_sum(sx) / Dg;
    s->ds = warp_sum(ds);
    s->dbt = warp_sum(db);
    s->r = rstd[sg];
    s->c2 = (float)(1.0 / (double)(n0 + t + 1));
    s->c1 = 1.0f - s->c2;
    const float mu_prev = t > 0 ? mean[sg - G] : n0 ? state_in[2 * ((size_t)b * G + g)] : 0.0f;
    s->delta = s->ux - mu_prev;
}

/* (A) maps: (B, G, nseg) float4 = (a, bb, p, q): the segment takes the carry (U, W) entering its
   last step to ([[a, bb], [0, a]] (U, W) + (p, q)) leaving its first step */
__global__ void tsnorm_seg_map_kernel(float4 *maps, const bf16 *x, const bf16 *dy, const bf16 *w, const float *mean,
                                      const float *rstd, const float *state_in, int64_t n0, int B, int L, int D,
                                      int G, int nseg)
{
    TsnWarp wp;
    if (!tsn_warp(&wp, B, L, G, nseg))
        return;
    const int Dg = D / G, lane = threadIdx.x % 32;
    float sc[TSN_CH];
#pragma unroll
    for (int i = 0; i < TSN_CH; i++)
        sc[i] = lane + 32 * i < Dg ? 1.0f + bf(w[wp.g * Dg + lane + 32 * i]) : 0.0f;
    float a = 1, bb = 0, p = 0, q = 0;
    for (int t = wp.t1 - 1; t >= wp.t0; t--) {
        TsnBack s;
        tsn_back_load(&s, x, dy, sc, mean, rstd, state_in, n0, wp.b, wp.g, t, L, D, G);
        const float beta = -2.0f * s.c1 * s.c2 * s.delta, e = 0.5f * s.r * s.r * s.r * s.ds, f = s.r * s.dbt;
        const float np = s.c1 * p + beta * q - s.c1 * f - beta * e, nq = s.c1 * q - s.c1 * e;
        bb = s.c1 * bb + beta * a;
        a = s.c1 * a;
        p = np;
        q = nq;
    }
    if (lane == 0)
        maps[((size_t)wp.b * G + wp.g) * nseg + wp.seg] = make_float4(a, bb, p, q);
}

/* (B) from the last segment back: each map is replaced by the carry entering its segment (x, y);
   the carry leaving segment 0 is dstate_in */
__global__ void tsnorm_seg_carry_kernel(float4 *maps, float *dstate_in, const float *dstate_out, int B, int G,
                                        int nseg)
{
    int s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= B * G)
        return;
    float U = dstate_out ? dstate_out[2 * s] : 0.0f, W = dstate_out ? dstate_out[2 * s + 1] : 0.0f;
    for (int seg = nseg - 1; seg >= 0; seg--) {
        float4 m = maps[(size_t)s * nseg + seg];
        maps[(size_t)s * nseg + seg] = make_float4(U, W, 0, 0);
        float nU = m.x * U + m.y * W + m.z;
        W = m.x * W + m.w;
        U = nU;
    }
    if (dstate_in) {
        dstate_in[2 * s] = U;
        dstate_in[2 * s + 1] = W;
    }
}

/* (C) re-run each segment's steps from its carry: dx (added), per-segment sums of dw, db into
   part (B * nseg rows of [dw (D) | db (D)]) */
__global__ void tsnorm_seg_back_kernel(bf16 *dx, float *part, const float4 *carry, const bf16 *x, const bf16 *dy,
                                       const bf16 *w, const float *mean, const float *rstd, const float *state_in,
                                       int64_t n0, int B, int L, int D, int G, int nseg)
{
    TsnWarp wp;
    if (!tsn_warp(&wp, B, L, G, nseg))
        return;
    const int Dg = D / G, lane = threadIdx.x % 32;
    float sc[TSN_CH], dw[TSN_CH] = {}, db[TSN_CH] = {};
#pragma unroll
    for (int i = 0; i < TSN_CH; i++)
        sc[i] = lane + 32 * i < Dg ? 1.0f + bf(w[wp.g * Dg + lane + 32 * i]) : 0.0f;
    float4 cin = carry[((size_t)wp.b * G + wp.g) * nseg + wp.seg];
    float U = cin.x, W = cin.y;
    for (int t = wp.t1 - 1; t >= wp.t0; t--) {
        TsnBack s;
        tsn_back_load(&s, x, dy, sc, mean, rstd, state_in, n0, wp.b, wp.g, t, L, D, G);
        const float mu = mean[((size_t)wp.b * L + t) * G + wp.g];
        const float du = U - s.r * s.dbt, dv = W - 0.5f * s.r * s.r * s.r * s.ds;
        const float dux = s.c2 * du + 2.0f * s.c1 * s.c2 * dv * s.delta, dgv = s.c2 * dv;
        const size_t off = ((size_t)wp.b * L + t) * D + (size_t)wp.g * Dg;
#pragma unroll
        for (int i = 0; i < TSN_CH; i++) {
            int c = lane + 32 * i;
            if (c < Dg) {
                float g = bf(dx[off + c]) + s.gv[i] * s.r * sc[i] + (dux + 2.0f * dgv * (s.xv[i] - s.ux)) / Dg;
                dx[off + c] = tobf(g);
                dw[i] += s.gv[i] * (s.xv[i] - mu) * s.r;
                db[i] += s.gv[i];
            }
        }
        U = s.c1 * du - 2.0f * s.c1 * s.c2 * dv * s.delta;
        W = s.c1 * dv;
    }
    float *row = part + ((size_t)wp.b * nseg + wp.seg) * 2 * D;
#pragma unroll
    for (int i = 0; i < TSN_CH; i++)
        if (lane + 32 * i < Dg) {
            row[wp.g * Dg + lane + 32 * i] = dw[i];
            row[D + wp.g * Dg + lane + 32 * i] = db[i];
        }
}

void cuda_tsnorm_backward(void *dx, float *dw, float *db, float *dstate_in, const void *dy, const float *dstate_out,
                          const void *x, const float *mean, const float *rstd, const void *w, const float *state_in,
                          int64_t n0, int B, int L, int D, int G)
{
    tsn_check(D, G);
    n0 = state_in ? n0 : 0;
    const int nseg = tsn_nseg(L), warps = B * G * nseg, blocks = ceil_div(warps, TSN_WARPS);
    float4 *maps = (float4 *)cuda_scratch(SCRATCH_STATE_A, (size_t)B * G * nseg * sizeof(float4));
    float *part = (float *)cuda_scratch(SCRATCH_PARTIALS, (size_t)B * nseg * 2 * D * sizeof(float));
    tsnorm_seg_map_kernel<<<blocks, 32 * TSN_WARPS>>>(maps, (const bf16 *)x, (const bf16 *)dy, (const bf16 *)w, mean,
                                                      rstd, state_in, n0, B, L, D, G, nseg);
    LAUNCH_CHECK();
    tsnorm_seg_carry_kernel<<<ceil_div(B * G, 64), 64>>>(maps, dstate_in, dstate_out, B, G, nseg);
    LAUNCH_CHECK();
    tsnorm_seg_back_kernel<<<blocks, 32 * TSN_WARPS>>>((bf16 *)dx, part, maps, (const bf16 *)x, (const bf16 *)dy,
                                                       (const bf16 *)w, mean, rstd, state_in, n0, B, L, D, G, nseg);
    LAUNCH_CHECK();
    cuda_add_partials(dw, part, B * nseg, D, 2 * (size_t)D);
    cuda_add_partials(db, part + D, B * nseg, D, 2 * (size_t)D);
}
