/* test_parallel.c: every 4-D layout trains the same model to the same numbers. Run under
   `mpirun -np 8` (CPU, make check), or `mpirun -np G tests/test_parallel --device cuda` with one
   rank per GPU (make check-multigpu): rank 0 first trains a single-rank reference (3 AdamW steps on
   random tokens); then, for each layout (dp x pp x cp x tp, with micro-batches) that fits the
   ranks, the first dp*pp*cp*tp ranks train the same 3 steps and the losses and every updated
   parameter, gathered whole on rank 0, are compared with the reference. Where several ranks
   share the parameters (dp x cp > 1), backward must have started at least one ZeRO shard's sum
   before the optimizer step (the overlap of gradient reduction with backward), and none with
   parallel.overlap_grad_reduce=false.
   Tolerance: fp32 throughout; the layouts sum the same terms in other orders (data-parallel
   reduces, tensor-parallel partial sums, chunk states crossing in fp32, pipeline stages
   unchanged), which moves results by a few ulps per operation; AdamW's first steps are close to
   sign(g) * lr, so parameters differ by about lr times the relative gradient noise; the Q/K
   biases (initialised to 0, so the comparison is of their updates alone) show the most, up to
   1e-5. Losses agree to 1e-5 relative and parameters to 5e-5 relative (norm-wise, per tensor);
   a wrong exchange or a missing reduction gives errors of 1e-2 and more.
   On CUDA the activations are bf16 and tensor-parallel partial sums travel in bf16, so each
   layout's rounding differs from one GPU's by ~2^-9 per op: losses within 1e-2 relative and
   parameters within 2e-3 (their updates are lr-sized steps on O(1) weights, so a relative error
   of the update of ~5e-2 moves a tensor by ~1e-3). */
#include "parallel/topo.h"
#include "src/config.h"
#include "src/train.h"
#include "src/util.h"
#include "tests/tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STEPS 3
#define MAXP 256

typedef struct {
    int n;
    char name[MAXP][PARAM_NAME];
    size_t size[MAXP];
    float *data[MAXP];
} Params;

static void take(void *ctx, const char *name, const int64_t *shape, int ndim, const float *data)
{
    Params *p = ctx;
    size_t n = 1;
    for (int k = 0; k < ndim; k++)
        n *= (size_t)shape[k];
    if (p->n == MAXP)
        fail("too many parameters");
    snprintf(p->name[p->n], PARAM_NAME, "%s", name);
    p->size[p->n] = n;
    p->data[p->n] = xmalloc(n * sizeof(float));
    memcpy(p->data[p->n], data, n * sizeof(float));
    p->n++;
}

static void params_free(Params *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->data[i]);
    p->n = 0;
}

static const char *device = "cpu";

/* the model and run shared by every layout; `extra` adds layout keys */
static void make_config(Config *c, const char *model, const char *extra, int world)
{
    config_defaults(c);
    const int gpu = !strcmp(device, "cuda");
    char *sets = xasprintf("%s %s data.seq_len=%d data.batch_size=4 parallel.micro_batches=2 train.steps=%d "
                           "train.seed=3 schedule.warmup_steps=1 optimizer.lr=%s log.metrics= train.device=%s %s",
                           gpu ? "model.vocab_size=512 model.n_layers=4 model.d_model=256 model.n_heads=4 "
                                 "model.z_dim=128 model.v_dim=256 model.ffn_dim=512 model.chunk=64 model.groups=8 "
                                 "model.cema_ndim=16"
                               : "model.vocab_size=23 model.n_layers=4 model.d_model=16 model.n_heads=2 "
                                 "model.z_dim=8 model.v_dim=12 model.ffn_dim=20 model.chunk=4 model.groups=4 "
                                 "model.cema_ndim=3",
                           model, gpu ? 256 : 16, STEPS, gpu ? "2e-3" : "1e-2", device, extra);
    for (char *tok = strtok(sets, " "); tok; tok = strtok(NULL, " "))
        config_set(c, tok);
    free(sets);
    config_finish(c, world, 0, !strcmp(device, "cpu") ? 0 : 1);
}

/* Train STEPS steps on the first `world` ranks of MPI_COMM_WORLD; rank 0 gets the losses, the
   parameters and in *started the fewest shard sums that backward started in a step on any rank
   (-1: one rank holds each parameter). */
static void run(const char *model, const char *extra, int world, double *losses, Params *out, int *started)
{
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm sub;
    MPI_Comm_split(MPI_COMM_WORLD, rank < world ? 0 : MPI_UNDEFINED, rank, &sub);
    if (sub != MPI_COMM_NULL) {
        Config c;
        make_config(&c, model, extra, world);
        Topo t;
        topo_init(&t, sub, c.parallel.tp, c.parallel.pp, c.parallel.cp);
        Trainer tr;
        trainer_init(&tr, &c, &t, NULL);
        const int group = tr.zero.comm->size;
        *started = group;
        for (int s = 0; s < STEPS; s++) {
            double gn, lr;
            losses[s] = trainer_forward_backward(&tr);
            *started = *started < group - tr.zero.next ? *started : group - tr.zero.next;
            trainer_update(&tr, &gn, &lr);
        }
        MPI_Allreduce(MPI_IN_PLACE, started, 1, MPI_INT, MPI_MIN, sub);
        if (group == 1)
            *started = -1;
        trainer_gather_all(&tr, take, out);
        trainer_free(&tr);
        topo_free(&t);
        MPI_Comm_free(&sub);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

static void compare(const char *label, const double *ref_loss, const Params *ref, const double *loss,
                    const Params *got, int started, int overlap, int rank)
{
    int ok = 1;
    double worst_loss = 0, worst_param = 0;
    const char *worst_name = "";
    if (rank == 0) {
        for (int s = 0; s < STEPS; s++)
            worst_loss = fmax(worst_loss, fabs(loss[s] - ref_loss[s]) / fabs(ref_loss[s]));
        ok = got->n == ref->n;
        for (int i = 0; ok && i < ref->n; i++) {
            int j = 0;
            while (j < got->n && strcmp(got->name[j], ref->name[i]))
                j++;
            if (j == got->n || got->size[j] != ref->size[i]) {
                ok = 0;
                worst_name = ref->name[i];
                break;
            }
            double num = 0, den = 0;
            for (size_t e = 0; e < ref->size[i]; e++) {
                double a = got->data[j][e], b = ref->data[i][e];
                num += (a - b) * (a - b);
                den += b * b;
            }
            double err = sqrt(num) / fmax(sqrt(den), 1e-30);
            if (err > worst_param) {
                worst_param = err;
                worst_name = ref->name[i];
            }
        }
        const int gpu = !strcmp(device, "cuda");
        ok = ok && worst_loss < (gpu ? 1e-2 : 1e-5) && worst_param < (gpu ? 2e-3 : 5e-5) && (started < 0 || (overlap ? started > 0 : started == 0));
    }
    char sums[64] = "";
    if (started >= 0)
        snprintf(sums, sizeof sums, "; %d shard sum%s started in backward", started, started == 1 ? "" : "s");
    tap_check_all(MPI_COMM_WORLD, ok,
                  "%s: losses (max rel. diff %.1e) and parameters (max %.1e, %s) match one rank%s", label,
                  worst_loss, worst_param, worst_name, sums);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    util_set_progname("test_parallel");
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc == 3 && !strcmp(argv[1], "--device"))
        device = argv[2];
    if (!strcmp(device, "cpu") && size < 8) {
        tap_check(0, "run under mpirun -np 8 (got %d ranks)", size);
        return tap_done();
    }
    tap_quiet = rank != 0;
    const struct {
        const char *model, *label;
    } models[] = {
        {"model.ffn=swiglu model.share_emb=true model.scale_emb=true", "swiglu, tied"},
        {"model.ffn=silu train.recompute=true", "silu, untied, recompute"},
    };
    const struct {
        const char *label, *sets;
        int world, model; /* model: bit 0 first config, bit 1 second */
    } layouts[] = {
        {"dp2", "", 2, 3},
        {"dp2, gradient sums after backward", "parallel.overlap_grad_reduce=false", 2, 1},
        {"tp2", "parallel.tp=2", 2, 3},
        {"cp2", "parallel.cp=2", 2, 3},
        {"cp4", "parallel.cp=4", 4, 1},
        {"pp2", "parallel.pp=2", 2, 3},
        {"pp4", "parallel.pp=4", 4, 1},
        {"dp2xtp2", "parallel.tp=2", 4, 1},
        {"tp2xcp2", "parallel.tp=2 parallel.cp=2", 4, 3},
        {"pp2xcp2", "parallel.pp=2 parallel.cp=2", 4, 1},
        {"tp2xpp2", "parallel.tp=2 parallel.pp=2", 4, 2},
        {"dp2xpp2xcp2", "parallel.pp=2 parallel.cp=2", 8, 1},
        {"tp2xpp2xcp2", "parallel.tp=2 parallel.pp=2 parallel.cp=2", 8, 2},
        {"dp2xtp2xcp2, one micro-batch", "parallel.tp=2 parallel.cp=2 parallel.micro_batches=1", 8, 1},
    };
    for (int mi = 0; mi < 2; mi++) {
        double ref_loss[STEPS], loss[STEPS];
        Params ref = {0}, got = {0};
        int started;
        run(models[mi].model, "", 1, ref_loss, &ref, &started);
        if (rank == 0)
            tap_diag("%s: reference losses %.6f %.6f %.6f", models[mi].label, ref_loss[0], ref_loss[1], ref_loss[2]);
        tap_check_all(MPI_COMM_WORLD, rank != 0 || (ref_loss[2] < ref_loss[0] && ref.n > 0),
                      "%s: the single-rank reference learns (%d tensors)", models[mi].label, ref.n);
        for (size_t li = 0; li < sizeof layouts / sizeof layouts[0]; li++) {
            if (!(layouts[li].model & (1 << mi)) || layouts[li].world > size)
                continue;
            run(models[mi].model, layouts[li].sets, layouts[li].world, loss, &got, &started);
            char *label = xasprintf("%s (%s)", layouts[li].label, models[mi].label);
            compare(label, ref_loss, &ref, loss, &got, started,
                    !strstr(layouts[li].sets, "overlap_grad_reduce=false"), rank);
            free(label);
            params_free(&got);
        }
        params_free(&ref);
    }
    int rc = tap_done();
    MPI_Finalize();
    return rc;
}
