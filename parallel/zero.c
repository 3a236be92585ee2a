/* zero.c: the distributed optimizer over the data-parallel group (see zero.h). */
#include "parallel/zero.h"

#include "parallel/mpi_check.h"
#include "parallel/watchdog.h"
#include "base/util.h"

#include <stdlib.h>

/* where this rank's piece of b lies in the flat buffers */
static size_t own(const Zero *z, const ZeroBucket *b) { return b->start + (size_t)z->comm->rank * b->piece; }

size_t zero_own(const Zero *z, int i) { return own(z, &z->buckets[i]); }

/* Buckets of `bucket` elements laid from the end of the n-element buffer, where backward finishes
   first; the first one takes the rest. All are multiples of the group size g, as n is. Returns
   their number, *out allocated. */
static int lay_buckets(size_t n, size_t g, size_t bucket, ZeroBucket **out)
{
    bucket = g == 1 || bucket >= n ? n : bucket < g ? g : bucket / g * g;
    const int nb = (int)((n + bucket - 1) / bucket);
    ZeroBucket *b = *out = xcalloc((size_t)nb, sizeof *b);
    size_t start = n - (size_t)(nb - 1) * bucket, at = start / g;
    b[0] = (ZeroBucket){0, start / g, 0};
    for (int i = 1; i < nb; i++, start += bucket, at += bucket / g)
        b[i] = (ZeroBucket){start, bucket / g, at};
    return nb;
}

ZeroBytes zero_plan(const Ops *ops, CommVia via, int group, size_t n, size_t bucket, CommType wire)
{
    const int alone = group == 1;
    const size_t shard = n / (size_t)group, f4 = shard * sizeof(float);
    ZeroBytes zb = {.master = alone && ops->act == DTYPE_F32 ? 0 : f4, .grad = alone ? 0 : f4, .m = f4, .v = f4};
    if (alone)
        return zb;
    if (wire == COMM_BF16) {
        zb.send = n * 2;
        zb.recv = shard * 2;
    }
    ZeroBucket *b;
    const int nb = lay_buckets(n, (size_t)group, bucket, &b);
    for (int i = 0; i < nb; i++)
        zb.stage += comm_plan_reduce_scatter(ops, via, group, b[i].piece, wire);
    free(b);
    if (!comm_stages_in_backend(ops, via))
        zb.stage = 0;
    return zb;
}

void zero_init(Zero *z, const Ops *ops, Comm *comm, size_t n, void *params, float *grads, size_t bucket,
               CommType wire)
{
    if (n % (size_t)comm->size)
        fail("zero_init: %zu is not a multiple of the group size %d", n, comm->size);
    const CommVia via = comm_via(comm);
    const ZeroBytes zb = zero_plan(ops, via, comm->size, n, bucket, wire);
    *z = (Zero){.ops = ops, .comm = comm, .n = n, .shard = n / (size_t)comm->size, .wire = wire, .params = params};
    z->nbuckets = lay_buckets(n, (size_t)comm->size, bucket, &z->buckets);
    z->next = z->nbuckets;
    z->master = zb.master ? ops->alloc(zb.master) : params;
    z->grad = zb.grad ? ops->alloc(zb.grad) : grads;
    z->m = ops->alloc(zb.m);
    z->v = ops->alloc(zb.v);
    z->send = zb.send ? ops->alloc(zb.send) : NULL;
    z->recv = zb.recv ? ops->alloc(zb.recv) : NULL;
    for (int i = z->nbuckets - 1; i >= 0 && comm->size > 1; i--) /* in the order backward starts them */
        comm_reserve(comm, 1, comm_plan_reduce_scatter(ops, via, comm->size, z->buckets[i].piece, wire));
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
