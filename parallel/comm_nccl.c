/* comm_nccl.c: the NCCL implementation of comm.h, for device buffers (CUDA builds).
   Each Comm holds two NCCL communicators over the same ranks, each on its own non-blocking
   stream: "down" carries collectives and point-to-point traffic towards higher ranks, "up"
   traffic towards lower ranks. NCCL serialises a communicator's operations on its stream, and a
   send blocks until its receiver posts the matching receive; with one communicator, a pipeline
   stage that sends an activation downstream and then waits for a gradient from upstream would
   deadlock against a neighbour doing the opposite. One communicator per direction keeps each
   direction's order on its own.
   Ordering with compute (the CUDA backend's legacy default stream) is by events: every operation
   first waits for the compute issued before it; compute waits for a collective's or a receive's
   result right away, and for sends and reduces only at comm_wait, so those overlap the compute
   after them. */
#include "parallel/comm.h"

#include "kernels/cuda/check.h"
#include "parallel/mpi_check.h"
#include "src/util.h"

#include <nccl.h>
#include <stdlib.h>
#include <string.h>

#define NCCL_CHECK(call)                                                                             \
    do {                                                                                             \
        ncclResult_t nccl_check_rc_ = (call);                                                        \
        if (nccl_check_rc_ != ncclSuccess)                                                           \
            fail("%s:%d: %s: %s", __FILE__, __LINE__, #call, ncclGetErrorString(nccl_check_rc_));    \
    } while (0)

typedef struct {
    ncclComm_t down, up;
    cudaStream_t sdown, sup;
    cudaEvent_t ev;
} Nccl;

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

void comm_init_nccl(Comm *c, MPI_Comm comm)
{
    comm_init_mpi(c, comm);
    Nccl *n = xcalloc(1, sizeof *n);
    n->down = nccl_make(c->mpi, c->rank, c->size);
    n->up = nccl_make(c->mpi, c->rank, c->size);
    CUDA_CHECK(cudaStreamCreateWithFlags(&n->sdown, cudaStreamNonBlocking));
    CUDA_CHECK(cudaStreamCreateWithFlags(&n->sup, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&n->ev, cudaEventDisableTiming));
    c->nccl = n;
    c->stream = n->sdown;
    c->device = 1;
}

void nccl_free(Comm *c)
{
    Nccl *n = c->nccl;
    NCCL_CHECK(ncclCommDestroy(n->down));
    NCCL_CHECK(ncclCommDestroy(n->up));
    CUDA_CHECK(cudaStreamDestroy(n->sdown));
    CUDA_CHECK(cudaStreamDestroy(n->sup));
    CUDA_CHECK(cudaEventDestroy(n->ev));
    free(n);
    c->nccl = NULL;
}

/* s waits for the compute issued so far; afterwards compute waits for s when `join` */
static void after_compute(Nccl *n, cudaStream_t s)
{
    CUDA_CHECK(cudaEventRecord(n->ev, cudaStreamLegacy));
    CUDA_CHECK(cudaStreamWaitEvent(s, n->ev, 0));
}

static void before_compute(Nccl *n, cudaStream_t s)
{
    CUDA_CHECK(cudaEventRecord(n->ev, s));
    CUDA_CHECK(cudaStreamWaitEvent(cudaStreamLegacy, n->ev, 0));
}

void nccl_allreduce(Comm *c, void *buf, size_t n, CommType t)
{
    Nccl *x = c->nccl;
    after_compute(x, x->sdown);
    NCCL_CHECK(ncclAllReduce(buf, buf, n, nccl_type(t), ncclSum, x->down, x->sdown));
    before_compute(x, x->sdown);
}

void nccl_reduce_scatter(Comm *c, const void *send, void *recv, size_t n, CommType t)
{
    Nccl *x = c->nccl;
    after_compute(x, x->sdown);
    NCCL_CHECK(ncclReduceScatter(send, recv, n, nccl_type(t), ncclSum, x->down, x->sdown));
    before_compute(x, x->sdown);
}

void nccl_allgather(Comm *c, const void *send, void *recv, size_t n, CommType t)
{
    Nccl *x = c->nccl;
    after_compute(x, x->sdown);
    NCCL_CHECK(ncclAllGather(send, recv, n, nccl_type(t), x->down, x->sdown));
    before_compute(x, x->sdown);
}

void nccl_broadcast(Comm *c, void *buf, size_t n, CommType t, int root)
{
    Nccl *x = c->nccl;
    after_compute(x, x->sdown);
    NCCL_CHECK(ncclBroadcast(buf, buf, n, nccl_type(t), root, x->down, x->sdown));
    before_compute(x, x->sdown);
}

void nccl_reduce(Comm *c, const void *send, void *recv, size_t n, CommType t, int root)
{
    Nccl *x = c->nccl;
    after_compute(x, x->sdown);
    NCCL_CHECK(ncclReduce(send, recv, n, nccl_type(t), ncclSum, root, x->down, x->sdown));
}

void nccl_send(Comm *c, const void *buf, size_t n, CommType t, int peer)
{
    Nccl *x = c->nccl;
    ncclComm_t comm = peer > c->rank ? x->down : x->up;
    cudaStream_t s = peer > c->rank ? x->sdown : x->sup;
    after_compute(x, s);
    NCCL_CHECK(ncclSend(buf, n, nccl_type(t), peer, comm, s));
}

void nccl_recv(Comm *c, void *buf, size_t n, CommType t, int peer)
{
    Nccl *x = c->nccl;
    ncclComm_t comm = peer < c->rank ? x->down : x->up;
    cudaStream_t s = peer < c->rank ? x->sdown : x->sup;
    after_compute(x, s);
    NCCL_CHECK(ncclRecv(buf, n, nccl_type(t), peer, comm, s));
    before_compute(x, s);
}

void nccl_wait(Comm *c)
{
    Nccl *x = c->nccl;
    before_compute(x, x->sdown);
    before_compute(x, x->sup);
}
