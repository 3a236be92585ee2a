/* crossentropy.c: the summed token loss -log softmax(logits)[target] (stable log-sum-exp in
   double) and, when asked, its gradient written over the logits. */
#include "kernels/cpu/cpu.h"

double CPU(crossentropy)(void *logits, const int32_t *targets, int T, int V, float grad_scale)
{
    real *lg = logits;
    double loss = 0;
#pragma omp parallel for reduction(+ : loss)
    for (int t = 0; t < T; t++) {
        real *row = lg + (size_t)t * V;
        int y = targets[t];
        if (y >= V)
            fail("crossentropy: target %d at token %d is outside the vocabulary of %d", y, t, V);
        if (y < 0) { /* ignored: no loss, zero gradient */
            if (grad_scale != 0)
                for (int i = 0; i < V; i++)
                    row[i] = 0;
            continue;
        }
        real m = row[0];
        double sum = 0;
        for (int i = 1; i < V; i++)
            m = row[i] > m ? row[i] : m;
        for (int i = 0; i < V; i++)
            sum += real_exp(row[i] - m);
        loss += m + log(sum) - row[y];
        if (grad_scale != 0)
            for (int i = 0; i < V; i++)
                row[i] = grad_scale * (real_exp(row[i] - m) / sum - (i == y));
    }
    return loss;
}
