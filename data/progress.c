/* progress.c: counts gathered on rank 0 and its progress line (see progress.h). */
#include "data/progress.h"

#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROGRESS_TAG 7311 /* point-to-point messages of the progress counts */

void progress_start(Progress *p, const char *what, const char *unit, int64_t total, int rank, int world)
{
    *p = (Progress){.what = what, .unit = unit, .total = total, .request = MPI_REQUEST_NULL, .rank = rank,
                    .world = world, .tty = isatty(2)};
    if (p->rank == 0) {
        p->ranks = xcalloc((size_t)p->world * PROGRESS_NCOUNTS, sizeof *p->ranks);
        p->busy = xcalloc((size_t)p->world, sizeof *p->busy);
    }
    p->start = p->last_send = p->last_print = util_now();
}

/* A count as "812", "45.2k", "30.1M", "1.2G" (an amount of MB as "0.3", "812.0", ...). */
static const char *human(char *buf, size_t n, double v, int mb)
{
    static const char *units[] = {"", "k", "M", "G", "T"};
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    snprintf(buf, n, u || mb ? "%.1f%s" : "%.0f%s", v, units[u]);
    return buf;
}

static void print(Progress *p, int final)
{
    int64_t sum[PROGRESS_NCOUNTS] = {0};
    memcpy(p->ranks, p->mine, sizeof p->mine);
    for (int r = 0; r < p->world; r++)
        for (int c = 0; c < PROGRESS_NCOUNTS; c++)
            sum[c] += p->ranks[(size_t)r * PROGRESS_NCOUNTS + c];
    double elapsed = util_now() - p->start, rate = elapsed > 0 ? (double)sum[PROGRESS_DONE] / elapsed : 0;
    const int mb = strcmp(p->unit, "MB") == 0;
    const double scale = mb ? 1e6 : 1;
    char done[32], total[32], speed[32], counts[96] = "", eta[64] = "-";
    if (final && p->world > 1) {
        double lo = p->busy[0], hi = p->busy[0];
        for (int r = 1; r < p->world; r++)
            lo = p->busy[r] < lo ? p->busy[r] : lo, hi = p->busy[r] > hi ? p->busy[r] : hi;
        snprintf(eta, sizeof eta, "done in %.1f s | ranks %.1f-%.1f s", elapsed, lo, hi);
    } else if (final) {
        snprintf(eta, sizeof eta, "done in %.1f s", elapsed);
    } else if (rate > 0) {
        long s = (long)((double)(p->total - sum[PROGRESS_DONE]) / rate + 0.5);
        snprintf(eta, sizeof eta, "ETA %ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    }
    if (mb) { /* reading input: what it gave */
        char docs[32], tokens[32];
        snprintf(counts, sizeof counts, " | %s documents | %s tokens",
                 human(docs, sizeof docs, (double)sum[PROGRESS_DOCS], 0),
                 human(tokens, sizeof tokens, (double)sum[PROGRESS_TOKENS], 0));
    }
    fprintf(stderr, "%s%s: %s %5.1f%% | %s of %s %s | %s %s/s%s | %s%s%s", p->tty ? "\r" : "", util_progname(),
            p->what, p->total > 0 ? 100.0 * (double)sum[PROGRESS_DONE] / (double)p->total : 100.0,
            human(done, sizeof done, (double)sum[PROGRESS_DONE] / scale, mb),
            human(total, sizeof total, (double)p->total / scale, mb), p->unit,
            human(speed, sizeof speed, rate / scale, mb), p->unit, counts, eta, p->tty ? "\033[K" : "",
            final || !p->tty ? "\n" : "");
    fflush(stderr);
    p->last_print = util_now();
}

/* Rank 0: take the counts that have come; with wait, until every rank's last counts have (a
   rank sends nothing after its last). */
static void receive(Progress *p, int wait)
{
    if (p->world == 1)
        return;
    for (;;) {
        int ready = 1;
        MPI_Status st;
        if (!wait)
            MPI_Iprobe(MPI_ANY_SOURCE, PROGRESS_TAG, MPI_COMM_WORLD, &ready, &st);
        if (!ready || (wait && p->finals == p->world - 1))
            return;
        int64_t got[PROGRESS_NCOUNTS + 2];
        MPI_Recv(got, PROGRESS_NCOUNTS + 2, MPI_INT64_T, MPI_ANY_SOURCE, PROGRESS_TAG, MPI_COMM_WORLD, &st);
        memcpy(p->ranks + (size_t)st.MPI_SOURCE * PROGRESS_NCOUNTS, got, sizeof p->mine);
        p->finals += (int)got[PROGRESS_NCOUNTS];
        if (got[PROGRESS_NCOUNTS])
            p->busy[st.MPI_SOURCE] = (double)got[PROGRESS_NCOUNTS + 1] / 1e6;
    }
}

/* Other ranks: send the counts unless the last snapshot is still on its way (or, last, wait). */
static void send(Progress *p, int last)
{
    int free_now = 1;
    if (last)
        MPI_Wait(&p->request, MPI_STATUS_IGNORE);
    else
        MPI_Test(&p->request, &free_now, MPI_STATUS_IGNORE);
    if (!free_now)
        return;
    memcpy(p->sent, p->mine, sizeof p->mine);
    p->sent[PROGRESS_NCOUNTS] = last;
    p->sent[PROGRESS_NCOUNTS + 1] = last ? (int64_t)((util_now() - p->start) * 1e6) : 0;
    if (last)
        MPI_Send(p->sent, PROGRESS_NCOUNTS + 2, MPI_INT64_T, 0, PROGRESS_TAG, MPI_COMM_WORLD);
    else
        MPI_Isend(p->sent, PROGRESS_NCOUNTS + 2, MPI_INT64_T, 0, PROGRESS_TAG, MPI_COMM_WORLD, &p->request);
    p->last_send = util_now();
}

void progress_add(Progress *p, int64_t done, int64_t docs, int64_t tokens)
{
    p->mine[PROGRESS_DONE] += done;
    p->mine[PROGRESS_DOCS] += docs;
    p->mine[PROGRESS_TOKENS] += tokens;
    double now = util_now();
    if (p->rank != 0) {
        if (now - p->last_send >= PROGRESS_SEND)
            send(p, 0);
        return;
    }
    if (now - p->last_print < (p->tty ? PROGRESS_TTY : PROGRESS_LOG))
        return;
    receive(p, 0);
    print(p, 0);
}

void progress_finish(Progress *p, int64_t sum[PROGRESS_NCOUNTS])
{
    memcpy(sum, p->mine, sizeof p->mine);
    if (p->rank != 0) {
        send(p, 1);
        return;
    }
    p->busy[0] = util_now() - p->start;
    receive(p, 1);
    print(p, 1);
    memset(sum, 0, sizeof p->mine);
    for (int r = 0; r < p->world; r++)
        for (int c = 0; c < PROGRESS_NCOUNTS; c++)
            sum[c] += p->ranks[(size_t)r * PROGRESS_NCOUNTS + c];
    free(p->ranks);
    free(p->busy);
    p->ranks = NULL;
    p->busy = NULL;
}
