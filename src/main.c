/* main.c: the megatrain command line: train from a YAML file (alone or under mpirun/srun), print
   the resolved config, dump one batch through the model for reference checks, or hand over to the
   eval and generate subcommands. */
#include "autoconfig.h"
#include "base/cliopt.h"
#include "data/dataset.h"
#include "parallel/mpi_check.h"
#include "parallel/topo.h"
#include "parallel/watchdog.h"
#include "src/cli.h"
#include "src/config.h"
#include "src/dump.h"
#include "src/eval.h"
#include "src/generate.h"
#include "src/plan.h"
#include "src/train.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: megatrain RUN.yaml [--set section.key=value ...] [--print-config]\n"
    "       megatrain dump RUN.yaml OUT.h5 [--load PARAMS.h5] [--steps K] [--set section.key=value ...]\n"
    "       megatrain eval RUN.yaml --checkpoint CKPT [options]      (megatrain eval --help)\n"
    "       megatrain generate RUN.yaml --checkpoint CKPT [options]  (megatrain generate --help)\n"
    "       megatrain plan RUN.yaml --world N [--gpu-mem GiB] [options]  (megatrain plan --help)\n"
    "       megatrain --help | --help-config | --version\n"
    "\n"
    "Train a MEGALODON language model as RUN.yaml says, alone or under mpirun or srun:\n"
    "    mpirun -np 8 megatrain run.yaml --set train.steps=100\n"
    "\n"
    "Options:\n"
    "  --set section.key=value  override one config key (repeatable; see --help-config)\n"
    "  --print-config           print the resolved configuration as YAML and exit\n"
    "  --help-config            list every config key with its type, default and meaning\n"
    "  --version                print the version and exit\n"
    "  -h, --help               print this help and exit\n"
    "\n"
    "Subcommand dump: run one batch (the first training batch, or random tokens when data.path is\n"
    "empty) and write parameters, tokens, logits, loss and every parameter gradient to OUT.h5 under\n"
    "the reference repository's names (doc/model-check.md).\n"
    "  --load PARAMS.h5         take the parameters from /params/<name> of this file\n"
    "  --steps K                also take K AdamW steps on that batch and write /updated/<name>\n"
    "\n"
    "Subcommands eval and generate: the held-out loss of a checkpoint (by position too), and text\n"
    "sampled from it one token at a time (doc/eval.md).\n"
    "\n"
    "Subcommand plan: the memory each rank of the layout on N ranks would allocate, by kind, without\n"
    "allocating it (doc/parallel.md). A run checks the same plan before it allocates and stops (exit\n"
    "2) when a rank would need more than train.memory_gib or, on CUDA, the GPU's memory.\n"
    "\n"
    "Exit status: 0 done, 2 bad input (config, flags, data), 1 any other failure.\n";

typedef struct {
    CliRun run;
    const char *out, *load;
    int print_config, dump, steps;
} Args;

static void parse_args(Args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    int i = 1;
    if (i < argc && !strcmp(argv[i], "dump")) {
        a->dump = 1;
        i++;
    }
    for (; i < argc; i++) {
        const char *s = argv[i], *v;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            cli_help(usage);
        } else if (!strcmp(s, "--version")) {
            if (util_world_rank() == 0)
                printf("megatrain %s (git %s)\n", PACKAGE_VERSION, MEGATRAIN_GIT_REV);
            MPI_Finalize();
            exit(0);
        } else if (!strcmp(s, "--help-config")) {
            if (util_world_rank() == 0)
                config_print_reference(stdout);
            MPI_Finalize();
            exit(0);
        } else if (!strcmp(s, "--print-config") && !a->dump) {
            a->print_config = 1;
        } else if (a->dump && (v = cliopt_value(argc, argv, &i, "--load", NULL))) {
            a->load = v;
        } else if (a->dump && (v = cliopt_value(argc, argv, &i, "--steps", NULL))) {
            a->steps = (int)cliopt_int("--steps", v, 0, 1000000);
        } else if (cli_run_arg(&a->run, argc, argv, &i)) {
            continue;
        } else if (s[0] == '-' && s[1]) {
            fail_input_all("unknown option '%s' (see megatrain --help)", s);
        } else if (a->dump && !a->out) {
            a->out = s;
        } else {
            fail_input_all("unexpected argument '%s' (see megatrain --help)", s);
        }
    }
    if (a->dump && a->run.yaml && !a->out)
        fail_input_all("dump needs an output file (usage: megatrain dump RUN.yaml OUT.h5)");
}

/* train, print the config or dump, as the arguments say */
static int train_main(int argc, char **argv)
{
    Args a;
    parse_args(&a, argc, argv);
    Config c;
    const int world = cli_run_config(&a.run, &c);
    if (a.print_config) {
        cli_finish(&c, world, CONFIG_VOCAB_UNREAD);
        if (util_world_rank() == 0)
            config_print(&c, stdout);
        return 0;
    }

    watchdog_set_timeout(c.parallel.timeout); /* the waits while opening the dataset too */
    Dataset *train = NULL, *val = NULL;
    if (c.data.path[0] || c.data.blend[0]) {
        train = cli_open_split(&c, "train");
        if (c.eval.every > 0 && !a.dump)
            val = cli_open_split(&c, "val");
    }
    if (a.dump) /* one rank: the run file's layout does not apply */
        c.parallel.tp = c.parallel.pp = c.parallel.cp = 1;
    cli_finish(&c, a.dump ? 1 : world, train ? dataset_vocab(train) : 0);

    int status = 0;
    if (a.dump) {
        if (world != 1)
            fail_input_all("dump runs on one rank (it was started on %d)", world);
        dump_run(&c, train, a.out, a.load, a.steps);
    } else {
        Topo t;
        topo_init(&t, MPI_COMM_WORLD, c.parallel.tp, c.parallel.pp, c.parallel.cp);
        status = train_run(&c, a.run.yaml, &t, train, val);
        topo_free(&t);
    }
    if (train)
        dataset_close(train);
    if (val)
        dataset_close(val);
    return status;
}

int main(int argc, char **argv)
{
    MPI_CHECK(MPI_Init(&argc, &argv));
    util_set_progname("megatrain");
    const char *cmd = argc > 1 ? argv[1] : "";
    int status = !strcmp(cmd, "eval")       ? eval_main(argc - 1, argv + 1)
                 : !strcmp(cmd, "generate") ? generate_main(argc - 1, argv + 1)
                 : !strcmp(cmd, "plan")     ? plan_main(argc - 1, argv + 1)
                                            : train_main(argc, argv);
    MPI_Finalize();
    return status;
}
