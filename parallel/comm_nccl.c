/* comm_nccl.c: the NCCL implementation of comm.h, for device buffers (CUDA builds).
   Each Comm holds two NCCL communicators over the same ranks, each on its own non-blocking
   stream: "down" carries collectives and point-to-point traffic towards higher ranks, "up"
   traffic towards lower ranks. NCCL serialises a communicator's operations on its stream, and a
   send blocks until its receiver posts the matching receive; with one communicator, a pipeline
   stage that sends an activation downstream and then waits for a gradient from upstream would
   deadlock against a neighbour doing the opposite. One communicator per direction keeps each
   direction's order on its own.
   Ordering with compute (the stream of the CUDA backend's context, Ops.stream) is by events:
   every operation first waits for the compute issued before it; compute waits for a collective's
   or a receive's result right away, and for sends and reduces only at comm_wait, so those overlap
   the compute after them. A send reads a staging copy (comm.h) made on the compute stream after
   the last send from that staging buffer has passed.
   The host never blocks here, so a stuck peer would hang the host wherever it next waits for the
   GPU. A watchdog thread therefore follows every operation (an event recorded after each) and
   polls NCCL's asynchronous errors: an operation that makes no progress for parallel.timeout
   seconds, or an error, aborts every NCCL communicator (which ends the kernels waiting on them)
   and the job, naming the operation and the axis. */
#include "parallel/comm_nccl.h"

#include "kernels/cuda/check.h"
#include "parallel/mpi_check.h"
#include "parallel/watchdog.h"
#include "base/util.h"

#include <nccl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NCCL_CHECK(call)                                                                             \
    do {                                                                                             \
        ncclResult_t nccl_check_rc_ = (call);                                                        \
        if (nccl_check_rc_ != ncclSuccess)                                                           \
            fail("%s:%d: %s: %s", __FILE__, __LINE__, #call, ncclGetErrorString(nccl_check_rc_));    \
    } while (0)

/* the operations issued on one stream and not yet seen complete, oldest first */
typedef struct {
    cudaEvent_t *ev;   /* (cap) created once, reused round the ring */
    const char **op;   /* (cap) what each one is */
    int *peer;         /* (cap) its peer (-1: a collective) */
    int head, count, cap;
    double since;      /* when the oldest became the oldest */
} Track;

typedef struct {
    ncclComm_t down, up;
    cudaStream_t sdown, sup;
    cudaStream_t compute; /* the backend's */
    cudaEvent_t ev;
    Track track[2]; /* sdown, sup */
    const char *axis;
} Nccl;

/* ---- the watchdog thread ---- */

static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static Nccl **wd_comms; /* (wd_n) the live groups */
static int wd_n, wd_stop, wd_device;
static pthread_t wd_thread;

static void track_push(Nccl *x, int dir, const char *op, int peer)
{
    Track *k = &x->track[dir];
    pthread_mutex_lock(&wd_lock);
    if (k->count == k->cap) { /* grow, oldest first, new events after */
        int cap = k->cap ? 2 * k->cap : 64;
        cudaEvent_t *ev = xmalloc((size_t)cap * sizeof *ev);
        const char **ops = xmalloc((size_t)cap * sizeof *ops);
        int *peers = xmalloc((size_t)cap * sizeof *peers);
        for (int i = 0; i < k->count; i++) {
            int j = (k->head + i) % k->cap;
            ev[i] = k->ev[j];
            ops[i] = k->op[j];
            peers[i] = k->peer[j];
        }
        for (int i = k->count; i < cap; i++)
            CUDA_CHECK(cudaEventCreateWithFlags(&ev[i], cudaEventDisableTiming));
        free(k->ev);
        free(k->op);
        free(k->peer);
        *k = (Track){.ev = ev, .op = ops, .peer = peers, .head = 0, .count = k->count, .cap = cap, .since = k->since};
    }
    int j = (k->head + k->count) % k->cap;
    CUDA_CHECK(cudaEventRecord(k->ev[j], dir ? x->sup : x->sdown));
    k->op[j] = op;
    k->peer[j] = peer;
    if (k->count++ == 0)
        k->since = util_now();
    pthread_mutex_unlock(&wd_lock);
}

/* Called with wd_lock held: every communicator aborted, then the job. */
static noreturn void wd_expire(const Nccl *x, int dir, double waited, const char *reason)
{
    const Track *k = &x->track[dir];
    const char *op = k->count ? k->op[k->head] : "NCCL";
    int peer = k->count ? k->peer[k->head] : -1;
    for (int i = 0; i < wd_n; i++) {
        ncclCommAbort(wd_comms[i]->down);
        ncclCommAbort(wd_comms[i]->up);
    }
    watchdog_expire(op, x->axis, peer, waited, reason);
}

static void wd_check(Nccl *x, double now)
{
    ncclComm_t comms[2] = {x->down, x->up};
    for (int dir = 0; dir < 2; dir++) {
        ncclResult_t async;
        NCCL_CHECK(ncclCommGetAsyncError(comms[dir], &async));
        if (async != ncclSuccess && async != ncclInProgress)
            wd_expire(x, dir, now - x->track[dir].since, ncclGetErrorString(async));
        Track *k = &x->track[dir];
        while (k->count) {
            cudaError_t e = cudaEventQuery(k->ev[k->head]);
            if (e == cudaErrorNotReady)
                break;
            if (e != cudaSuccess)
                wd_expire(x, dir, now - k->since, cudaGetErrorString(e));
            k->head = (k->head + 1) % k->cap;
            k->count--;
            k->since = now;
        }
        if (k->count && now - k->since > watchdog_timeout())
            wd_expire(x, dir, now - k->since, "not complete");
    }
}

static void *wd_main(void *arg)
{
    (void)arg;
    CUDA_CHECK(cudaSetDevice(wd_device));
    const double every = watchdog_timeout() / 10 < 0.1 ? watchdog_timeout() / 10 : 0.1;
    for (;;) {
        pthread_mutex_lock(&wd_lock);
        if (wd_stop) {
            pthread_mutex_unlock(&wd_lock);
            return NULL;
        }
        double now = util_now();
        for (int i = 0; i < wd_n; i++)
            wd_check(wd_comms[i], now);
        pthread_mutex_unlock(&wd_lock);
        nanosleep(&(struct timespec){.tv_sec = (time_t)every, .tv_nsec = (long)((every - (time_t)every) * 1e9)}, NULL);
    }
}

/* x joins the watched groups (the first one starts the thread) or leaves them (the last stops it) */
static void wd_watch(Nccl *x, int join)
{
    pthread_mutex_lock(&wd_lock);
    int start = join && wd_n == 0, stop = 0;
    if (join) {
        wd_comms = realloc(wd_comms, (size_t)(wd_n + 1) * sizeof *wd_comms);
        if (!wd_comms)
            fail("out of memory for the watchdog");
        wd_comms[wd_n++] = x;
    } else {
        for (int i = 0; i < wd_n; i++)
            if (wd_comms[i] == x)
                wd_comms[i] = wd_comms[--wd_n];
        stop = wd_stop = wd_n == 0;
    }
    pthread_mutex_unlock(&wd_lock);
    if (start) {
        CUDA_CHECK(cudaGetDevice(&wd_device));
        wd_stop = 0;
        if (pthread_create(&wd_thread, NULL, wd_main, NULL))
            fail("cannot start the NCCL watchdog thread");
    }
    if (stop)
        pthread_join(wd_thread, NULL);
}

/* ---- set-up ---- */

static ncclDataType_t nccl_type(CommType t)
{
    switch (t) {
    case COMM_F32:
        return ncclFloat32;
    case COMM_F64:
        return ncclFloat64;
    case COMM_BF16:
        return ncclBfloat16;
    default:
        return ncclInt32;
    }
}

static ncclComm_t nccl_make(MPI_Comm comm, int rank, int size)
{
    ncclUniqueId id;
    if (rank == 0)
        NCCL_CHECK(ncclGetUniqueId(&id));
    MPI_CHECK(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, comm));
    ncclComm_t c;
    NCCL_CHECK(ncclCommInitRank(&c, size, id, rank));
    return c;
}

void nccl_init(Comm *c)
{
    if (!c->ops->stream)
        fail("NCCL: the %s backend has no compute stream to order against", c->ops->name);
    Nccl *n = xcalloc(1, sizeof *n);
    n->compute = (cudaStream_t)c->ops->stream();
    n->down = nccl_make(c->mpi, c->rank, c->size);
    n->up = nccl_make(c->mpi, c->rank, c->size);
    CUDA_CHECK(cudaStreamCreateWithFlags(&n->sdown, cudaStreamNonBlocking));
    CUDA_CHECK(cudaStreamCreateWithFlags(&n->sup, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&n->ev, cudaEventDisableTiming));
    n->axis = c->axis;
    c->nccl = n;
    wd_watch(n, 1);
}

void nccl_free(Comm *c)
{
    Nccl *n = c->nccl;
    wd_watch(n, 0);
    NCCL_CHECK(ncclCommDestroy(n->down));
    NCCL_CHECK(ncclCommDestroy(n->up));
    CUDA_CHECK(cudaStreamDestroy(n->sdown));
    CUDA_CHECK(cudaStreamDestroy(n->sup));
    CUDA_CHECK(cudaEventDestroy(n->ev));
    for (int dir = 0; dir < 2; dir++) {
        for (int i = 0; i < n->track[dir].cap; i++)
            CUDA_CHECK(cudaEventDestroy(n->track[dir].ev[i]));
        free(n->track[dir].ev);
        free(n->track[dir].op);
        free(n->track[dir].peer);
    }
    free(n);
    c->nccl = NULL;
}

/* ---- operations ---- */

/* s waits for the compute issued so far */
static void after_compute(Nccl *n, cudaStream_t s)
{
    CUDA_CHECK(cudaEventRecord(n->ev, n->compute));
    CUDA_CHECK(cudaStreamWaitEvent(s, n->ev, 0));
}

/* the compute issued from now on waits for s */
static void before_compute(Nccl *n, cudaStream_t s)
{
    CUDA_CHECK(cudaEventRecord(n->ev, s));
    CUDA_CHECK(cudaStreamWaitEvent(n->compute, n->ev, 0));
}

/* A collective runs on the down stream after the compute before it; the compute after it
   waits for it. */
static Nccl *collective_begin(Comm *c)
{
    Nccl *x = c->nccl;
    after_compute(x, x->sdown);
    return x;
}

static void collective_end(Nccl *x, const char *op)
{
    track_push(x, 0, op, -1);
    before_compute(x, x->sdown);
}

void nccl_allreduce(Comm *c, void *buf, size_t n, CommType t)
{
    Nccl *x = collective_begin(c);
    NCCL_CHECK(ncclAllReduce(buf, buf, n, nccl_type(t), ncclSum, x->down, x->sdown));
    collective_end(x, "all-reduce");
}

void nccl_reduce_scatter(Comm *c, const void *send, void *recv, size_t n, CommType t)
{
    Nccl *x = collective_begin(c);
    NCCL_CHECK(ncclReduceScatter(send, recv, n, nccl_type(t), ncclSum, x->down, x->sdown));
    collective_end(x, "reduce-scatter");
}

void nccl_allgather(Comm *c, const void *send, void *recv, size_t n, CommType t)
{
    Nccl *x = collective_begin(c);
    NCCL_CHECK(ncclAllGather(send, recv, n, nccl_type(t), x->down, x->sdown));
    collective_end(x, "all-gather");
}

void nccl_broadcast(Comm *c, void *buf, size_t n, CommType t, int root)
{
    Nccl *x = collective_begin(c);
    NCCL_CHECK(ncclBroadcast(buf, buf, n, nccl_type(t), root, x->down, x->sdown));
    collective_end(x, "broadcast");
}

void nccl_reduce_scatter_async(Comm *c, const void *send, void *recv, size_t n, CommType t)
{
    Nccl *x = c->nccl;
    after_compute(x, x->sdown);
    NCCL_CHECK(ncclReduceScatter(send, recv, n, nccl_type(t), ncclSum, x->down, x->sdown));
    track_push(x, 0, "reduce-scatter", -1);
}

void nccl_send(Comm *c, CommStage *s, const void *buf, size_t bytes, size_t n, CommType t, int peer)
{
    Nccl *x = c->nccl;
    const int dir = peer < c->rank;
    if (!s->done)
        CUDA_CHECK(cudaEventCreateWithFlags((cudaEvent_t *)&s->done, cudaEventDisableTiming));
    CUDA_CHECK(cudaStreamWaitEvent(x->compute, (cudaEvent_t)s->done, 0)); /* the last send from s */
    CUDA_CHECK(cudaMemcpyAsync(s->p, buf, bytes, cudaMemcpyDeviceToDevice, x->compute));
    cudaStream_t st = dir ? x->sup : x->sdown;
    after_compute(x, st);
    NCCL_CHECK(ncclSend(s->p, n, nccl_type(t), peer, dir ? x->up : x->down, st));
    CUDA_CHECK(cudaEventRecord((cudaEvent_t)s->done, st));
    track_push(x, dir, "send", peer);
}

void nccl_recv(Comm *c, void *buf, size_t n, CommType t, int peer)
{
    Nccl *x = c->nccl;
    const int dir = peer > c->rank; /* from below arrives on the down communicator */
    cudaStream_t st = dir ? x->sup : x->sdown;
    after_compute(x, st);
    NCCL_CHECK(ncclRecv(buf, n, nccl_type(t), peer, dir ? x->up : x->down, st));
    track_push(x, dir, "recv", peer);
    before_compute(x, st);
}

void nccl_wait(Comm *c)
{
    Nccl *x = c->nccl;
    before_compute(x, x->sdown);
    before_compute(x, x->sup);
    for (int i = 0; i < c->nstages; i++) /* the copies that fill them again come after */
        c->stages[i].busy = 0;
}

void nccl_stage_free(CommStage *s)
{
    if (s->done)
        CUDA_CHECK(cudaEventDestroy((cudaEvent_t)s->done));
    s->done = NULL;
}
