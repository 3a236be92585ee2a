/* megabench.c: training-step throughput of one configuration, on one device or under mpirun.

       megabench RUN.yaml [--set section.key=value ...] [--steps N] [--warmup N]

   Builds megatrain's trainer for RUN.yaml (any layout of the job's ranks, random tokens), runs
   warm-up steps, then N timed optimizer steps (exactly megatrain's step), and prints tokens/s,
   achieved model TFLOP/s and MFU (GPUs only), peak device memory, and one more step's time per op,
   each against its floor (the larger of its bytes over the memory bandwidth and its FLOPs over the
   matching peak rate), with the step's fixed costs (those that do not grow with its tokens:
   AdamW and the gradients' norm, host round trips, op calls) apart. Per-op times come
   from CUDA events on the backend's compute stream around every op (a wrapping Ops table) on the
   CUDA backend, from the host clock on the CPU; there each op is also an NVTX range named by its
   label, for a profiler (doc/perf.md: ncu --nvtx --nvtx-include "attention_backward/"). */
#include "autoconfig.h"
#include "kernels/ops.h"
#include "src/config.h"
#include "parallel/topo.h"
#include "src/model.h"
#include "src/plan.h"
#include "src/train.h"
#include "base/util.h"

#include <math.h>
#include <mpi.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef HAVE_CUDA
#include "kernels/cuda/check.h"
#include <nvtx3/nvToolsExt.h>
#endif

/* Datasheet ceilings of one H100/H200 SXM (dense bf16 tensor cores, fp32 CUDA cores): the floors
   below use them; MFU uses log.peak_tflops when set, else PEAK_BF16. Memory: the H200's HBM3e
   unless the card is an H100 (HBM3, set_peak_bw). */
#define PEAK_BF16 989e12
#define PEAK_FP32 67e12
static double peak_bw = 4.8e12;
static const char *card = "";

static const char usage[] =
    "usage: megabench RUN.yaml [--set section.key=value ...] [--steps N] [--warmup N]\n"
    "Times N training steps (default 20, after 3 warm-up steps) of RUN.yaml's model with random tokens,\n"
    "alone or under mpirun (any layout), and prints the median, min and max step, tokens/s, model TFLOP/s,\n"
    "MFU (GPUs only), peak memory and rank 0's time per op, with the fixed per-step costs apart.\n";

/* ---------------------------------------------------------------- per-op timing */

/* one op kind (with the shape for matmuls): calls, time, bytes and FLOPs summed */
typedef struct {
    char label[64];
    int calls;
    double ms, bytes, flops, floor_ms;
} OpStat;

#define MAX_STATS 128
#define MAX_MARKS 16384

static const Ops *base; /* the backend being timed */

/* The card's HBM bandwidth for the floors: 3.35 TB/s on an H100 SXM, else the H200's */
static void set_peak_bw(void)
{
#ifdef HAVE_CUDA
    static struct cudaDeviceProp p;
    int dev;
    if (!base->on_device || cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&p, dev) != cudaSuccess)
        return;
    card = p.name;
    if (strstr(p.name, "H100"))
        peak_bw = 3.35e12;
#endif
}
static OpStat stats[MAX_STATS];
static int n_stats;
static struct {
    int stat;
    double t0, t1; /* host clock */
#ifdef HAVE_CUDA
    cudaEvent_t e0, e1;
#endif
} marks[MAX_MARKS];
static int n_marks;
#ifdef HAVE_CUDA
static cudaStream_t events_on; /* the backend's compute stream when the events time the ops, else NULL */
#endif

static int stat_find(const char *label)
{
    for (int i = 0; i < n_stats; i++)
        if (!strcmp(stats[i].label, label))
            return i;
    if (n_stats == MAX_STATS)
        fail("megabench: more than %d op kinds", MAX_STATS);
    snprintf(stats[n_stats].label, sizeof stats[n_stats].label, "%s", label);
    return n_stats++;
}

/* Before an op: its label, minimum bytes moved, FLOPs and the FLOP rate it runs at. */
static void mark_begin(const char *label, double bytes, double flops, double peak)
{
    if (n_marks == MAX_MARKS)
        fail("megabench: more than %d timed ops in one step", MAX_MARKS);
    int s = stat_find(label);
    stats[s].calls++;
    stats[s].bytes += bytes;
    stats[s].flops += flops;
    stats[s].floor_ms += 1e3 * fmax(bytes / peak_bw, flops / peak);
    marks[n_marks].stat = s;
#ifdef HAVE_CUDA
    if (events_on) {
        nvtxRangePushA(label); /* lets a profiler pick an op's kernels: ncu --nvtx --nvtx-include LABEL/ */
        CUDA_CHECK(cudaEventRecord(marks[n_marks].e0, events_on));
        return;
    }
#endif
    marks[n_marks].t0 = util_now();
}

static void mark_end(void)
{
#ifdef HAVE_CUDA
    if (events_on) {
        CUDA_CHECK(cudaEventRecord(marks[n_marks++].e1, events_on));
        nvtxRangePop();
        return;
    }
#endif
    base->sync();
    marks[n_marks++].t1 = util_now();
}

/* after the step: the marks' times into their stats */
static void marks_collect(void)
{
    base->sync();
    for (int i = 0; i < n_marks; i++) {
        double ms = 1e3 * (marks[i].t1 - marks[i].t0);
#ifdef HAVE_CUDA
        if (events_on) {
            float f;
            CUDA_CHECK(cudaEventElapsedTime(&f, marks[i].e0, marks[i].e1));
            ms = f;
        }
#endif
        stats[marks[i].stat].ms += ms;
    }
    n_marks = 0;
}

/* every op wrapped: TIMED(label, bytes, flops, peak, call) */
#define TIMED(label, bytes, flops, peak, call)                                                                 \
    do {                                                                                                       \
        mark_begin(label, (double)(bytes), (double)(flops), peak);                                             \
        call;                                                                                                  \
        mark_end();                                                                                            \
    } while (0)
#define AS ((double)base->act_size)

static void t_zero(void *p, size_t bytes)
{
    TIMED("zero", bytes, 0, PEAK_BF16, base->zero(p, bytes));
}
/* host round trips: transfers and synchronisations (ops that return a scalar, such as sumsq and
   crossentropy, are round trips too) */
static void t_upload(void *d, const void *h, size_t bytes) { TIMED("upload", bytes, 0, PEAK_BF16, base->upload(d, h, bytes)); }
static void t_download(void *h, const void *d, size_t bytes)
{
    TIMED("download", bytes, 0, PEAK_BF16, base->download(h, d, bytes));
}
static void t_sync(void) { TIMED("sync", 0, 0, PEAK_BF16, base->sync()); }
static void t_copy(void *d, const void *s, size_t n) { TIMED("copy", 2 * n * AS, 0, PEAK_BF16, base->copy(d, s, n)); }
static void t_accumulate(void *d, const void *s, size_t n)
{
    TIMED("accumulate", 3 * n * AS, 0, PEAK_BF16, base->accumulate(d, s, n));
}
static void t_silu_forward(void *o, const void *i, size_t n)
{
    TIMED("silu_forward", 2 * n * AS, 0, PEAK_BF16, base->silu_forward(o, i, n));
}
static void t_silu_backward(void *di, const void *dout, const void *i, size_t n, int acc, void *re)
{
    TIMED("silu_backward", (3 + !!acc + !!re) * n * AS, 0, PEAK_BF16, base->silu_backward(di, dout, i, n, acc, re));
}
static void t_swiglu_forward(void *o, const void *a, const void *b, size_t n)
{
    TIMED("swiglu_forward", 3 * n * AS, 0, PEAK_BF16, base->swiglu_forward(o, a, b, n));
}
static void t_swiglu_backward(void *da, void *db, const void *dout, const void *a, const void *b, size_t n, int acc,
                              void *re)
{
    TIMED("swiglu_backward", (5 + 2 * !!acc + !!re) * n * AS, 0, PEAK_BF16,
          base->swiglu_backward(da, db, dout, a, b, n, acc, re));
}
static void t_embedding_forward(void *out, const int32_t *tok, const void *table, int T, int D, int v0, int V,
                                float scale)
{
    TIMED("embedding_forward", 2.0 * T * D * AS, 0, PEAK_BF16,
          base->embedding_forward(out, tok, table, T, D, v0, V, scale));
}
static void t_embedding_backward(float *dt, const void *dout, const int32_t *tok, int T, int D, int v0, int V,
                                 float scale, int mode)
{
    TIMED("embedding_backward", (double)T * D * (AS + 8) + (mode & GRAD_NEW ? 4.0 * V * D : 0), 0, PEAK_BF16,
          base->embedding_backward(dt, dout, tok, T, D, v0, V, scale, mode));
}
static void t_matmul_forward(void *out, const void *inp, const void *w, const void *bias, const void *res, int T,
                             int IC, int OC)
{
    char label[64];
    snprintf(label, sizeof label, "matmul_forward %dx%d", IC, OC);
    TIMED(label, ((double)T * IC + (double)OC * IC + (res ? 2.0 : 1.0) * T * OC) * AS, 2.0 * T * IC * OC, PEAK_BF16,
          base->matmul_forward(out, inp, w, bias, res, T, IC, OC));
}
static void t_matmul_backward(void *dinp, float *dw, float *dbias, const void *dout, const void *inp, const void *w,
                              int T, int IC, int OC, int acc)
{
    char label[64];
    snprintf(label, sizeof label, "matmul_backward %dx%d", IC, OC);
    const int gi = dinp != NULL, gw = dw != NULL; /* which of the two products runs */
    double bytes = (double)T * OC * AS + gi * ((double)OC * IC + (acc & GRAD_ADD ? 2.0 : 1.0) * T * IC) * AS +
                   gw * ((double)T * IC * AS + (acc & GRAD_NEW ? 4.0 : 8.0) * OC * IC);
    TIMED(label, bytes, 2.0 * (gi + gw) * T * IC * OC, PEAK_BF16,
          base->matmul_backward(dinp, dw, dbias, dout, inp, w, T, IC, OC, acc));
}
static void t_rmsnorm_forward(void *y, float *r, const void *x, const void *w, int T, int D, float eps)
{
    TIMED("rmsnorm_forward", 2.0 * T * D * AS, 0, PEAK_BF16, base->rmsnorm_forward(y, r, x, w, T, D, eps));
}
static void t_rmsnorm_backward(void *dx, float *dw, const void *dy, const void *x, const float *r, const void *w,
                               int T, int D, int acc)
{
    TIMED("rmsnorm_backward", 4.0 * T * D * AS, 0, PEAK_BF16, base->rmsnorm_backward(dx, dw, dy, x, r, w, T, D, acc));
}
static void t_layernorm_forward(void *y, float *m, float *r, const void *x, const void *w, const void *b, int T,
                                int D, float eps)
{
    TIMED("layernorm_forward", 2.0 * T * D * AS, 0, PEAK_BF16, base->layernorm_forward(y, m, r, x, w, b, T, D, eps));
}
static void t_layernorm_backward(void *dx, float *dw, float *db, const void *dy, const void *x, const float *m,
                                 const float *r, const void *w, int T, int D, int acc)
{
    TIMED("layernorm_backward", 4.0 * T * D * AS, 0, PEAK_BF16,
          base->layernorm_backward(dx, dw, db, dy, x, m, r, w, T, D, acc));
}
static void t_tsnorm_forward(void *y, float *mean, float *rstd, const void *x, const void *w, const void *b,
                             ChunkState cs, int B, int L, int D, int G, float eps)
{
    TIMED("tsnorm_forward", 2.0 * B * L * D * AS + 8.0 * B * L * G, 0, PEAK_BF16,
          base->tsnorm_forward(y, mean, rstd, x, w, b, cs, B, L, D, G, eps));
}
static void t_tsnorm_backward(void *dx, float *dw, float *db, const void *dy, const void *x, const float *mean,
                              const float *rstd, const void *w, ChunkState cs, int B, int L, int D, int G, int acc)
{
    TIMED("tsnorm_backward", 4.0 * B * L * D * AS + 8.0 * B * L * G, 0, PEAK_BF16,
          base->tsnorm_backward(dx, dw, db, dy, x, mean, rstd, w, cs, B, L, D, G, acc));
}
/* CEMA's floor counts the recurrence's fp32 FLOPs (complex multiply-add per step and state:
   forward 8 for h plus 4 for y, twice in backward plus the reverse carry and its sums ~ 24) */
static void t_cema_forward(void *y, void *saved, const void *u, CemaParams p, ChunkState cs, int B, int L, int D,
                           int N)
{
    TIMED("cema_forward", 2.0 * B * L * D * AS, 12.0 * B * L * D * N, PEAK_FP32,
          base->cema_forward(y, saved, u, p, cs, B, L, D, N));
}
static void t_cema_backward(void *du, CemaGrads g, const void *dy, const void *saved, const void *u, CemaParams p,
                            ChunkState cs, int B, int L, int D, int N, int acc)
{
    TIMED("cema_backward", 4.0 * B * L * D * AS, 40.0 * B * L * D * N, PEAK_FP32,
          base->cema_backward(du, g, dy, saved, u, p, cs, B, L, D, N, acc));
}
static void t_qk_forward(void *q, void *k, float *rstd, const void *zs, const void *gm, const void *bt, int B, int L,
                         int H, int dz, int C, float base_, float eps)
{
    TIMED("qk_forward", 3.0 * B * L * H * dz * AS, 0, PEAK_BF16,
          base->qk_forward(q, k, rstd, zs, gm, bt, B, L, H, dz, C, base_, eps));
}
static void t_qk_backward(void *dzs, float *dg, float *db, void *dq, void *dk, const void *zs, const float *rstd,
                          const void *gm, int B, int L, int H, int dz, int C, float base_, int acc)
{
    TIMED("qk_backward", 5.0 * B * L * H * dz * AS, 0, PEAK_BF16,
          base->qk_backward(dzs, dg, db, dq, dk, zs, rstd, gm, B, L, H, dz, C, base_, acc));
}
/* attention FLOPs as model_flops_per_token counts them: the causal half of each chunk */
static double attn_flops(int B, int L, int H, int dz, int dv, int C)
{
    double c = C < L ? C : L;
    return 2.0 * B * L * H * (dz + dv) * (c + 1) / 2;
}
static void t_attention_forward(void *o, float *lse, void *saved, const void *q, const void *k, const void *v, int B,
                                int L, int H, int dz, int dv, int C)
{
    TIMED("attention_forward", (double)B * L * H * (2.0 * dz + 2.0 * dv) * AS, attn_flops(B, L, H, dz, dv, C),
          PEAK_BF16, base->attention_forward(o, lse, saved, q, k, v, B, L, H, dz, dv, C));
}
static void t_attention_backward(void *dq, void *dk, void *dvv, const void *dout, const void *saved, const void *q,
                                 const void *k, const void *v, const void *o, const float *lse, int B, int L, int H,
                                 int dz, int dv, int C, int acc)
{
    TIMED("attention_backward", (double)B * L * H * (6.0 * dz + 5.0 * dv) * AS,
          2 * attn_flops(B, L, H, dz, dv, C), PEAK_BF16,
          base->attention_backward(dq, dk, dvv, dout, saved, q, k, v, o, lse, B, L, H, dz, dv, C, acc));
}
static void t_crossentropy_stats(double *stats, const void *logits, const int32_t *targets, int T, int V, int v0)
{
    TIMED("crossentropy_stats", (double)T * V * AS, 0, PEAK_BF16,
          base->crossentropy_stats(stats, logits, targets, T, V, v0));
}
static void t_crossentropy(double *loss, void *logits, const int32_t *targets, const double *all, int n, int T, int V,
                           int v0, float gs)
{
    TIMED("crossentropy", 2.0 * T * V * AS, 0, PEAK_BF16,
          base->crossentropy(loss, logits, targets, all, n, T, V, v0, gs));
}
static void t_f32_to_bf16(void *d, const float *s, size_t n)
{
    TIMED("f32_to_bf16", 6.0 * n, 0, PEAK_BF16, base->f32_to_bf16(d, s, n));
}
static void t_bf16_to_f32(float *d, const void *s, size_t n)
{
    TIMED("bf16_to_f32", 6.0 * n, 0, PEAK_BF16, base->bf16_to_f32(d, s, n));
}
static double t_sumsq(const float *x, size_t n)
{
    double r;
    TIMED("sumsq", 4.0 * n, 0, PEAK_BF16, r = base->sumsq(x, n));
    return r;
}
static void t_adamw(float *p, void *pa, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2,
                    float eps, float wd, int step, float gs)
{
    TIMED("adamw", n * (28.0 + AS), 0, PEAK_BF16, base->adamw(p, pa, g, m, v, n, lr, b1, b2, eps, wd, step, gs));
}

static Ops timed_ops(const Ops *o)
{
    Ops t = *o;
    t.upload = t_upload, t.download = t_download, t.sync = t_sync;
    t.zero = t_zero, t.copy = t_copy, t.accumulate = t_accumulate;
    t.silu_forward = t_silu_forward, t.silu_backward = t_silu_backward;
    t.swiglu_forward = t_swiglu_forward, t.swiglu_backward = t_swiglu_backward;
    t.embedding_forward = t_embedding_forward, t.embedding_backward = t_embedding_backward;
    t.matmul_forward = t_matmul_forward, t.matmul_backward = t_matmul_backward;
    t.rmsnorm_forward = t_rmsnorm_forward, t.rmsnorm_backward = t_rmsnorm_backward;
    t.layernorm_forward = t_layernorm_forward, t.layernorm_backward = t_layernorm_backward;
    t.tsnorm_forward = t_tsnorm_forward, t.tsnorm_backward = t_tsnorm_backward;
    t.cema_forward = t_cema_forward, t.cema_backward = t_cema_backward;
    t.qk_forward = t_qk_forward, t.qk_backward = t_qk_backward;
    t.attention_forward = t_attention_forward, t.attention_backward = t_attention_backward;
    t.crossentropy_stats = t_crossentropy_stats, t.crossentropy = t_crossentropy;
    t.sumsq = t_sumsq, t.adamw = t_adamw, t.f32_to_bf16 = t_f32_to_bf16, t.bf16_to_f32 = t_bf16_to_f32;
    t.graph_run = NULL; /* every op on its own, between its events */
    return t;
}

/* The step's fixed costs, which one sequence per step does not spread over more tokens: AdamW and
   the norm of the whole gradient buffer, host round trips, op calls (each one or more kernel
   launches), and the wall time outside every op (host work and launch gaps). */
static void fixed_costs(double wall_ms, double ops_ms)
{
    static const char *const fixed[] = {"adamw", "sumsq"};
    static const char *const trips[] = {"upload", "download", "sync", "sumsq"};
    double fixed_ms = 0, trip_ms = 0;
    int calls = 0, ntrips = 0;
    for (int i = 0; i < n_stats; i++) {
        const OpStat *s = &stats[i];
        calls += s->calls;
        for (size_t k = 0; k < sizeof fixed / sizeof *fixed; k++)
            if (!strcmp(s->label, fixed[k])) {
                printf("  fixed per step: %-16s %8.2f ms\n", s->label, s->ms);
                fixed_ms += s->ms;
            }
        for (size_t k = 0; k < sizeof trips / sizeof *trips; k++)
            if (!strcmp(s->label, trips[k])) {
                ntrips += s->calls;
                trip_ms += s->ms;
            }
    }
    printf("  fixed per step: %d host round trips (%.2f ms inside them), %d op calls, %.2f ms of wall time outside "
           "ops\n",
           ntrips, trip_ms, calls, wall_ms - ops_ms);
    printf("  fixed per step: %.2f ms (AdamW, gradient norm) + %.2f ms outside ops = %.1f%% of the step;"
           " per-token ops %.2f ms\n",
           fixed_ms, wall_ms - ops_ms, 100 * (fixed_ms + wall_ms - ops_ms) / wall_ms, ops_ms - fixed_ms);
}

/* ---------------------------------------------------------------- the run */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_stat(const void *a, const void *b)
{
    double x = ((const OpStat *)a)->ms, y = ((const OpStat *)b)->ms;
    return x > y ? -1 : x < y;
}

static long parse_count(const char *flag, const char *v)
{
    char *end;
    long k = v ? strtol(v, &end, 10) : -1;
    if (!v || *end || k < 0 || k > 100000)
        fail_input("%s: expected a number of steps from 0 to 100000, got '%s'", flag, v ? v : "");
    return k;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    util_set_progname("megabench");
    const char *yaml = NULL;
    int steps = 20, warmup = 3;
    Config c;
    config_defaults(&c);
    const char *sets[256];
    int nsets = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            MPI_Finalize();
            return 0;
        } else if (!strcmp(argv[i], "--set")) {
            if (i + 1 >= argc || nsets == 256)
                fail_input("--set needs section.key=value");
            sets[nsets++] = argv[++i];
        } else if (!strcmp(argv[i], "--steps")) {
            steps = (int)parse_count("--steps", i + 1 < argc ? argv[++i] : NULL);
        } else if (!strcmp(argv[i], "--warmup")) {
            warmup = (int)parse_count("--warmup", i + 1 < argc ? argv[++i] : NULL);
        } else if (argv[i][0] == '-') {
            fail_input("unknown option '%s' (see megabench --help)", argv[i]);
        } else if (!yaml) {
            yaml = argv[i];
        } else {
            fail_input("unexpected argument '%s' (see megabench --help)", argv[i]);
        }
    }
    if (!yaml)
        fail_input("no run file given (%s)", usage);
    if (steps < 1)
        fail_input("--steps: at least one timed step");
    config_load_yaml(&c, yaml);
    for (int i = 0; i < nsets; i++)
        config_set(&c, sets[i]);
    if (!c.model.vocab_size)
        c.model.vocab_size = 32000; /* random tokens: a LLaMA-sized vocabulary unless set */
#ifdef HAVE_CUDA
    const int cuda_built = 1;
#else
    const int cuda_built = 0;
#endif
    int world, rank;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    config_finish(&c, world, 0, cuda_built);
    if (c.train.threads > 0)
        omp_set_num_threads(c.train.threads);
    Topo topo;
    topo_init(&topo, MPI_COMM_WORLD, c.parallel.tp, c.parallel.pp, c.parallel.cp);
    /* as megatrain does: a layout that does not fit stops here, saying what would */
    plan_check_run(&c, yaml, ops_get(config_device_name(c.train.device)), &topo);
    Trainer tr; /* megatrain's own step, on random tokens */
    trainer_init(&tr, &c, &topo, NULL);
    base = tr.ops;
    set_peak_bw();
    const ModelDims d = tr.dims;
    const int micro = c.parallel.micro_batches, B = c.data.batch_size, L = c.data.seq_len;

    const double tokens = (double)B * L, flops_token = model_flops_per_token(&d, L);
    const double peak = world * (c.log.peak_tflops > 0 ? c.log.peak_tflops * 1e12 : PEAK_BF16);
    const double params = (double)model_param_count(&d), mm = params - (d.share_emb ? 0.0 : (double)d.vocab * d.D);
    const double cc = d.C < L ? d.C : L;
    if (rank == 0) {
        printf("megabench: %s on %s%s%s: %d layers, D=%d, H=%d, Z=%d, V=%d, F=%d (%s), C=%d, G=%d, N=%d, vocab %d\n",
               c.model.preset[0] ? c.model.preset : "explicit dims", base->name, card[0] ? ", " : "", card,
               d.n_layers, d.D, d.H, d.Z, d.V, d.F, d.swiglu ? "swiglu" : "silu", d.C, d.G, d.N, d.vocab);
        printf("  %d ranks (dp %d, tp %d, pp %d, cp %d); global batch %d x %d tokens (%d micro-batches), recompute "
               "%s, graph %s; %.4g parameters\n",
               world, topo.dp, topo.tp, topo.pp, topo.cp, B, L, micro, config_recompute_name(c.train.recompute),
               c.train.graph ? "on" : "off", params);
        printf("  model FLOPs/token = 6 x %.4g (parameters in matmuls) + 6 x layers x (Z + V) x (c + 1) / 2"
               " (attention, c = %g) = %.4g\n",
               mm, cc, flops_token);
    }

    double loss = 0, first = NAN, gn, lr;
    for (int s = 1; s <= warmup; s++) {
        loss = trainer_step(&tr, &gn, &lr);
        first = s == 1 ? loss : first;
    }
    double *t = xmalloc((size_t)steps * sizeof(double));
    for (int s = 0; s < steps; s++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = util_now();
        loss = trainer_step(&tr, &gn, &lr);
        t[s] = util_now() - t0;
    }
    qsort(t, (size_t)steps, sizeof(double), cmp_double);
    const double step_s = t[steps / 2], tflops = flops_token * tokens / step_s / 1e12;
    const double mem = base->peak_memory ? (double)base->peak_memory() / 1073741824.0 : 0;
    char mfu_text[64] = "MFU applies to GPUs only"; /* the peak is a GPU's tensor-core rate */
    if (base->on_device)
        snprintf(mfu_text, sizeof mfu_text, "MFU %.1f%% of %.0f TFLOP/s", 100 * tflops * 1e12 / peak, peak / 1e12);
    if (rank == 0) {
        printf("  step time: median %.1f ms of %d (min %.1f, max %.1f); loss %.4f at the first step, %.4f at the "
               "last\n",
               1e3 * step_s, steps, 1e3 * t[0], 1e3 * t[steps - 1], first, loss);
        printf("  tokens/s %.0f (%.0f per rank); model TFLOP/s %.1f (%.1f per rank); %s; peak memory %.2f GiB per "
               "rank\n",
               tokens / step_s, tokens / step_s / world, tflops, tflops / world, mfu_text, mem);
    }

    /* one more step through the timing wrapper */
    Ops timed = timed_ops(base);
#ifdef HAVE_CUDA
    events_on = base->stream ? (cudaStream_t)base->stream() : NULL;
    if (events_on)
        for (int i = 0; i < MAX_MARKS; i++) {
            CUDA_CHECK(cudaEventCreate(&marks[i].e0));
            CUDA_CHECK(cudaEventCreate(&marks[i].e1));
        }
#endif
    trainer_set_ops(&tr, &timed);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = util_now();
    trainer_step(&tr, &gn, &lr);
    marks_collect();
    const double timed_ms = 1e3 * (util_now() - t0);
    trainer_set_ops(&tr, base);
    qsort(stats, (size_t)n_stats, sizeof stats[0], cmp_stat);
    double sum_ms = 0, sum_floor = 0;
    if (rank != 0)
        n_stats = 0; /* rank 0 reports */
    for (int i = 0; i < n_stats; i++) {
        sum_ms += stats[i].ms;
        sum_floor += stats[i].floor_ms;
    }
    if (rank == 0) {
        printf("  time per op (rank 0, one step, %.1f ms wall with the events, %.1f ms inside ops; floor = max(bytes /"
               " %.1f TB/s, FLOPs / peak), peak %.0f TFLOP/s bf16, %.0f fp32 for CEMA):\n",
               timed_ms, sum_ms, peak_bw / 1e12, PEAK_BF16 / 1e12, PEAK_FP32 / 1e12);
        printf("  %-28s %6s %10s %6s %10s %7s %9s %8s\n", "op", "calls", "ms", "%", "floor ms", "x floor", "TFLOP/s",
               "GB/s");
        for (int i = 0; i < n_stats; i++) {
            const OpStat *s = &stats[i];
            printf("  %-28s %6d %10.2f %6.1f %10.2f %7.1f %9.1f %8.0f\n", s->label, s->calls, s->ms,
                   100 * s->ms / sum_ms, s->floor_ms, s->floor_ms > 0 ? s->ms / s->floor_ms : 0,
                   s->flops / s->ms / 1e9, s->bytes / s->ms / 1e6);
        }
        printf("  %-28s %6s %10.2f %6.1f %10.2f %7.1f\n", "total", "", sum_ms, 100.0, sum_floor, sum_ms / sum_floor);
        fixed_costs(timed_ms, sum_ms);
        printf("megabench: %s L=%d B=%d ranks=%d recompute=%s graph=%s: %.0f tokens/s (%.0f per rank), %.1f "
               "TFLOP/s, %s, %.2f GiB\n",
               c.model.preset[0] ? c.model.preset : "explicit", L, B, world, config_recompute_name(c.train.recompute),
               c.train.graph ? "on" : "off", tokens / step_s, tokens / step_s / world, tflops, mfu_text, mem);
    }
    free(t);
    trainer_free(&tr);
    topo_free(&topo);
    MPI_Finalize();
    return 0;
}
