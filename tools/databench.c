/* databench.c: the tokens/s of megatrain's reading of a dataset, with and without data.prefetch.

       databench DATASET [--seq-len L] [--rows R] [--micro M] [--steps N] [--compute-ms C]

   Draws N steps of M micro-batches of R windows of L + 1 tokens through the trainer's sampler
   and batch reader (src/batch.h), as one rank of a run does, with a compute of C milliseconds
   (a sleep: on a GPU the host waits) after taking each micro-batch; first without prefetch, then
   with it, each from a fresh sampler over new samples. Prints, for each, the tokens/s, the time
   spent waiting for data per micro-batch, and the step time. Not a test: a benchmark. */
#include "base/cliopt.h"
#include "base/util.h"
#include "data/dataset.h"
#include "data/h5_check.h"
#include "src/batch.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "usage: databench DATASET [--seq-len L] [--rows R] [--micro M] [--steps N] [--compute-ms C]\n"
    "Reads N steps (default 50) of M micro-batches (default 4) of R windows (default 8) of L + 1 tokens\n"
    "(default 4096) of DATASET's train split, with C ms (default 20) of pretend compute after each, without\n"
    "and with data.prefetch, and prints tokens/s and the time waiting for data.\n";

typedef struct {
    int L, rows, micro, steps;
    double compute_ms;
} Bench;

static void pretend_compute(double ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms * 1e6) % 1000000000L};
    nanosleep(&ts, NULL);
}

/* steps [first_step, first_step + b->steps) through a reader; prints one line */
static void bench_run(const Bench *b, Dataset *ds, int prefetch, int64_t first_step)
{
    BatchSource src = {.sampler = sampler_create(ds, 1, b->L, 1), .L = b->L};
    BatchReader *r = batch_reader_create((size_t)b->rows * (b->L + 1), prefetch);
    const int64_t step_samples = (int64_t)b->rows * b->micro;
    double wait = 0, t0 = util_now();
    for (int64_t s = first_step; s < first_step + b->steps; s++)
        for (int k = 0; k < b->micro; k++) {
            BatchWant w = {&src, s * step_samples + (int64_t)k * b->rows, b->rows, 0, b->L};
            double tw = util_now();
            batch_take(r, &w);
            wait += util_now() - tw;
            w.first += b->rows; /* the next micro-batch, or the next step's first */
            batch_prefetch(r, &w);
            pretend_compute(b->compute_ms);
        }
    double total = util_now() - t0, tokens = (double)b->steps * step_samples * b->L;
    printf("prefetch %-5s %10.0f tokens/s   waiting for data %7.2f ms per micro-batch   step %7.2f ms\n",
           prefetch ? "on" : "off", tokens / total, 1e3 * wait / ((double)b->steps * b->micro),
           1e3 * total / b->steps);
    batch_reader_free(r);
    sampler_free(src.sampler);
}

int main(int argc, char **argv)
{
    util_set_progname("databench");
    Bench b = {.L = 4096, .rows = 8, .micro = 4, .steps = 50, .compute_ms = 20};
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (a[0] != '-') {
            dir = a;
            continue;
        }
        if (!v)
            fail_input("%s needs a value\n%s", a, usage);
        i++;
        if (!strcmp(a, "--seq-len"))
            b.L = (int)cliopt_int(a, v, 1, 1 << 24);
        else if (!strcmp(a, "--rows"))
            b.rows = (int)cliopt_int(a, v, 1, 1 << 16);
        else if (!strcmp(a, "--micro"))
            b.micro = (int)cliopt_int(a, v, 1, 1 << 16);
        else if (!strcmp(a, "--steps"))
            b.steps = (int)cliopt_int(a, v, 1, 1 << 24);
        else if (!strcmp(a, "--compute-ms"))
            b.compute_ms = cliopt_double(a, v, 0, 1e6);
        else
            fail_input("unknown option %s\n%s", a, usage);
    }
    if (!dir)
        fail_input("no dataset given\n%s", usage);
    h5_init();
    Dataset *ds = dataset_open(dir, "train");
    printf("databench: %s, %lld tokens; %d steps of %d x %d windows of %d tokens, %.1f ms compute each\n", dir,
           (long long)dataset_ntokens(ds), b.steps, b.micro, b.rows, b.L + 1, b.compute_ms);
    bench_run(&b, ds, 0, 0);
    bench_run(&b, ds, 1, b.steps); /* new samples: nothing read before */
    dataset_close(ds);
    return 0;
}
