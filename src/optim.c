/* optim.c: schedule, clipping and AdamW (see optim.h). */
#include "src/optim.h"

#include <math.h>

double schedule_lr(const Config *c, int64_t step)
{
    const double peak = c->optimizer.lr, r0 = c->schedule.warmup_init_ratio, end = c->schedule.min_lr_ratio;
    const int64_t warm = c->schedule.warmup_steps, total = c->train.steps;
    if (step <= warm)
        return peak * (r0 + (1.0 - r0) * (double)step / (double)warm);
    double s = (double)(step - warm) / (double)(total > warm ? total - warm : 1);
    s = s < 0 ? 0 : s > 1 ? 1 : s;
    switch (c->schedule.decay) {
    case DECAY_COSINE:
        return peak * (end + 0.5 * (1.0 - end) * (1.0 + cos(M_PI * s)));
    case DECAY_LINEAR:
        return peak * (1.0 - (1.0 - end) * s);
    default:
        return peak;
    }
}

double optim_step(Model *m, const Config *c, int64_t step, double grad_sumsq)
{
    double norm = sqrt(grad_sumsq), scale = 1.0;
    if (c->optimizer.grad_clip > 0) {
        double coef = c->optimizer.grad_clip / (norm + 1e-6);
        if (coef < 1.0)
            scale = coef;
    }
    m->ops->adamw(m->params, m->params_act, m->grads, m->adam_m, m->adam_v, m->n_elems, (float)schedule_lr(c, step),
                  (float)c->optimizer.beta1, (float)c->optimizer.beta2, (float)c->optimizer.eps,
                  (float)c->optimizer.weight_decay, (int)step, (float)scale);
    return norm;
}
