/* zero.c: sharded AdamW over the data-parallel group (see zero.h). */
#include "parallel/zero.h"

#include "base/util.h"

void zero_init(Zero *z, const Ops *ops, Comm *comm, size_t n, float *grads)
{
    if (n % (size_t)comm->size)
        fail("zero_init: %zu is not a multiple of the group size %d", n, comm->size);
    *z = (Zero){.ops = ops, .comm = comm, .n = n, .shard = n / (size_t)comm->size, .next = comm->size};
    z->lo = (size_t)comm->rank * z->shard;
    z->grad = comm->size == 1 ? grads : ops->alloc(z->shard * sizeof(float));
    z->m = ops->alloc(z->shard * sizeof(float));
    z->v = ops->alloc(z->shard * sizeof(float));
}

void zero_free(Zero *z)
{
    if (z->comm->size > 1)
        z->ops->release(z->grad);
    z->ops->release(z->m);
    z->ops->release(z->v);
}

void zero_reduce_from(Zero *z, const float *grads, size_t from)
{
    if (z->comm->size == 1) /* z->grad is grads */
        return;
    for (; z->next > 0 && (size_t)(z->next - 1) * z->shard >= from; z->next--)
        comm_reduce(z->comm, grads + (size_t)(z->next - 1) * z->shard, z->grad, z->shard, COMM_F32, z->next - 1);
}

void zero_reduce(Zero *z, const float *grads)
{
    zero_reduce_from(z, grads, 0);
    comm_wait(z->comm);
    z->next = z->comm->size;
}

void zero_step(Zero *z, float *params, void *params_act, float lr, float beta1, float beta2, float eps,
               float weight_decay, int step, float grad_scale)
{
    const Ops *ops = z->ops;
    void *act = (char *)params_act + z->lo * ops->act_size;
    ops->adamw(params + z->lo, act, z->grad, z->m, z->v, z->shard, lr, beta1, beta2, eps, weight_decay, step,
               grad_scale);
    if (z->comm->size == 1)
        return;
    comm_allgather(z->comm, params + z->lo, params, z->shard, COMM_F32);
    if (ops->act != DTYPE_F32)
        ops->f32_to_act(params_act, params, z->n);
}
