/* pipeline.c: the 1F1B schedule and the stage-to-stage traffic (see pipeline.h). Micro-batch k's
   messages carry tag k; the two directions never meet, each stage receiving activations only
   from the stage before and gradients only from the stage after. */
#include "parallel/pipeline.h"

int pipeline_slots(int stage, int stages, int micro_batches)
{
    int in_flight = stages - stage;
    return in_flight < micro_batches ? in_flight : micro_batches;
}

int pipeline_sends(int stage, int stages, int micro_batches)
{
    return micro_batches * ((stage > 0) + (stage < stages - 1));
}

void pipeline_reserve(const Pipeline *p)
{
    comm_reserve(p->comm, pipeline_sends(p->comm->rank, p->comm->size, p->micro_batches), comm_plan_send(p->n, p->type));
}

static void forward(const Pipeline *p, const PipelineSteps *steps, int k)
{
    const int stage = p->comm->rank, last = p->comm->size - 1;
    if (stage > 0)
        comm_recv(p->comm, steps->input(steps->ctx, k), p->n, p->type, stage - 1, k);
    const void *out = steps->forward(steps->ctx, k);
    if (stage < last)
        comm_send(p->comm, out, p->n, p->type, stage + 1, k);
}

static void backward(const Pipeline *p, const PipelineSteps *steps, int k)
{
    const int stage = p->comm->rank, last = p->comm->size - 1;
    if (stage < last)
        comm_recv(p->comm, steps->output_grad(steps->ctx, k), p->n, p->type, stage + 1, k);
    const void *din = steps->backward(steps->ctx, k);
    if (stage > 0)
        comm_send(p->comm, din, p->n, p->type, stage - 1, k);
}

void pipeline_1f1b(const Pipeline *p, const PipelineSteps *steps)
{
    const int micro = p->micro_batches;
    int warmup = p->comm->size - p->comm->rank - 1;
    if (warmup > micro)
        warmup = micro;
    for (int k = 0; k < warmup; k++)
        forward(p, steps, k);
    for (int k = warmup; k < micro; k++) {
        forward(p, steps, k);
        backward(p, steps, k - warmup);
    }
    for (int k = micro - warmup; k < micro; k++)
        backward(p, steps, k);
    comm_wait(p->comm);
}

void pipeline_forwards(const Pipeline *p, const PipelineSteps *steps)
{
    for (int k = 0; k < p->micro_batches; k++)
        forward(p, steps, k);
    comm_wait(p->comm);
}
