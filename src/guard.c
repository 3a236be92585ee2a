/* guard.c: the update guard (see guard.h). */
#include "src/guard.h"

#include "base/util.h"

#include <math.h>
#include <stdlib.h>

void guard_init(Guard *g, int window)
{
    g->window = window;
    g->n = g->next = 0;
    g->loss = xcalloc((size_t)window, sizeof(double));
    g->norm = xcalloc((size_t)window, sizeof(double));
}

void guard_free(Guard *g)
{
    free(g->loss);
    free(g->norm);
}

/* Whether x is more than z standard deviations above the mean of v (n values); never when z is 0
   or the values do not vary. */
static int spike(const double *v, int n, double x, double z)
{
    if (z <= 0)
        return 0;
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++)
        mean += v[i];
    mean /= n;
    for (int i = 0; i < n; i++)
        var += (v[i] - mean) * (v[i] - mean);
    double sd = sqrt(var / n);
    return sd > 0 && (x - mean) / sd > z;
}

GuardVerdict guard_check(Guard *g, double loss, double norm, double loss_z, double grad_z)
{
    if (!isfinite(loss) || !isfinite(norm))
        return GUARD_NONFINITE;
    GuardVerdict v = GUARD_APPLY;
    if (g->n == g->window)
        v = spike(g->loss, g->n, loss, loss_z) ? GUARD_LOSS_SPIKE
            : spike(g->norm, g->n, norm, grad_z) ? GUARD_GRAD_SPIKE
                                                 : GUARD_APPLY;
    g->loss[g->next] = loss;
    g->norm[g->next] = norm;
    g->next = (g->next + 1) % g->window;
    g->n += g->n < g->window;
    return v;
}

const char *guard_name(GuardVerdict v)
{
    static const char *names[] = {NULL, "nonfinite", "loss_spike", "grad_spike"};
    return names[v];
}
