/* test_parallel.c: every 4-D layout trains the same model to the same numbers. Run under
   `mpirun -np 8` (CPU, make check), or `mpirun -np 4 tests/test_parallel --device cuda --comm
   nccl|mpi` (make check-multigpu: NCCL with one rank per GPU, or MPI through host staging with
   any number of ranks per GPU): rank 0 first trains a single-rank reference (3 AdamW steps on
   random tokens, then an evaluation on other random tokens); then, for each layout (dp x pp x
   cp x tp, with micro-batches), the first dp*pp*cp*tp ranks train the same 3 steps and evaluate,
   and the losses, the validation loss and every updated parameter, gathered whole on rank 0, are
   compared with the reference. A layout that needs more ranks than were started fails, naming
   itself (on CUDA the matrix is the layouts of up to 4 ranks). `--models 34` runs only the
   third and fourth of the four models, `--models 5` only the recomputation modes' comparison,
   `--models 6` only train.graph's
   (one run of the whole matrix on one GPU takes over five minutes). Gradient buckets are small
   (parallel.grad_bucket_mb 0.002: 524 elements, some tens per model): where several ranks share
   the parameters (dp x cp > 1), backward must have started at least one bucket's reduce-scatter
   before the optimizer step (the overlap of gradient reduction with backward), and none with
   parallel.overlap_grad_reduce=false or a single bucket. With --dump DIR, rank 0 also writes
   every run's results to DIR, for comparing two builds bit for bit.
   Tolerance: fp32 throughout; the layouts sum the same terms in other orders (data-parallel
   reduces, tensor-parallel partial sums, chunk states crossing in fp32, pipeline stages
   unchanged), which moves results by a few ulps per operation; AdamW's first steps are close to
   sign(g) * lr, so parameters differ by about lr times the relative gradient noise; the Q/K
   biases (initialised to 0, so the comparison is of their updates alone) show the most, up to
   1e-5. Losses agree to 1e-5 relative and parameters to 5e-5 relative (norm-wise, per tensor);
   a wrong exchange or a missing reduction gives errors of 1e-2 and more. The validation loss is
   held to the losses' tolerance. AdamW's eps is 1e-5: it damps the updates of the few weights
   whose gradient is ~0 and whose sign is fp32 noise, which with eps 1e-8 step by +-lr depending
   on the layout and dominate the comparison (with a vocabulary of 23 they stayed below 5e-5,
   but of 22, 24, 26, 28 or 32, which tensor parallelism's split of the vocabulary needs, they
   reached 1e-4 to 2e-4, with the earlier code too); the other weights' updates stay sign-like.
   The vocabulary is 30.
   The third model runs 4 micro-batches of 2 rows with chunk states of 2 x 2056 fp32 (16 KiB,
   above Open MPI's shared-memory eager limit of 4 KiB): a state send whose buffer the next
   micro-batch overwrites before it was read moved its validation loss by 1e-3 to 5e-3 (cp2, cp4,
   pp2xcp2). On CUDA (whose CEMA kernels hold at most 16 states) the GPU model's own states,
   2 x 256 x 16 complex fp32, are already 64 KiB.
   On CUDA the activations are bf16 and tensor-parallel partial sums travel in bf16, so each
   layout's rounding differs from one GPU's by ~2^-9 per op, and the gradients by ~1e-3 to 1e-2
   relative. With AdamW's usual eps, the first steps move every weight by lr * sign(g): a weight
   whose gradient is within that noise of 0 (the Q/K biases, initialised to 0, have gradients of
   3e-7 to 2e-5 in this model, so their values are their updates alone) steps the other way on
   another layout, which gave 5e-2 to 4e-1 relative errors on an H200 for layouts that were right
   (their losses agreed to 1e-4). So the GPU runs use eps = 1e-2, above nearly every gradient
   element (1e-6 to 5e-2 here): the update is then about lr * g / eps, proportional to the
   gradient, and a tensor's error is its gradient's relative error (a weight initialised to 0) or
   less; lr = 2e-2 keeps the steps lr-sized. Losses and the validation loss within 1e-2 relative,
   parameters within 2e-2; a missing or doubled reduction scales a gradient by 2 (error 0.5) and a
   wrong exchange gives O(1). Over MPI the bf16 sums are taken in fp32 on the host and rounded
   once, which moves the same few ulps.
   The final norm's bias has a bound of its own on CUDA, 0.25: its gradient, the sum over tokens
   of the head's input gradient, is the mismatch between the predicted and the seen token counts,
   which cancels to a small part of its terms, while each term carries its bf16 rounding (once on
   one GPU, three times under tp, where the head's partial products over the two vocabulary
   halves are rounded and summed). Measured under tp2, dp2 x tp2 and tp2 x cp2 on an H100:
   8.3e-2; on the CPU in fp32 with only those tp partial sums rounded to bf16: 3.0e-2 (and every
   parameter within 1e-6 without the rounding), so the error is the rounding's, not a layout's.
   0.25 still fails a missing or doubled reduction (0.5) and a wrong exchange.
   The fourth model, with AdamW's eps at 1e-2 as on CUDA, also runs layouts whose data-parallel
   gradient sums travel in bf16 (parallel.grad_reduce_dtype). Each rank's gradient and the sum
   are rounded to bf16's 8 bits (2^-9 relative each), so a summed gradient is off by up to
   2^-9 (sum of |terms| + |sum|), 2^-8 of it where the terms do not cancel; with eps above the
   gradients the update is proportional to the gradient, so a tensor's error is about its
   gradient's: 3e-3 to 8e-3 measured, 2e-2 allowed (where a weight's terms partly cancel its
   relative error grows). The losses, which every weight moves a little, agree to 2e-5: 1e-4
   allowed. A gradient summed into the wrong owner's or bucket's place gives O(1) errors.
   Last, recomputation (train.recompute) must change what backward keeps, never what it
   computes: on one rank and under tp2, cp2, tp2 x cp2 and pp2 (both FFN kinds), elementwise and
   blocks give the losses, validation loss and updated parameters of none in the same layout,
   bit for bit on the CPU; on CUDA, where atomic adds may reorder, within the layouts' bounds. */
#include "src/config.h"
#include "src/train.h"
#include "base/util.h"
#include "tests/tap.h"
#include "tests/subjob.h"

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

static const char *device = "cpu", *comm = "auto", *dump_dir, *only; /* only: --models, e.g. "34" */

/* the model and run shared by every layout: the run's keys, the model's (which may override
   them), then the layout's */
static void make_config(Config *c, const char *model, const char *extra, int world)
{
    config_defaults(c);
    const int gpu = !strcmp(device, "cuda");
    char *sets = xasprintf("data.seq_len=%d data.batch_size=4 parallel.micro_batches=2 train.steps=%d train.seed=3 "
                           "schedule.warmup_steps=1 optimizer.lr=%s log.metrics= train.device=%s parallel.comm=%s "
                           "parallel.grad_bucket_mb=0.002 "
                           "%s %s %s",
                           gpu ? 256 : 16, STEPS, gpu ? "2e-2 optimizer.eps=1e-2" : "1e-2 optimizer.eps=1e-5", device,
                           comm,
                           gpu ? "model.vocab_size=512 model.n_layers=4 model.d_model=256 model.n_heads=4 "
                                 "model.z_dim=128 model.v_dim=256 model.ffn_dim=512 model.chunk=64 model.groups=8 "
                                 "model.cema_ndim=16"
                               : "model.vocab_size=30 model.n_layers=4 model.d_model=16 model.n_heads=2 "
                                 "model.z_dim=8 model.v_dim=12 model.ffn_dim=20 model.chunk=4 model.groups=4 "
                                 "model.cema_ndim=3",
                           model, extra);
    for (char *tok = strtok(sets, " "); tok; tok = strtok(NULL, " "))
        config_set(c, tok);
    free(sets);
    config_finish(c, world, 0, !strcmp(device, "cpu") ? 0 : 1);
}

/* What a layout gave, on rank 0. */
typedef struct {
    double loss[STEPS], val;
    Params p;
    int started; /* the fewest bucket reduce-scatters that backward started in a step on any rank
                    (-1: one rank holds each parameter) */
    int buckets; /* the most buckets of a rank */
    int graphed; /* the backend captured the step as a graph (train.graph on CUDA) */
} Result;

/* STEPS steps, then an evaluation (subjob_run's body) */
static void train_eval(Trainer *tr, MPI_Comm sub, void *ctx)
{
    Result *out = ctx;
    const int buckets = tr->zero.nbuckets;
    out->started = buckets;
    for (int s = 0; s < STEPS; s++) {
        double gn, lr;
        out->loss[s] = trainer_forward_backward(tr);
        out->started = out->started < buckets - tr->zero.next ? out->started : buckets - tr->zero.next;
        trainer_update(tr, &gn, &lr);
    }
    MPI_Allreduce(MPI_IN_PLACE, &out->started, 1, MPI_INT, MPI_MIN, sub);
    MPI_Allreduce(&buckets, &out->buckets, 1, MPI_INT, MPI_MAX, sub);
    if (tr->zero.comm->size == 1)
        out->started = -1;
    out->graphed = tr->graph[0] && (tr->c->parallel.micro_batches == 1 || tr->graph[1]);
    out->val = trainer_eval(tr, NULL, NULL);
    trainer_gather_all(tr, take, &out->p);
}

/* Train STEPS steps on the first `world` ranks of MPI_COMM_WORLD, then evaluate. */
static void run(const char *model, const char *extra, int world, Result *out)
{
    Config c;
    make_config(&c, model, extra, world);
    subjob_run(&c, world, train_eval, out);
    MPI_Barrier(MPI_COMM_WORLD);
}

/* --dump DIR: each run's losses, validation loss and parameters, raw, in DIR/<label>.bin, so two
   builds can be compared bit for bit (cmp) */
static void dump(const char *label, const Result *r)
{
    char *name = xstrdup(label);
    for (char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')))
            *c = '_';
    char *path = xasprintf("%s/%s.bin", dump_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        fail("%s: cannot write", path);
    fwrite(r->loss, sizeof r->loss, 1, f);
    fwrite(&r->val, sizeof r->val, 1, f);
    for (int i = 0; i < r->p.n; i++) {
        fwrite(r->p.name[i], PARAM_NAME, 1, f);
        fwrite(&r->p.size[i], sizeof r->p.size[i], 1, f);
        fwrite(r->p.data[i], sizeof(float), r->p.size[i], f);
    }
    fclose(f);
    free(path);
    free(name);
}

static void compare(const char *label, const Result *r, const Result *g, int overlap, int bf16, int rank)
{
    const int gpu = !strcmp(device, "cuda");
    int ok = 1, started = g->started;
    double worst_loss = 0, worst_param = 0, bias_err = 0, val = fabs(g->val - r->val) / fabs(r->val);
    const char *worst_name = "";
    const Params *ref = &r->p, *got = &g->p;
    if (rank == 0) {
        for (int s = 0; s < STEPS; s++)
            worst_loss = fmax(worst_loss, fabs(g->loss[s] - r->loss[s]) / fabs(r->loss[s]));
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
            if (gpu && !strcmp(ref->name[i], "output.final_norm.bias"))
                bias_err = err; /* its own bound (the header) */
            else if (err > worst_param) {
                worst_param = err;
                worst_name = ref->name[i];
            }
        }
        const double tol_loss = gpu ? 1e-2 : bf16 ? 1e-4 : 1e-5, tol_param = gpu || bf16 ? 2e-2 : 5e-5;
        ok = ok && worst_loss < tol_loss && val < tol_loss && worst_param < tol_param && bias_err < 0.25 &&
             (started < 0 || (overlap && g->buckets > 1 ? started > 0 : started == 0));
    }
    char sums[128] = "";
    if (gpu)
        snprintf(sums, sizeof sums, "; final norm bias %.1e", bias_err);
    if (started >= 0)
        snprintf(sums + strlen(sums), sizeof sums - strlen(sums), "; %d bucket%s reduce-scatter started in backward",
                 started, started == 1 ? "'s" : "s'");
    tap_check_all(MPI_COMM_WORLD, ok,
                  "%s: losses (max rel. diff %.1e), validation loss (%.1e) and parameters (max %.1e, %s) match "
                  "one rank%s",
                  label, worst_loss, val, worst_param, worst_name, sums);
}

/* g is r's layout with another train.recompute: the same bits */
static void compare_bits(const char *label, const Result *r, const Result *g, int rank)
{
    int ok = 1;
    if (rank == 0) {
        ok = !memcmp(g->loss, r->loss, sizeof r->loss) && !memcmp(&g->val, &r->val, sizeof r->val) &&
             g->p.n == r->p.n;
        for (int i = 0; ok && i < r->p.n; i++)
            ok = !strcmp(g->p.name[i], r->p.name[i]) && g->p.size[i] == r->p.size[i] &&
                 !memcmp(g->p.data[i], r->p.data[i], r->p.size[i] * sizeof(float));
    }
    tap_check_all(MPI_COMM_WORLD, ok, "%s: losses, validation loss and parameters as without, bit for bit", label);
}

/* one rank with train.graph against itself without: the CPU runs the graphed step directly but
   fails on any host round trip inside it, as a capture would (same bits); CUDA captures and
   replays it (the embedding gradient's atomic adds may reorder: the layouts' tolerances) */
static void graph_modes(int rank)
{
    const char *const sets[][2] = {
        {"one rank, silu", "model.ffn=silu"},
        {"one rank, swiglu, tied", "model.ffn=swiglu model.share_emb=true model.scale_emb=true"},
        {"one rank, 4 micro-batches, recompute blocks",
         "model.ffn=silu data.batch_size=8 parallel.micro_batches=4 train.recompute=blocks"},
        {"one rank, one micro-batch, recompute elementwise",
         "model.ffn=swiglu parallel.micro_batches=1 train.recompute=elementwise"},
    };
    const int gpu = !strcmp(device, "cuda");
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        Result off = {0}, on = {0};
        run(sets[i][1], "train.graph=false", 1, &off);
        run(sets[i][1], "train.graph=true", 1, &on);
        char *label = xasprintf("%s, train.graph", sets[i][0]);
        if (gpu) {
            tap_check_all(MPI_COMM_WORLD, rank != 0 || on.graphed, "%s: the step was captured as a graph", label);
            compare(label, &off, &on, 1, 0, rank);
        } else
            compare_bits(label, &off, &on, rank);
        free(label);
        params_free(&off.p);
        params_free(&on.p);
    }
}

/* each layout with each train.recompute against itself with none */
static void recompute_modes(int size, int rank)
{
    const struct {
        const char *label, *sets;
        int world;
    } layouts[] = {
        {"one rank, silu", "model.ffn=silu", 1},
        {"one rank, swiglu", "model.ffn=swiglu model.share_emb=true", 1},
        {"tp2, silu", "model.ffn=silu parallel.tp=2", 2},
        {"tp2, swiglu", "model.ffn=swiglu parallel.tp=2", 2},
        {"cp2, silu", "model.ffn=silu parallel.cp=2", 2},
        {"tp2xcp2, swiglu", "model.ffn=swiglu model.share_emb=true parallel.tp=2 parallel.cp=2", 4},
        {"pp2, swiglu", "model.ffn=swiglu parallel.pp=2", 2},
    };
    const int gpu = !strcmp(device, "cuda");
    for (size_t li = 0; li < sizeof layouts / sizeof layouts[0]; li++) {
        Result none = {0}, got = {0};
        if (layouts[li].world > size) {
            tap_check(0, "%s: not run: needs %d ranks, this run has %d", layouts[li].label, layouts[li].world, size);
            continue;
        }
        run(layouts[li].sets, "train.recompute=none", layouts[li].world, &none);
        for (int k = 0; k < RECOMPUTE_MODES; k++) {
            if (k == RECOMPUTE_NONE)
                continue;
            char *extra = xasprintf("train.recompute=%s", config_recompute_name(k));
            char *label = xasprintf("%s, recompute %s", layouts[li].label, config_recompute_name(k));
            run(layouts[li].sets, extra, layouts[li].world, &got);
            if (gpu)
                compare(label, &none, &got, 1, 0, rank);
            else
                compare_bits(label, &none, &got, rank);
            params_free(&got.p);
            free(label);
            free(extra);
        }
        params_free(&none.p);
    }
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    util_set_progname("test_parallel");
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int i = 1; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], "--device"))
            device = argv[i + 1];
        else if (!strcmp(argv[i], "--comm"))
            comm = argv[i + 1];
        else if (!strcmp(argv[i], "--dump"))
            dump_dir = argv[i + 1];
        else if (!strcmp(argv[i], "--models"))
            only = argv[i + 1];
    const int gpu = !strcmp(device, "cuda"), max_world = gpu ? 4 : 8;
    tap_quiet = rank != 0;
    if (rank == 0)
        tap_diag("%d ranks, device %s, parallel.comm %s", size, device, comm);
    const struct {
        const char *model, *label;
    } models[] = {
        {"model.ffn=swiglu model.share_emb=true model.scale_emb=true", "swiglu, tied"},
        {"model.ffn=silu train.recompute=true", "silu, untied, recompute"},
        {gpu ? "model.ffn=silu data.batch_size=8 parallel.micro_batches=4"
             : "model.ffn=silu model.cema_ndim=64 data.batch_size=8 parallel.micro_batches=4",
         "large states, 4 micro-batches"},
        {"model.ffn=swiglu model.share_emb=true optimizer.eps=1e-2", "swiglu, tied, AdamW eps 1e-2"},
    };
    const struct {
        const char *label, *sets;
        int world, model; /* model: bit i runs the layout on models[i] */
    } layouts[] = {
        {"dp2", "", 2, 15},
        {"dp2, gradient sums after backward", "parallel.overlap_grad_reduce=false", 2, 1},
        {"dp2, one bucket", "parallel.grad_bucket_mb=64", 2, 1},
        {"tp2", "parallel.tp=2", 2, 3},
        {"cp2", "parallel.cp=2", 2, 7},
        {"cp4", "parallel.cp=4", 4, 5},
        {"pp2", "parallel.pp=2", 2, 3},
        {"pp4", "parallel.pp=4", 4, 1},
        {"dp2xtp2", "parallel.tp=2", 4, 1},
        {"tp2xcp2", "parallel.tp=2 parallel.cp=2", 4, 7},
        {"pp2xcp2", "parallel.pp=2 parallel.cp=2", 4, 5},
        {"tp2xpp2", "parallel.tp=2 parallel.pp=2", 4, 2},
        {"dp2xpp2xcp2", "parallel.pp=2 parallel.cp=2", 8, 1},
        {"tp2xpp2xcp2", "parallel.tp=2 parallel.pp=2 parallel.cp=2", 8, 2},
        {"dp2xtp2xcp2, one micro-batch", "parallel.tp=2 parallel.cp=2 parallel.micro_batches=1", 8, 1},
        {"dp2, bf16 gradient sums", "parallel.grad_reduce_dtype=bf16", 2, 8},
        {"cp4, bf16 gradient sums", "parallel.cp=4 parallel.grad_reduce_dtype=bf16", 4, 8},
        {"dp4, one micro-batch, bf16 gradient sums", "parallel.micro_batches=1 parallel.grad_reduce_dtype=bf16", 4, 8},
        {"dp2xpp2xcp2, bf16 gradient sums", "parallel.pp=2 parallel.cp=2 parallel.grad_reduce_dtype=bf16", 8, 8},
    };
    for (size_t mi = 0; mi < sizeof models / sizeof models[0]; mi++) {
        if (only && !strchr(only, (int)('1' + mi)))
            continue;
        Result ref = {0}, got = {0};
        run(models[mi].model, "", 1, &ref);
        char *ref_label = xasprintf("reference (%s)", models[mi].label);
        if (dump_dir && rank == 0)
            dump(ref_label, &ref);
        free(ref_label);
        if (rank == 0)
            tap_diag("%s: reference losses %.6f %.6f %.6f, validation %.6f", models[mi].label, ref.loss[0],
                     ref.loss[1], ref.loss[2], ref.val);
        tap_check_all(MPI_COMM_WORLD, rank != 0 || (ref.loss[2] < ref.loss[0] && ref.p.n > 0),
                      "%s: the single-rank reference learns (%d tensors)", models[mi].label, ref.p.n);
        for (size_t li = 0; li < sizeof layouts / sizeof layouts[0]; li++) {
            if (!(layouts[li].model & (1 << mi)) || layouts[li].world > max_world)
                continue;
            char *label = xasprintf("%s (%s)", layouts[li].label, models[mi].label);
            if (layouts[li].world > size) {
                tap_check(0, "%s: not run: needs %d ranks, this run has %d", label, layouts[li].world, size);
            } else {
                run(models[mi].model, layouts[li].sets, layouts[li].world, &got);
                compare(label, &ref, &got, !strstr(layouts[li].sets, "overlap_grad_reduce=false"),
                        strstr(layouts[li].sets, "grad_reduce_dtype=bf16") != NULL, rank);
                if (dump_dir && rank == 0)
                    dump(label, &got);
                params_free(&got.p);
            }
            free(label);
        }
        params_free(&ref.p);
    }
    if (!only || strchr(only, '5'))
        recompute_modes(size, rank);
    if (!only || strchr(only, '6'))
        graph_modes(rank);
    int rc = tap_done();
    MPI_Finalize();
    return rc;
}
