/* subjob.h: a Trainer on the first ranks of MPI_COMM_WORLD, for the tests that compare layouts
   of several sizes in one mpirun. Include in one file of a test program. */
#ifndef MEGATRAIN_SUBJOB_H
#define MEGATRAIN_SUBJOB_H

#include "parallel/topo.h"
#include "src/config.h"
#include "src/train.h"

#include <mpi.h>

/* On ranks 0 .. world - 1: a Trainer for c (resolved for world ranks) on their own grid, handed
   to body with their communicator, then freed. The other ranks return at once. */
static void subjob_run(const Config *c, int world, void (*body)(Trainer *tr, MPI_Comm sub, void *ctx), void *ctx)
{
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm sub;
    MPI_Comm_split(MPI_COMM_WORLD, rank < world ? 0 : MPI_UNDEFINED, rank, &sub);
    if (sub == MPI_COMM_NULL)
        return;
    Topo t;
    topo_init(&t, sub, c->parallel.tp, c->parallel.pp, c->parallel.cp);
    Trainer tr;
    trainer_init(&tr, c, &t, NULL);
    body(&tr, sub, ctx);
    trainer_free(&tr);
    topo_free(&t);
    MPI_Comm_free(&sub);
}

#endif
