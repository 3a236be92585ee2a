/* metrics.h: the run's JSON Lines log (rank 0 appends: a header record, one record per step, one
   per evaluation) and the compact progress line on stdout. */
#ifndef MEGATRAIN_METRICS_H
#define MEGATRAIN_METRICS_H

#include "parallel/topo.h"
#include "src/config.h"

#include <stdint.h>
#include <stdio.h>

typedef struct {
    FILE *f;            /* NULL on ranks other than 0, or when log.metrics is empty */
    const char *path;   /* log.metrics */
    int every;          /* progress line interval */
    double peak_tflops; /* per rank, 0: no MFU */
    int world;
} Metrics;

typedef struct {
    int64_t step, steps;         /* this step (1-based) of steps */
    int64_t tokens, step_tokens; /* whole job: seen so far, in this step */
    double loss, lr, grad_norm;
    double step_s;     /* wall time of the step */
    double step_flops; /* model FLOPs of the step, whole job */
    double mem_gb;     /* peak device memory per rank, 0 if not measured */
    double comm_s[4];  /* rank 0's time in communication per axis: dp (the dp x cp gradient
                          group), tp, pp, cp; waits for a neighbour included */
    const char *skipped; /* why the update was skipped (guard_name), NULL when applied */
    int skipped_in_row;
    int ndatasets;                 /* data.blend: its datasets (0: none) */
    const int64_t *dataset_tokens; /* (ndatasets) tokens drawn from each so far, whole job */
} StepStats;

/* Collective over MPI_COMM_WORLD (gathers host names). Rank 0 opens the log for appending and
   writes the header: config, git revision, layout, hosts, model size. Every record is flushed and
   checked: a write that fails (a full disk) stops the job with exit code 2 naming the file. */
void metrics_open(Metrics *mt, const Config *c, const char *config_path, const Topo *t, int64_t params,
                  double flops_per_token);
void metrics_step(Metrics *mt, const StepStats *s);
void metrics_eval(Metrics *mt, int64_t step, int64_t tokens, double val_loss);
void metrics_close(Metrics *mt);

#endif
