/* topo.h: the 4-D process grid. world = dp x pp x cp x tp, rank order tp fastest, then cp, then
   pp, then dp (tensor-parallel peers are neighbours, so they share a node):
       rank = ((dp_rank * pp + pp_rank) * cp + cp_rank) * tp + tp_rank
   One MPI communicator per axis (the ranks that differ only in that coordinate), plus dpcp: the
   ranks that hold the same parameters (same pp and tp), over which gradients are reduced, and
   emb: the first and last pipeline stage of a (dp, cp, tp) line, which both hold a tied
   embedding (MPI_COMM_NULL on other stages and when pp = 1). */
#ifndef MEGATRAIN_TOPO_H
#define MEGATRAIN_TOPO_H

#include <mpi.h>

typedef struct {
    int world, rank;
    int dp, pp, cp, tp;                         /* sizes */
    int dp_rank, pp_rank, cp_rank, tp_rank;     /* this rank's coordinates */
    MPI_Comm dp_comm, pp_comm, cp_comm, tp_comm; /* one per axis */
    MPI_Comm dpcp_comm;                         /* same parameters: reduce gradients here */
    MPI_Comm emb_comm;                          /* first and last stage (tied embeddings) */
    MPI_Comm world_comm;                        /* the job (a copy of the base communicator) */
    int local_rank, local_size;                 /* within the node (MPI_COMM_TYPE_SHARED) */
} Topo;

/* Lay out the grid on base (MPI_COMM_WORLD, or a part of it in tests). The caller has checked
   that tp * pp * cp divides its size. */
void topo_init(Topo *t, MPI_Comm base, int tp, int pp, int cp);
void topo_free(Topo *t);
/* Global rank of the given coordinates. */
int topo_rank_of(const Topo *t, int dp_rank, int pp_rank, int cp_rank, int tp_rank);

#endif
