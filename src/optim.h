/* optim.h: learning-rate schedule (linear warmup, then cosine/linear/constant decay) and
   global-norm gradient clipping; the AdamW step itself is parallel/zero.c over ops->adamw. */
#ifndef MEGATRAIN_OPTIM_H
#define MEGATRAIN_OPTIM_H

#include "src/config.h"

#include <stdint.h>

/* Learning rate of optimizer step `step` (1-based) of a run of c->train.steps steps. */
double schedule_lr(const Config *c, int64_t step);
/* The factor that clips a gradient of global norm `norm` to optimizer.grad_clip, as torch's
   clip_grad_norm_ (clip / (norm + 1e-6) when below 1), or 1. */
double clip_scale(const Config *c, double norm);

#endif
