/* watchdog.h: no rank waits on another forever. Every wait for an MPI request goes through
   watchdog_wait, which polls and gives up once the timeout (parallel.timeout) has passed; NCCL
   work is watched by a thread of comm_nccl.c under the same timeout. Either way the rank says
   which operation on which axis it was waiting for and takes the whole job down (exit 1): a
   stopped or lost peer ends the job with a reason instead of hanging it. */
#ifndef MEGATRAIN_WATCHDOG_H
#define MEGATRAIN_WATCHDOG_H

#include <mpi.h>
#include <stdnoreturn.h>

#define WATCHDOG_DEFAULT_S 600.0

void watchdog_set_timeout(double seconds);
double watchdog_timeout(void);

/* Complete the n requests or, past the timeout, stop the job naming op (e.g. "recv"), the axis
   ("tp", "cp", "pp", "dpcp", "emb", "world") and the peer (its rank on the axis; -1: a
   collective). Polls MPI_Testall, yielding the core after the first microseconds. */
void watchdog_wait(MPI_Request *req, int n, const char *op, const char *axis, int peer);

/* MPI_Barrier on comm, watched like the rest (op names it). */
void watchdog_barrier(MPI_Comm comm, const char *op, const char *axis);

/* Stop the job: "watchdog: no progress for S s in OP on AXIS (...): REASON". */
noreturn void watchdog_expire(const char *op, const char *axis, int peer, double waited, const char *reason);

/* MPI errors on comm come back as codes (MPI_CHECK names them) instead of killing the job with
   MPI's own message; the communicators made from comm inherit this. */
void watchdog_errors_return(MPI_Comm comm);

#endif
