/* runlog.h: one run's metrics log (megatrain's log.metrics, JSON Lines) read into memory: its
   segments (one per start of megatrain, each opened by a header record), its step and eval records.
   A resumed run repeats the steps after its checkpoint: the later records replace the earlier.
   The file of `megatrain eval --by-position` reads as a log too: position records, no header. */
#ifndef MEGATRAIN_RUNLOG_H
#define MEGATRAIN_RUNLOG_H

#include <stdint.h>

typedef enum { COMM_DP, COMM_TP, COMM_PP, COMM_CP, COMM_KINDS } CommKind;
extern const char *const runlog_comm_names[COMM_KINDS]; /* "dp", "tp", "pp", "cp" */

typedef struct {
    int line; /* of the header record */
    int world, dp, tp, pp, cp;
    int64_t params;
    int seq_len, batch_size; /* config.data */
    double peak_tflops;      /* per rank; NAN when the header says null */
} Segment;

/* Fields a log leaves out or writes as null are NAN. */
typedef struct {
    int line;
    int segment; /* index into RunLog.segments */
    int index;   /* 0-based position among the kept steps of its segment */
    int64_t step, tokens;
    double loss, lr, grad_norm, step_ms, tokens_per_s, tflops, mfu, mem_gb;
    double compute_ms, comm_ms[COMM_KINDS];
} StepRecord;

typedef struct {
    int64_t step, tokens;
    double val_loss, val_ppl;
} EvalRecord;

/* `megatrain eval --by-position`: the mean loss of the tokens at positions [from, to) of the
   windows. */
typedef struct {
    int64_t from, to, tokens;
    double loss;
} PositionRecord;

typedef struct {
    char *path;
    char *name; /* the file name without folder and .jsonl */
    Segment *segments;
    int nsegments;
    StepRecord *steps; /* in step order */
    int nsteps;
    EvalRecord *evals;
    int nevals;
    PositionRecord *positions; /* an eval file's, in its order (it has no header) */
    int npositions;
} RunLog;

/* Read and check a whole log; bad input stops with "path:line: ..." and exit code 2. */
void runlog_read(RunLog *r, const char *path);
void runlog_free(RunLog *r);

#endif
