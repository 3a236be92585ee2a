/* crossentropy.c: the summed token loss -log softmax(logits)[target] over a vocabulary cut in
   slices (see ops.h): each slice's row statistics (stable log-sum-exp in double), then the loss
   and, when asked, its gradient written over the slice's logits. */
#include "kernels/cpu/cpu.h"

void CPU(crossentropy_stats)(double *stats, const void *logits, const int32_t *targets, int T, int V, int v0)
{
    const real *lg = logits;
#pragma omp parallel for
    for (int t = 0; t < T; t++) {
        const real *row = lg + (size_t)t * V;
        const int y = targets[t] - v0;
        real m = row[0];
        double sum = 0;
        for (int i = 1; i < V; i++)
            m = row[i] > m ? row[i] : m;
        for (int i = 0; i < V; i++)
            sum += real_exp(row[i] - m);
        stats[3 * (size_t)t] = m;
        stats[3 * (size_t)t + 1] = sum;
        stats[3 * (size_t)t + 2] = y >= 0 && y < V ? row[y] : 0;
    }
}

void CPU(crossentropy)(double *loss, void *logits, const int32_t *targets, const double *all, int n, int T, int V,
                       int v0, float grad_scale)
{
    real *lg = logits;
    double part[SUM_BLOCKS];
    int bad[SUM_BLOCKS]; /* 1 + a target outside the vocabulary's token, per block; 0: none */
#pragma omp parallel for
    for (int b = 0; b < SUM_BLOCKS; b++) {
        double sum_b = 0;
        bad[b] = 0;
        for (int t = (int)sum_block_start(T, b); t < (int)sum_block_start(T, b + 1); t++) {
            real *row = lg + (size_t)t * V;
            int y = targets[t];
            if (y >= (int64_t)n * V) {
                bad[b] = t + 1;
                continue;
            }
            if (y < 0) { /* ignored: no loss, zero gradient */
                if (grad_scale != 0)
                    for (int i = 0; i < V; i++)
                        row[i] = 0;
                continue;
            }
            /* the whole row's max (a logit, so a real), its sum of exponentials, the target's logit */
            real m = (real)all[3 * (size_t)t];
            for (int j = 1; j < n; j++)
                m = all[3 * ((size_t)j * T + t)] > m ? (real)all[3 * ((size_t)j * T + t)] : m;
            double sum = 0, target = 0;
            for (int j = 0; j < n; j++) {
                const double *s = all + 3 * ((size_t)j * T + t);
                sum += s[1] * exp(s[0] - m);
                target += s[2];
            }
            sum_b += m + log(sum) - target;
            if (grad_scale != 0)
                for (int i = 0; i < V; i++)
                    row[i] = grad_scale * (real_exp(row[i] - m) / sum - (i == y - v0));
        }
        part[b] = sum_b;
    }
    loss[0] += sum_blocks(part);
    for (int b = 0; b < SUM_BLOCKS; b++)
        if (bad[b]) {
            loss[1] = bad[b];
            break;
        }
}
