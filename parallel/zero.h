/* zero.h: the distributed optimizer (Megatron's: ZeRO stage 1 with the master weights sharded
   too). The n ranks that hold the same parameters (the dp x cp group) cut the flat parameter
   buffer into buckets, and each rank owns 1/n of every bucket: the fp32 master weights, the
   AdamW moments and the summed gradient of those elements live only there. Backward finishes the
   gradient buffer from its end, so each bucket's reduce-scatter to the owners starts as soon as
   backward has passed it and runs while backward goes on; the gradients travel in fp32 or
   rounded to bf16. AdamW then updates the owned elements and their compute copy, which the group
   all-gathers bucket by bucket in the compute dtype. */
#ifndef MEGATRAIN_ZERO_H
#define MEGATRAIN_ZERO_H

#include "kernels/ops.h"
#include "parallel/comm.h"

#include <stddef.h>

/* Elements [start, start + n piece) of the flat buffers: rank r of the group owns
   [start + r piece, start + (r + 1) piece), held from element `at` of its shard arrays. */
typedef struct {
    size_t start, piece, at;
} ZeroBucket;

typedef struct {
    const Ops *ops;
    Comm *comm;          /* the group sharing parameters */
    size_t n;            /* padded buffer length, a multiple of comm->size */
    size_t shard;        /* the elements this rank owns, n / comm->size */
    ZeroBucket *buckets; /* (nbuckets) ascending; one when the rank is alone */
    int nbuckets;
    CommType wire;       /* how the gradients travel: COMM_F32, or COMM_BF16 (rounded to it) */
    void *params;        /* (n) the compute copy of the parameters (the model's) */
    float *master;       /* (shard) fp32 master weights; params itself when alone and that is fp32 */
    float *grad;         /* (shard) summed gradient; the gradient buffer itself when alone */
    float *m, *v;        /* (shard) AdamW moments */
    void *send, *recv;   /* bf16 wire: (n) the gradients rounded, (shard) their sum */
    int next;            /* this step's reduce-scatters of buckets next .. nbuckets - 1 are under way */
} Zero;

/* Bytes of the backend's memory (ops's) that one rank's optimizer takes beside the model's
   buffers, for a group of `group` ranks sharing a buffer of n elements (a multiple of group) in
   buckets of about `bucket` elements, gradients travelling as wire via via. zero_init allocates
   exactly these; a memory plan adds them up. */
typedef struct {
    size_t master;   /* (shard) fp32 master weights; 0: the compute copy serves (alone, fp32) */
    size_t grad;     /* (shard) fp32 summed gradient; 0: the gradient buffer serves (alone) */
    size_t m, v;     /* (shard) fp32 AdamW moments */
    size_t send, recv; /* bf16 wire: (n) the rounded gradients, (shard) their sum */
    size_t stage;    /* staging the reduce-scatters hold until comm_wait (comm_plan_reduce_scatter),
                        where it is the backend's memory */
} ZeroBytes;
ZeroBytes zero_plan(const Ops *ops, CommVia via, int group, size_t n, size_t bucket, CommType wire);

/* params (n, compute copy) and grads (n, fp32): the model's buffers, n a multiple of the group
   size; buckets of about `bucket` elements (rounded down to a multiple of the group size). */
void zero_init(Zero *z, const Ops *ops, Comm *comm, size_t n, void *params, float *grads, size_t bucket,
               CommType wire);
void zero_free(Zero *z);
/* This rank's master weights and moments from host arrays of the whole buffer (n); m, v NULL:
   zero (a fresh start). The compute copy is the caller's. */
void zero_load(Zero *z, const float *params, const float *m, const float *v);
/* The first element of the flat buffers that this rank owns in bucket i (its piece: elements
   [zero_own(z, i), + buckets[i].piece), held from buckets[i].at of master, m and v). */
size_t zero_own(const Zero *z, int i);
/* Collective over the group: the compute copy from the master weights (after they were set piece
   by piece, as a checkpoint loads them), all-gathered. */
void zero_publish(Zero *z);
/* Collective over the group: out (n, host) on its rank 0 = the whole buffer of shard arrays
   `shard` (z->master, z->m or z->v) of every rank. */
void zero_gather(const Zero *z, const float *shard, float *out);
/* Start the reduce-scatters of the buckets not yet started that lie at or above element from of
   grads (n): their gradients are final. */
void zero_reduce_from(Zero *z, const float *grads, size_t from);
/* Finish the sum of grads (n) over the group into z->grad: start what is left, wait for all. */
void zero_reduce(Zero *z, const float *grads);
/* The sum of squares of the summed gradient over the elements of [lo, hi) this rank owns. */
double zero_sumsq(const Zero *z, size_t lo, size_t hi);
/* AdamW on this rank's elements with the gradient times grad_scale, refreshing their compute
   copy, then the all-gather of the compute copy. */
void zero_step(Zero *z, float lr, float beta1, float beta2, float eps, float weight_decay, int step,
               float grad_scale);

#endif
