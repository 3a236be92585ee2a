/* comm.h: one communication interface for everything above it. A Comm wraps one axis of the
   grid (an MPI communicator) and moves buffers of one backend's memory: host buffers over MPI
   (CPU backend), device buffers over NCCL, or device buffers over MPI through host staging
   copies (CUDA backend with parallel.comm: mpi, so several ranks can share one GPU, which NCCL
   refuses). Callers are written once.

   Collectives are sums; counts are elements. A collective or a receive is complete when it
   returns: its result is ready for the compute issued after it.
   comm_send is asynchronous and copies its data first, so the caller may change the buffer as
   soon as it returns. The copies live in staging buffers the Comm owns, each held until
   comm_wait: a pool that grows in the first step to what one step sends and then stays (no
   allocation after that; over NCCL the copy into a reused buffer also waits for the event of
   the send that last read it). comm_reduce_scatter_async is asynchronous too but reads its send
   buffer in place (a gradient buffer the size of the model, which a copy would double): that
   buffer must stay untouched, and recv is ready, only after comm_wait.
   Every wait for another rank is bounded by the watchdog (watchdog.h). */
#ifndef MEGATRAIN_COMM_H
#define MEGATRAIN_COMM_H

#include "kernels/ops.h"

#include <mpi.h>
#include <stddef.h>

typedef enum { COMM_F32, COMM_F64, COMM_BF16, COMM_I32 } CommType;
typedef enum { COMM_MPI, COMM_NCCL } CommVia;

/* A staging buffer (see above). */
typedef struct {
    void *p;         /* (cap bytes) host memory over MPI, device memory over NCCL */
    size_t cap;
    int busy;        /* MPI: the calls and requests using it; NCCL: a send since the last comm_wait */
    void *dst;       /* MPI, device buffers: when it is no longer busy, its n elements of t go to
                        dst (a reduce's result) */
    size_t n;
    CommType t;
    void *done;      /* NCCL: cudaEvent_t recorded after the send that read it */
} CommStage;

typedef struct Comm {
    MPI_Comm mpi;
    const char *axis; /* "tp", "cp", "pp", "dpcp", "emb", "world": what the watchdog names */
    int rank, size;
    const Ops *ops;   /* the backend whose memory the buffers are */
    int device;       /* buffers are device memory */
    void *nccl;       /* NCCL communicators and streams; NULL: MPI */
    MPI_Request *pending; /* MPI sends and reduces not yet waited for (grows to a step's worth, then stays) */
    int *pending_stage;   /* the staging buffer each one uses (-1: none) */
    int npending, cap;
    CommStage *stages;
    int nstages;
    double busy_s;    /* wall time spent in this Comm's calls (host side; for NCCL, issue time) */
} Comm;

/* How c moves its buffers. */
CommVia comm_via(const Comm *c);
/* The act dtype's CommType (activations travel in it). */
CommType comm_type_of(Dtype act);

/* A Comm over a copy of comm (the Comm owns it) for buffers in ops's memory (NULL: host), moved
   via MPI or NCCL (device buffers only; NCCL's unique id is broadcast over comm). Over MPI, a
   bf16 buffer that is summed travels as fp32 (MPI has no bf16: it is widened on the host, summed
   in fp32 and rounded to bf16 once); bf16 that is only moved travels as raw 16-bit words. */
void comm_init(Comm *c, MPI_Comm comm, const char *axis, const Ops *ops, CommVia via);
void comm_free(Comm *c);

void comm_allreduce(Comm *c, void *buf, size_t n, CommType t);
/* send: size * n elements in rank order; recv: the n elements of this rank's block, summed */
void comm_reduce_scatter(Comm *c, const void *send, void *recv, size_t n, CommType t);
/* send: n elements; recv: size * n, rank blocks in order (send may be recv's own block) */
void comm_allgather(Comm *c, const void *send, void *recv, size_t n, CommType t);
void comm_broadcast(Comm *c, void *buf, size_t n, CommType t, int root);
/* comm_reduce_scatter, asynchronous: recv is ready at comm_wait */
void comm_reduce_scatter_async(Comm *c, const void *send, void *recv, size_t n, CommType t);
void comm_send(Comm *c, const void *buf, size_t n, CommType t, int peer, int tag); /* asynchronous, copied */
void comm_recv(Comm *c, void *buf, size_t n, CommType t, int peer, int tag);
/* The maximum of a host int over the group (agreement on a flag or verdict), on host Comms. */
int comm_max(Comm *c, int v, const char *what);
/* Complete every send and reduce of c (on NCCL: the compute issued next waits for them). */
void comm_wait(Comm *c);

/* ---- staging, planned: what a step's sends and asynchronous reduce-scatters hold until
   comm_wait, made up front so the pool never grows (and a memory plan can count it) ---- */
/* Whether staging buffers are the backend's memory (ops's; over NCCL, or a host backend), else
   plain host memory beside a device backend's. */
int comm_stages_in_backend(const Ops *ops, CommVia via);
/* Bytes of the staging buffer one comm_send of n elements of t holds. */
size_t comm_plan_send(size_t n, CommType t);
/* Bytes of the staging buffer one comm_reduce_scatter_async of n elements of t per rank holds
   over a group of size ranks of ops's buffers via via (0: it reads the buffer in place). */
size_t comm_plan_reduce_scatter(const Ops *ops, CommVia via, int size, size_t n, CommType t);
/* Add count idle staging buffers of bytes each (none for 0) to c's pool: a step whose held sends and
   reduce-scatters ask for no more, and in the order made (first fit), allocates nothing. */
void comm_reserve(Comm *c, int count, size_t bytes);

#endif
