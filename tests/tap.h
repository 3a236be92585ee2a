/* tap.h: the C test harness. Each check prints one TAP line ("ok N - what" or "not ok N - what"),
   so `make check` counts every check; tap_done() prints the plan and gives the exit status.
   Include it in exactly one file of a test program. Under MPI, use tap_check_all: every rank
   contributes its verdict and rank 0 alone prints. */
#ifndef MEGATRAIN_TAP_H
#define MEGATRAIN_TAP_H

#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_count, tap_failed, tap_quiet;

static inline int tap_vcheck(int ok, const char *fmt, va_list ap)
{
    tap_count++;
    if (!ok)
        tap_failed++;
    if (tap_quiet)
        return ok;
    printf("%sok %d - ", ok ? "" : "not ", tap_count);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    return ok;
}

static inline int __attribute__((format(printf, 2, 3))) tap_check(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tap_vcheck(ok, fmt, ap);
    va_end(ap);
    return ok;
}

/* Collective: passes only when it passes on every rank of comm; only rank 0 of comm prints. */
static inline int __attribute__((format(printf, 3, 4))) tap_check_all(MPI_Comm comm, int ok, const char *fmt, ...)
{
    int all = ok ? 1 : 0, rank;
    MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_MIN, comm);
    MPI_Comm_rank(comm, &rank);
    int quiet = tap_quiet;
    tap_quiet = quiet || rank != 0;
    va_list ap;
    va_start(ap, fmt);
    tap_vcheck(all, fmt, ap);
    va_end(ap);
    tap_quiet = quiet;
    return all;
}

static inline void __attribute__((format(printf, 1, 2))) tap_diag(const char *fmt, ...)
{
    if (tap_quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("# ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

/* Relative error ||a - b|| / max(||b||, tiny) of two double arrays. */
static inline double tap_relerr(const double *a, const double *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return sqrt(num) / (sqrt(den) > 1e-300 ? sqrt(den) : 1e-300);
}

/* Stop the program as failed with TAP's "Bail out!", which the driver counts as an error: for a
   test that cannot run where it was started (a GPU test without a GPU), where a SKIP would pass. */
static inline _Noreturn void tap_bail_out(const char *why)
{
    int init = 0;
    printf("Bail out! %s\n", why);
    fflush(stdout);
    MPI_Initialized(&init);
    if (init)
        MPI_Finalize();
    exit(1);
}

/* Print the plan; the return value is the program's exit status. */
static inline int tap_done(void)
{
    if (!tap_quiet) {
        printf("1..%d\n", tap_count);
        fflush(stdout);
    }
    return tap_failed ? 1 : 0;
}

#endif
