/* tsnorm.c: timestep normalisation (spec section 4). Per (b, group) a sequential scan over t
   keeps the running mean and variance of every element seen so far (n timesteps of Dg channels,
   including a prior of n0 timesteps from the previous chunk); the running state is fp64 (no
   compensation needed at these lengths). The backward is the spec's reverse scan with the carry
   (U, W) = (dl/dmean_t, dl/dvar_t). */
#include "kernels/cpu/cpu.h"

/* Mean and population variance of the Dg channels of one group at one timestep (two-pass). */
static void group_stats(const real *x, int Dg, double *mean, double *var)
{
    double m = 0, v = 0;
    for (int c = 0; c < Dg; c++)
        m += x[c];
    m /= Dg;
    for (int c = 0; c < Dg; c++)
        v += (x[c] - m) * (x[c] - m);
    *mean = m;
    *var = v / Dg;
}

/* The prior applies only with a count and a state (ops.h); otherwise a fresh start. */
static int64_t tsnorm_prior(const float *state_in, int64_t n0) { return state_in ? n0 : 0; }

void CPU(tsnorm_forward)(void *y, float *mean, float *rstd, const void *x, const void *w, const void *b,
                         ChunkState chunk, int B, int L, int D, int G, float eps)
{
    real *out = y;
    const real *in = x, *scale = w, *shift = b;
    const int Dg = D / G;
    const float *state_in = chunk.tsn_in;
    float *state_out = chunk.tsn_out;
    const int64_t n0 = tsnorm_prior(state_in, chunk.n0);
#pragma omp parallel for collapse(2)
    for (int bi = 0; bi < B; bi++)
        for (int g = 0; g < G; g++) {
            const size_t s = (size_t)bi * G + g;
            double n = n0, mu = n0 ? state_in[2 * s] : 0, var = n0 ? state_in[2 * s + 1] : 0;
            for (int t = 0; t < L; t++) {
                const size_t bt = (size_t)bi * L + t, off = bt * D + (size_t)g * Dg;
                double ux, gv;
                group_stats(in + off, Dg, &ux, &gv);
                n += 1;
                double c2 = 1 / n, c1 = 1 - c2, delta = ux - mu;
                mu += c2 * delta;
                var = c1 * var + c2 * gv + c1 * c2 * delta * delta;
                double rs = 1 / sqrt(var + eps);
                mean[bt * G + g] = mu;
                rstd[bt * G + g] = rs;
                for (int c = 0; c < Dg; c++)
                    out[off + c] = (in[off + c] - mu) * rs * (1 + (double)scale[g * Dg + c]) + shift[g * Dg + c];
            }
            if (state_out) {
                state_out[2 * s] = mu;
                state_out[2 * s + 1] = var;
            }
        }
}

void CPU(tsnorm_backward)(void *dx, float *dw, float *db, const void *dy, const void *x, const float *mean,
                          const float *rstd, const void *w, ChunkState chunk, int B, int L, int D, int G,
                          int mode)
{
    real *din = dx;
    const real *gy = dy, *in = x, *scale = w;
    const int Dg = D / G;
    const float *state_in = chunk.tsn_in, *dstate_out = chunk.dtsn_out;
    float *dstate_in = chunk.dtsn_in;
    const int64_t n0 = tsnorm_prior(state_in, chunk.n0);
    double *part = partials_alloc(2 * (size_t)D); /* [dw | db] */
#pragma omp parallel
    {
        double *dwp = partials_row(part, 2 * (size_t)D), *dbp = dwp + D;
#pragma omp for collapse(2)
        for (int bi = 0; bi < B; bi++)
            for (int g = 0; g < G; g++) {
                const size_t s = (size_t)bi * G + g;
                double U = dstate_out ? dstate_out[2 * s] : 0, W = dstate_out ? dstate_out[2 * s + 1] : 0;
                for (int t = L - 1; t >= 0; t--) {
                    const size_t bt = (size_t)bi * L + t, off = bt * D + (size_t)g * Dg;
                    const real *xt = in + off, *gt = gy + off, *wg = scale + (size_t)g * Dg;
                    double mu = mean[bt * G + g], rs = rstd[bt * G + g];
                    double mu_prev = t > 0 ? mean[(bt - 1) * G + g] : n0 ? state_in[2 * s] : 0;
                    double c2 = 1.0 / (double)(n0 + t + 1), c1 = 1 - c2;
                    double ux = 0, ds = 0, dbt = 0; /* group mean, sum dy (x - mu)(1+w), sum dy (1+w) */
                    for (int c = 0; c < Dg; c++) {
                        double gw = gt[c] * (1 + (double)wg[c]);
                        ux += xt[c];
                        ds += gw * (xt[c] - mu);
                        dbt += gw;
                        dwp[g * Dg + c] += gt[c] * (xt[c] - mu) * rs;
                        dbp[g * Dg + c] += gt[c];
                    }
                    ux /= Dg;
                    double du = U - rs * dbt, dv = W - 0.5 * rs * rs * rs * ds, delta = ux - mu_prev;
                    double dux = c2 * du + 2 * c1 * c2 * dv * delta, dgv = c2 * dv;
                    for (int c = 0; c < Dg; c++)
                        grad_put(&din[off + c], gt[c] * rs * (1 + (double)wg[c]) + (dux + 2 * dgv * (xt[c] - ux)) / Dg,
                                 mode);
                    U = c1 * du - 2 * c1 * c2 * dv * delta;
                    W = c1 * dv;
                }
                if (dstate_in) {
                    dstate_in[2 * s] = U;
                    dstate_in[2 * s + 1] = W;
                }
            }
    }
    partials_sum(part, 2 * (size_t)D);
    grad_add(dw, part, D, mode);
    grad_add(db, part + D, D, mode);
    free(part);
}
