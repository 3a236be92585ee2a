/* comm.h: one communication interface for everything above it. A Comm wraps one axis of the
   grid (an MPI communicator) and moves either host buffers over MPI (CPU backend) or device
   buffers over NCCL (CUDA backend); callers are written once.
   Collectives are sums; counts are elements. Point-to-point sends and comm_reduce are
   asynchronous: their buffers must stay untouched until comm_wait on the Comm. */
#ifndef MEGATRAIN_COMM_H
#define MEGATRAIN_COMM_H

#include "kernels/ops.h"

#include <mpi.h>
#include <stddef.h>

typedef enum { COMM_F32, COMM_F64, COMM_BF16, COMM_I32 } CommType;

typedef struct {
    MPI_Comm mpi;
    int rank, size;
    int device;   /* 1: NCCL on device buffers */
    void *nccl;   /* ncclComm_t */
    void *stream; /* cudaStream_t of the communication */
    MPI_Request *pending; /* MPI sends and reduces not yet waited for (grows to a step's worth, then stays) */
    int npending, cap;
    double busy_s;        /* wall time spent in this Comm's calls (host side; for NCCL, issue time) */
} Comm;

/* The act dtype's CommType (activations travel in it). */
CommType comm_type_of(Dtype act);

/* Host buffers over MPI. comm is duplicated (the Comm owns its copy). */
void comm_init_mpi(Comm *c, MPI_Comm comm);
/* Device buffers over NCCL (unique id broadcast over comm); fails unless built with CUDA. */
void comm_init_nccl(Comm *c, MPI_Comm comm);
void comm_free(Comm *c);

void comm_allreduce(Comm *c, void *buf, size_t n, CommType t);
/* send: size * n elements in rank order; recv: the n elements of this rank's block, summed */
void comm_reduce_scatter(Comm *c, const void *send, void *recv, size_t n, CommType t);
/* send: n elements; recv: size * n, rank blocks in order (send may be recv's own block) */
void comm_allgather(Comm *c, const void *send, void *recv, size_t n, CommType t);
void comm_broadcast(Comm *c, void *buf, size_t n, CommType t, int root);
/* Asynchronous sum of send (n) over the group into recv on root (recv unused elsewhere): send
   must stay untouched, and recv is ready, only after comm_wait. */
void comm_reduce(Comm *c, const void *send, void *recv, size_t n, CommType t, int root);
void comm_send(Comm *c, const void *buf, size_t n, CommType t, int peer, int tag); /* asynchronous */
void comm_recv(Comm *c, void *buf, size_t n, CommType t, int peer, int tag);       /* blocking */
/* Complete every send of c (and, on NCCL, everything queued on its stream). */
void comm_wait(Comm *c);

#endif
