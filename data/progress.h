/* progress.h: the progress line of a megadata build on any number of ranks. Each rank counts its
   own work and, at most every PROGRESS_SEND seconds, sends its counts to rank 0 without waiting;
   rank 0 prints on stderr how much of the work is done, the rate, the documents and tokens so far
   and an estimate of the time left: a few times a second on a terminal (one line, rewritten),
   every PROGRESS_LOG seconds otherwise (a log), and once more at the end, with (on several ranks)
   the shortest and longest time a rank took: apart, the work was uneven; together and long, each
   rank ran slowly. */
#ifndef MEGATRAIN_PROGRESS_H
#define MEGATRAIN_PROGRESS_H

#include <mpi.h>
#include <stdint.h>

#define PROGRESS_SEND 0.2
#define PROGRESS_TTY 0.25
#define PROGRESS_LOG 10.0

typedef enum { PROGRESS_DONE, PROGRESS_DOCS, PROGRESS_TOKENS, PROGRESS_NCOUNTS } ProgressCount;

typedef struct {
    const char *what; /* "tokenizing", "writing shards" */
    const char *unit; /* of the work: "MB" (input bytes, shown in MB) or "tokens" */
    int64_t total;    /* work of all ranks */
    int64_t mine[PROGRESS_NCOUNTS];
    int64_t sent[PROGRESS_NCOUNTS + 2]; /* the snapshot in flight, whether it is the last, and then
                                           the rank's time from start to finish (microseconds) */
    MPI_Request request;                /* sending it */
    int64_t *ranks;                     /* rank 0: (world, PROGRESS_NCOUNTS) the latest counts of each */
    double *busy;                       /* rank 0: each rank's seconds from start to finish */
    int rank, world, tty, finals;       /* finals: ranks whose last counts rank 0 has */
    double start, last_send, last_print;
} Progress;

/* Collective over MPI_COMM_WORLD when world > 1: every rank starts with the same what, unit and
   total (rank of world: the caller's). */
void progress_start(Progress *p, const char *what, const char *unit, int64_t total, int rank, int world);
void progress_add(Progress *p, int64_t done, int64_t docs, int64_t tokens);
/* Collective: rank 0 waits for every rank's final counts, prints the last line and leaves the
   sums in sum (other ranks: their own counts); frees what p holds. */
void progress_finish(Progress *p, int64_t sum[PROGRESS_NCOUNTS]);

#endif
