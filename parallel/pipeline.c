/* pipeline.c: the 1F1B schedule (see pipeline.h). */
#include "parallel/pipeline.h"

int pipeline_slots(int stage, int stages, int micro_batches)
{
    int in_flight = stages - stage;
    return in_flight < micro_batches ? in_flight : micro_batches;
}

void pipeline_1f1b(int stage, int stages, int micro_batches, const PipelineSteps *steps)
{
    int warmup = stages - stage - 1;
    if (warmup > micro_batches)
        warmup = micro_batches;
    for (int k = 0; k < warmup; k++)
        steps->forward(steps->ctx, k);
    for (int k = warmup; k < micro_batches; k++) {
        steps->forward(steps->ctx, k);
        steps->backward(steps->ctx, k - warmup);
    }
    for (int k = micro_batches - warmup; k < micro_batches; k++)
        steps->backward(steps->ctx, k);
}
