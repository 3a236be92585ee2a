/* scaling.h: the scaling table of a set of runs: one row per run and configuration (a resumed run
   that changed its layout gets one row per layout), with means over its step records. */
#ifndef MEGATRAIN_SCALING_H
#define MEGATRAIN_SCALING_H

#include "tools/runlog.h"

#include <stddef.h>
#include <stdio.h>

typedef struct {
    const RunLog *run;
    const Segment *seg; /* the latest segment with this configuration */
    char *label;        /* the run's name, with "#k" when the run has several rows */
    int64_t steps, tokens; /* of the row's last step record */
    double loss;           /* at that step */
    double val_loss, val_ppl; /* of the last eval within the row's steps; NAN if none */
    int counted;           /* step records in the means */
    /* means over the counted records (NAN fields left out); mem_gb is the maximum */
    double step_ms, tokens_per_s, tflops, mfu, mem_gb, compute_ms, comm_ms[COMM_KINDS];
    /* tokens/s per rank over that of the row with the fewest ranks and the same params and seq_len */
    double efficiency;
} ScalingRow;

typedef struct {
    ScalingRow *rows; /* sorted by params, seq_len, ranks, label */
    int n;
} ScalingTable;

/* skip: step records left out of the means at the start of every segment (warm-up), unless that
   leaves a row with none. */
void scaling_build(ScalingTable *t, const RunLog *runs, int nruns, int skip);
/* Markdown (rounded for reading) or CSV (the logged values in full precision). */
void scaling_print(const ScalingTable *t, FILE *f, int csv);
void scaling_free(ScalingTable *t);

/* 15824 -> "15.8K", 2.2e8 -> "220M", 1.34e9 -> "1.34B" */
void scaling_human(char *buf, size_t size, double v);

#endif
