/* train.h: one optimizer step of the 4-D parallel trainer (data: micro-batches and the pipeline
   schedule, forward and backward with tensor- and chunk-parallel exchanges, gradient reduction,
   clipping, sharded AdamW), evaluation, and the training loop with its metrics. */
#ifndef MEGATRAIN_TRAIN_H
#define MEGATRAIN_TRAIN_H

#include "data/dataset.h"
#include "data/sampler.h"
#include "parallel/comm.h"
#include "parallel/pipeline.h"
#include "parallel/replicas.h"
#include "parallel/topo.h"
#include "parallel/zero.h"
#include "src/batch.h"
#include "src/config.h"
#include "src/guard.h"
#include "src/model.h"

#include <stdint.h>

/* What a rank's buffers depend on in a layout of dp x pp x cp x tp ranks, from the config:
   trainer_init sizes them from it, and so does the memory plan (src/plan.h). */
typedef struct {
    int rows, mb_rows, Lloc; /* sequences per step and per micro-batch on a rank; its piece of each */
    int slots;               /* activation slots (pipeline_slots) */
    ModelPart part;
    size_t pad_to;           /* the dp x cp group sharing the optimizer */
    size_t bucket;           /* elements per gradient bucket (parallel.grad_bucket_mb) */
    CommType wire;           /* parallel.grad_reduce_dtype */
    CommVia via;             /* parallel.comm */
} TrainShape;
TrainShape train_shape(const Config *c, const ModelDims *d, int dp, int tp, int pp, int cp, int tp_rank, int pp_rank);

typedef struct {
    const Config *c;
    const Topo *t;
    const Ops *ops;
    ModelDims dims;
    Model m;
    Comm tp, cp, pp, dpcp, world; /* this rank's groups (tp/cp/pp of size 1 when unused) */
    Comm emb;                     /* first and last stage, for a tied embedding; emb_live */
    int emb_live;
    Pipeline pipe;                /* the stages' schedule and traffic over pp */
    Replicas tp_sums;             /* the gradient sums of what the tp group replicates */
    Replicas tied_sums;           /* of a tied embedding, between the first and last stage */
    Zero zero;
    BatchSource src;
    int rows, mb_rows, Lloc;      /* sequences per step and per micro-batch on this rank; its piece */
    BatchReader *reader;          /* micro-batches of (mb_rows, Lloc + 1) tokens, read ahead */
    int64_t cursor;               /* samples drawn so far (the data cursor) */
    float grad_scale;
    double loss;                  /* this step's loss sum on this rank */
    void *graph[2];               /* micro-batches' forward and backward (train.graph): the first,
                                     the others; NULL until run */
    double step_loss;             /* the mean loss of the last trainer_forward_backward */
    int64_t step;                 /* optimizer steps taken, skipped updates included */
    uint64_t data_fingerprint;    /* of the training split (0: random tokens) */
    Guard guard;                  /* which updates to skip */
    int64_t inject_first, inject_last; /* testing aid: steps whose gradient gets inject_value here */
    float inject_value;
} Trainer;

void trainer_init(Trainer *tr, const Config *c, const Topo *t, Dataset *train);
/* Run on another table of the same backend (e.g. one that times every op). */
void trainer_set_ops(Trainer *tr, const Ops *ops);
void trainer_free(Trainer *tr);
/* One optimizer step; returns the mean loss of the global batch (on every rank). */
double trainer_step(Trainer *tr, double *grad_norm, double *lr);
/* Its two halves: the gradients of the global batch at the data cursor (which advances), with the
   mean loss; then their reduction, the guard's verdict on the loss and gradient norm, agreed by
   every rank, and unless it says skip, clipping and the sharded AdamW update. A skipped update
   leaves parameters and moments untouched, but the step counts: its batch is used up, and the
   step number (which drives the schedule and AdamW's bias correction) advances. */
double trainer_forward_backward(Trainer *tr);
GuardVerdict trainer_update(Trainer *tr, double *grad_norm, double *lr);
/* What evaluation may do with each forward besides summing its loss: on the last stage, after
   the forward of micro-batch slot `slot`, whose logits are in place, with the tokens it read
   (rows, L + 1), column 0 at position pos0 of the windows (src/eval.c: losses by position). */
typedef struct {
    void (*after)(void *ctx, Model *m, int slot, const int32_t *tokens, int rows, int L, int64_t pos0);
    void *ctx;
} EvalHook;
/* Mean loss over eval.batches global batches of val (in order; NULL: random tokens from another
   key than training's), on every rank; hook may be NULL. */
double trainer_eval(Trainer *tr, Dataset *val, const EvalHook *hook);
/* Collective: every parameter of the model, whole (global shape), handed to take() on rank 0 of
   the job, stage by stage in table order. */
void trainer_gather_all(Trainer *tr, void (*take)(void *ctx, const char *name, const int64_t *shape, int ndim,
                                                  const float *data), void *ctx);

/* OpenMP threads per rank: train.threads, else OMP_NUM_THREADS, else the node's cores shared
   among the ranks of t on it. */
void train_set_threads(const Config *c, const Topo *t);
/* Train as configured on the grid t; train/val may be NULL (random tokens / no evaluation).
   Returns the exit status: 0, or 1 when a signal stopped a run that has no checkpoint.dir or
   train.max_skips updates in a row were skipped. */
int train_run(const Config *c, const char *config_path, const Topo *t, Dataset *train, Dataset *val);

#endif
