/* cp.c: the chunk-parallel state exchange (see cp.h). */
#include "parallel/cp.h"

#include "parallel/comm.h"
#include "base/util.h"

#include <stdlib.h>

struct CpChain {
    Comm *comm; /* rank r holds the r-th piece */
};

enum { TAG_STATE = 0, TAG_DSTATE = 1 << 16 }; /* + the block's index */

CpChain *cp_create(Comm *comm)
{
    CpChain *cp = xcalloc(1, sizeof *cp);
    cp->comm = comm;
    return cp;
}

void cp_free(CpChain *cp) { free(cp); }

int cp_sends(int rank, int size, int states, int micro) { return micro * states * ((rank > 0) + (rank < size - 1)); }

void cp_reserve(CpChain *cp, int states, int micro, size_t n)
{
    comm_reserve(cp->comm, cp_sends(cp->comm->rank, cp->comm->size, states, micro), comm_plan_send(n, COMM_F32));
}

static int has_prev(const CpChain *cp) { return cp && cp->comm->rank > 0; }
static int has_next(const CpChain *cp) { return cp && cp->comm->rank < cp->comm->size - 1; }

void cp_recv_state(CpChain *cp, float *state, size_t n, int layer)
{
    if (has_prev(cp))
        comm_recv(cp->comm, state, n, COMM_F32, cp->comm->rank - 1, TAG_STATE + layer);
}

void cp_send_state(CpChain *cp, const float *state, size_t n, int layer)
{
    if (has_next(cp))
        comm_send(cp->comm, state, n, COMM_F32, cp->comm->rank + 1, TAG_STATE + layer);
}

void cp_recv_grad(CpChain *cp, float *dstate, size_t n, int layer)
{
    if (has_next(cp))
        comm_recv(cp->comm, dstate, n, COMM_F32, cp->comm->rank + 1, TAG_DSTATE + layer);
}

void cp_send_grad(CpChain *cp, const float *dstate, size_t n, int layer)
{
    if (has_prev(cp))
        comm_send(cp->comm, dstate, n, COMM_F32, cp->comm->rank - 1, TAG_DSTATE + layer);
}
