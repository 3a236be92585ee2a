/* replicas.c: gradient sums of replicated tensors (see replicas.h). */
#include "parallel/replicas.h"

#include "base/util.h"

#include <stdlib.h>
#include <string.h>

void replicas_init(Replicas *r, Comm *comm, const GradSpan *spans, int n)
{
    *r = (Replicas){.comm = comm, .spans = xcalloc((size_t)n + 1, sizeof *spans), .n = n, .next = n};
    for (int i = 0; i < n; i++)
        r->spans[i] = spans[i];
}

void replicas_free(Replicas *r)
{
    free(r->spans);
    memset(r, 0, sizeof *r);
}

void replicas_restart(Replicas *r) { r->next = r->n; }

void replicas_sum_from(Replicas *r, float *grads, size_t from)
{
    for (; r->next > 0 && r->spans[r->next - 1].offset >= from; r->next--) {
        const GradSpan *s = &r->spans[r->next - 1];
        comm_allreduce(r->comm, grads + s->offset, s->numel, COMM_F32);
    }
}
