/* cliopt.c: option values for the command lines (see cliopt.h). */
#include "base/cliopt.h"

#include "base/util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *cliopt_value(int argc, char **argv, int *i, const char *name, const char *alias)
{
    const char *arg = argv[*i];
    size_t len = strlen(name);
    if (alias && !strcmp(arg, alias))
        name = alias;
    else if (strncmp(arg, name, len) == 0 && arg[len] == '=')
        return arg + len + 1;
    else if (strcmp(arg, name) != 0)
        return NULL;
    if (*i + 1 >= argc)
        fail_input_all("%s needs a value (see %s --help)", name, util_progname());
    return argv[++*i];
}

long long cliopt_int(const char *what, const char *text, long long min, long long max)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max)
        fail_input_all("%s '%s': expected an integer in [%lld, %lld]", what, text, min, max);
    return v;
}

double cliopt_double(const char *what, const char *text, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || v < min || v > max)
        fail_input_all("%s '%s': expected a number in [%g, %g]", what, text, min, max);
    return v;
}
