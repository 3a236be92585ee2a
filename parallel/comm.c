/* comm.c: the MPI implementation of comm.h (host buffers, or device buffers through host
   staging copies), the staging pool, and the dispatch to NCCL (comm_nccl.c). Every MPI call is
   nonblocking and completed through the watchdog. */
#include "parallel/comm.h"

#include "autoconfig.h"
#include "parallel/comm_nccl.h"
#include "parallel/mpi_check.h"
#include "parallel/watchdog.h"
#include "base/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

CommVia comm_via(const Comm *c) { return c->nccl ? COMM_NCCL : COMM_MPI; }

CommType comm_type_of(Dtype act) { return act == DTYPE_F64 ? COMM_F64 : act == DTYPE_BF16 ? COMM_BF16 : COMM_F32; }

static size_t type_size(CommType t) { return t == COMM_F64 ? 8 : t == COMM_BF16 ? 2 : 4; }

static MPI_Datatype mpi_type(CommType t)
{
    switch (t) {
    case COMM_F32:
        return MPI_FLOAT;
    case COMM_F64:
        return MPI_DOUBLE;
    case COMM_BF16:
        return MPI_UINT16_T; /* moved as raw words, never summed: see sum_type */
    default:
        return MPI_INT32_T;
    }
}

/* what MPI sums for t: MPI has no bf16, so bf16 is summed as fp32 (comm_init) */
static CommType sum_type(CommType t) { return t == COMM_BF16 ? COMM_F32 : t; }

/* MPI counts are ints: move large buffers in pieces */
#define MPI_PIECE ((size_t)1 << 30)

static int piece(size_t n, size_t at) { return (int)(n - at < MPI_PIECE ? n - at : MPI_PIECE); }

/* ---- host copies of device buffers (MPI) ---- */

/* h (n elements as MPI moved them: type t, or fp32 staged as [fp32 (n) | bf16 (n)] when w is
   wider than t) back into buf (c's memory) */
static void host_copy_back(Comm *c, void *buf, void *h, size_t n, CommType t, CommType w)
{
    const size_t bytes = n * type_size(t), wide = t == w ? 0 : n * type_size(w);
    if (wide)
        util_f32_to_bf16((uint16_t *)((char *)h + wide), h, n);
    if (c->device)
        c->ops->upload(buf, (char *)h + wide, bytes); /* ordered after the compute issued so far */
    else
        memcpy(buf, (char *)h + wide, bytes);
}

/* ---- the staging pool ---- */

/* Whether host_in stages n elements of t moved as w: device buffers, a widened sum or a copy the
   caller asked for; else MPI reads the host buffer itself. */
static int staged(int device, CommType t, CommType w, int copy) { return device || t != w || copy; }

int comm_stages_in_backend(const Ops *ops, CommVia via) { return via == COMM_NCCL || (ops && !ops->on_device); }

/* whether c's staging buffers are its backend's memory (else plain host memory) */
static int backend_stages(const Comm *c) { return comm_stages_in_backend(c->ops, comm_via(c)); }

static void stage_release_memory(Comm *c, CommStage *s)
{
    if (c->nccl)
        nccl_stage_free(s);
    if (backend_stages(c))
        c->ops->release(s->p);
    else
        free(s->p);
    s->p = NULL;
    s->cap = 0;
}

/* One use of staging buffer i is over; the last one delivers what it holds (a reduce's result). */
static void stage_drop(Comm *c, int i)
{
    if (i < 0)
        return;
    CommStage *s = &c->stages[i];
    if (--s->busy == 0 && s->dst) {
        host_copy_back(c, s->dst, s->p, s->n, s->t, sum_type(s->t));
        s->dst = NULL;
    }
}

/* Staging buffer i (-1: a new one) with memory for bytes, idle. */
static int stage_make(Comm *c, int i, size_t bytes)
{
    if (i < 0) {
        c->stages = realloc(c->stages, (size_t)(c->nstages + 1) * sizeof *c->stages);
        if (!c->stages)
            fail("out of memory for staging buffers");
        i = c->nstages++;
        memset(&c->stages[i], 0, sizeof *c->stages);
    } else {
        stage_release_memory(c, &c->stages[i]);
    }
    CommStage *s = &c->stages[i];
    s->p = backend_stages(c) ? c->ops->alloc(bytes) : xmalloc(bytes);
    s->cap = bytes;
    return i;
}

/* A staging buffer of at least bytes that nothing uses, now busy once: the first idle one that
   is large enough, else a new or grown one. Sends hold theirs until comm_wait, so the pool grows
   to what a step sends and then stays, the same on every run; comm_reserve makes it up front. */
static int stage_take(Comm *c, size_t bytes)
{
    int idle = -1;
    for (int i = 0; i < c->nstages; i++) {
        CommStage *s = &c->stages[i];
        if (s->busy)
            continue;
        if (s->cap >= bytes) {
            s->busy = 1;
            return i;
        }
        idle = i;
    }
    idle = stage_make(c, idle, bytes);
    c->stages[idle].busy = 1;
    return idle;
}

void comm_reserve(Comm *c, int count, size_t bytes)
{
    for (int i = 0; i < count && bytes > 0; i++)
        stage_make(c, -1, bytes);
}

size_t comm_plan_send(size_t n, CommType t) { return n * type_size(t); }

size_t comm_plan_reduce_scatter(const Ops *ops, CommVia via, int size, size_t n, CommType t)
{
    const CommType w = sum_type(t);
    const size_t all = (size_t)size * n;
    if (via == COMM_NCCL || !staged(ops && ops->on_device, t, w, 0)) /* NCCL sums in place */
        return 0;
    return all * type_size(t) + (t == w ? 0 : all * type_size(w)); /* as host_in stages it */
}

/* Host memory holding the n elements of t at buf (c's memory) as MPI moves them, in type w (t,
   or fp32 for a bf16 sum): buf itself when it is host memory of type w and copy is 0, else
   staging buffer *stage (busy once), filled from buf when fill. */
static void *host_in(Comm *c, const void *buf, size_t n, CommType t, CommType w, int copy, int fill, int *stage)
{
    *stage = -1;
    if (!staged(c->device, t, w, copy))
        return (void *)buf;
    const size_t bytes = n * type_size(t), wide = t == w ? 0 : n * type_size(w);
    *stage = stage_take(c, wide + bytes);
    char *h = c->stages[*stage].p;
    if (fill) {
        if (c->device)
            c->ops->download(h + wide, buf, bytes); /* after the compute that wrote buf */
        else
            memcpy(h + wide, buf, bytes);
        if (wide)
            util_bf16_to_f32((float *)h, (const uint16_t *)(h + wide), n);
    }
    return h;
}

/* The end of a blocking call: h (from host_in) back into buf when staged. */
static void host_out(Comm *c, void *buf, void *h, size_t n, CommType t, CommType w, int stage)
{
    if (stage < 0)
        return;
    host_copy_back(c, buf, h, n, t, w);
    stage_drop(c, stage);
}

/* a slot for one more pending MPI request, which uses staging buffer stage (-1: none) */
static MPI_Request *pending_push(Comm *c, int stage)
{
    if (c->npending == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->pending = realloc(c->pending, (size_t)c->cap * sizeof *c->pending);
        c->pending_stage = realloc(c->pending_stage, (size_t)c->cap * sizeof *c->pending_stage);
        if (!c->pending || !c->pending_stage)
            fail("out of memory for pending requests");
    }
    if (stage >= 0)
        c->stages[stage].busy++;
    c->pending_stage[c->npending] = stage;
    return &c->pending[c->npending++];
}

/* ---- MPI ---- */

static void mpi_allreduce(Comm *c, void *buf, size_t n, CommType t)
{
    const CommType w = sum_type(t);
    int s;
    char *h = host_in(c, buf, n, t, w, 0, 1, &s);
    for (size_t at = 0; at < n; at += MPI_PIECE) {
        MPI_Request r;
        MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, h + at * type_size(w), piece(n, at), mpi_type(w), MPI_SUM, c->mpi, &r));
        watchdog_wait(&r, 1, "all-reduce", c->axis, -1);
    }
    host_out(c, buf, h, n, t, w, s);
}

static void mpi_reduce_scatter(Comm *c, const void *send, void *recv, size_t n, CommType t)
{
    if (n > MPI_PIECE)
        fail("comm_reduce_scatter: %zu elements per rank is over MPI's count limit", n);
    const CommType w = sum_type(t);
    int ss, rs;
    const void *hs = host_in(c, send, (size_t)c->size * n, t, w, 0, 1, &ss);
    void *hr = host_in(c, recv, n, t, w, 0, 0, &rs);
    MPI_Request r;
    MPI_CHECK(MPI_Ireduce_scatter_block(hs, hr, (int)n, mpi_type(w), MPI_SUM, c->mpi, &r));
    watchdog_wait(&r, 1, "reduce-scatter", c->axis, -1);
    stage_drop(c, ss);
    host_out(c, recv, hr, n, t, w, rs);
}

static void mpi_allgather(Comm *c, const void *send, void *recv, size_t n, CommType t)
{
    if (n > MPI_PIECE)
        fail("comm_allgather: %zu elements per rank is over MPI's count limit", n);
    const int in_place = send == (const char *)recv + (size_t)c->rank * n * type_size(t);
    int ss = -1, rs;
    void *hr = host_in(c, recv, (size_t)c->size * n, t, t, 0, 0, &rs);
    const void *hs = in_place && rs < 0 ? MPI_IN_PLACE : host_in(c, send, n, t, t, 0, 1, &ss);
    MPI_Request r;
    MPI_CHECK(MPI_Iallgather(hs, (int)n, mpi_type(t), hr, (int)n, mpi_type(t), c->mpi, &r));
    watchdog_wait(&r, 1, "all-gather", c->axis, -1);
    stage_drop(c, ss);
    host_out(c, recv, hr, (size_t)c->size * n, t, t, rs);
}

static void mpi_broadcast(Comm *c, void *buf, size_t n, CommType t, int root)
{
    int s;
    char *h = host_in(c, buf, n, t, t, 0, c->rank == root, &s);
    for (size_t at = 0; at < n; at += MPI_PIECE) {
        MPI_Request r;
        MPI_CHECK(MPI_Ibcast(h + at * type_size(t), piece(n, at), mpi_type(t), root, c->mpi, &r));
        watchdog_wait(&r, 1, "broadcast", c->axis, -1);
    }
    host_out(c, buf, h, n, t, t, s);
}

static void mpi_reduce_scatter_async(Comm *c, const void *send, void *recv, size_t n, CommType t)
{
    if (n > MPI_PIECE)
        fail("comm_reduce_scatter_async: %zu elements per rank is over MPI's count limit", n);
    const CommType w = sum_type(t);
    int s;
    char *h = host_in(c, send, (size_t)c->size * n, t, w, 0, 1, &s);
    if (s >= 0) { /* the sum lands at the start of the staging buffer, which hands it to recv when done */
        c->stages[s].dst = recv;
        c->stages[s].n = n;
        c->stages[s].t = t;
    }
    MPI_CHECK(MPI_Ireduce_scatter_block(s >= 0 ? MPI_IN_PLACE : h, s >= 0 ? (void *)h : recv, (int)n, mpi_type(w),
                                        MPI_SUM, c->mpi, pending_push(c, s)));
    stage_drop(c, s);
}

static void mpi_send(Comm *c, const void *buf, size_t n, CommType t, int peer, int tag)
{
    if (n > MPI_PIECE)
        fail("comm_send: %zu elements is over MPI's count limit", n);
    int s;
    void *h = host_in(c, buf, n, t, t, 1, 1, &s);
    MPI_CHECK(MPI_Isend(h, (int)n, mpi_type(t), peer, tag, c->mpi, pending_push(c, s)));
    stage_drop(c, s);
}

static void mpi_recv(Comm *c, void *buf, size_t n, CommType t, int peer, int tag)
{
    if (n > MPI_PIECE)
        fail("comm_recv: %zu elements is over MPI's count limit", n);
    int s;
    void *h = host_in(c, buf, n, t, t, 0, 0, &s);
    MPI_Request r;
    MPI_CHECK(MPI_Irecv(h, (int)n, mpi_type(t), peer, tag, c->mpi, &r));
    watchdog_wait(&r, 1, "recv", c->axis, peer);
    host_out(c, buf, h, n, t, t, s);
}

static void mpi_wait(Comm *c)
{
    watchdog_wait(c->pending, c->npending, "sends and reduces in flight", c->axis, -1);
    for (int i = 0; i < c->npending; i++)
        stage_drop(c, c->pending_stage[i]);
    c->npending = 0;
}

/* ---- set-up ---- */

void comm_init(Comm *c, MPI_Comm comm, const char *axis, const Ops *ops, CommVia via)
{
    memset(c, 0, sizeof *c);
    MPI_CHECK(MPI_Comm_dup(comm, &c->mpi));
    watchdog_errors_return(c->mpi);
    MPI_CHECK(MPI_Comm_rank(c->mpi, &c->rank));
    MPI_CHECK(MPI_Comm_size(c->mpi, &c->size));
    c->axis = axis;
    c->ops = ops;
    c->device = ops && ops->on_device;
    if (via == COMM_NCCL) {
        if (!c->device)
            fail("comm_init: NCCL moves device buffers (%s axis)", axis);
        nccl_init(c);
    }
}

static void wait_impl(Comm *c)
{
    if (c->nccl)
        return nccl_wait(c);
    mpi_wait(c);
}

void comm_free(Comm *c)
{
    wait_impl(c);
    for (int i = 0; i < c->nstages; i++)
        stage_release_memory(c, &c->stages[i]);
    if (c->nccl)
        nccl_free(c);
    free(c->stages);
    free(c->pending);
    free(c->pending_stage);
    MPI_CHECK(MPI_Comm_free(&c->mpi));
}

#ifndef HAVE_CUDA
/* CPU-only builds: NCCL Comms cannot be made, so the rest is never reached. */
void nccl_init(Comm *c)
{
    (void)c;
    fail("NCCL communication needs a CUDA build (configure --with-cuda)");
}
#define UNREACHABLE fail("internal error: NCCL call in a build without CUDA")
void nccl_free(Comm *c) { UNREACHABLE; }
void nccl_allreduce(Comm *c, void *buf, size_t n, CommType t) { UNREACHABLE; }
void nccl_reduce_scatter(Comm *c, const void *send, void *recv, size_t n, CommType t) { UNREACHABLE; }
void nccl_allgather(Comm *c, const void *send, void *recv, size_t n, CommType t) { UNREACHABLE; }
void nccl_broadcast(Comm *c, void *buf, size_t n, CommType t, int root) { UNREACHABLE; }
void nccl_reduce_scatter_async(Comm *c, const void *send, void *recv, size_t n, CommType t) { UNREACHABLE; }
void nccl_send(Comm *c, CommStage *s, const void *buf, size_t bytes, size_t n, CommType t, int peer) { UNREACHABLE; }
void nccl_recv(Comm *c, void *buf, size_t n, CommType t, int peer) { UNREACHABLE; }
void nccl_wait(Comm *c) { UNREACHABLE; }
void nccl_stage_free(CommStage *s) { UNREACHABLE; }
#endif

/* ---- the public calls: NCCL or MPI, timed (the metrics report communication time per axis) ---- */
#define TIMED(call)                                                                                  \
    do {                                                                                             \
        double t0_ = util_now();                                                                     \
        call;                                                                                        \
        c->busy_s += util_now() - t0_;                                                               \
    } while (0)
#define VIA(nccl_call, mpi_call) TIMED(if (c->nccl) nccl_call; else mpi_call)

void comm_allreduce(Comm *c, void *buf, size_t n, CommType t)
{
    if (c->size > 1)
        VIA(nccl_allreduce(c, buf, n, t), mpi_allreduce(c, buf, n, t));
}
void comm_reduce_scatter(Comm *c, const void *send, void *recv, size_t n, CommType t)
{
    VIA(nccl_reduce_scatter(c, send, recv, n, t), mpi_reduce_scatter(c, send, recv, n, t));
}
void comm_allgather(Comm *c, const void *send, void *recv, size_t n, CommType t)
{
    VIA(nccl_allgather(c, send, recv, n, t), mpi_allgather(c, send, recv, n, t));
}
void comm_broadcast(Comm *c, void *buf, size_t n, CommType t, int root)
{
    if (c->size > 1)
        VIA(nccl_broadcast(c, buf, n, t, root), mpi_broadcast(c, buf, n, t, root));
}
void comm_reduce_scatter_async(Comm *c, const void *send, void *recv, size_t n, CommType t)
{
    VIA(nccl_reduce_scatter_async(c, send, recv, n, t), mpi_reduce_scatter_async(c, send, recv, n, t));
}
void comm_send(Comm *c, const void *buf, size_t n, CommType t, int peer, int tag)
{
    VIA(nccl_send(c, &c->stages[stage_take(c, n * type_size(t))], buf, n * type_size(t), n, t, peer),
        mpi_send(c, buf, n, t, peer, tag));
}
void comm_recv(Comm *c, void *buf, size_t n, CommType t, int peer, int tag)
{
    VIA(nccl_recv(c, buf, n, t, peer), mpi_recv(c, buf, n, t, peer, tag));
}
void comm_wait(Comm *c) { TIMED(wait_impl(c)); }

int comm_max(Comm *c, int v, const char *what)
{
    if (c->device)
        fail("comm_max: %s: a host value needs a host Comm", what);
    MPI_Request r;
    MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, c->mpi, &r));
    watchdog_wait(&r, 1, what, c->axis, -1);
    return v;
}
