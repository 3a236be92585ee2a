/* norms.c: RMSNorm and LayerNorm over the last dim D with (1 + w) scales, forward and backward.
   Statistics in double; rrms, mean and rstd (T) are saved in fp32 for backward. */
#include "kernels/cpu/cpu.h"

void CPU(rmsnorm_forward)(void *y, float *rrms, const void *x, const void *w, int T, int D, float eps)
{
    real *out = y;
    const real *in = x, *scale = w;
#pragma omp parallel for
    for (int t = 0; t < T; t++) {
        const real *xt = in + (size_t)t * D;
        double ss = 0;
        for (int i = 0; i < D; i++)
            ss += (double)xt[i] * xt[i];
        double r = 1 / sqrt(ss / D + eps);
        rrms[t] = r;
        for (int i = 0; i < D; i++)
            out[(size_t)t * D + i] = xt[i] * r * (1 + (double)scale[i]);
    }
}

void CPU(rmsnorm_backward)(void *dx, float *dw, const void *dy, const void *x, const float *rrms, const void *w, int T,
                           int D, int mode)
{
    real *din = dx;
    const real *g = dy, *in = x, *scale = w;
    double *part = partials_alloc(D);
#pragma omp parallel
    {
        double *dwp = partials_row(part, D);
#pragma omp for
        for (int t = 0; t < T; t++) {
            const real *xt = in + (size_t)t * D, *gt = g + (size_t)t * D;
            double r = rrms[t], dot = 0; /* dot = sum_i dy_i (1 + w_i) x_i */
            for (int i = 0; i < D; i++) {
                dot += gt[i] * (1 + (double)scale[i]) * xt[i];
                dwp[i] += gt[i] * xt[i] * r;
            }
            for (int i = 0; i < D; i++)
                grad_put(&din[(size_t)t * D + i], r * (1 + (double)scale[i]) * gt[i] - xt[i] * r * r * r * dot / D,
                         mode);
        }
    }
    grad_add(dw, partials_sum(part, D), D, mode);
    free(part);
}

void CPU(layernorm_forward)(void *y, float *mean, float *rstd, const void *x, const void *w, const void *b, int T,
                            int D, float eps)
{
    real *out = y;
    const real *in = x, *scale = w, *shift = b;
#pragma omp parallel for
    for (int t = 0; t < T; t++) {
        const real *xt = in + (size_t)t * D;
        double m = 0, v = 0;
        for (int i = 0; i < D; i++)
            m += xt[i];
        m /= D;
        for (int i = 0; i < D; i++)
            v += (xt[i] - m) * (xt[i] - m);
        double rs = 1 / sqrt(v / D + eps);
        mean[t] = m;
        rstd[t] = rs;
        for (int i = 0; i < D; i++)
            out[(size_t)t * D + i] = (xt[i] - m) * rs * (1 + (double)scale[i]) + shift[i];
    }
}

void CPU(layernorm_backward)(void *dx, float *dw, float *db, const void *dy, const void *x, const float *mean,
                             const float *rstd, const void *w, int T, int D, int mode)
{
    real *din = dx;
    const real *g = dy, *in = x, *scale = w;
    double *part = partials_alloc(2 * (size_t)D); /* [dw | db] */
#pragma omp parallel
    {
        double *dwp = partials_row(part, 2 * (size_t)D), *dbp = dwp + D;
#pragma omp for
        for (int t = 0; t < T; t++) {
            const real *xt = in + (size_t)t * D, *gt = g + (size_t)t * D;
            double m = mean[t], rs = rstd[t], mg = 0, mgx = 0; /* means of dy(1+w) and dy(1+w) xhat */
            for (int i = 0; i < D; i++) {
                double xhat = (xt[i] - m) * rs, gi = gt[i] * (1 + (double)scale[i]);
                mg += gi;
                mgx += gi * xhat;
                dwp[i] += gt[i] * xhat;
                dbp[i] += gt[i];
            }
            mg /= D;
            mgx /= D;
            for (int i = 0; i < D; i++) {
                double xhat = (xt[i] - m) * rs;
                grad_put(&din[(size_t)t * D + i], rs * (gt[i] * (1 + (double)scale[i]) - mg - xhat * mgx), mode);
            }
        }
    }
    partials_sum(part, 2 * (size_t)D);
    grad_add(dw, part, D, mode);
    grad_add(db, part + D, D, mode);
    free(part);
}
