/* replicas.h: gradient sums of tensors that several ranks hold whole, each rank's backward giving
   part of the gradient and every rank needing the total: the norm weights a tensor-parallel group
   replicates (each rank's part is the sum over its features), and a tied embedding, held by the
   first pipeline stage as the embedding and by the last as the head. Backward finishes the
   gradient buffer from its end, so the sums go from the last tensor to the first, each as soon as
   backward has passed it, in the same order on every rank. */
#ifndef MEGATRAIN_REPLICAS_H
#define MEGATRAIN_REPLICAS_H

#include "parallel/comm.h"

#include <stddef.h>

typedef struct {
    size_t offset, numel; /* a tensor's place in the fp32 gradient buffer */
} GradSpan;

typedef struct {
    Comm *comm;       /* the ranks holding the tensors */
    GradSpan *spans;  /* (n) ascending */
    int n;
    int next;         /* this step's sums of spans next .. n - 1 are done */
} Replicas;

/* Tensors spans (n, ascending, copied) of the gradient buffers of comm's ranks. */
void replicas_init(Replicas *r, Comm *comm, const GradSpan *spans, int n);
void replicas_free(Replicas *r);
/* A new step: no sum done yet. */
void replicas_restart(Replicas *r);
/* Sum over comm those of grads's tensors starting at or above element `from` (their gradients are
   final) that this step has not summed yet. */
void replicas_sum_from(Replicas *r, float *grads, size_t from);

#endif
