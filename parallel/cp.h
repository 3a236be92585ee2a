/* cp.h: the chunk-parallel state exchange (spec section 12). Rank r of a cp group holds the r-th
   consecutive piece of every sequence. Per block, the state at the end of a piece (TimestepNorm
   statistics and CEMA hidden state, fp32) goes to the next rank, which starts from it, and its
   gradient comes back; the model calls these block by block on an opaque handle, so the ranks run
   as a wavefront and the model never sees the communicator. A NULL handle is a chain of one:
   nothing to exchange.

   A send is asynchronous and owns what it sends (comm_send copies it), so the caller may
   overwrite the state as soon as the call returns; the group's comm_wait completes the sends. A
   receive is complete when it returns. Each block has its own tags, so states of different blocks
   (and of the two directions) never match each other's receives. */
#ifndef MEGATRAIN_CP_H
#define MEGATRAIN_CP_H

#include <stddef.h>

struct Comm;
typedef struct CpChain CpChain;

CpChain *cp_create(struct Comm *comm);
void cp_free(CpChain *cp);
/* The sends rank `rank` of a chain of `size` holds until comm_wait in a step of `micro`
   micro-batches whose forward and backward each cross `states` boundaries (its blocks, and the
   final norm on the last stage): the states to the next piece, their gradients to the previous. */
int cp_sends(int rank, int size, int states, int micro);
/* Their staging (comm_reserve), made up front: n floats each. */
void cp_reserve(CpChain *cp, int states, int micro, size_t n);

/* The n floats of block `layer`'s state (layer: the block's index in the whole model; n_layers:
   the final norm), and their gradients: */
void cp_recv_state(CpChain *cp, float *state, size_t n, int layer);       /* from the previous piece, if any */
void cp_send_state(CpChain *cp, const float *state, size_t n, int layer); /* to the next piece, if any */
void cp_recv_grad(CpChain *cp, float *dstate, size_t n, int layer);       /* of the state sent, from the next piece */
void cp_send_grad(CpChain *cp, const float *dstate, size_t n, int layer); /* of the state received, to the previous */

#endif
