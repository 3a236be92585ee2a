/* watchdog.c: bounded waits on MPI requests (see watchdog.h). */
#include "parallel/watchdog.h"

#include "parallel/mpi_check.h"
#include "base/util.h"

#include <sched.h>
#include <time.h>

static double timeout_s = WATCHDOG_DEFAULT_S;

void watchdog_set_timeout(double seconds) { timeout_s = seconds; }
double watchdog_timeout(void) { return timeout_s; }

void watchdog_expire(const char *op, const char *axis, int peer, double waited, const char *reason)
{
    char who[64] = "";
    if (peer >= 0)
        snprintf(who, sizeof who, " (%s rank %d)", axis, peer);
    fail("watchdog: %s on the %s axis%s: %s after %.1f s (parallel.timeout %g s); taking the job down", op, axis,
         who, reason, waited, timeout_s);
}

void watchdog_wait(MPI_Request *req, int n, const char *op, const char *axis, int peer)
{
    const double t0 = util_now();
    for (long polls = 0;; polls++) {
        int done = 0;
        MPI_CHECK(MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE));
        if (done)
            return;
        /* spin for the first polls (latency), then give the core away: ranks may share cores */
        if (polls < 256)
            continue;
        double waited = util_now() - t0;
        if (waited > timeout_s)
            watchdog_expire(op, axis, peer, waited, "no answer");
        if (waited < 1e-2)
            sched_yield();
        else
            nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL);
    }
}

void watchdog_barrier(MPI_Comm comm, const char *op, const char *axis)
{
    MPI_Request r;
    MPI_CHECK(MPI_Ibarrier(comm, &r));
    watchdog_wait(&r, 1, op, axis, -1);
}

void watchdog_errors_return(MPI_Comm comm) { MPI_CHECK(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN)); }
