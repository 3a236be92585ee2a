/* topo.c: build the 4-D grid's communicators. */
#include "parallel/topo.h"

#include "parallel/mpi_check.h"
#include "parallel/watchdog.h"

int topo_rank_of(const Topo *t, int dp_rank, int pp_rank, int cp_rank, int tp_rank)
{
    return ((dp_rank * t->pp + pp_rank) * t->cp + cp_rank) * t->tp + tp_rank;
}

void topo_init(Topo *t, MPI_Comm base, int tp, int pp, int cp)
{
    MPI_CHECK(MPI_Comm_dup(base, &t->world_comm));
    MPI_Comm w = t->world_comm;
    watchdog_errors_return(w); /* and every communicator split from it */
    MPI_CHECK(MPI_Comm_size(w, &t->world));
    MPI_CHECK(MPI_Comm_rank(w, &t->rank));
    t->tp = tp;
    t->pp = pp;
    t->cp = cp;
    t->dp = t->world / (tp * pp * cp);
    int r = t->rank;
    t->tp_rank = r % tp;
    r /= tp;
    t->cp_rank = r % cp;
    r /= cp;
    t->pp_rank = r % pp;
    t->dp_rank = r / pp;
    /* colour = the coordinates that stay fixed; key = the one that varies */
    MPI_CHECK(MPI_Comm_split(w, topo_rank_of(t, t->dp_rank, t->pp_rank, t->cp_rank, 0), t->tp_rank,
                             &t->tp_comm));
    MPI_CHECK(MPI_Comm_split(w, topo_rank_of(t, t->dp_rank, t->pp_rank, 0, t->tp_rank), t->cp_rank,
                             &t->cp_comm));
    MPI_CHECK(MPI_Comm_split(w, topo_rank_of(t, t->dp_rank, 0, t->cp_rank, t->tp_rank), t->pp_rank,
                             &t->pp_comm));
    MPI_CHECK(MPI_Comm_split(w, topo_rank_of(t, 0, t->pp_rank, t->cp_rank, t->tp_rank), t->dp_rank,
                             &t->dp_comm));
    MPI_CHECK(MPI_Comm_split(w, topo_rank_of(t, 0, t->pp_rank, 0, t->tp_rank),
                             t->dp_rank * cp + t->cp_rank, &t->dpcp_comm));
    int end_stage = t->pp > 1 && (t->pp_rank == 0 || t->pp_rank == t->pp - 1);
    MPI_CHECK(MPI_Comm_split(w, end_stage ? topo_rank_of(t, t->dp_rank, 0, t->cp_rank, t->tp_rank) : MPI_UNDEFINED,
                             t->pp_rank, &t->emb_comm));
    MPI_Comm node;
    MPI_CHECK(MPI_Comm_split_type(w, MPI_COMM_TYPE_SHARED, t->rank, MPI_INFO_NULL, &node));
    MPI_CHECK(MPI_Comm_rank(node, &t->local_rank));
    MPI_CHECK(MPI_Comm_size(node, &t->local_size));
    MPI_CHECK(MPI_Comm_free(&node));
}

void topo_free(Topo *t)
{
    MPI_Comm *c[] = {&t->tp_comm, &t->cp_comm, &t->pp_comm, &t->dp_comm, &t->dpcp_comm, &t->emb_comm, &t->world_comm};
    for (int i = 0; i < 7; i++)
        if (*c[i] != MPI_COMM_NULL)
            MPI_Comm_free(c[i]);
}
