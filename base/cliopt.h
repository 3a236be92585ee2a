/* cliopt.h: option values for the command lines (megatrain's subcommands, the tools):
   "--name VALUE", "--name=VALUE" or a short alias "-o VALUE"; a missing value is bad input naming
   the option (fail_input_all: under MPI every rank parses the same arguments, rank 0 reports). */
#ifndef MEGATRAIN_CLIOPT_H
#define MEGATRAIN_CLIOPT_H

/* The value of option name (or alias, may be NULL) at argv[*i], advancing *i past it; NULL when
   argv[*i] is another option. */
const char *cliopt_value(int argc, char **argv, int *i, const char *name, const char *alias);
/* text as an integer in [min, max], or bad input naming what it is for */
long long cliopt_int(const char *what, const char *text, long long min, long long max);
/* text as a finite number in [min, max], or bad input naming what it is for */
double cliopt_double(const char *what, const char *text, double min, double max);

#endif
