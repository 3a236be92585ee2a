/* cema.c: complex EMA (spec section 3) as an exact recurrence per (b, d, k):
   h_t = p u_t + q h_{t-1}, y_t = Re(sum_k g_k h_{t,k}) + omega u_t, with h_{-1} = h0. Coefficients
   and the hidden state are double. Work is split over channels d (each thread owns its channels'
   parameter gradients, so no reduction is needed); a channel's column of u is gathered into a
   contiguous scratch first. Complex numbers are written out as (re, im) pairs. */
#include "kernels/cpu/cpu.h"

#define TWO_PI 6.283185307179586

/* Coefficients of one (d, k): p = sigmoid(alpha), s = sigmoid(delta), q = r e^{i th} with
   r = 1 - p s and th = (k+1) sigmoid(theta_d) 2pi/N, g = gamma / sqrt(N). */
typedef struct {
    double p, s, r, th, qr, qi, gr, gi;
} CemaCoef;

static void cema_coefs(CemaCoef *cf, CemaParams P, int d, int N)
{
    const real *alpha = P.alpha, *delta = P.delta, *theta = P.theta, *gamma = P.gamma;
    double phi = sigmoid(theta[d]) * TWO_PI / N, gs = 1 / sqrt((double)N);
    for (int k = 0; k < N; k++) {
        CemaCoef *c = &cf[k];
        size_t i = (size_t)d * N + k;
        c->p = sigmoid(alpha[i]);
        c->s = sigmoid(delta[i]);
        c->r = 1 - c->p * c->s;
        c->th = (k + 1) * phi;
        c->qr = c->r * cos(c->th);
        c->qi = c->r * sin(c->th);
        c->gr = gamma[2 * i] * gs;
        c->gi = gamma[2 * i + 1] * gs;
    }
}

/* Runs the recurrence of one (b, d, k) over the column uc (L); adds Re(g h_t) into yc when it is
   not NULL, stores h_t into hs (L, 2) when it is not NULL; returns h_{L-1} in hL. */
static void cema_scan(const CemaCoef *c, const double *uc, int L, const float *h0, double *yc, double *hs, double hL[2])
{
    double hr = h0 ? h0[0] : 0, hi = h0 ? h0[1] : 0;
    for (int t = 0; t < L; t++) {
        double nr = c->p * uc[t] + c->qr * hr - c->qi * hi;
        hi = c->qr * hi + c->qi * hr;
        hr = nr;
        if (yc)
            yc[t] += c->gr * hr - c->gi * hi;
        if (hs) {
            hs[2 * t] = hr;
            hs[2 * t + 1] = hi;
        }
    }
    hL[0] = hr;
    hL[1] = hi;
}

/* the backward recomputes each channel's states in its own pass: nothing to keep */
size_t CPU(cema_saved_size)(int B, int L, int D)
{
    (void)B, (void)L, (void)D;
    return 0;
}

void CPU(cema_forward)(void *y, void *saved, const void *u, CemaParams p, ChunkState chunk, int B, int L, int D,
                       int N)
{
    (void)saved;
    real *out = y;
    const real *in = u, *omega = p.omega;
    const float *h0 = chunk.h_in;
    float *h_out = chunk.h_out;
#pragma omp parallel
    {
        double *uc = xmalloc(2 * (size_t)L * sizeof(double)), *yc = uc + L; /* columns (L) */
        CemaCoef *cf = xmalloc(N * sizeof(CemaCoef));
#pragma omp for
        for (int d = 0; d < D; d++) {
            cema_coefs(cf, p, d, N);
            for (int b = 0; b < B; b++) {
                for (int t = 0; t < L; t++) {
                    uc[t] = in[((size_t)b * L + t) * D + d];
                    yc[t] = omega[d] * uc[t];
                }
                for (int k = 0; k < N; k++) {
                    size_t hk = (((size_t)b * D + d) * N + k) * 2;
                    double hL[2];
                    cema_scan(&cf[k], uc, L, h0 ? h0 + hk : NULL, yc, NULL, hL);
                    if (h_out) {
                        h_out[hk] = hL[0];
                        h_out[hk + 1] = hL[1];
                    }
                }
                for (int t = 0; t < L; t++)
                    out[((size_t)b * L + t) * D + d] = yc[t];
            }
        }
        free(uc);
        free(cf);
    }
}

/* Gradients of one channel's coefficients, summed over b and t: G_q and G_g are complex
   (dl/dRe + i dl/dIm), dp counts only the input term p u_t (q's share is added by the chain). */
typedef struct {
    double dp, gqr, gqi, ggr, ggi;
} CemaCoefGrad;

/* Reverse scan of one (b, d, k): the carry is G_{h_t}, starting from dh_out; G_{h_t} =
   dy_t conj(g) + conj(q) G_{h_{t+1}}. Adds into duc (L) and cg; returns G_{h0} = conj(q) G_{h_0}
   in dh0 (when not NULL). hs holds the forward states h_t (L, 2). */
static void cema_scan_backward(const CemaCoef *c, const double *uc, const double *dyc, const double *hs, int L,
                               const float *h0, const float *dh_out, double *duc, CemaCoefGrad *cg, float *dh0)
{
    double cr = dh_out ? dh_out[0] : 0, ci = dh_out ? dh_out[1] : 0;
    for (int t = L - 1; t >= 0; t--) {
        double ghr = dyc[t] * c->gr + cr, ghi = -dyc[t] * c->gi + ci;
        double pr = t > 0 ? hs[2 * t - 2] : h0 ? h0[0] : 0, pi = t > 0 ? hs[2 * t - 1] : h0 ? h0[1] : 0;
        duc[t] += c->p * ghr;
        cg->dp += uc[t] * ghr;
        cg->gqr += pr * ghr + pi * ghi; /* conj(h_{t-1}) G_{h_t} */
        cg->gqi += pr * ghi - pi * ghr;
        cg->ggr += dyc[t] * hs[2 * t]; /* dy_t conj(h_t) */
        cg->ggi -= dyc[t] * hs[2 * t + 1];
        cr = c->qr * ghr + c->qi * ghi;
        ci = c->qr * ghi - c->qi * ghr;
    }
    if (dh0) {
        dh0[0] = cr;
        dh0[1] = ci;
    }
}

void CPU(cema_backward)(void *du, CemaGrads g, const void *dy, const void *saved, const void *u, CemaParams p,
                        ChunkState chunk, int B, int L, int D, int N, int mode)
{
    (void)saved;
    real *din = du;
    const real *gy = dy, *in = u, *omega = p.omega, *theta = p.theta;
    const float *h0 = chunk.h_in, *dh_out = chunk.dh_out;
    float *dh0 = chunk.dh_in;
#pragma omp parallel
    {
        double *uc = xmalloc(5 * (size_t)L * sizeof(double)), *dyc = uc + L, *duc = dyc + L, *hs = duc + L;
        CemaCoef *cf = xmalloc(N * sizeof(CemaCoef));
        CemaCoefGrad *cg = xmalloc(N * sizeof(CemaCoefGrad));
#pragma omp for
        for (int d = 0; d < D; d++) {
            cema_coefs(cf, p, d, N);
            for (int k = 0; k < N; k++)
                cg[k] = (CemaCoefGrad){0};
            double domega = 0;
            for (int b = 0; b < B; b++) {
                for (int t = 0; t < L; t++) {
                    uc[t] = in[((size_t)b * L + t) * D + d];
                    dyc[t] = gy[((size_t)b * L + t) * D + d];
                    duc[t] = omega[d] * dyc[t];
                    domega += uc[t] * dyc[t];
                }
                for (int k = 0; k < N; k++) {
                    size_t hk = (((size_t)b * D + d) * N + k) * 2;
                    double hL[2];
                    cema_scan(&cf[k], uc, L, h0 ? h0 + hk : NULL, NULL, hs, hL);
                    cema_scan_backward(&cf[k], uc, dyc, hs, L, h0 ? h0 + hk : NULL, dh_out ? dh_out + hk : NULL, duc,
                                       &cg[k], dh0 ? dh0 + hk : NULL);
                }
                for (int t = 0; t < L; t++)
                    grad_put(&din[((size_t)b * L + t) * D + d], duc[t], mode);
            }
            /* chain to the raw parameters through q = r e^{i th}, r = 1 - p s */
            double st = sigmoid(theta[d]), dth = 0, gs = 1 / sqrt((double)N);
            for (int k = 0; k < N; k++) {
                const CemaCoef *c = &cf[k];
                double cs = cos(c->th), sn = sin(c->th);
                double dr = cg[k].gqr * cs + cg[k].gqi * sn;            /* Re(G_q e^{-i th}) */
                double dthk = c->r * (cg[k].gqi * cs - cg[k].gqr * sn); /* r Im(G_q e^{-i th}) */
                double dp = cg[k].dp - c->s * dr, ds = -c->p * dr;
                size_t i = (size_t)d * N + k;
                param_put(&g.alpha[i], dp * c->p * (1 - c->p), mode);
                param_put(&g.delta[i], ds * c->s * (1 - c->s), mode);
                param_put(&g.gamma[2 * i], cg[k].ggr * gs, mode);
                param_put(&g.gamma[2 * i + 1], cg[k].ggi * gs, mode);
                dth += dthk * (k + 1);
            }
            param_put(&g.theta[d], dth * TWO_PI / N * st * (1 - st), mode);
            param_put(&g.omega[d], domega, mode);
        }
        free(uc);
        free(cf);
        free(cg);
    }
}
