/* generate.c: `megatrain generate` (see generate.h). */
#include "src/generate.h"

#include "base/cliopt.h"
#include "base/util.h"
#include "kernels/ops.h"
#include "parallel/topo.h"
#include "src/ckpt.h"
#include "src/cli.h"
#include "src/codec.h"
#include "src/decode.h"
#include "src/sample.h"
#include "src/train.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: megatrain generate RUN.yaml --checkpoint CKPT (--prompt TEXT | --prompt-ids IDS) [options]\n"
    "\n"
    "Sample text from a checkpoint of RUN.yaml's model one token at a time, printing it as it comes\n"
    "(the prompt first). The model runs recurrently: each token updates the CEMA and TimestepNorm\n"
    "states and the current chunk's keys and values, so memory stays the same however many tokens\n"
    "are generated. One rank, without mpirun; the run file's parallel layout does not apply (a\n"
    "checkpoint of any layout loads). Messages go to stderr, the text alone to stdout.\n"
    "\n"
    "Options:\n"
    "  --checkpoint CKPT        a checkpoint (step-N folder), or a checkpoint.dir: its newest\n"
    "  --prompt TEXT            the text to continue, in the dataset's tokenizer (data.path)\n"
    "  --prompt-ids IDS         the prompt as token ids, separated by commas or spaces (output:\n"
    "                           text with a known tokenizer, else ids)\n"
    "  --tokenizer FILE         the dataset's tokenizer file (.model or tokenizer.json; checked\n"
    "                           against the checksum the dataset records): needed for text when\n"
    "                           the dataset was made with one\n"
    "  --tokens N               tokens to generate (default 256); the end-of-document token ends\n"
    "                           the sample early\n"
    "  --temperature T          softmax temperature; 0 always takes the most likely token (default 1)\n"
    "  --top-k K                draw among the K most likely tokens only (default 0: all)\n"
    "  --top-p P                then among the fewest most likely whose probability reaches P\n"
    "                           (default 1: no cut)\n"
    "  --seed S                 seed of the draws: the same seed gives the same text (default 0)\n"
    "  --set section.key=value  override one config key (e.g. train.device=cuda; train.threads:\n"
    "                           OpenMP threads, default 1 here: one token's ops are small)\n"
    "  -h, --help               print this help and exit\n"
    "\n"
    "An empty prompt starts a new document (the end-of-document id). See doc/eval.md.\n";

typedef struct {
    CliRun run;
    const char *prompt, *prompt_ids, *tokenizer;
    int64_t tokens;
    SampleOpts sample;
} GenArgs;

static void parse_args(GenArgs *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->run = (CliRun){.cmd = "generate", .usage = usage};
    a->tokens = 256;
    a->sample = (SampleOpts){.temperature = 1, .top_k = 0, .top_p = 1, .seed = 0};
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = cliopt_value(argc, argv, &i, "--prompt", NULL)))
            a->prompt = v;
        else if ((v = cliopt_value(argc, argv, &i, "--prompt-ids", NULL)))
            a->prompt_ids = v;
        else if ((v = cliopt_value(argc, argv, &i, "--tokenizer", NULL)))
            a->tokenizer = v;
        else if ((v = cliopt_value(argc, argv, &i, "--tokens", NULL)))
            a->tokens = cliopt_int("--tokens", v, 0, INT64_MAX);
        else if ((v = cliopt_value(argc, argv, &i, "--temperature", NULL)))
            a->sample.temperature = cliopt_double("--temperature", v, 0, 1e6);
        else if ((v = cliopt_value(argc, argv, &i, "--top-k", NULL)))
            a->sample.top_k = (int)cliopt_int("--top-k", v, 0, INT_MAX);
        else if ((v = cliopt_value(argc, argv, &i, "--top-p", NULL)))
            a->sample.top_p = cliopt_double("--top-p", v, 0, 1);
        else if ((v = cliopt_value(argc, argv, &i, "--seed", NULL)))
            a->sample.seed = (uint64_t)cliopt_int("--seed", v, 0, INT64_MAX);
        else
            cli_sub_arg(&a->run, argc, argv, &i);
    }
    if (!a->prompt == !a->prompt_ids)
        fail_input_all("generate needs one of --prompt TEXT and --prompt-ids IDS (see megatrain generate --help)");
}

/* --prompt-ids: ids below vocab, separated by commas or spaces; *ids allocated */
static size_t parse_ids(const char *text, int vocab, int32_t **ids)
{
    char *copy = xstrdup(text);
    size_t n = 0;
    *ids = xmalloc((strlen(text) / 2 + 1) * sizeof **ids);
    for (char *tok = strtok(copy, ", "); tok; tok = strtok(NULL, ", "))
        (*ids)[n++] = (int32_t)cliopt_int("--prompt-ids: an id", tok, 0, vocab - 1);
    free(copy);
    return n;
}

/* The parameters of checkpoint `path` (a step-N folder, or a folder of them: the newest that
   loads) into m, the whole model; returns its step. */
static int64_t load_params(Model *m, const char *path)
{
    char **paths, *meta = xasprintf("%s/meta.h5", path);
    int n = 1;
    if (access(meta, F_OK) == 0) {
        paths = xmalloc(sizeof *paths);
        paths[0] = xstrdup(path);
    } else {
        n = ckpt_list(path, &paths);
    }
    free(meta);
    if (n == 0)
        fail_input_all("--checkpoint %s: no checkpoint there (expected a step-N folder, or a checkpoint.dir "
                       "holding some)",
                       path);
    float *host = xmalloc(m->n_elems * sizeof(float));
    int64_t step = -1;
    for (int i = 0; i < n && step < 0; i++) {
        CkptInfo ck;
        char err[1024] = "";
        int rc = ckpt_info(paths[i], &ck, err, sizeof err);
        if (!rc && !ckpt_same_model(&ck.dims, &m->d)) {
            free(host); /* exit 2 leaves nothing behind (LeakSanitizer) */
            fail_input_all("%s: a checkpoint of another model than the run file's (its config says:\n%s)", paths[i],
                           ck.config);
        }
        for (int p = 0; p < m->n_params && !rc; p++)
            rc = ckpt_read(&ck, "params", &m->params_info[p], 0, host + m->params_info[p].offset, err, sizeof err);
        if (rc)
            log_warn("checkpoint %s is damaged: %s%s", paths[i], err, i + 1 < n ? "; trying the next older one" : "");
        else
            fprintf(stderr, "megatrain generate: %s (step %lld)\n", paths[i], (long long)(step = ck.step));
        ckpt_info_free(&ck);
    }
    if (step < 0)
        fail_input_all("--checkpoint %s: none of its %d checkpoint(s) could be loaded", path, n);
    model_params_from_host(m, host);
    for (int i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    free(host);
    return step;
}

/* One token (after prev, -1: none) to stdout as it comes: its text, or its id when the tokenizer
   has none. */
static void emit(const Codec *c, int32_t prev, int32_t id)
{
    size_t n;
    if (c->tok) {
        const char *text = codec_piece(c, prev, id, &n);
        fwrite(text, 1, n, stdout);
    } else {
        printf("%d ", id);
    }
    fflush(stdout);
}

int generate_main(int argc, char **argv)
{
    GenArgs a;
    parse_args(&a, argc, argv);
    Config c;
    const int world = cli_run_config(&a.run, &c);
    if (world != 1)
        fail_input_all("generate runs on one rank (it was started on %d): run it without mpirun", world);
    c.parallel.tp = c.parallel.pp = c.parallel.cp = 1; /* the run file's layout does not apply */
    Dataset *ds = c.data.path[0] || c.data.blend[0] ? cli_open_split(&c, "train") : NULL;
    cli_finish(&c, 1, ds ? dataset_vocab(ds) : 0);
    ModelDims d;
    model_dims_from_config(&d, &c);

    Codec codec;
    codec_open(&codec, ds, c.data.path[0] ? c.data.path : c.data.blend, a.tokenizer);
    /* rows past the dataset's vocabulary (model.vocab_multiple's padding) are no tokens: never read or drawn */
    const int tokens = ds && dataset_vocab(ds) < d.vocab ? dataset_vocab(ds) : d.vocab;
    int32_t *prompt;
    size_t np;
    if (a.prompt) {
        if (!codec.tok && ds && strcmp(codec.name, TOKENIZER_RAW) != 0)
            fail_input_all("--prompt: the dataset was made with a %s tokenizer file: give it with --tokenizer FILE, "
                           "or token ids with --prompt-ids",
                           codec.name);
        if (!codec.tok)
            fail_input_all("--prompt: the dataset's tokenizer (%s) has no text to encode: give token ids with "
                           "--prompt-ids",
                           codec.name);
        np = codec_encode(&codec, a.prompt, &prompt);
    } else {
        np = parse_ids(a.prompt_ids, tokens, &prompt);
    }
    const int fresh = np == 0; /* start a document */
    if (fresh && codec.eod < 0)
        fail_input_all("the prompt is empty and the dataset has no end-of-document id to start from");
    if (fresh)
        prompt[np++] = codec.eod;

    Topo t;
    topo_init(&t, MPI_COMM_SELF, 1, 1, 1);
    if (c.train.threads == 0 && !getenv("OMP_NUM_THREADS"))
        c.train.threads = 1; /* one token's ops are too small to share: threads only wait on each other */
    train_set_threads(&c, &t);
    const Ops *ops = ops_get(config_device_name(c.train.device));
    if (!ops)
        fail_input_all("train.device: %s: %s", config_device_name(c.train.device),
                       ops_missing(config_device_name(c.train.device)));
    if (ops->select_device)
        ops->select_device(0);
    Decoder dec;
    decode_create(&dec, &d, ops, 1);
    load_params(&dec.m, a.run.checkpoint);
    Sampling smp;
    sampling_init(&smp, &a.sample, tokens);
    float *logits = xmalloc((size_t)d.vocab * sizeof(float));

    double t0 = util_now();
    int32_t prev = -1;
    for (size_t i = 0; i < np; prev = prompt[i++]) {
        if (!fresh)
            emit(&codec, prev, prompt[i]);
        decode_step(&dec, &prompt[i], logits);
    }
    double t1 = util_now();
    int64_t k = 0;
    int eod = 0;
    for (; k < a.tokens; k++) {
        int32_t id = sampling_draw(&smp, logits, (uint64_t)k);
        if ((eod = id == codec.eod))
            break;
        emit(&codec, prev, id);
        prev = id;
        if (k + 1 < a.tokens)
            decode_step(&dec, &id, logits);
    }
    putchar('\n');
    fflush(stdout);
    double t2 = util_now();
    fprintf(stderr, "megatrain generate: %zu prompt tokens (%.1f tokens/s), %lld generated (%.1f tokens/s)%s, %s\n",
            np, np / (t1 - t0 + 1e-12), (long long)k, k / (t2 - t1 + 1e-12), eod ? ", then end of document" : "",
            ops->name);
    free(logits);
    sampling_free(&smp);
    decode_free(&dec);
    free(prompt);
    codec_close(&codec);
    topo_free(&t);
    if (ds)
        dataset_close(ds);
    return 0;
}
