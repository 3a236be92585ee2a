/* embedding.c: token embedding lookup, out (T, D) = table[tok] * scale, and its backward into the
   fp32 table gradient. */
#include "kernels/cpu/cpu.h"

void CPU(embedding_forward)(void *out, const int32_t *tok, const void *table, int T, int D, float scale)
{
    real *o = out;
    const real *tab = table;
#pragma omp parallel for
    for (int t = 0; t < T; t++)
        for (int i = 0; i < D; i++)
            o[(size_t)t * D + i] = tab[(size_t)tok[t] * D + i] * scale;
}

/* Serial: tokens repeat, so rows of dtable receive several contributions; T * D adds are cheap. */
void CPU(embedding_backward)(float *dtable, const void *dout, const int32_t *tok, int T, int D, float scale)
{
    const real *dy = dout;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < D; i++)
            dtable[(size_t)tok[t] * D + i] += dy[(size_t)t * D + i] * scale;
}
