/* optim.c: schedule and clipping (see optim.h). */
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

double clip_scale(const Config *c, double norm)
{
    double coef = c->optimizer.grad_clip / (norm + 1e-6);
    return c->optimizer.grad_clip > 0 && coef < 1.0 ? coef : 1.0;
}
