/* qk.c: queries and keys from the shared projection zs (spec section 2 steps 4, 5, 8): per-head
   RMS norm, per-feature affine (1 + gamma) / sqrt(dz) + beta (row 0 for q, row 1 for k), then
   RoPE on pairs (2i, 2i+1) of each head at position l mod C (restarting in every chunk). */
#include "kernels/cpu/cpu.h"

/* cos and sin of pos * base^(-2i/dz) for pos < P, i < dz/2: (P, dz/2, 2) */
static double *rope_table(int P, int dz, float base)
{
    double *tab = xmalloc((size_t)P * dz * sizeof(double));
    for (int pos = 0; pos < P; pos++)
        for (int i = 0; i < dz / 2; i++)
            rope_cs(tab + (size_t)pos * dz + 2 * i, pos, i, dz, base);
    return tab;
}

static void qk_check(int dz)
{
    if (dz % 2)
        fail("qk: RoPE needs an even head dim, got dz = %d", dz);
}

/* One head of q or k: out (dz) = rope(zn (1 + gamma) / sqrt(dz) + beta); gamma, beta (dz) are
   this head's slice of one row; cs is the position's row of the rope table. */
static void qk_head(real *out, const double *zn, const real *gamma, const real *beta, const double *cs, int dz)
{
    for (int i = 0; i < dz; i += 2) {
        double a = zn[i] * (1 + (double)gamma[i]) / sqrt(dz) + beta[i];
        double b = zn[i + 1] * (1 + (double)gamma[i + 1]) / sqrt(dz) + beta[i + 1];
        out[i] = a * cs[i] - b * cs[i + 1];
        out[i + 1] = a * cs[i + 1] + b * cs[i];
    }
}

/* 1 / sqrt(mean(z^2) + eps) over one head */
static double head_rstd(const real *z, int dz, double eps)
{
    double ss = 0;
    for (int j = 0; j < dz; j++)
        ss += (double)z[j] * z[j];
    return 1 / sqrt(ss / dz + eps);
}

static void head_scale(double *zn, const real *z, int dz, double r)
{
    for (int j = 0; j < dz; j++)
        zn[j] = z[j] * r;
}

void CPU(qk_forward)(void *q, void *k, float *rstd, const void *zs, const void *gamma, const void *beta, int B, int L,
                     int H, int dz, int C, float rope_base, float eps)
{
    qk_check(dz);
    const int Z = H * dz, P = L < C ? L : C;
    const real *z = zs, *gm = gamma, *bt = beta;
    double *tab = rope_table(P, dz, rope_base);
#pragma omp parallel
    {
        double *zn = xmalloc(dz * sizeof(double));
#pragma omp for
        for (int tok = 0; tok < B * L; tok++) {
            const double *cs = tab + (size_t)(tok % L % C) * dz;
            for (int h = 0; h < H; h++) {
                size_t off = (size_t)tok * Z + (size_t)h * dz;
                double r = head_rstd(z + off, dz, eps);
                rstd[(size_t)tok * H + h] = r;
                head_scale(zn, z + off, dz, r);
                qk_head((real *)q + off, zn, gm + h * dz, bt + h * dz, cs, dz);
                qk_head((real *)k + off, zn, gm + Z + h * dz, bt + Z + h * dz, cs, dz);
            }
        }
        free(zn);
    }
    free(tab);
}

void CPU(qk_backward)(void *dzs, float *dgamma, float *dbeta, void *dq, void *dk, const void *zs, const float *rstd,
                      const void *gamma, int B, int L, int H, int dz, int C, float rope_base, int mode)
{
    qk_check(dz);
    const int Z = H * dz, P = L < C ? L : C;
    const real *z = zs, *gm = gamma;
    real *dz_out = dzs;
    double *tab = rope_table(P, dz, rope_base);
    double *part = partials_alloc(4 * (size_t)Z); /* [dgamma (2, Z) | dbeta (2, Z)] */
#pragma omp parallel
    {
        double *dgp = partials_row(part, 4 * (size_t)Z), *dbp = dgp + 2 * Z;
        double *zn = xmalloc(2 * dz * sizeof(double)), *dzn = zn + dz;
#pragma omp for
        for (int tok = 0; tok < B * L; tok++) {
            const double *cs = tab + (size_t)(tok % L % C) * dz;
            for (int h = 0; h < H; h++) {
                size_t off = (size_t)tok * Z + (size_t)h * dz;
                double r = rstd[(size_t)tok * H + h];
                head_scale(zn, z + off, dz, r);
                for (int j = 0; j < dz; j++)
                    dzn[j] = 0;
                for (int row = 0; row < 2; row++) {
                    const real *g = (const real *)(row ? dk : dq) + off;
                    size_t pj = (size_t)row * Z + (size_t)h * dz; /* this head's slice of the row */
                    for (int i = 0; i < dz; i += 2) {
                        /* un-rotate: the gradient of the pre-RoPE pair */
                        double ga = g[i] * cs[i] + g[i + 1] * cs[i + 1];
                        double gb = -g[i] * cs[i + 1] + g[i + 1] * cs[i];
                        double pre[2] = {ga, gb};
                        for (int e = 0; e < 2; e++) {
                            int j = i + e;
                            dbp[pj + j] += pre[e];
                            dgp[pj + j] += pre[e] * zn[j] / sqrt(dz);
                            dzn[j] += pre[e] * (1 + (double)gm[pj + j]) / sqrt(dz);
                        }
                    }
                }
                double dot = 0;
                for (int j = 0; j < dz; j++)
                    dot += dzn[j] * zn[j];
                for (int j = 0; j < dz; j++)
                    grad_put(&dz_out[off + j], r * (dzn[j] - zn[j] * dot / dz), mode);
            }
        }
        free(zn);
    }
    partials_sum(part, 4 * (size_t)Z);
    grad_add(dgamma, part, 2 * (size_t)Z, mode);
    grad_add(dbeta, part + 2 * Z, 2 * (size_t)Z, mode);
    free(part);
    free(tab);
}
