/* comm.c: the MPI implementation of comm.h, and the dispatch to NCCL for device Comms. */
#include "parallel/comm.h"

#include "autoconfig.h"
#include "parallel/mpi_check.h"
#include "src/util.h"

#include <stdlib.h>
#include <string.h>

/* NCCL implementation (comm_nccl.c, CUDA builds only) */
void nccl_allreduce(Comm *c, void *buf, size_t n, CommType t);
void nccl_reduce_scatter(Comm *c, const void *send, void *recv, size_t n, CommType t);
void nccl_allgather(Comm *c, const void *send, void *recv, size_t n, CommType t);
void nccl_broadcast(Comm *c, void *buf, size_t n, CommType t, int root);
void nccl_reduce(Comm *c, const void *send, void *recv, size_t n, CommType t, int root);
void nccl_send(Comm *c, const void *buf, size_t n, CommType t, int peer);
void nccl_recv(Comm *c, void *buf, size_t n, CommType t, int peer);
void nccl_wait(Comm *c);
void nccl_free(Comm *c);

CommType comm_type_of(Dtype act) { return act == DTYPE_F64 ? COMM_F64 : act == DTYPE_BF16 ? COMM_BF16 : COMM_F32; }

static MPI_Datatype mpi_type(CommType t)
{
    switch (t) {
    case COMM_F32:
        return MPI_FLOAT;
    case COMM_F64:
        return MPI_DOUBLE;
    case COMM_I32:
        return MPI_INT32_T;
    default:
        fail("MPI has no bf16: bf16 buffers travel over NCCL");
    }
}

/* MPI counts are ints: move large buffers in pieces */
#define MPI_PIECE ((size_t)1 << 30)

static size_t type_size(CommType t) { return t == COMM_F64 ? 8 : t == COMM_BF16 ? 2 : 4; }

void comm_init_mpi(Comm *c, MPI_Comm comm)
{
    memset(c, 0, sizeof *c);
    MPI_CHECK(MPI_Comm_dup(comm, &c->mpi));
    MPI_CHECK(MPI_Comm_rank(c->mpi, &c->rank));
    MPI_CHECK(MPI_Comm_size(c->mpi, &c->size));
}

static void wait_impl(Comm *c);

void comm_free(Comm *c)
{
    wait_impl(c);
    if (c->device)
        nccl_free(c);
    free(c->pending);
    MPI_CHECK(MPI_Comm_free(&c->mpi));
}

static void allreduce_impl(Comm *c, void *buf, size_t n, CommType t)
{
    if (c->size == 1)
        return;
    if (c->device)
        return nccl_allreduce(c, buf, n, t);
    for (size_t at = 0; at < n; at += MPI_PIECE) {
        size_t k = n - at < MPI_PIECE ? n - at : MPI_PIECE;
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + at * type_size(t), (int)k, mpi_type(t), MPI_SUM, c->mpi));
    }
}

static void reduce_scatter_impl(Comm *c, const void *send, void *recv, size_t n, CommType t)
{
    if (c->device)
        return nccl_reduce_scatter(c, send, recv, n, t);
    if (n > MPI_PIECE)
        fail("comm_reduce_scatter: %zu elements per rank is over MPI's count limit", n);
    if (c->size == 1) {
        if (send != recv)
            memmove(recv, send, n * type_size(t));
        return;
    }
    MPI_CHECK(MPI_Reduce_scatter_block(send, recv, (int)n, mpi_type(t), MPI_SUM, c->mpi));
}

static void allgather_impl(Comm *c, const void *send, void *recv, size_t n, CommType t)
{
    if (c->device)
        return nccl_allgather(c, send, recv, n, t);
    if (n > MPI_PIECE)
        fail("comm_allgather: %zu elements per rank is over MPI's count limit", n);
    const void *s = send == (const char *)recv + (size_t)c->rank * n * type_size(t) ? MPI_IN_PLACE : send;
    if (c->size == 1) {
        if (s != MPI_IN_PLACE)
            memmove(recv, send, n * type_size(t));
        return;
    }
    MPI_CHECK(MPI_Allgather(s, (int)n, mpi_type(t), recv, (int)n, mpi_type(t), c->mpi));
}

static void broadcast_impl(Comm *c, void *buf, size_t n, CommType t, int root)
{
    if (c->size == 1)
        return;
    if (c->device)
        return nccl_broadcast(c, buf, n, t, root);
    for (size_t at = 0; at < n; at += MPI_PIECE) {
        size_t k = n - at < MPI_PIECE ? n - at : MPI_PIECE;
        MPI_CHECK(MPI_Bcast((char *)buf + at * type_size(t), (int)k, mpi_type(t), root, c->mpi));
    }
}

/* a slot for one more pending MPI request */
static MPI_Request *pending_push(Comm *c)
{
    if (c->npending == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->pending = realloc(c->pending, (size_t)c->cap * sizeof *c->pending);
        if (!c->pending)
            fail("out of memory for pending requests");
    }
    return &c->pending[c->npending++];
}

static void reduce_impl(Comm *c, const void *send, void *recv, size_t n, CommType t, int root)
{
    if (c->device)
        return nccl_reduce(c, send, recv, n, t, root);
    if (c->size == 1) {
        if (send != recv)
            memmove(recv, send, n * type_size(t));
        return;
    }
    for (size_t at = 0; at < n; at += MPI_PIECE) {
        size_t k = n - at < MPI_PIECE ? n - at : MPI_PIECE, off = at * type_size(t);
        MPI_CHECK(MPI_Ireduce((const char *)send + off, c->rank == root ? (char *)recv + off : NULL, (int)k,
                              mpi_type(t), MPI_SUM, root, c->mpi, pending_push(c)));
    }
}

static void send_impl(Comm *c, const void *buf, size_t n, CommType t, int peer, int tag)
{
    if (c->device)
        return nccl_send(c, buf, n, t, peer);
    if (n > MPI_PIECE)
        fail("comm_send: %zu elements is over MPI's count limit", n);
    MPI_CHECK(MPI_Isend(buf, (int)n, mpi_type(t), peer, tag, c->mpi, pending_push(c)));
}

static void recv_impl(Comm *c, void *buf, size_t n, CommType t, int peer, int tag)
{
    if (c->device)
        return nccl_recv(c, buf, n, t, peer);
    if (n > MPI_PIECE)
        fail("comm_recv: %zu elements is over MPI's count limit", n);
    MPI_CHECK(MPI_Recv(buf, (int)n, mpi_type(t), peer, tag, c->mpi, MPI_STATUS_IGNORE));
}

static void wait_impl(Comm *c)
{
    if (c->device)
        return nccl_wait(c);
    if (c->npending)
        MPI_CHECK(MPI_Waitall(c->npending, c->pending, MPI_STATUSES_IGNORE));
    c->npending = 0;
}

#ifndef HAVE_CUDA
/* CPU-only builds: device Comms cannot be made, so these are never reached. */
void comm_init_nccl(Comm *c, MPI_Comm comm)
{
    (void)c;
    (void)comm;
    fail("NCCL communication needs a CUDA build (configure --with-cuda)");
}
#define UNREACHABLE fail("internal error: NCCL call in a build without CUDA")
void nccl_allreduce(Comm *c, void *buf, size_t n, CommType t) { UNREACHABLE; }
void nccl_reduce_scatter(Comm *c, const void *send, void *recv, size_t n, CommType t) { UNREACHABLE; }
void nccl_allgather(Comm *c, const void *send, void *recv, size_t n, CommType t) { UNREACHABLE; }
void nccl_broadcast(Comm *c, void *buf, size_t n, CommType t, int root) { UNREACHABLE; }
void nccl_reduce(Comm *c, const void *send, void *recv, size_t n, CommType t, int root) { UNREACHABLE; }
void nccl_send(Comm *c, const void *buf, size_t n, CommType t, int peer) { UNREACHABLE; }
void nccl_recv(Comm *c, void *buf, size_t n, CommType t, int peer) { UNREACHABLE; }
void nccl_wait(Comm *c) { UNREACHABLE; }
void nccl_free(Comm *c) { UNREACHABLE; }
#endif

/* ---- the public calls, timed (the metrics report communication time per axis) ---- */
#define TIMED(call)                                                                                  \
    do {                                                                                             \
        double t0_ = util_now();                                                                     \
        call;                                                                                        \
        c->busy_s += util_now() - t0_;                                                               \
    } while (0)

void comm_allreduce(Comm *c, void *buf, size_t n, CommType t) { TIMED(allreduce_impl(c, buf, n, t)); }
void comm_reduce_scatter(Comm *c, const void *send, void *recv, size_t n, CommType t)
{
    TIMED(reduce_scatter_impl(c, send, recv, n, t));
}
void comm_allgather(Comm *c, const void *send, void *recv, size_t n, CommType t)
{
    TIMED(allgather_impl(c, send, recv, n, t));
}
void comm_broadcast(Comm *c, void *buf, size_t n, CommType t, int root) { TIMED(broadcast_impl(c, buf, n, t, root)); }
void comm_reduce(Comm *c, const void *send, void *recv, size_t n, CommType t, int root)
{
    TIMED(reduce_impl(c, send, recv, n, t, root));
}
void comm_send(Comm *c, const void *buf, size_t n, CommType t, int peer, int tag)
{
    TIMED(send_impl(c, buf, n, t, peer, tag));
}
void comm_recv(Comm *c, void *buf, size_t n, CommType t, int peer, int tag)
{
    TIMED(recv_impl(c, buf, n, t, peer, tag));
}
void comm_wait(Comm *c) { TIMED(wait_impl(c)); }
