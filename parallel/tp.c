/* tp.c: the tensor-parallel mappings (see tp.h). A row-parallel layer computes each rank's
   columns of the product as one block of a (n, T, w) buffer, so one reduce-scatter both sums the
   ranks' partial products and hands every rank its own columns. */
#include "parallel/tp.h"

#include "parallel/comm.h"
#include "base/util.h"

#include <stdlib.h>

struct TpGroup {
    Comm *comm;
    const Ops *ops;   /* whose memory the scratch is */
    void *blocks;     /* (n, piece) the ranks' blocks of a gather or of partial sums */
    void *sum;        /* (piece) a reduce-scatter's result */
};

size_t tp_plan(const Ops *ops, int n, size_t piece) { return ((size_t)n + 1) * piece * ops->act_size; }

TpGroup *tp_create(Comm *comm, const Ops *ops, size_t piece)
{
    TpGroup *tp = xcalloc(1, sizeof *tp);
    tp->comm = comm;
    tp->ops = ops;
    tp->blocks = ops->alloc(tp_plan(ops, comm->size, piece)); /* the blocks, then the sum */
    tp->sum = (char *)tp->blocks + (size_t)comm->size * piece * ops->act_size;
    return tp;
}

void tp_free(TpGroup *tp)
{
    if (!tp)
        return;
    tp->ops->release(tp->blocks);
    free(tp);
}

void tp_gather(TpGroup *tp, const Ops *ops, void *full, const void *piece, int T, int w)
{
    if (!tp)
        return; /* full is piece */
    comm_allgather(tp->comm, piece, tp->blocks, (size_t)T * w, comm_type_of(ops->act));
    ops->join_columns(full, tp->blocks, tp->comm->size, T, w);
}

void tp_reduce_scatter(TpGroup *tp, const Ops *ops, void *piece, const void *full, int T, int w)
{
    if (!tp)
        return; /* full is piece: the contributions are already there */
    ops->split_columns(tp->blocks, full, tp->comm->size, T, w);
    comm_reduce_scatter(tp->comm, tp->blocks, piece, (size_t)T * w, comm_type_of(ops->act));
}

void tp_crossentropy(TpGroup *tp, const Ops *ops, double *loss, void *logits, const int32_t *targets, double *stats,
                     int T, int V, float grad_scale)
{
    const int n = tp ? tp->comm->size : 1, j = tp ? tp->comm->rank : 0;
    const size_t rows = (size_t)T * 3;
    ops->crossentropy_stats(stats + (size_t)j * rows, logits, targets, T, V, j * V);
    if (tp)
        comm_allgather(tp->comm, stats + (size_t)j * rows, stats, rows, COMM_F64);
    ops->crossentropy(loss, logits, targets, stats, n, T, V, j * V, grad_scale);
}

/* rows j w .. (j + 1) w - 1 of W (n w, IC): the output columns rank j keeps */
static const void *rows_of(const Ops *ops, const void *W, int j, int w, int IC)
{
    return (const char *)W + (size_t)j * w * IC * ops->act_size;
}

void tp_row_forward(TpGroup *tp, const Ops *ops, void *out, const void *res, const void *inp, const void *W, int T,
                    int IC, int w)
{
    if (!tp)
        return ops->matmul_forward(out, inp, W, NULL, res, T, IC, w);
    const size_t blk = (size_t)T * w;
    for (int j = 0; j < tp->comm->size; j++)
        ops->matmul_forward((char *)tp->blocks + j * blk * ops->act_size, inp, rows_of(ops, W, j, w, IC), NULL, NULL, T,
                            IC, w);
    comm_reduce_scatter(tp->comm, tp->blocks, tp->sum, blk, comm_type_of(ops->act));
    if (res != out)
        ops->copy(out, res, blk);
    ops->accumulate(out, tp->sum, blk);
}

void tp_row_backward(TpGroup *tp, const Ops *ops, void *dinp, float *dW, const void *W, const void *dout,
                     const void *inp, int T, int IC, int w, int pnew)
{
    if (!tp)
        return ops->matmul_backward(dinp, dW, NULL, dout, inp, W, T, IC, w, pnew);
    const size_t blk = (size_t)T * w;
    if (dout) /* else the blocks still hold the previous call's gather */
        comm_allgather(tp->comm, dout, tp->blocks, blk, comm_type_of(ops->act));
    for (int j = 0; j < tp->comm->size; j++) /* block 0 writes dinp, the others add; each its rows of dW */
        ops->matmul_backward(dinp, dW ? dW + (size_t)j * w * IC : NULL, NULL,
                             (char *)tp->blocks + j * blk * ops->act_size, inp, rows_of(ops, W, j, w, IC), T, IC, w,
                             (j > 0 ? GRAD_ADD : 0) | pnew);
}
