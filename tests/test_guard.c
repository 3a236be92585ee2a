/* test_guard.c: skipped updates. First the guard's verdicts (src/guard.c): non-finite values,
   loss and gradient-norm spikes once the window is full, thresholds off. Then, under
   `mpirun -np 4`, a NaN or Inf put into one rank's gradient by the testing aid
   MEGATRAIN_TEST_INJECT_NAN under dp2, tp2, pp2, cp2 and dp2 x tp2: every rank reports the update
   of that step skipped; the parameters and AdamW moments after it equal those before, bit for bit,
   on every rank; and the run goes on exactly (bit for bit: same layout, same order of sums) as
   a run without the injection that takes that step's batch but not its update. */
#include "parallel/topo.h"
#include "src/config.h"
#include "src/guard.h"
#include "src/train.h"
#include "base/util.h"
#include "tests/tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STEPS 4
#define BAD 2 /* the step whose gradient is spoilt */

static void check_verdicts(void)
{
    Guard g;
    guard_init(&g, 4);
    const double loss[] = {2.0, 2.1, 1.9, 2.0}, norm[] = {1.0, 1.2, 0.8, 1.0};
    int ok = 1;
    for (int i = 0; i < 4; i++) /* the window fills: no spike check yet */
        ok &= guard_check(&g, i == 3 ? 1e9 : loss[i], norm[i], 3, 3) == GUARD_APPLY;
    tap_check(ok, "guard: no spike verdict before the window is full");
    guard_free(&g);

    guard_init(&g, 4);
    for (int i = 0; i < 4; i++)
        guard_check(&g, loss[i], norm[i], 3, 3);
    tap_check(guard_check(&g, NAN, 1.0, 3, 3) == GUARD_NONFINITE && guard_check(&g, 2.0, INFINITY, 3, 3) == GUARD_NONFINITE &&
                  g.n == 4 && g.next == 0,
              "guard: NaN loss and infinite norm are non-finite, and stay out of the window");
    tap_check(guard_check(&g, 2.0, 1.0, 0, 0) == GUARD_APPLY, "guard: a usual step applies");
    tap_check(guard_check(&g, 5.0, 1.0, 3, 3) == GUARD_LOSS_SPIKE, "guard: a loss far above the window's is a spike");
    tap_check(guard_check(&g, 4.0, 1.1, 3, 3) == GUARD_APPLY, "guard: ... the spike joined the window and widened it");
    tap_check(guard_check(&g, 2.0, 50.0, 3, 3) == GUARD_GRAD_SPIKE, "guard: a gradient norm far above is a spike");
    tap_check(guard_check(&g, 1e9, 1e9, 0, 0) == GUARD_APPLY, "guard: thresholds 0 check no spikes");
    guard_free(&g);

    guard_init(&g, 2);
    guard_check(&g, 1.0, 1.0, 3, 3);
    guard_check(&g, 1.0, 1.0, 3, 3);
    tap_check(guard_check(&g, 1.5, 1.5, 3, 3) == GUARD_APPLY, "guard: no spike against a window that does not vary");
    guard_free(&g);
}

/* This rank's parameters (n) and its shard of the AdamW moments (shard), on the host. */
typedef struct {
    size_t n, shard;
    float *params, *m, *v;
} State;

static State state_get(const Trainer *tr)
{
    const Model *m = &tr->m;
    const Zero *z = &tr->zero;
    State s = {m->n_elems, z->shard, xmalloc(m->n_elems * sizeof(float)), xmalloc(z->shard * sizeof(float)),
               xmalloc(z->shard * sizeof(float))};
    model_params_to_host(m, s.params);
    tr->ops->download(s.m, z->m, z->shard * sizeof(float));
    tr->ops->download(s.v, z->v, z->shard * sizeof(float));
    return s;
}

/* n floats equal bit for bit (an empty shard is NULL: memcmp may not be given NULL) */
static int same(const float *a, const float *b, size_t n) { return n == 0 || !memcmp(a, b, n * sizeof(float)); }

static int state_equal(const State *a, const State *b)
{
    return a->n == b->n && a->shard == b->shard && same(a->params, b->params, a->n) && same(a->m, b->m, a->shard) &&
           same(a->v, b->v, a->shard);
}

static void state_free(State *s)
{
    free(s->params);
    free(s->m);
    free(s->v);
}

typedef struct {
    double loss[STEPS];
    GuardVerdict verdict[STEPS];
    int untouched; /* this rank's state after step BAD equals the state before, bit for bit */
    State end;     /* after the last step (this rank's) */
} Run;

/* STEPS steps on a layout of `world` ranks (rank < world of MPI_COMM_WORLD). inject: the testing
   aid's value, spoiling step BAD; NULL: no injection, and step BAD only uses up its batch and
   counts (a skip as train.h defines it), computing nothing. */
static void run(const char *sets, int world, const char *inject, Run *out)
{
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm sub;
    MPI_Comm_split(MPI_COMM_WORLD, rank < world ? 0 : MPI_UNDEFINED, rank, &sub);
    memset(out, 0, sizeof *out);
    out->untouched = 1;
    if (sub == MPI_COMM_NULL)
        return;
    Config c;
    config_defaults(&c);
    char *all = xasprintf("model.vocab_size=23 model.n_layers=2 model.d_model=16 model.n_heads=2 model.z_dim=8 "
                          "model.v_dim=12 model.ffn_dim=20 model.chunk=4 model.groups=4 model.cema_ndim=3 "
                          "data.seq_len=16 data.batch_size=4 parallel.micro_batches=2 train.steps=%d train.seed=3 "
                          "schedule.warmup_steps=1 optimizer.lr=1e-2 log.metrics= %s",
                          STEPS, sets);
    for (char *tok = strtok(all, " "); tok; tok = strtok(NULL, " "))
        config_set(&c, tok);
    free(all);
    config_finish(&c, world, 0, 0);
    Topo t;
    topo_init(&t, sub, c.parallel.tp, c.parallel.pp, c.parallel.cp);
    if (inject)
        setenv("MEGATRAIN_TEST_INJECT_NAN", inject, 1);
    Trainer tr;
    trainer_init(&tr, &c, &t, NULL);
    unsetenv("MEGATRAIN_TEST_INJECT_NAN");
    for (int s = 1; s <= STEPS; s++) {
        double gn, lr;
        if (s == BAD && !inject) {
            tr.step++;
            tr.cursor += c.data.batch_size;
            continue;
        }
        out->loss[s - 1] = trainer_forward_backward(&tr);
        State before = s == BAD ? state_get(&tr) : (State){0};
        out->verdict[s - 1] = trainer_update(&tr, &gn, &lr);
        if (s == BAD) {
            State after = state_get(&tr);
            out->untouched = state_equal(&before, &after);
            state_free(&before);
            state_free(&after);
        }
    }
    out->end = state_get(&tr);
    trainer_free(&tr);
    topo_free(&t);
    MPI_Comm_free(&sub);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    util_set_progname("test_guard");
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    tap_quiet = rank != 0;
    check_verdicts();
    if (size < 4) {
        tap_check(0, "run under mpirun -np 4 (got %d ranks)", size);
        return tap_done();
    }
    const struct {
        const char *label, *sets, *inject;
        int world;
    } layouts[] = {
        {"dp2, NaN on rank 1", "", "2:1", 2},
        {"tp2, NaN on rank 1", "parallel.tp=2", "2:1", 2},
        {"tp2, +Inf on rank 0", "parallel.tp=2", "2:0:inf", 2},
        {"pp2, NaN on the last stage", "parallel.pp=2", "2:1", 2},
        {"cp2, NaN on rank 1", "parallel.cp=2", "2:1", 2},
        {"dp2 x tp2, NaN on rank 3", "parallel.tp=2", "2:3", 4},
    };
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        Run a, b;
        run(layouts[i].sets, layouts[i].world, layouts[i].inject, &a);
        run(layouts[i].sets, layouts[i].world, NULL, &b);
        const char *l = layouts[i].label;
        const int in = rank < layouts[i].world;
        int skips = 1;
        for (int s = 0; s < STEPS && in; s++)
            skips &= a.verdict[s] == (s == BAD - 1 ? GUARD_NONFINITE : GUARD_APPLY);
        tap_check_all(MPI_COMM_WORLD, skips, "%s: every rank skips step %d's update, and only it", l, BAD);
        tap_check_all(MPI_COMM_WORLD, a.untouched,
                      "%s: parameters and AdamW moments after the skip equal those before, bit for bit", l);
        int same = !memcmp(a.loss + BAD, b.loss + BAD, (STEPS - BAD) * sizeof(double)) &&
                   isfinite(a.loss[STEPS - 1]) && state_equal(&a.end, &b.end);
        tap_check_all(MPI_COMM_WORLD, !in || same,
                      "%s: the losses after it (%.6f ...) and the final parameters and moments equal those of a "
                      "run without that update, bit for bit",
                      l, a.loss[BAD]);
        state_free(&a.end);
        state_free(&b.end);
    }
    int rc = tap_done();
    MPI_Finalize();
    return rc;
}
