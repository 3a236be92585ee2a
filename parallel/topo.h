/* topo.h: the 4-D process grid. world = dp x pp x cp x tp, rank order tp fastest, then cp, then
   pp, then dp (tensor-parallel peers are neighbours, so they share a node):
       rank = ((dp_rank * pp + pp_rank) * cp + cp_rank) * tp + tp_rank
   One MPI communicator per axis (the ranks that differ only in that coordinate), plus dpcp: the
   ranks that hold the same parameters (same pp and tp), over which gradients are reduced. */
#ifndef MEGATRAIN_TOPO_H
#define MEGATRAIN_TOPO_H

#include <mpi.h>

typedef struct {
    int world, rank;
    int dp, pp, cp, tp;                         /* sizes */
    int dp_rank, pp_rank, cp_rank, tp_rank;     /* this rank's coordinates */
    MPI_Comm dp_comm, pp_comm, cp_comm, tp_comm; /* one per axis */
    MPI_Comm dpcp_comm;                         /* same parameters: reduce gradients here */
    int local_rank, local_size;                 /* within the node (MPI_COMM_TYPE_SHARED) */
} Topo;

/* Lay out the grid on MPI_COMM_WORLD. The caller has checked tp * pp * cp divides the world. */
void topo_init(Topo *t, int tp, int pp, int cp);
void topo_free(Topo *t);
/* Global rank of the given coordinates. */
int topo_rank_of(const Topo *t, int dp_rank, int pp_rank, int cp_rank, int tp_rank);

#endif
