/* cli.h: what megatrain's command lines share: the run file with its --set overrides, and a
   dataset split opened on rank 0 first, so bad data is reported once. */
#ifndef MEGATRAIN_CLI_H
#define MEGATRAIN_CLI_H

#include "data/dataset.h"
#include "src/config.h"

typedef struct {
    const char *cmd, *usage; /* a subcommand's name ("eval") and --help text; NULL: training */
    const char *yaml;
    const char *checkpoint;  /* a subcommand's --checkpoint */
    const char *sets[256];
    int nsets;
} CliRun;

/* Takes argv[*i] (advancing *i past a value) when it is --set or, the first time, a name that is
   not an option: the run file. Returns whether it took it. */
int cli_run_arg(CliRun *r, int argc, char **argv, int *i);
/* A subcommand's argument that is none of its own options: -h or --help (prints the usage and
   exits), --checkpoint, or what cli_run_arg takes; anything else is bad input. */
void cli_sub_arg(CliRun *r, int argc, char **argv, int *i);
/* Print text (a usage) on rank 0 and end the process, exit status 0. */
void cli_help(const char *text);
/* Defaults, then the run file, then the overrides (no run file, or a subcommand without its
   checkpoint, is bad input); returns the number of ranks of the job. */
int cli_run_config(const CliRun *r, Config *c);
/* config_finish for this build (with or without CUDA). */
void cli_finish(Config *c, int world, int vocab_from_data);
/* Split `split` of data.blend's datasets, or else of data.path's (c names one of them), checked on
   rank 0 before the others open it. */
Dataset *cli_open_split(const Config *c, const char *split);

#endif
