/* eval.c: `megatrain eval` (see eval.h). */
#include "src/eval.h"

#include "base/cliopt.h"
#include "base/util.h"
#include "data/sampler.h"
#include "parallel/watchdog.h"
#include "src/ckpt.h"
#include "src/cli.h"
#include "src/codec.h"
#include "src/train.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: megatrain eval RUN.yaml --checkpoint CKPT [--split NAME] [--seq-len L] [--windows N]\n"
    "                      [--by-position FILE] [--tokenizer FILE] [--set section.key=value ...]\n"
    "\n"
    "The held-out loss of a checkpoint of RUN.yaml's model: the mean cross-entropy (nats per token),\n"
    "perplexity and bits per byte of the first N windows of L + 1 tokens of a split of data.path,\n"
    "in order, as the training loop's validation reads them: the same windows give the same number.\n"
    "It runs under the run file's parallel layout, alone or under mpirun, and loads a checkpoint of\n"
    "any layout.\n"
    "\n"
    "Options:\n"
    "  --checkpoint CKPT        a checkpoint (step-N folder), or a checkpoint.dir: its newest\n"
    "  --split NAME             the dataset's split (default val)\n"
    "  --seq-len L              context length, also longer than training's (the same as\n"
    "                           --set data.seq_len=L; default data.seq_len)\n"
    "  --windows N              windows to evaluate, a multiple of dp x parallel.micro_batches\n"
    "                           (default eval.batches x data.batch_size: training's validation)\n"
    "  --by-position FILE       also the mean loss by position in the window, in buckets [0, u),\n"
    "                           [u, 2u), [2u, 4u), ... up to L, u = min(1024, L/8) rounded down to\n"
    "                           a power of two: printed, and written with the summary to FILE as\n"
    "                           JSON Lines, which megaplot draws\n"
    "  --tokenizer FILE         the dataset's tokenizer file (.model or tokenizer.json; checked\n"
    "                           against the checksum the dataset records), for bits per byte\n"
    "  --set section.key=value  override one config key\n"
    "  -h, --help               print this help and exit\n"
    "\n"
    "Bits per byte: the loss in bits over the bytes of text the evaluated tokens stand for (with the\n"
    "byte-level tokenizer one byte per id, none for the end-of-document id; with a tokenizer file,\n"
    "the bytes of each id's text); not given for raw ids, nor without --tokenizer for a dataset\n"
    "made with a tokenizer file.\n"
    "See doc/eval.md.\n";

typedef struct {
    CliRun run;
    const char *split, *positions, *tokenizer;
    int seq_len;
    int64_t windows;
} EvalArgs;

static void parse_args(EvalArgs *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->run = (CliRun){.cmd = "eval", .usage = usage};
    a->split = "val";
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = cliopt_value(argc, argv, &i, "--split", NULL)))
            a->split = v;
        else if ((v = cliopt_value(argc, argv, &i, "--seq-len", NULL)))
            a->seq_len = (int)cliopt_int("--seq-len", v, 1, INT_MAX);
        else if ((v = cliopt_value(argc, argv, &i, "--windows", NULL)))
            a->windows = cliopt_int("--windows", v, 1, INT_MAX);
        else if ((v = cliopt_value(argc, argv, &i, "--by-position", NULL)))
            a->positions = v;
        else if ((v = cliopt_value(argc, argv, &i, "--tokenizer", NULL)))
            a->tokenizer = v;
        else
            cli_sub_arg(&a->run, argc, argv, &i);
    }
}

static void set_int(Config *c, const char *key, long long v)
{
    char *s = xasprintf("%s=%lld", key, v);
    config_set(c, s);
    free(s);
}

/* The run file's shape turned into the evaluation's (c finished for the world): windows of
   seq_len (0: training's), n windows (0: training's validation), as eval.batches global batches of
   dp x micro x r windows, r at most the training micro-batch's tokens over seq_len, so memory stays
   near training's. Returns the number of windows. */
static int64_t eval_shape(Config *c, int world, int seq_len, int64_t n)
{
    const int64_t dp = world / ((int64_t)c->parallel.tp * c->parallel.pp * c->parallel.cp),
                  unit = dp * c->parallel.micro_batches, L = seq_len ? seq_len : c->data.seq_len;
    n = n ? n : (int64_t)c->eval.batches * c->data.batch_size;
    if (n % unit)
        fail_input_all("--windows %lld: not a multiple of the %lld data-parallel ranks x %d micro-batches", (long long)n,
                       (long long)dp, c->parallel.micro_batches);
    int64_t r = c->data.batch_size / unit * c->data.seq_len / L;
    for (r = r < 1 ? 1 : r; (n / unit) % r; r--)
        ;
    set_int(c, "data.seq_len", L);
    set_int(c, "data.batch_size", unit * r);
    set_int(c, "eval.batches", n / (unit * r));
    c->train.recompute = RECOMPUTE_BLOCKS; /* forward only: one block's activations at a time */
    return n;
}

/* Position buckets of a window of L tokens: edges (nb + 1) = 0, u, 2u, 4u, ..., L. */
static int buckets(int L, int64_t *edges)
{
    int64_t u = 1;
    while (2 * u <= (L / 8 < 1024 ? L / 8 : 1024))
        u *= 2;
    int nb = 0;
    edges[0] = 0;
    for (int64_t e = u; edges[nb] < L; e *= 2)
        edges[++nb] = e < L ? e : L;
    return nb;
}

/* What each forward adds, summed on the last stage's tp rank 0: the bytes of its targets, and
   per bucket the loss and number of its targets. */
typedef struct {
    Codec codec;
    int count;       /* this rank's sums count (tp rank 0 of the last stage) */
    int nb;          /* buckets (0: no losses by position) */
    int64_t edges[40]; /* (nb + 1): at most 33, from u >= 1 doubling to L < 2^31 */
    double *sums;    /* [bytes | loss (nb) | tokens (nb)] */
    int32_t *masked; /* host (T): the targets of one bucket, -1 elsewhere */
    int32_t *dev;    /* backend (T) */
} EvalSums;

static void eval_after(void *ctx, Model *m, int slot, const int32_t *tokens, int rows, int L, int64_t pos0)
{
    EvalSums *x = ctx;
    for (int r = 0; r < rows && x->codec.tok; r++)
        for (int j = 0; j < L; j++) {
            size_t n;
            const int32_t *w = tokens + (size_t)r * (L + 1) + j;
            codec_piece(&x->codec, w[0], w[1], &n);
            x->sums[0] += x->count * (double)n;
        }
    for (int b = 0; b < x->nb; b++) {
        int64_t n = 0;
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < L; j++) {
                const int in = pos0 + j >= x->edges[b] && pos0 + j < x->edges[b + 1];
                x->masked[r * L + j] = in ? tokens[(size_t)r * (L + 1) + j + 1] : -1;
                n += in;
            }
        if (!n) /* the same on every tp rank: they skip alike */
            continue;
        m->ops->upload(x->dev, x->masked, (size_t)m->T * sizeof(int32_t));
        const double loss = model_loss(m, slot, x->dev); /* on every tp rank, counted on one */
        x->sums[1 + b] += x->count * loss;
        x->sums[1 + x->nb + b] += x->count * (double)n;
    }
}

/* The results on rank 0: a summary, the buckets, and the JSON Lines file f (or NULL). */
static void report(const EvalArgs *a, const Config *c, int64_t step, int64_t windows, double loss,
                   const EvalSums *x, FILE *f)
{
    const int64_t tokens = windows * c->data.seq_len;
    const double bpb = x->codec.tok && x->sums[0] > 0 ? loss * (double)tokens / (x->sums[0] * M_LN2) : NAN;
    char bpb_text[64] = "- (the tokenizer has no text)";
    if (!x->codec.tok && strcmp(x->codec.name, TOKENIZER_RAW) != 0)
        snprintf(bpb_text, sizeof bpb_text, "- (needs --tokenizer: the dataset's %s file)", x->codec.name);
    if (isfinite(bpb))
        snprintf(bpb_text, sizeof bpb_text, "%.4f", bpb);
    printf("eval %s (step %lld), split %s: %lld windows of %d tokens (%lld tokens)\n", a->run.checkpoint,
           (long long)step, a->split, (long long)windows, c->data.seq_len, (long long)tokens);
    printf("loss %.6f | ppl %.4f | bits per byte %s\n", loss, exp(loss), bpb_text);
    if (f) {
        fputs("{\"type\":\"checkpoint_eval\",\"checkpoint\":", f);
        util_write_quoted(f, a->run.checkpoint);
        fputs(",\"split\":", f);
        util_write_quoted(f, a->split);
        fprintf(f, ",\"step\":%lld,\"seq_len\":%d,\"windows\":%lld,\"tokens\":%lld,\"loss\":%.17g,\"ppl\":%.17g,",
                (long long)step, c->data.seq_len, (long long)windows, (long long)tokens, loss, exp(loss));
        if (isfinite(bpb))
            fprintf(f, "\"bytes\":%.0f,\"bits_per_byte\":%.17g}\n", x->sums[0], bpb);
        else
            fputs("\"bytes\":null,\"bits_per_byte\":null}\n", f);
        printf("%-17s %12s %10s\n", "position", "tokens", "loss");
    }
    for (int b = 0; b < x->nb; b++) {
        const double n = x->sums[1 + x->nb + b], l = x->sums[1 + b] / n;
        char range[48];
        snprintf(range, sizeof range, "%lld-%lld", (long long)x->edges[b], (long long)x->edges[b + 1]);
        printf("%-17s %12.0f %10.6f\n", range, n, l);
        fprintf(f, "{\"type\":\"position\",\"from\":%lld,\"to\":%lld,\"tokens\":%.0f,\"loss\":%.17g}\n",
                (long long)x->edges[b], (long long)x->edges[b + 1], n, l);
    }
    if (f && fclose(f) != 0)
        fail_input("--by-position %s: cannot write: %s", a->positions, strerror(errno));
    fflush(stdout);
}

int eval_main(int argc, char **argv)
{
    EvalArgs a;
    parse_args(&a, argc, argv);
    Config c;
    const int world = cli_run_config(&a.run, &c);
    if (!c.data.path[0])
        fail_input_all("eval needs a dataset: data.path is empty (set it in the run file or with --set data.path=DIR)");
    FILE *f = NULL; /* opened first: a place it cannot go to fails before the work */
    if (a.positions && util_world_rank() == 0 && !(f = fopen(a.positions, "w")))
        fail_input("--by-position %s: cannot write: %s", a.positions, strerror(errno));
    watchdog_set_timeout(c.parallel.timeout);
    Dataset *ds = cli_open_split(&c, a.split);
    cli_finish(&c, world, dataset_vocab(ds));
    const int64_t windows = eval_shape(&c, world, a.seq_len, a.windows);
    cli_finish(&c, world, dataset_vocab(ds));
    Sampler *s = sampler_create(ds, (uint64_t)c.train.seed, c.data.seq_len, 0); /* a window too long stops here */
    if (windows > sampler_windows(s))
        log_warn("split %s holds %lld windows of %d tokens: windows repeat", a.split,
                 (long long)sampler_windows(s), c.data.seq_len);
    sampler_free(s);

    Topo t;
    topo_init(&t, MPI_COMM_WORLD, c.parallel.tp, c.parallel.pp, c.parallel.cp);
    train_set_threads(&c, &t);
    Trainer tr;
    trainer_init(&tr, &c, &t, NULL);
    if (!ckpt_resume(&tr, a.run.checkpoint))
        fail_input_all("--checkpoint %s: no checkpoint there (expected a step-N folder, or a checkpoint.dir "
                       "holding some)",
                       a.run.checkpoint);
    EvalSums x = {.count = tr.m.part.last && t.tp_rank == 0};
    codec_open(&x.codec, ds, c.data.path, a.tokenizer);
    x.nb = a.positions ? buckets(c.data.seq_len, x.edges) : 0;
    x.sums = xcalloc(1 + 2 * (size_t)x.nb, sizeof(double));
    x.masked = xmalloc((size_t)tr.m.T * sizeof(int32_t));
    x.dev = tr.ops->alloc((size_t)tr.m.T * sizeof(int32_t));
    const EvalHook hook = {eval_after, &x};
    const double loss = trainer_eval(&tr, ds, &hook);
    comm_allreduce(&tr.world, x.sums, 1 + 2 * (size_t)x.nb, COMM_F64);
    if (t.rank == 0)
        report(&a, &c, tr.step, windows, loss, &x, f);
    tr.ops->release(x.dev);
    codec_close(&x.codec);
    free(x.masked);
    free(x.sums);
    trainer_free(&tr);
    topo_free(&t);
    dataset_close(ds);
    return 0;
}
