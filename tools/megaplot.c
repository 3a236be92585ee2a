/* megaplot.c: turn megatrain metrics logs into loss, throughput and MFU plots and the scaling table
   of a sweep (doc/scaling.md). */
#include "autoconfig.h"

#include "base/util.h"
#include "base/cliopt.h"
#include "tools/plots.h"
#include "tools/runlog.h"
#include "tools/scaling.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] =
    "usage: megaplot [options] LOG|DIR...\n"
    "\n"
    "Read megatrain metrics logs (log.metrics, JSON Lines; a folder stands for the *.jsonl files in\n"
    "it) and print the scaling table: one row per run (and per layout, when a resumed run changed it)\n"
    "with its last loss, validation loss and perplexity, and the means of step time, throughput,\n"
    "TFLOP/s, MFU and of the compute and communication times over its steps. With --out, also\n"
    "draw into that folder:\n"
    "  loss.png/.svg        loss against tokens, every run (validation dashed, with points)\n"
    "  position.png/.svg    loss against position in the window, log scale, from the files of\n"
    "                       megatrain eval --by-position (read like logs)\n"
    "  throughput.png/.svg  tokens/s against ranks per model size and sequence length,\n"
    "                       with linear scaling from the fewest ranks dashed\n"
    "  mfu.png/.svg         MFU against sequence length per model size and rank count\n"
    "each beside the self-contained gnuplot script that draws it (NAME.gp), and write the table as\n"
    "scaling.md and scaling.csv.\n"
    "\n"
    "options:\n"
    "  -o, --out DIR         draw the plots and write the tables into DIR (created if missing)\n"
    "  --table md|csv|none   the table printed on stdout (default md)\n"
    "  --skip N              step records left out of the means at the start of every run segment\n"
    "                        (warm-up; default 1; all are used when a row has no others)\n"
    "  --version             print the version and exit\n"
    "  -h, --help            print this help and exit\n"
    "\n"
    "gnuplot is $GNUPLOT or gnuplot on the PATH (Debian: gnuplot-nox). Exit status: 0 done, 2 bad\n"
    "input (a malformed record is named by file:line), 1 any other failure. See doc/scaling.md.\n";

static int is_jsonl(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return d->d_name[0] != '.' && n > 6 && !strcmp(d->d_name + n - 6, ".jsonl");
}

/* The logs an argument names: itself, or a folder's *.jsonl files in name order. */
static void add_logs(const char *arg, char ***paths, int *n, int *cap)
{
    struct stat st;
    if (stat(arg, &st) != 0)
        fail_input("%s: cannot open the metrics log: %s", arg, strerror(errno));
    struct dirent **list = NULL;
    int count = 1;
    if (S_ISDIR(st.st_mode)) {
        count = scandir(arg, &list, is_jsonl, alphasort);
        if (count < 0)
            fail_input("%s: cannot list the folder: %s", arg, strerror(errno));
        if (count == 0)
            fail_input("%s: no *.jsonl metrics logs in this folder", arg);
    }
    for (int i = 0; i < count; i++) {
        if (*n == *cap) {
            *cap = *cap ? 2 * *cap : 16;
            char **grown = xmalloc((size_t)*cap * sizeof *grown);
            if (*n) /* *paths is NULL before the first */
                memcpy(grown, *paths, (size_t)*n * sizeof *grown);
            free(*paths);
            *paths = grown;
        }
        (*paths)[(*n)++] = list ? xasprintf("%s/%s", arg, list[i]->d_name) : xstrdup(arg);
        if (list)
            free(list[i]);
    }
    free(list);
}

/* Runs are named after their files; two files of the same name keep their folder in the name. */
static void unique_names(RunLog *runs, int n)
{
    for (int i = 0; i < n; i++) {
        int clash = 0;
        for (int j = 0; j < n; j++)
            clash |= j != i && !strcmp(runs[i].name, runs[j].name);
        if (!clash)
            continue;
        char *name = xstrdup(runs[i].path), *dot = strrchr(name, '.');
        if (dot && !strcmp(dot, ".jsonl"))
            *dot = '\0';
        free(runs[i].name);
        runs[i].name = name;
    }
}

static void write_table(const char *dir, const char *file, const ScalingTable *t, int csv)
{
    char *path = xasprintf("%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    if (!f)
        fail_input("%s: cannot write: %s", path, strerror(errno));
    scaling_print(t, f, csv);
    if (fclose(f) != 0)
        fail_input("%s: cannot write: %s", path, strerror(errno));
    free(path);
}

int main(int argc, char **argv)
{
    util_set_progname("megaplot");
    const char *out = NULL, *table = "md", *v;
    int skip = 1, n = 0, cap = 0, options_done = 0;
    char **paths = NULL;
    for (int i = 1; i < argc; i++) {
        if (options_done || argv[i][0] != '-') {
            add_logs(argv[i], &paths, &n, &cap);
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("megaplot %s\n", PACKAGE_VERSION);
            return 0;
        } else if (!strcmp(argv[i], "--")) {
            options_done = 1;
        } else if ((v = cliopt_value(argc, argv, &i, "--out", "-o"))) {
            out = v;
        } else if ((v = cliopt_value(argc, argv, &i, "--table", NULL))) {
            if (strcmp(v, "md") && strcmp(v, "csv") && strcmp(v, "none"))
                fail_input("--table '%s': expected md, csv or none", v);
            table = v;
        } else if ((v = cliopt_value(argc, argv, &i, "--skip", NULL))) {
            skip = (int)cliopt_int("--skip", v, 0, 1000000000);
        } else {
            fail_input("unknown option '%s' (see megaplot --help)", argv[i]);
        }
    }
    if (n == 0)
        fail_input("no metrics logs given (usage: megaplot [options] LOG|DIR...; see megaplot --help)");

    RunLog *runs = xcalloc((size_t)n, sizeof *runs);
    for (int i = 0; i < n; i++)
        runlog_read(&runs[i], paths[i]);
    unique_names(runs, n);
    ScalingTable t;
    scaling_build(&t, runs, n, skip);
    if (strcmp(table, "none"))
        scaling_print(&t, stdout, !strcmp(table, "csv"));
    if (out) {
        if (mkdir(out, 0777) != 0 && errno != EEXIST)
            fail_input("%s: cannot create the output folder: %s", out, strerror(errno));
        write_table(out, "scaling.md", &t, 0);
        write_table(out, "scaling.csv", &t, 1);
        plots_draw(out, runs, n, &t);
    }
    if (fflush(stdout) != 0)
        fail("writing the table: %s", strerror(errno));
    scaling_free(&t);
    for (int i = 0; i < n; i++) {
        runlog_free(&runs[i]);
        free(paths[i]);
    }
    free(runs);
    free(paths);
    return 0;
}
