/* tp.h: the tensor-parallel mappings (spec section 7; the split of Megatron-core's mappings and
   its column- and row-parallel layers). The ranks of a tensor-parallel group each hold a slice of
   the features, rank j the j-th: a piece (T, w) of an activation whose whole is (T, n w). These
   functions gather the pieces where a consumer needs every feature, and sum partial results back
   into pieces; the model calls them on an opaque handle, so it never sees the communicator.

   A NULL handle is a group of one: a gather or reduce-scatter does nothing (the caller's whole
   buffer is then its piece), a row-parallel layer is one matmul and the cross-entropy sees the
   whole vocabulary. Buffers are the backend's
   (ops) memory in its act dtype; a call is complete when it returns. */
#ifndef MEGATRAIN_TP_H
#define MEGATRAIN_TP_H

#include "kernels/ops.h"

#include <stddef.h>

struct Comm;
typedef struct TpGroup TpGroup;

/* A handle on the group comm, for pieces of at most `piece` elements (its scratch, (n, piece) and
   (piece), is allocated here, in ops's memory). */
TpGroup *tp_create(struct Comm *comm, const Ops *ops, size_t piece);
/* The bytes of that scratch (one allocation) for a group of n ranks: a memory plan's. */
size_t tp_plan(const Ops *ops, int n, size_t piece);
void tp_free(TpGroup *tp);

/* full (T, n w) = the ranks' pieces (T, w) side by side. */
void tp_gather(TpGroup *tp, const Ops *ops, void *full, const void *piece, int T, int w);
/* piece (T, w) = this rank's columns of the sum over the ranks of their full (T, n w); the piece
   holds no contribution of its own. */
void tp_reduce_scatter(TpGroup *tp, const Ops *ops, void *piece, const void *full, int T, int w);
/* The vocabulary-parallel cross-entropy (ops.h): rank j holds the logits (T, V) of ids j V ..
   (j + 1) V - 1; the ranks trade their rows' statistics through stats ((n, T, 3) fp64, ops's
   memory) and each adds the loss summed over the tokens to loss (ops.h: crossentropy) and, with
   grad_scale != 0, gets its slice's gradient over its logits. No rank holds the logits of the
   whole vocabulary. */
void tp_crossentropy(TpGroup *tp, const Ops *ops, double *loss, void *logits, const int32_t *targets, double *stats,
                     int T, int V, float grad_scale);

/* Row-parallel linear layer: out (T, w) = res + this rank's columns of the sum over the ranks of
   inp (T, IC) W^T, where W (n w, IC) multiplies this rank's IC input features; res (T, w) is out
   itself (add to it) or a residual (without tp the GEMM reads it, with no copy). */
void tp_row_forward(TpGroup *tp, const Ops *ops, void *out, const void *res, const void *inp, const void *W, int T,
                    int IC, int w);
/* Its backward: dinp (T, IC) = dout gathered over the ranks (T, n w) times W, overwritten; dW
   (n w, IC) gets dout^T inp, added or with GRAD_NEW written (pnew: 0 or GRAD_NEW). Either may be
   NULL (not computed). With tp, dout NULL is the dout of the previous call, whose gather the
   scratch still holds when no other tp_ call came between. */
void tp_row_backward(TpGroup *tp, const Ops *ops, void *dinp, float *dW, const void *W, const void *dout,
                     const void *inp, int T, int IC, int w, int pnew);

#endif
