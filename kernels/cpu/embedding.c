/* embedding.c: token embedding lookup over a slice of the vocabulary, out (T, D) = table[tok -
   v0] * scale (0 for tokens outside the slice), and its backward into the fp32 table gradient. */
#include "kernels/cpu/cpu.h"

#include <string.h>

void CPU(embedding_forward)(void *out, const int32_t *tok, const void *table, int T, int D, int v0, int V,
                            float scale)
{
    real *o = out;
    const real *tab = table;
#pragma omp parallel for
    for (int t = 0; t < T; t++) {
        const int r = tok[t] - v0, in = r >= 0 && r < V;
        for (int i = 0; i < D; i++)
            o[(size_t)t * D + i] = in ? tab[(size_t)r * D + i] * scale : 0;
    }
}

/* Serial: tokens repeat, so rows of dtable receive several contributions; T * D adds are cheap. */
void CPU(embedding_backward)(float *dtable, const void *dout, const int32_t *tok, int T, int D, int v0, int V,
                             float scale, int mode)
{
    const real *dy = dout;
    if (mode & GRAD_NEW)
        memset(dtable, 0, (size_t)V * D * sizeof(float));
    for (int t = 0; t < T; t++) {
        const int r = tok[t] - v0;
        for (int i = 0; r >= 0 && r < V && i < D; i++)
            dtable[(size_t)r * D + i] += dy[(size_t)t * D + i] * scale;
    }
}
