/* cli.c: what megatrain's command lines share (see cli.h). */
#include "src/cli.h"

#include "autoconfig.h"

#include "base/cliopt.h"
#include "base/util.h"
#include "data/shard.h"
#include "parallel/watchdog.h"

#include <dirent.h>
#include <errno.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_run_arg(CliRun *r, int argc, char **argv, int *i)
{
    const char *v = cliopt_value(argc, argv, i, "--set", NULL);
    if (v) {
        if (r->nsets == (int)(sizeof r->sets / sizeof r->sets[0]))
            fail_input_all("too many --set options");
        r->sets[r->nsets++] = v;
        return 1;
    }
    if (r->yaml || (argv[*i][0] == '-' && argv[*i][1]))
        return 0;
    r->yaml = argv[*i];
    return 1;
}

void cli_sub_arg(CliRun *r, int argc, char **argv, int *i)
{
    const char *s = argv[*i], *v;
    if (!strcmp(s, "-h") || !strcmp(s, "--help"))
        cli_help(r->usage);
    else if ((v = cliopt_value(argc, argv, i, "--checkpoint", NULL)))
        r->checkpoint = v;
    else if (!cli_run_arg(r, argc, argv, i))
        fail_input_all("%s '%s' (see megatrain %s --help)", s[0] == '-' && s[1] ? "unknown option" : "unexpected argument",
                       s, r->cmd);
}

void cli_help(const char *text)
{
    if (util_world_rank() == 0)
        fputs(text, stdout);
    MPI_Finalize();
    exit(0);
}

int cli_run_config(const CliRun *r, Config *c)
{
    if (!r->yaml)
        fail_input_all("no run file given (usage: megatrain RUN.yaml; see megatrain --help)");
    if (r->cmd && !r->checkpoint)
        fail_input_all("%s needs --checkpoint CKPT (see megatrain %s --help)", r->cmd, r->cmd);
    config_defaults(c);
    config_load_yaml(c, r->yaml);
    for (int i = 0; i < r->nsets; i++)
        config_set(c, r->sets[i]);
    int world;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    return world;
}

void cli_finish(Config *c, int world, int vocab_from_data)
{
#ifdef HAVE_CUDA
    config_finish(c, world, vocab_from_data, 1);
#else
    config_finish(c, world, vocab_from_data, 0);
#endif
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
Dataset *cli_open_split(const Config *c, const char *split)
{
    config_check_data(c);
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
