/* attention_step.c: one token of chunk attention for recurrent decoding (spec section 13): RoPE
   at the token's place in its chunk, its key and value appended to the chunk's cache, and its row
   of the causal softmax attention over the cache. Scores, softmax and the weighted sum in double;
   one task per (b, head). */
#include "kernels/cpu/cpu.h"

void CPU(attention_step)(void *o, const void *q, const void *k, const void *v, void *kcache, void *vcache, int pos,
                         int B, int H, int dz, int dv, int C, float rope_base)
{
    if (pos < 0 || pos >= C || dz % 2)
        fail("attention_step: position %d outside a chunk of %d, or an odd head dim %d", pos, C, dz);
    const int Z = H * dz, V = H * dv;
#pragma omp parallel
    {
        double *qr = xmalloc(((size_t)dz + pos + 1 + dv) * sizeof(double)), *p = qr + dz, *acc = p + pos + 1;
#pragma omp for
        for (int task = 0; task < B * H; task++) {
            const int b = task / H, h = task % H;
            const real *qi = (const real *)q + (size_t)b * Z + (size_t)h * dz;
            const real *ki = (const real *)k + (size_t)b * Z + (size_t)h * dz;
            const real *vi = (const real *)v + (size_t)b * V + (size_t)h * dv;
            real *kc = (real *)kcache + (size_t)b * C * Z + (size_t)h * dz; /* row j at kc + j Z */
            real *vc = (real *)vcache + (size_t)b * C * V + (size_t)h * dv;
            for (int i = 0; i < dz; i += 2) {
                double cs[2];
                rope_cs(cs, pos, i / 2, dz, rope_base);
                /* q is rounded to the act dtype as qk_forward stores it */
                qr[i] = (real)(qi[i] * cs[0] - qi[i + 1] * cs[1]);
                qr[i + 1] = (real)(qi[i] * cs[1] + qi[i + 1] * cs[0]);
                kc[(size_t)pos * Z + i] = (real)(ki[i] * cs[0] - ki[i + 1] * cs[1]);
                kc[(size_t)pos * Z + i + 1] = (real)(ki[i] * cs[1] + ki[i + 1] * cs[0]);
            }
            for (int e = 0; e < dv; e++)
                vc[(size_t)pos * V + e] = vi[e];
            double m = -INFINITY, sum = 0;
            for (int j = 0; j <= pos; j++) {
                double s = 0;
                for (int i = 0; i < dz; i++)
                    s += qr[i] * kc[(size_t)j * Z + i];
                p[j] = s;
                m = s > m ? s : m;
            }
            for (int j = 0; j <= pos; j++)
                sum += p[j] = exp(p[j] - m);
            for (int e = 0; e < dv; e++)
                acc[e] = 0;
            for (int j = 0; j <= pos; j++)
                for (int e = 0; e < dv; e++)
                    acc[e] += p[j] / sum * vc[(size_t)j * V + e];
            real *out = (real *)o + (size_t)b * V + (size_t)h * dv;
            for (int e = 0; e < dv; e++)
                out[e] = (real)acc[e];
        }
        free(qr);
    }
}
