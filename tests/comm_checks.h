/* comm_checks.h: checks of one Comm over all its ranks, on buffers in any backend's memory
   (tests/test_comm.c on the CPU, tests/gpu/test_comm_gpu.c on GPUs). Include after tap.h, in one
   file of a test program.
   Values are small integers, exact in bf16 and in any summation order, so every check is exact:
   every collective in fp32 and bf16 (in place or not), the asynchronous reduce-scatter (ready
   at comm_wait), and comm_send owning what it sends: each rank sends 8 messages of 16 KiB (above
   MPI's eager limit) from one buffer it overwrites after each send, and the staging pool holds
   one step's sends and no more after the first step. */
#ifndef MEGATRAIN_COMM_CHECKS_H
#define MEGATRAIN_COMM_CHECKS_H

#include "parallel/comm.h"
#include "base/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static float cc_value(int rank, size_t i) { return (float)((int)(i % 7) - 3 + rank); }

/* host: n elements of t holding cc_value(rank, offset + i) */
static void cc_fill(void *host, CommType t, size_t n, int rank, size_t offset)
{
    for (size_t i = 0; i < n; i++) {
        float f = cc_value(rank, offset + i);
        uint32_t u;
        memcpy(&u, &f, sizeof u);
        if (t == COMM_BF16)
            ((uint16_t *)host)[i] = (uint16_t)(u >> 16); /* exact for these integers */
        else
            ((float *)host)[i] = f;
    }
}

/* host holds the sum over all ranks of cc_value(r, offset + i) (sum), or cc_value(rank, ...) */
static int cc_holds(const void *host, CommType t, size_t n, int size, int rank, size_t offset, int sum)
{
    for (size_t i = 0; i < n; i++) {
        float want = 0, got;
        for (int r = sum ? 0 : rank; r < (sum ? size : rank + 1); r++)
            want += cc_value(r, offset + i);
        if (t == COMM_BF16) {
            uint32_t u = (uint32_t)((const uint16_t *)host)[i] << 16;
            memcpy(&got, &u, sizeof got);
        } else {
            got = ((const float *)host)[i];
        }
        if (got != want)
            return 0;
    }
    return 1;
}

/* buffers of the Comm's memory (c->ops's, or host), filled and read through host copies */
static void *cc_alloc(const Comm *c, size_t bytes) { return c->device ? c->ops->alloc(bytes) : xcalloc(1, bytes); }
static void cc_free(const Comm *c, void *p)
{
    if (c->device)
        c->ops->release(p);
    else
        free(p);
}
static void cc_put(const Comm *c, void *dst, const void *host, size_t bytes)
{
    if (c->device)
        c->ops->upload(dst, host, bytes);
    else
        memcpy(dst, host, bytes);
}
static void cc_get(const Comm *c, void *host, const void *src, size_t bytes)
{
    if (c->device)
        c->ops->download(host, src, bytes);
    else
        memcpy(host, src, bytes);
}

static void cc_collectives(Comm *c, CommType t, const char *what)
{
    const size_t n = 1000, es = t == COMM_BF16 ? 2 : 4, all = (size_t)c->size * n * es, mine = (size_t)c->rank * n * es;
    const int size = c->size, rank = c->rank;
    char *h = xmalloc(all), *a = cc_alloc(c, all), *b = cc_alloc(c, all);

    cc_fill(h, t, n, rank, 0);
    cc_put(c, a, h, n * es);
    comm_allreduce(c, a, n, t);
    cc_get(c, h, a, n * es);
    tap_check_all(MPI_COMM_WORLD, cc_holds(h, t, n, size, rank, 0, 1), "%s: all-reduce", what);

    cc_fill(h, t, (size_t)size * n, rank, 0);
    cc_put(c, a, h, all);
    comm_reduce_scatter(c, a, b, n, t);
    cc_get(c, h, b, n * es);
    tap_check_all(MPI_COMM_WORLD, cc_holds(h, t, n, size, rank, (size_t)rank * n, 1), "%s: reduce-scatter", what);

    for (int in_place = 0; in_place < 2; in_place++) {
        cc_fill(h, t, n, rank, 0);
        char *send = in_place ? b + mine : a;
        cc_put(c, send, h, n * es);
        comm_allgather(c, send, b, n, t);
        cc_get(c, h, b, all);
        int ok = 1;
        for (int r = 0; r < size; r++)
            ok = ok && cc_holds(h + (size_t)r * n * es, t, n, size, r, 0, 0);
        tap_check_all(MPI_COMM_WORLD, ok, "%s: all-gather%s", what, in_place ? " in place" : "");
    }

    const int root = size - 1;
    cc_fill(h, t, n, rank, 0);
    cc_put(c, a, h, n * es);
    comm_broadcast(c, a, n, t, root);
    cc_get(c, h, a, n * es);
    tap_check_all(MPI_COMM_WORLD, cc_holds(h, t, n, size, root, 0, 0), "%s: broadcast from rank %d", what, root);

    cc_fill(h, t, (size_t)size * n, rank, 0);
    cc_put(c, a, h, all);
    comm_reduce_scatter_async(c, a, b, n, t);
    comm_wait(c);
    cc_get(c, h, b, n * es);
    tap_check_all(MPI_COMM_WORLD, cc_holds(h, t, n, size, rank, (size_t)rank * n, 1),
                  "%s: asynchronous reduce-scatter, ready at comm_wait", what);
    free(h);
    cc_free(c, a);
    cc_free(c, b);
}

/* Each rank sends 8 messages of n floats to the next one from one buffer, changed after every
   send (and spoilt after the last), receives the previous rank's, then comm_wait. */
static int cc_ring_step(Comm *c, size_t n)
{
    const int next = (c->rank + 1) % c->size, prev = (c->rank + c->size - 1) % c->size;
    const size_t bytes = n * sizeof(float);
    float *h = xmalloc(bytes), *buf = cc_alloc(c, bytes), *in = cc_alloc(c, bytes);
    for (int k = 0; k < 8; k++) {
        cc_fill(h, COMM_F32, n, c->rank, (size_t)k);
        cc_put(c, buf, h, bytes);
        comm_send(c, buf, n, COMM_F32, next, k);
    }
    memset(h, 0xff, bytes); /* NaNs: a send that still read the buffer would carry them */
    cc_put(c, buf, h, bytes);
    int ok = 1;
    for (int k = 0; k < 8; k++) {
        comm_recv(c, in, n, COMM_F32, prev, k);
        cc_get(c, h, in, bytes);
        ok = ok && cc_holds(h, COMM_F32, n, c->size, prev, (size_t)k, 0);
    }
    comm_wait(c);
    free(h);
    cc_free(c, buf);
    cc_free(c, in);
    return ok;
}

static void cc_sends(Comm *c, const char *what)
{
    const size_t n = 4096; /* 16 KiB */
    int ok = cc_ring_step(c, n);
    tap_check_all(MPI_COMM_WORLD, ok, "%s: 8 sends of 16 KiB in flight from one changing buffer arrive intact", what);
    const int grown = c->nstages, want = 8 + (c->device && !c->nccl); /* and a receive's host copy */
    ok = cc_ring_step(c, n) && cc_ring_step(c, n);
    tap_check_all(MPI_COMM_WORLD, ok && c->nstages == grown && grown == want,
                  "%s: the staging pool holds one step's sends (%d buffers, %d expected) and stays (%d)", what,
                  grown, want, c->nstages);
}

/* Everything above on c, in fp32 and bf16. */
static void comm_checks(Comm *c, const char *what)
{
    char *w = xasprintf("%s fp32", what);
    cc_collectives(c, COMM_F32, w);
    free(w);
    w = xasprintf("%s bf16", what);
    cc_collectives(c, COMM_BF16, w);
    free(w);
    cc_sends(c, what);
}

#endif
