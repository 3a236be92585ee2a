/* plan.c: the memory plan (see plan.h) and `megatrain plan`. */
#include "src/plan.h"

#include "base/cliopt.h"
#include "base/util.h"
#include "parallel/cp.h"
#include "parallel/mpi_check.h"
#include "parallel/pipeline.h"
#include "parallel/tp.h"
#include "parallel/watchdog.h"
#include "parallel/zero.h"
#include "src/cli.h"
#include "src/model.h"
#include "src/train.h"

#include <stdlib.h>
#include <string.h>

#define GIB 1073741824.0

/* The bytes of rank (stage, cp_rank) of the layout (tp rank 0 and dp rank 0 stand for theirs):
   what trainer_init allocates, from the same shape and sizing functions. */
static PlanRow plan_rank(const Config *c, const ModelDims *d, const Ops *ops, const Plan *p, int stage, int cp_rank)
{
    const TrainShape sh = train_shape(c, d, p->dp, p->tp, p->pp, p->cp, 0, stage);
    const int micro = c->parallel.micro_batches, in = comm_stages_in_backend(ops, sh.via);
    PlanRow r = {.stage = stage, .cp_first = cp_rank, .cp_last = cp_rank};
    Model m;
    model_shape(&m, d, &sh.part, ops, sh.mb_rows, sh.Lloc, RECOMPUTE_NONE, sh.slots, sh.pad_to);
    const ModelBytes mb = model_measure(&m);
    for (int k = 0; k < RECOMPUTE_MODES; k++) { /* only the activations' layout depends on it */
        m.recompute = k;
        r.acts[k] = model_measure(&m).acts;
    }
    r.params = mb.params;
    r.grads = mb.grads;
    r.backward = mb.backward;
    if (ops->scratch_plan)
        r.scratch = ops->scratch_plan(sh.mb_rows, sh.Lloc, d->C, m.Dl, m.Gl);
    const ZeroBytes zb = zero_plan(ops, sh.via, p->dp * p->cp, m.n_padded, sh.bucket, sh.wire);
    r.master = zb.master;
    r.grads += zb.grad;
    r.moments = zb.m + zb.v;
    r.dp = zb.send + zb.recv + zb.stage;
    const size_t piece = (size_t)m.T * m.Dl;
    r.tp = p->tp > 1 ? tp_plan(ops, p->tp, piece) : 0;
    if (p->cp > 1)
        r.cp = in * (size_t)cp_sends(cp_rank, p->cp, model_boundaries(&m), micro) * comm_plan_send(m.state_elems, COMM_F32);
    r.pp = in * (size_t)pipeline_sends(stage, p->pp, micro) * comm_plan_send(piece, comm_type_of(ops->act));
    model_unshape(&m);
    r.total = r.params + r.master + r.grads + r.moments + r.acts[p->recompute] + r.backward + r.scratch + r.tp + r.cp +
              r.pp + r.dp;
    return r;
}

/* two rows with the same bytes of every kind */
static int same_bytes(const PlanRow *a, const PlanRow *b)
{
    PlanRow x = *a, y = *b;
    x.stage = y.stage = x.cp_first = y.cp_first = x.cp_last = y.cp_last = 0;
    return !memcmp(&x, &y, sizeof x);
}

void plan_make(Plan *p, const Config *c, const Ops *ops, int world)
{
    ModelDims d;
    model_dims_from_config(&d, c);
    *p = (Plan){.world = world,
                .tp = c->parallel.tp,
                .pp = c->parallel.pp,
                .cp = c->parallel.cp,
                .recompute = c->train.recompute,
                .ops = ops};
    p->dp = world / (p->tp * p->pp * p->cp);
    p->rows = xcalloc((size_t)p->pp * p->cp, sizeof *p->rows);
    for (int s = 0; s < p->pp; s++)
        for (int r = 0; r < p->cp; r++) {
            PlanRow row = plan_rank(c, &d, ops, p, s, r);
            if (r > 0 && same_bytes(&row, &p->rows[p->n - 1])) { /* the middle of a cp chain */
                p->rows[p->n - 1].cp_last = r;
                continue;
            }
            p->rows[p->n++] = row;
        }
    for (int i = 1; i < p->n; i++)
        if (p->rows[i].total > p->rows[p->peak].total)
            p->peak = i;
}

void plan_free(Plan *p)
{
    free(p->rows);
    memset(p, 0, sizeof *p);
}

/* "stage 1 cp 0-2", or "every rank" */
static void position(const Plan *p, const PlanRow *r, char *buf, size_t n)
{
    int k = 0;
    if (p->pp > 1)
        k += snprintf(buf + k, n - (size_t)k, "stage %d ", r->stage);
    if (p->cp > 1)
        k += r->cp_first == r->cp_last ? snprintf(buf + k, n - (size_t)k, "cp %d ", r->cp_first)
                                       : snprintf(buf + k, n - (size_t)k, "cp %d-%d ", r->cp_first, r->cp_last);
    if (k == 0)
        snprintf(buf, n, "every rank");
    else
        buf[k - 1] = '\0';
}

static void layout_name(const Plan *p, char *buf, size_t n)
{
    snprintf(buf, n, "%d rank%s: dp %d x tp %d x pp %d x cp %d", p->world, p->world == 1 ? "" : "s", p->dp, p->tp,
             p->pp, p->cp);
}

void plan_print(const Plan *p, const char *path, int bytes, FILE *f)
{
    char lay[128];
    layout_name(p, lay, sizeof lay);
    fprintf(f, "memory plan of %s on %s, %s (%s), train.recompute %s; %s per rank\n", path, lay, p->ops->name,
            p->ops->act == DTYPE_BF16 ? "bf16" : p->ops->act == DTYPE_F64 ? "fp64" : "fp32",
            config_recompute_name(p->recompute), bytes ? "bytes" : "GiB");
    static const char *heads[] = {"params", "master", "grads", "moments", "acts-rc", "acts-ew", "acts+rc",
                                  "backward", "scratch", "tp", "cp", "pp", "dp", "total"};
    const int w = bytes ? 13 : 8, nh = (int)(sizeof heads / sizeof heads[0]);
    fprintf(f, "%-16s", "position");
    for (int i = 0; i < nh; i++)
        fprintf(f, " %*s", w, heads[i]);
    fputc('\n', f);
    for (int i = 0; i < p->n; i++) {
        const PlanRow *r = &p->rows[i];
        const size_t v[] = {r->params, r->master, r->grads, r->moments, r->acts[RECOMPUTE_NONE],
                            r->acts[RECOMPUTE_ELEMENTWISE], r->acts[RECOMPUTE_BLOCKS], r->backward, r->scratch,
                            r->tp, r->cp, r->pp, r->dp, r->total};
        char pos[64];
        position(p, r, pos, sizeof pos);
        fprintf(f, "%-16s", pos);
        for (int k = 0; k < nh; k++)
            if (bytes)
                fprintf(f, " %*zu", w, v[k]);
            else
                fprintf(f, " %*.2f", w, v[k] / GIB);
        fputc('\n', f);
    }
    fprintf(f, "acts-rc, acts-ew, acts+rc: activations with train.recompute none, elementwise and blocks (total "
               "counts the run's); tp, cp, pp, dp: communication buffers; scratch: the backend's own (attention, "
               "CEMA, TimestepNorm, GEMM); not counted: the CUDA, cuBLAS and NCCL contexts\n");
}

int plan_fits(const Plan *p, size_t limit) { return !limit || p->rows[p->peak].total <= limit; }

/* The largest rank's total with one change to c (the same world). */
static size_t plan_with(const Config *c, const Plan *p, int recompute, int micro)
{
    Config alt = *c;
    alt.train.recompute = recompute;
    alt.parallel.micro_batches = micro;
    Plan q;
    plan_make(&q, &alt, p->ops, p->world);
    const size_t t = q.rows[q.peak].total;
    plan_free(&q);
    return t;
}

void plan_check(const Plan *p, const Config *c, const char *path, size_t limit, const char *from)
{
    if (plan_fits(p, limit))
        return;
    const PlanRow *r = &p->rows[p->peak];
    char lay[128], pos[64], fix[512] = "", *at = fix;
    layout_name(p, lay, sizeof lay);
    position(p, r, pos, sizeof pos);
    const size_t end = sizeof fix;
    const int micro = c->parallel.micro_batches, rows = c->data.batch_size / p->dp;
    if (p->recompute == RECOMPUTE_NONE) { /* the cheaper recomputation first, where it is enough */
        const size_t ew = plan_with(c, p, RECOMPUTE_ELEMENTWISE, micro);
        if (ew <= limit)
            at += snprintf(at, end - (size_t)(at - fix), "train.recompute: elementwise (%.3g GiB); ", ew / GIB);
    }
    if (p->recompute != RECOMPUTE_BLOCKS)
        at += snprintf(at, end - (size_t)(at - fix), "train.recompute: blocks (%.3g GiB); ",
                       plan_with(c, p, RECOMPUTE_BLOCKS, micro) / GIB);
    if (rows / micro > 1 && rows % (2 * micro) == 0)
        at += snprintf(at, end - (size_t)(at - fix), "parallel.micro_batches: %d, %d rows per micro-batch (%.3g GiB); ",
                       2 * micro, rows / (2 * micro), plan_with(c, p, p->recompute, 2 * micro) / GIB);
    fail_input_all("%s: the memory plan of %s needs %.3g GiB per rank (%s: parameters %.3g, gradients %.3g, "
                   "optimizer %.3g, activations %.3g, scratch %.3g, communication %.3g) but %s is %.3g GiB; to fit: %smore "
                   "parallel.tp or parallel.pp (they split parameters, gradients and activations) or parallel.cp "
                   "(activations); megatrain plan %s --world %d shows every kind",
                   path, lay, r->total / GIB, pos, r->params / GIB, r->grads / GIB, (r->master + r->moments) / GIB,
                   (r->acts[p->recompute] + r->backward) / GIB, r->scratch / GIB, (r->tp + r->cp + r->pp + r->dp) / GIB, from,
                   limit / GIB, fix, path, p->world);
}

/* the smallest of the ranks' values (0 counts as none) */
static size_t agree_min(MPI_Comm comm, size_t v)
{
    unsigned long long x = v ? v : ~0ULL;
    MPI_Request r;
    MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, &x, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, comm, &r));
    watchdog_wait(&r, 1, "all-reduce of the memory limit", "world", -1);
    return x == ~0ULL ? 0 : (size_t)x;
}

void plan_check_run(const Config *c, const char *path, const Ops *ops, const Topo *t)
{
    if (!ops)
        return; /* not built here: trainer_init says so */
    const int own = c->train.memory_gib > 0;
    if (!own && ops->select_device) /* as trainer_init will: the device whose memory counts */
        ops->select_device(t->local_rank);
    const size_t limit = agree_min(t->world_comm, own ? (size_t)(c->train.memory_gib * GIB)
                                                      : ops->device_memory ? ops->device_memory() : 0);
    if (!limit)
        return;
    Plan p;
    plan_make(&p, c, ops, t->world);
    plan_check(&p, c, path, limit, own ? "train.memory_gib" : "the device's memory");
    plan_free(&p);
}

static const char usage[] =
    "usage: megatrain plan RUN.yaml --world N [--gpu-mem GiB] [--bytes] [--set section.key=value ...]\n"
    "\n"
    "Print the memory each rank of RUN.yaml's layout on N ranks would allocate, by kind, without\n"
    "allocating it or needing the device: parameters (compute copy), fp32 master weights, gradients,\n"
    "AdamW moments, activations under each train.recompute (none, elementwise, blocks), backward's\n"
    "scratch, communication buffers (tp, cp, pp, dp) and the total. The numbers come from the code\n"
    "that sizes a run's allocations (doc/parallel.md).\n"
    "\n"
    "Options:\n"
    "  --world N         the job's ranks (dp = N / (tp * pp * cp))\n"
    "  --gpu-mem GiB     memory per rank: exit 2, saying what would fit, when a rank needs more\n"
    "                    (default: train.memory_gib; 0 or unset: no check)\n"
    "  --bytes           print bytes instead of GiB\n"
    "  --set section.key=value  override one config key (repeatable)\n";

int plan_main(int argc, char **argv)
{
    CliRun run = {0};
    int world = 0, bytes = 0;
    double gpu_mem = -1;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = cliopt_value(argc, argv, &i, "--world", NULL)))
            world = (int)cliopt_int("--world", v, 1, 1 << 24);
        else if ((v = cliopt_value(argc, argv, &i, "--gpu-mem", NULL)))
            gpu_mem = cliopt_double("--gpu-mem", v, 0, 1e9);
        else if (!strcmp(argv[i], "--bytes"))
            bytes = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            cli_help(usage);
        else if (!cli_run_arg(&run, argc, argv, &i))
            fail_input_all("%s '%s' (see megatrain plan --help)",
                           argv[i][0] == '-' && argv[i][1] ? "unknown option" : "unexpected argument", argv[i]);
    }
    if (!world)
        fail_input_all("plan needs --world N, the ranks to lay the run out on (see megatrain plan --help)");
    Config c;
    cli_run_config(&run, &c);
    int vocab = 0;
    if (!c.model.vocab_size && (c.data.path[0] || c.data.blend[0])) {
        Dataset *ds = cli_open_split(&c, "train");
        vocab = dataset_vocab(ds);
        dataset_close(ds);
    }
    config_finish(&c, world, vocab, 1); /* the plan needs no CUDA to describe it */
    const Ops *ops = ops_describe(config_device_name(c.train.device));
    Plan p;
    plan_make(&p, &c, ops, world);
    if (util_world_rank() == 0)
        plan_print(&p, run.yaml, bytes, stdout);
    fflush(stdout);
    const int flag = gpu_mem >= 0;
    plan_check(&p, &c, run.yaml, (size_t)((flag ? gpu_mem : c.train.memory_gib) * GIB),
               flag ? "--gpu-mem" : "train.memory_gib");
    plan_free(&p);
    return 0;
}
