/* comm_nccl.h: what comm.c calls of the NCCL implementation (comm_nccl.c, CUDA builds; stubs
   that fail otherwise). Buffers are device memory; the semantics are comm.h's. */
#ifndef MEGATRAIN_COMM_NCCL_H
#define MEGATRAIN_COMM_NCCL_H

#include "parallel/comm.h"

void nccl_init(Comm *c);
void nccl_free(Comm *c);
void nccl_allreduce(Comm *c, void *buf, size_t n, CommType t);
void nccl_reduce_scatter(Comm *c, const void *send, void *recv, size_t n, CommType t);
void nccl_allgather(Comm *c, const void *send, void *recv, size_t n, CommType t);
void nccl_broadcast(Comm *c, void *buf, size_t n, CommType t, int root);
void nccl_reduce_scatter_async(Comm *c, const void *send, void *recv, size_t n, CommType t);
/* Copy bytes of buf (n elements of t) into the staging buffer s (after the last send from it),
   then send that. */
void nccl_send(Comm *c, CommStage *s, const void *buf, size_t bytes, size_t n, CommType t, int peer);
void nccl_recv(Comm *c, void *buf, size_t n, CommType t, int peer);
void nccl_wait(Comm *c);
/* Release s's event (its memory is the backend's). */
void nccl_stage_free(CommStage *s);

#endif
