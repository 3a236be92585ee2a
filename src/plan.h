/* plan.h: the memory plan of a run: the bytes each rank of its layout allocates, by kind, worked
   out before anything is allocated by the very functions that size the allocations (model_measure,
   zero_plan, tp_plan, the sends cp and the pipeline reserve), for any backend whether or not it is
   built here; `megatrain plan` prints it, and a run whose plan exceeds its memory stops. */
#ifndef MEGATRAIN_PLAN_H
#define MEGATRAIN_PLAN_H

#include "kernels/ops.h"
#include "parallel/topo.h"
#include "src/config.h"

#include <stddef.h>
#include <stdio.h>

/* The bytes of the ranks at one position of the layout: a pipeline stage and a run of cp ranks
   that allocate the same (tp and dp ranks always do). */
typedef struct {
    int stage, cp_first, cp_last;
    size_t params;    /* compute copy of the parameters (act dtype) */
    size_t master;    /* fp32 master weights: this rank's shard */
    size_t grads;     /* fp32 gradients, whole, and the summed shard this rank owns */
    size_t moments;   /* AdamW moments of the shard */
    size_t acts[RECOMPUTE_MODES]; /* activations under each train.recompute (RecomputeMode) */
    size_t backward;  /* backward's gradient scratch, the embedding's sums, cross-entropy statistics */
    size_t scratch;   /* the backend's own: attention scores, CEMA and TimestepNorm states, the GEMM
                         workspace (ops->scratch_plan; none on the CPU) */
    size_t tp, cp, pp, dp; /* communication: tp scratch; staging of cp and pipeline sends; the
                              optimizer's bf16 wire buffers and reduce-scatter staging */
    size_t total;     /* with the activations of the configured recompute */
} PlanRow;

typedef struct {
    int world, dp, tp, pp, cp;
    int recompute;    /* the run's RecomputeMode */
    const Ops *ops;   /* described (ops_describe) */
    PlanRow *rows;
    int n;
    int peak;         /* the row with the largest total */
} Plan;

/* The plan of c (config_finish'ed for world ranks) on the backend ops describes. */
void plan_make(Plan *p, const Config *c, const Ops *ops, int world);
void plan_free(Plan *p);
/* The table, in GiB (or bytes), with a header naming the run, layout and backend. */
void plan_print(const Plan *p, const char *path, int bytes, FILE *f);
/* Whether the largest rank fits limit bytes (0: no limit). */
int plan_fits(const Plan *p, size_t limit);
/* Stop every rank with exit 2 when the plan does not fit limit bytes (`from` says where the limit
   comes from), naming the layout, the largest rank's needs and what would make it fit. */
void plan_check(const Plan *p, const Config *c, const char *path, size_t limit, const char *from);
/* A run's check on the grid t before it allocates: the limit is train.memory_gib, else the
   device's memory (of the device the rank will use; the smallest over the job). */
void plan_check_run(const Config *c, const char *path, const Ops *ops, const Topo *t);
/* megatrain plan RUN.yaml --world N [--gpu-mem GiB] [--bytes] [--set k=v ...] */
int plan_main(int argc, char **argv);

#endif
