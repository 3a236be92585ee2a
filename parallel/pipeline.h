/* pipeline.h: the 1F1B schedule of pipeline parallelism. Stage s of P runs P - s - 1 forwards
   (warm-up), then alternates one forward and one backward, then finishes the backwards; so at
   most P - s micro-batches are in flight on stage s and activations of that many are kept.
   The callbacks do the work, including receiving from and sending to the neighbour stages. */
#ifndef MEGATRAIN_PIPELINE_H
#define MEGATRAIN_PIPELINE_H

typedef struct {
    void *ctx;
    void (*forward)(void *ctx, int micro_batch);
    void (*backward)(void *ctx, int micro_batch);
} PipelineSteps;

/* Activation slots stage s needs: micro-batch k uses slot k % pipeline_slots(). */
int pipeline_slots(int stage, int stages, int micro_batches);
void pipeline_1f1b(int stage, int stages, int micro_batches, const PipelineSteps *steps);

#endif
