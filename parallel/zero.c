/* zero.c: the distributed optimizer over the data-parallel group (see zero.h). */
#include "parallel/zero.h"

#include "parallel/mpi_check.h"
#include "parallel/watchdog.h"
#include "base/util.h"

#include <stdlib.h>

/* where this rank's piece of b lies in the flat buffers */
static size_t own(const Zero *z, const ZeroBucket *b) { return b->start + (size_t)z->comm->rank * b->piece; }

size_t zero_own(const Zero *z, int i) { return own(z, &z->buckets[i]); }

/* Buckets of `bucket` elements laid from the end of the buffer, where backward finishes first;
   the first one takes the rest. All are multiples of the group size, as n is. */
static void lay_buckets(Zero *z, size_t bucket)
{
    const size_t g = (size_t)z->comm->size;
    bucket = g == 1 || bucket >= z->n ? z->n : bucket < g ? g : bucket / g * g;
    z->nbuckets = (int)((z->n + bucket - 1) / bucket);
    z->buckets = xcalloc((size_t)z->nbuckets, sizeof *z->buckets);
    size_t start = z->n - (size_t)(z->nbuckets - 1) * bucket, at = start / g;
    z->buckets[0] = (ZeroBucket){0, start / g, 0};
    for (int i = 1; i < z->nbuckets; i++, start += bucket, at += bucket / g)
        z->buckets[i] = (ZeroBucket){start, bucket / g, at};
}

void zero_init(Zero *z, const Ops *ops, Comm *comm, size_t n, void *params, float *grads, size_t bucket,
               CommType wire)
{
    if (n % (size_t)comm->size)
        fail("zero_init: %zu is not a multiple of the group size %d", n, comm->size);
    const int alone = comm->size == 1;
    *z = (Zero){.ops = ops, .comm = comm, .n = n, .shard = n / (size_t)comm->size, .wire = wire, .params = params};
    lay_buckets(z, bucket);
    z->next = z->nbuckets;
    z->master = alone && ops->act == DTYPE_F32 ? params : ops->alloc(z->shard * sizeof(float));
    z->grad = alone ? grads : ops->alloc(z->shard * sizeof(float));
    z->m = ops->alloc(z->shard * sizeof(float));
    z->v = ops->alloc(z->shard * sizeof(float));
    if (wire == COMM_BF16 && !alone) {
        z->send = ops->alloc(n * 2);
        z->recv = ops->alloc(z->shard * 2);
    }
}

void zero_free(Zero *z)
{
    const Ops *ops = z->ops;
    if (z->master != z->params)
        ops->release(z->master);
    if (z->comm->size > 1)
        ops->release(z->grad);
    ops->release(z->m);
    ops->release(z->v);
    ops->release(z->send);
    ops->release(z->recv);
    free(z->buckets);
}

/* host (n) -> this rank's pieces of shard, or zeros when host is NULL */
static void load_shard(Zero *z, float *shard, const float *host)
{
    for (int i = 0; i < z->nbuckets; i++) {
        const ZeroBucket *b = &z->buckets[i];
        if (host)
            z->ops->upload(shard + b->at, host + own(z, b), b->piece * sizeof(float));
        else
            z->ops->zero(shard + b->at, b->piece * sizeof(float));
    }
}

void zero_load(Zero *z, const float *params, const float *m, const float *v)
{
    load_shard(z, z->master, params);
    load_shard(z, z->m, m);
    load_shard(z, z->v, v);
}

void zero_gather(const Zero *z, const float *shard, float *out)
{
    const Comm *c = z->comm;
    if (c->size == 1) {
        z->ops->download(out, shard, z->n * sizeof(float));
        return;
    }
    float *host = xmalloc(z->shard * sizeof(float));
    MPI_Request *r = xcalloc((size_t)z->nbuckets, sizeof *r);
    z->ops->download(host, shard, z->shard * sizeof(float));
    for (int i = 0; i < z->nbuckets; i++) {
        const ZeroBucket *b = &z->buckets[i];
        MPI_CHECK(MPI_Igather(host + b->at, (int)b->piece, MPI_FLOAT, out ? out + b->start : NULL, (int)b->piece,
                              MPI_FLOAT, 0, c->mpi, &r[i]));
    }
    watchdog_wait(r, z->nbuckets, "gather of the optimizer's shards", c->axis, -1);
    free(r);
    free(host);
}

void zero_reduce_from(Zero *z, const float *grads, size_t from)
{
    if (z->comm->size == 1) /* z->grad is grads */
        return;
    for (; z->next > 0 && z->buckets[z->next - 1].start >= from; z->next--) {
        const ZeroBucket *b = &z->buckets[z->next - 1];
        const size_t size = b->piece * (size_t)z->comm->size;
        if (z->wire == COMM_F32) {
            comm_reduce_scatter_async(z->comm, grads + b->start, z->grad + b->at, b->piece, COMM_F32);
            continue;
        }
        void *send = (char *)z->send + b->start * 2;
        z->ops->f32_to_bf16(send, grads + b->start, size);
        comm_reduce_scatter_async(z->comm, send, (char *)z->recv + b->at * 2, b->piece, COMM_BF16);
    }
}

void zero_reduce(Zero *z, const float *grads)
{
    zero_reduce_from(z, grads, 0);
    comm_wait(z->comm);
    if (z->recv)
        z->ops->bf16_to_f32(z->grad, z->recv, z->shard);
    z->next = z->nbuckets;
}

double zero_sumsq(const Zero *z, size_t lo, size_t hi)
{
    double s = 0;
    for (int i = 0; i < z->nbuckets; i++) {
        const ZeroBucket *b = &z->buckets[i];
        const size_t o = own(z, b), a = lo > o ? lo : o, e = hi < o + b->piece ? hi : o + b->piece;
        if (a < e)
            s += z->ops->sumsq(z->grad + b->at + (a - o), e - a);
    }
    return s;
}

/* every rank's pieces of the compute copy to every rank of the group */
static void allgather(Zero *z)
{
    char *act = z->params;
    if (z->comm->size == 1)
        return;
    for (int i = 0; i < z->nbuckets; i++) {
        const ZeroBucket *b = &z->buckets[i];
        comm_allgather(z->comm, act + own(z, b) * z->ops->act_size, act + b->start * z->ops->act_size, b->piece,
                       comm_type_of(z->ops->act));
    }
}

void zero_step(Zero *z, float lr, float beta1, float beta2, float eps, float weight_decay, int step,
               float grad_scale)
{
    const Ops *ops = z->ops;
    char *act = z->params;
    for (int i = 0; i < z->nbuckets; i++) {
        const ZeroBucket *b = &z->buckets[i];
        ops->adamw(z->master + b->at, act + own(z, b) * ops->act_size, z->grad + b->at, z->m + b->at, z->v + b->at,
                   b->piece, lr, beta1, beta2, eps, weight_decay, step, grad_scale);
    }
    allgather(z); /* after all the updates: over NCCL they run back to back */
}

void zero_publish(Zero *z)
{
    char *act = z->params;
    for (int i = 0; i < z->nbuckets; i++) {
        const ZeroBucket *b = &z->buckets[i];
        z->ops->f32_to_act(act + own(z, b) * z->ops->act_size, z->master + b->at, b->piece);
    }
    allgather(z);
}
