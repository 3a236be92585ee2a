/* optim.h: learning-rate schedule (linear warmup, then cosine/linear/constant decay), global-norm
   gradient clipping and the AdamW step over the whole parameter buffer. */
#ifndef MEGATRAIN_OPTIM_H
#define MEGATRAIN_OPTIM_H

#include "src/config.h"
#include "src/model.h"

#include <stdint.h>

/* Learning rate of optimizer step `step` (1-based) of a run of c->train.steps steps. */
double schedule_lr(const Config *c, int64_t step);
/* Clip by the global gradient norm sqrt(grad_sumsq) (torch's clip_grad_norm_: scale by
   clip / (norm + 1e-6) when that is below 1) and apply AdamW to every parameter on this rank.
   Returns the norm before clipping. */
double optim_step(Model *m, const Config *c, int64_t step, double grad_sumsq);

#endif
