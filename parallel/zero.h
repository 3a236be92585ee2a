/* zero.h: the data-parallel optimizer (ZeRO stage 1). The ranks that hold the same parameters
   (the dp x cp group) sum the gradients so that each owns the sum of one 1/n shard of the flat
   parameter buffer; AdamW updates only that shard (its moments live only there); then the
   parameters are all-gathered. Backward finishes the buffer from its end (the last layers), so
   each shard's sum is a reduce to its owner, started as soon as its gradients are final and
   running while backward goes on. */
#ifndef MEGATRAIN_ZERO_H
#define MEGATRAIN_ZERO_H

#include "kernels/ops.h"
#include "parallel/comm.h"

#include <stddef.h>

typedef struct {
    const Ops *ops;
    Comm *comm;        /* the group sharing parameters */
    size_t n;          /* padded buffer length, a multiple of comm->size */
    size_t shard, lo;  /* this rank owns [lo, lo + shard) */
    float *grad;       /* (shard) summed gradient; aliases the full buffer's shard when alone */
    float *m, *v;      /* (shard) AdamW moments */
    int next;          /* this step's sums of shards next .. size - 1 are under way */
} Zero;

/* n: the parameter buffers' padded length (a multiple of the group size). */
void zero_init(Zero *z, const Ops *ops, Comm *comm, size_t n, float *grads);
void zero_free(Zero *z);
/* Start the sums of the shards not yet started that lie at or above element from of grads (n):
   their gradients are final. */
void zero_reduce_from(Zero *z, const float *grads, size_t from);
/* Finish the sum of grads (n) over the group into z->grad: start what is left, wait for all. */
void zero_reduce(Zero *z, const float *grads);
/* AdamW on this rank's shard with the gradient times grad_scale, then all-gather the fp32
   parameters and refresh the compute copy. */
void zero_step(Zero *z, float *params, void *params_act, float lr, float beta1, float beta2, float eps,
               float weight_decay, int step, float grad_scale);

#endif
