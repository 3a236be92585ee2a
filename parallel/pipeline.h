/* pipeline.h: pipeline parallelism, the 1F1B schedule and the traffic between stages. Stage s of
   P runs P - s - 1 forwards (warm-up), then alternates one forward and one backward, then
   finishes the backwards; so at most P - s micro-batches are in flight on stage s and activations
   of that many are kept. Before a micro-batch's forward, a stage other than the first receives its
   input from the stage before; after it, a stage other than the last sends its output on. Backward
   goes the other way: the gradient of the output comes from the stage after, the gradient of the
   input goes to the stage before. The callbacks compute; sends own what they send (comm_send
   copies), so a callback may overwrite a buffer it sent at once. */
#ifndef MEGATRAIN_PIPELINE_H
#define MEGATRAIN_PIPELINE_H

#include "parallel/comm.h"

#include <stddef.h>

typedef struct {
    Comm *comm;        /* the stages, in order (size 1: no pipeline) */
    int micro_batches;
    size_t n;          /* elements of a stage's input and output (and of their gradients) */
    CommType type;
} Pipeline;

typedef struct {
    void *ctx;
    /* micro-batch k's stage input, filled before its forward, and the gradient of its stage
       output, filled before its backward */
    void *(*input)(void *ctx, int k);
    void *(*output_grad)(void *ctx, int k);
    /* run micro-batch k's forward, returning its stage output; its backward, returning the
       gradient of its stage input */
    const void *(*forward)(void *ctx, int k);
    const void *(*backward)(void *ctx, int k);
} PipelineSteps;

/* Activation slots stage s needs: micro-batch k uses slot k % pipeline_slots(). */
int pipeline_slots(int stage, int stages, int micro_batches);
/* The sends stage s holds until comm_wait in a step: its outputs downstream and its input
   gradients upstream, one per micro-batch each. */
int pipeline_sends(int stage, int stages, int micro_batches);
/* Their staging (comm_reserve), made up front. */
void pipeline_reserve(const Pipeline *p);
/* Forward and backward of every micro-batch (training); returns with the sends complete. */
void pipeline_1f1b(const Pipeline *p, const PipelineSteps *steps);
/* The forwards only, in order (evaluation); returns with the sends complete. */
void pipeline_forwards(const Pipeline *p, const PipelineSteps *steps);

#endif
