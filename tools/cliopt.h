/* cliopt.h: option values for the small tools (megaplot, megasweep): "--name VALUE", "--name=VALUE"
   or a short alias "-o VALUE"; a missing value is bad input naming the option. */
#ifndef MEGATRAIN_CLIOPT_H
#define MEGATRAIN_CLIOPT_H

/* The value of option name (or alias, may be NULL) at argv[*i], advancing *i past it; NULL when
   argv[*i] is another option. */
const char *cliopt_value(int argc, char **argv, int *i, const char *name, const char *alias);
/* text as an integer in [min, max], or bad input naming what it is for */
long long cliopt_int(const char *what, const char *text, long long min, long long max);

#endif
