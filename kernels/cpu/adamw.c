/* adamw.c: the optimizer step on fp32 master weights, in the order torch.optim.AdamW uses
   (decay first, then the bias-corrected Adam update), and the fp64 sum of squares for the
   gradient norm. */
#include "kernels/cpu/cpu.h"

void CPU(adamw)(float *param, void *param_act, const float *grad, float *m, float *v, size_t n, float lr, float beta1,
                float beta2, float eps, float weight_decay, int step, float grad_scale)
{
    real *act = param_act;
    const int refresh = (void *)act != (void *)param || sizeof(real) != sizeof(float);
    const double bc1 = 1 - pow(beta1, step), bc2_sqrt = sqrt(1 - pow(beta2, step));
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        double g = (double)grad[i] * grad_scale;
        double mi = beta1 * (double)m[i] + (1 - (double)beta1) * g;
        double vi = beta2 * (double)v[i] + (1 - (double)beta2) * g * g;
        double p = param[i] * (1 - (double)lr * weight_decay);
        p -= lr / bc1 * mi / (sqrt(vi) / bc2_sqrt + eps);
        m[i] = mi;
        v[i] = vi;
        param[i] = p;
        if (refresh)
            act[i] = param[i];
    }
}

double CPU(sumsq)(const float *x, size_t n)
{
    double part[SUM_BLOCKS];
#pragma omp parallel for
    for (int b = 0; b < SUM_BLOCKS; b++) {
        double s = 0;
        for (size_t i = sum_block_start(n, b); i < sum_block_start(n, b + 1); i++)
            s += (double)x[i] * x[i];
        part[b] = s;
    }
    return sum_blocks(part);
}
