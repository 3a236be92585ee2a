/* main.c: the megatrain command line: train from a YAML file (alone or under mpirun/srun), print
   the resolved config, or dump one batch through the model for reference checks. */
#include "autoconfig.h"
#include "data/dataset.h"
#include "data/shard.h"
#include "parallel/mpi_check.h"
#include "parallel/topo.h"
#include "parallel/watchdog.h"
#include "src/config.h"
#include "src/dump.h"
#include "src/train.h"
#include "base/util.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: megatrain RUN.yaml [--set section.key=value ...] [--print-config]\n"
    "       megatrain dump RUN.yaml OUT.h5 [--load PARAMS.h5] [--steps K] [--set section.key=value ...]\n"
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
    "Exit status: 0 done, 2 bad input (config, flags, data), 1 any other failure.\n";

typedef struct {
    const char *yaml, *out, *load;
    const char *sets[256];
    int nsets, print_config, dump, steps;
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
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            if (util_world_rank() == 0)
                fputs(usage, stdout);
            MPI_Finalize();
            exit(0);
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
        } else if (!strcmp(s, "--set") || !strncmp(s, "--set=", 6)) {
            const char *v = s[5] == '=' ? s + 6 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v)
                fail_input_all("--set needs section.key=value");
            if (a->nsets == (int)(sizeof a->sets / sizeof a->sets[0]))
                fail_input_all("too many --set options");
            a->sets[a->nsets++] = v;
        } else if (a->dump && (!strcmp(s, "--load") || !strcmp(s, "--steps"))) {
            if (i + 1 >= argc)
                fail_input_all("%s needs a value", s);
            if (s[2] == 'l') {
                a->load = argv[++i];
            } else {
                char *end;
                long k = strtol(argv[++i], &end, 10);
                if (*end || k < 0 || k > 1000000)
                    fail_input_all("--steps: expected a number of steps >= 0, got '%s'", argv[i]);
                a->steps = (int)k;
            }
        } else if (s[0] == '-' && s[1]) {
            fail_input_all("unknown option '%s' (see megatrain --help)", s);
        } else if (!a->yaml) {
            a->yaml = s;
        } else if (a->dump && !a->out) {
            a->out = s;
        } else {
            fail_input_all("unexpected argument '%s' (see megatrain --help)", s);
        }
    }
    if (!a->yaml)
        fail_input_all("no run file given (usage: megatrain RUN.yaml; see megatrain --help)");
    if (a->dump && !a->out)
        fail_input_all("dump needs an output file (usage: megatrain dump RUN.yaml OUT.h5)");
}

/* data.path names a folder of shards: say which key is wrong, how to set it, and that text must
   be built into a dataset first. */
static void data_path_check(const char *dir)
{
    const char *where = config_origin("data.path");
    DIR *d = opendir(dir);
    if (!d)
        fail_input("%s: data.path: %s: no such dataset (%s; set it in the run file or with --set data.path=DIR)",
                   where, dir, strerror(errno));
    int shards = 0, others = 0;
    for (struct dirent *e; (e = readdir(d));) {
        ShardName s;
        if (shard_name_parse(e->d_name, &s)) {
            shards++;
            shard_names_free(&s, 1);
        } else {
            others += e->d_name[0] != '.';
        }
    }
    closedir(d);
    if (!shards)
        fail_input("%s: data.path: %s holds no dataset shards (train-NNNNN.h5)%s", where, dir,
                   others ? ", only other files: to train on text files, build a dataset from them first "
                            "(megadata build DATASET FILE...) and set data.path=DATASET"
                          : "");
}

static Dataset *open_data(const Config *c, const char *split)
{
    return c->data.blend[0] ? dataset_open_blend(c->data.blend, split) : dataset_open(c->data.path, split);
}

/* Open a split (of data.path, or of each dataset of data.blend) on rank 0 first, so a bad dataset
   is reported once before the others look. */
static Dataset *open_split(const Config *c, const char *split)
{
    Dataset *ds = NULL;
    if (util_world_rank() == 0) {
        if (!c->data.blend[0])
            data_path_check(c->data.path);
        ds = open_data(c, split);
    }
    watchdog_barrier(MPI_COMM_WORLD, "barrier while rank 0 checks the dataset", "world");
    if (util_world_rank() != 0)
        ds = open_data(c, split);
    return ds;
}

int main(int argc, char **argv)
{
    MPI_CHECK(MPI_Init(&argc, &argv));
    util_set_progname("megatrain");
    Args a;
    parse_args(&a, argc, argv);

    Config c;
    config_defaults(&c);
    config_load_yaml(&c, a.yaml);
    for (int i = 0; i < a.nsets; i++)
        config_set(&c, a.sets[i]);
    int world;
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world));
#ifdef HAVE_CUDA
    const int cuda_built = 1;
#else
    const int cuda_built = 0;
#endif
    if (a.print_config) {
        config_finish(&c, world, CONFIG_VOCAB_UNREAD, cuda_built);
        if (util_world_rank() == 0)
            config_print(&c, stdout);
        MPI_Finalize();
        return 0;
    }

    watchdog_set_timeout(c.parallel.timeout); /* the waits while opening the dataset too */
    Dataset *train = NULL, *val = NULL;
    config_check_data(&c);
    if (c.data.path[0] || c.data.blend[0]) {
        train = open_split(&c, "train");
        if (c.eval.every > 0 && !a.dump)
            val = open_split(&c, "val");
    }
    if (a.dump) /* one rank: the run file's layout does not apply */
        c.parallel.tp = c.parallel.pp = c.parallel.cp = 1;
    config_finish(&c, a.dump ? 1 : world, train ? dataset_vocab(train) : 0, cuda_built);

    int status = 0;
    if (a.dump) {
        if (world != 1)
            fail_input_all("dump runs on one rank (it was started on %d)", world);
        dump_run(&c, train, a.out, a.load, a.steps);
    } else {
        Topo t;
        topo_init(&t, MPI_COMM_WORLD, c.parallel.tp, c.parallel.pp, c.parallel.cp);
        status = train_run(&c, a.yaml, &t, train, val);
        topo_free(&t);
    }
    if (train)
        dataset_close(train);
    if (val)
        dataset_close(val);
    MPI_Finalize();
    return status;
}
