/* megasweep.c: write the run files of a scaling sweep -- a grid of model sizes, parallel layouts and
   values of other keys -- each resolved and checked for its number of ranks by megatrain's own
   config code, and the sweep's manifest; or check one run file for a number of ranks without
   starting them (doc/scaling.md). */
#include "autoconfig.h"

#include "src/config.h"
#include "base/util.h"
#include "base/cliopt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] =
    "usage: megasweep BASE.yaml -o DIR [--size SPEC]... [--layout SPEC]... [--vary KEY=V1,V2,...]...\n"
    "                 [--batch-tokens T] [--set section.key=value]... [--metrics-dir D]\n"
    "       megasweep --check RUN.yaml --ranks N [--set section.key=value]...\n"
    "\n"
    "Write one run file DIR/NAME.yaml per point of the grid sizes x layouts x each --vary, and list\n"
    "them in DIR/sweep.tsv (name, ranks, layout, sequence length, batch; rows of other names already\n"
    "there are kept). Each file is BASE.yaml with the point's keys, resolved and checked by the code\n"
    "megatrain uses, for the ranks its layout names, so `mpirun -np RANKS megatrain DIR/NAME.yaml`\n"
    "starts as planned. Its log.metrics is D/NAME.jsonl. NAME is SIZE-RANKS, then -tpN -ppN -cpN\n"
    "-mbN for those above 1, then -KEYVALUE for each --vary (KEY without its section).\n"
    "\n"
    "  --size NAME             a model preset (model.preset=NAME)\n"
    "  --size NAME:K=V,...     a size named NAME made of these section.key=value assignments\n"
    "                          (default: one size, BASE.yaml's own model, named after the file)\n"
    "  --layout RANKS[:K=V,...]  the ranks (GPUs) and parallel keys: tp, pp, cp, micro_batches\n"
    "                          (or mb), or any section.key (default: 1)\n"
    "  --vary KEY=V1,V2,...    one more axis: section.key takes each value\n"
    "  --batch-tokens T        global batch in tokens: data.batch_size = T / data.seq_len\n"
    "  --set KEY=VALUE         applies to every point, before the point's own keys\n"
    "  --metrics-dir D         folder of the metrics logs named in the run files (default DIR)\n"
    "\n"
    "--check prints RUN.yaml resolved for N ranks, as `megatrain RUN.yaml --print-config` would\n"
    "under N ranks, after the same checks; CUDA run files are accepted by any build.\n"
    "\n"
    "Exit status: 0 done, 2 bad input (flags, run file, a point that cannot run), 1 other failure.\n";

typedef struct {
    char *name;  /* size name, ranks, or the --vary key's short name and value */
    char *spec;  /* as given, for the run file's comment */
    char **sets; /* section.key=value */
    int nsets;
} Spec;

typedef struct {
    Spec *specs;
    int n;
} Axis;

/* array of n elements of size bytes, grown by one holding *item */
static void *append(void *array, int n, size_t size, const void *item)
{
    char *grown = xmalloc((size_t)(n + 1) * size);
    if (n)
        memcpy(grown, array, (size_t)n * size);
    memcpy(grown + (size_t)n * size, item, size);
    free(array);
    return grown;
}

static void axis_add(Axis *a, Spec s)
{
    a->specs = append(a->specs, a->n++, sizeof s, &s);
}

static void spec_set(Spec *s, char *assignment)
{
    s->sets = append(s->sets, s->nsets++, sizeof assignment, &assignment);
}

/* "NAME[:K=V,...]"; in a layout a bare key is a parallel key (mb: micro_batches). */
static Spec spec_parse(const char *opt, const char *text, int layout)
{
    Spec s = {0};
    s.spec = xstrdup(text);
    char *copy = xstrdup(text), *colon = strchr(copy, ':');
    if (colon)
        *colon = '\0';
    s.name = xstrdup(copy);
    if (!*s.name || strpbrk(s.name, "/ \t"))
        fail_input("%s '%s': expected NAME[:section.key=value,...] with a name free of '/' and spaces", opt, text);
    if (layout)
        cliopt_int(opt, s.name, 1, 1 << 24); /* the ranks */
    else if (!colon)
        spec_set(&s, xasprintf("model.preset=%s", s.name));
    for (char *a = colon ? strtok(colon + 1, ",") : NULL; a; a = strtok(NULL, ",")) {
        if (!strchr(a, '='))
            fail_input("%s '%s': '%s' is not a key=value assignment", opt, text, a);
        if (layout && !strncmp(a, "mb=", 3))
            spec_set(&s, xasprintf("parallel.micro_batches=%s", a + 3));
        else if (layout && (!strchr(a, '.') || strchr(a, '.') > strchr(a, '='))) /* a bare key */
            spec_set(&s, xasprintf("parallel.%s", a));
        else
            spec_set(&s, xstrdup(a));
    }
    free(copy);
    return s;
}

/* "section.key=v1,v2,..." -> one spec per value, named KEYVALUE. */
static Axis vary_parse(const char *text)
{
    Axis a = {0};
    const char *eq = strchr(text, '='), *dot = strchr(text, '.');
    if (!eq || !dot || dot > eq || !eq[1])
        fail_input("--vary '%s': expected section.key=value1,value2,...", text);
    char *key = xasprintf("%.*s", (int)(eq - text), text), *values = xstrdup(eq + 1);
    for (char *v = strtok(values, ","); v; v = strtok(NULL, ",")) {
        if (strpbrk(v, "/ \t"))
            fail_input("--vary '%s': '%s' cannot be part of a file name", text, v);
        Spec s = {0};
        s.name = xasprintf("%s%s", strchr(key, '.') + 1, v);
        s.spec = xasprintf("%s=%s", key, v);
        spec_set(&s, xstrdup(s.spec));
        axis_add(&a, s);
    }
    free(key);
    free(values);
    return a;
}

static void apply(Config *c, char **sets, int n)
{
    for (int i = 0; i < n; i++)
        config_set(c, sets[i]);
}

/* Resolve and check c for ranks, as megatrain does (the dataset is not read). */
static void finish(Config *c, int ranks)
{
    if (c->model.vocab_size == 0)
        fail_input("model.vocab_size: needs a value (megasweep does not read the dataset)");
    config_finish(c, ranks, 0, 1 /* a run file for CUDA can be written by any build */);
}

typedef struct {
    const char *base, *dir, *metrics_dir;
    char **sets;
    int nsets;
    long long batch_tokens;
} Sweep;

static char *point_name(const Config *c, Spec **point, int naxes)
{
    char *name = xasprintf("%s-%s", point[0]->name, point[1]->name), *t;
    const char *tags[] = {"tp", "pp", "cp", "mb"};
    const int values[] = {c->parallel.tp, c->parallel.pp, c->parallel.cp, c->parallel.micro_batches};
    for (int i = 0; i < 4; i++)
        if (values[i] > 1) {
            t = xasprintf("%s-%s%d", name, tags[i], values[i]);
            free(name);
            name = t;
        }
    for (int a = 2; a < naxes; a++) {
        t = xasprintf("%s-%s", name, point[a]->name);
        free(name);
        name = t;
    }
    return name;
}

/* One point of the grid, resolved. */
typedef struct {
    Config c;
    char *name;
    int ranks;
    Spec **at; /* its spec on each axis */
} Point;

/* Resolve and check one point of the grid; errors name it. */
static void point_resolve(const Sweep *sw, Point *p, int naxes)
{
    p->ranks = atoi(p->at[1]->name); /* checked by spec_parse */
    Config *c = &p->c;
    config_defaults(c);
    config_load_yaml(c, sw->base);
    apply(c, sw->sets, sw->nsets);
    for (int a = 0; a < naxes; a++)
        apply(c, p->at[a]->sets, p->at[a]->nsets);
    p->name = point_name(c, p->at, naxes);
    char *progname = xasprintf("megasweep: %s", p->name);
    util_set_progname(progname); /* errors from here on name the point */
    if (sw->batch_tokens) {
        if (sw->batch_tokens % c->data.seq_len)
            fail_input("--batch-tokens %lld is not a multiple of data.seq_len (%d)", sw->batch_tokens, c->data.seq_len);
        char *set = xasprintf("data.batch_size=%lld", sw->batch_tokens / c->data.seq_len);
        config_set(c, set);
        free(set);
    }
    char *metrics = xasprintf("log.metrics=%s/%s.jsonl", sw->metrics_dir, p->name);
    config_set(c, metrics);
    free(metrics);
    finish(c, p->ranks);
    util_set_progname("megasweep");
    free(progname);
}

static int point_dp(const Point *p)
{
    return p->ranks / (p->c.parallel.tp * p->c.parallel.pp * p->c.parallel.cp);
}

/* DIR/NAME.yaml: where it comes from, then the resolved config. */
static void point_write(const Sweep *sw, const Point *p, int naxes)
{
    const Config *c = &p->c;
    char *path = xasprintf("%s/%s.yaml", sw->dir, p->name);
    FILE *f = fopen(path, "w");
    if (!f)
        fail_input("%s: cannot write: %s", path, strerror(errno));
    fprintf(f, "# %s.yaml: written by megasweep from %s for %d ranks (dp %d x tp %d x pp %d x cp %d);\n", p->name,
            sw->base, p->ranks, point_dp(p), c->parallel.tp, c->parallel.pp, c->parallel.cp);
    fprintf(f, "# regenerate it rather than edit it. Grid point: size %s; layout %s", p->at[0]->spec, p->at[1]->spec);
    for (int a = 2; a < naxes; a++)
        fprintf(f, "; %s", p->at[a]->spec);
    for (int i = 0; i < sw->nsets; i++)
        fprintf(f, "%s%s", i ? " " : "; with --set ", sw->sets[i]);
    if (sw->batch_tokens)
        fprintf(f, "; --batch-tokens %lld", sw->batch_tokens);
    fprintf(f, ".\n# Run: mpirun -np %d megatrain %s.yaml, or under Slurm see doc/slurm.md.\n", p->ranks, p->name);
    config_print(c, f);
    if (fclose(f) != 0)
        fail_input("%s: cannot write: %s", path, strerror(errno));
    printf("%s\n", path);
    free(path);
}

/* its row of DIR/sweep.tsv */
static char *point_row(const Point *p)
{
    const Config *c = &p->c;
    return xasprintf("%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d", p->name, p->ranks, point_dp(p), c->parallel.tp,
                     c->parallel.pp, c->parallel.cp, c->parallel.micro_batches, c->data.seq_len, c->data.batch_size);
}

static int row_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* the name field of a manifest row */
static size_t name_len(const char *row) { return strcspn(row, "\t\n"); }

/* DIR/sweep.tsv: the new rows, and the rows of other names already there, sorted by name. */
static void write_manifest(const char *dir, char **rows, int n)
{
    static const char header[] = "name\tranks\tdp\ttp\tpp\tcp\tmicro_batches\tseq_len\tbatch_size\n";
    char *path = xasprintf("%s/sweep.tsv", dir);
    int total = n;
    char **all = xmalloc((size_t)n * sizeof *all);
    memcpy(all, rows, (size_t)n * sizeof *rows);
    FILE *f = fopen(path, "r");
    if (f) {
        char *line = NULL;
        size_t size = 0;
        for (int lineno = 1; getline(&line, &size, f) >= 0; lineno++) {
            line[strcspn(line, "\n")] = '\0';
            if (lineno == 1 || !*line)
                continue;
            int mine = 0;
            for (int i = 0; i < n; i++)
                mine |= name_len(rows[i]) == name_len(line) && !strncmp(rows[i], line, name_len(line));
            if (!mine) {
                char *kept = xstrdup(line);
                all = append(all, total++, sizeof kept, &kept);
            }
        }
        free(line);
        fclose(f);
    }
    qsort(all, (size_t)total, sizeof *all, row_cmp);
    f = fopen(path, "w");
    if (!f)
        fail_input("%s: cannot write: %s", path, strerror(errno));
    fputs(header, f);
    for (int i = 0; i < total; i++)
        fprintf(f, "%s\n", all[i]);
    if (fclose(f) != 0)
        fail_input("%s: cannot write: %s", path, strerror(errno));
    for (int i = 0; i < total; i++)
        free(all[i]);
    free(all);
    free(path);
}

/* Resolve every point first, so that a bad one leaves no file written. */
static void sweep_run(const Sweep *sw, Axis *axes, int naxes)
{
    int total = 1;
    for (int a = 0; a < naxes; a++)
        total *= axes[a].n;
    Point *points = xcalloc((size_t)total, sizeof *points);
    for (int i = 0; i < total; i++) {
        Point *p = &points[i];
        p->at = xmalloc((size_t)naxes * sizeof *p->at);
        for (int a = naxes - 1, rest = i; a >= 0; a--) { /* the last axis varies fastest */
            p->at[a] = &axes[a].specs[rest % axes[a].n];
            rest /= axes[a].n;
        }
        point_resolve(sw, p, naxes);
        for (int q = 0; q < i; q++)
            if (!strcmp(points[q].name, p->name))
                fail_input("two grid points are named %s: give their sizes or layouts different names", p->name);
    }
    if (mkdir(sw->dir, 0777) != 0 && errno != EEXIST)
        fail_input("%s: cannot create the folder: %s", sw->dir, strerror(errno));
    char **rows = xmalloc((size_t)total * sizeof *rows);
    for (int i = 0; i < total; i++) {
        point_write(sw, &points[i], naxes);
        rows[i] = point_row(&points[i]);
        free(points[i].name);
        free(points[i].at);
    }
    write_manifest(sw->dir, rows, total);
    free(rows);
    free(points);
}

/* --check FILE --ranks RANKS: print FILE resolved for RANKS; the sweep's options have no place. */
static void check_main(const Sweep *sw, const Axis *axes, int naxes, const char *file, const char *ranks)
{
    if (sw->base || sw->dir || axes[0].n || axes[1].n || naxes > 2 || sw->batch_tokens || sw->metrics_dir)
        fail_input("--check takes only RUN.yaml, --ranks and --set (see megasweep --help)");
    if (!ranks)
        fail_input("--check needs --ranks N");
    Config c;
    config_defaults(&c);
    config_load_yaml(&c, file);
    apply(&c, sw->sets, sw->nsets);
    finish(&c, (int)cliopt_int("--ranks", ranks, 1, 1 << 24));
    config_print(&c, stdout);
}

static char *file_stem(const char *path)
{
    const char *base = strrchr(path, '/');
    char *s = xstrdup(base ? base + 1 : path), *dot = strrchr(s, '.');
    if (dot && dot != s)
        *dot = '\0';
    return s;
}

/* A sweep from the options: the defaults for what they leave out, then every point written. */
static void sweep_main(Sweep *sw, Axis *axes, int naxes, const char *ranks)
{
    if (!sw->base)
        fail_input("no base run file given (usage: megasweep BASE.yaml -o DIR ...; see megasweep --help)");
    if (!sw->dir)
        fail_input("no output folder given (-o DIR)");
    if (ranks)
        fail_input("--ranks goes with --check; a sweep takes its ranks from --layout");
    if (!sw->metrics_dir)
        sw->metrics_dir = sw->dir;
    if (!axes[0].n) {
        Spec s = {file_stem(sw->base), xstrdup("of the base file"), NULL, 0};
        axis_add(&axes[0], s);
    }
    if (!axes[1].n)
        axis_add(&axes[1], spec_parse("--layout", "1", 1));
    sweep_run(sw, axes, naxes);
}

static void axis_free(Axis *a)
{
    for (int i = 0; i < a->n; i++) {
        Spec *s = &a->specs[i];
        for (int j = 0; j < s->nsets; j++)
            free(s->sets[j]);
        free(s->sets);
        free(s->name);
        free(s->spec);
    }
    free(a->specs);
}

int main(int argc, char **argv)
{
    util_set_progname("megasweep");
    Sweep sw = {0};
    const char *check = NULL, *ranks = NULL, *v;
    Axis *axes = xcalloc((size_t)argc + 2, sizeof *axes); /* sizes, layouts, then each --vary */
    int naxes = 2, info = 0;
    sw.sets = xmalloc((size_t)argc * sizeof *sw.sets);
    for (int i = 1; i < argc && !info; i++) {
        if (argv[i][0] != '-') {
            if (sw.base)
                fail_input("one base run file, got '%s' and '%s' (see megasweep --help)", sw.base, argv[i]);
            sw.base = argv[i];
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            info = 1;
        } else if (!strcmp(argv[i], "--version")) {
            printf("megasweep %s\n", PACKAGE_VERSION);
            info = 1;
        } else if ((v = cliopt_value(argc, argv, &i, "--out", "-o"))) {
            sw.dir = v;
        } else if ((v = cliopt_value(argc, argv, &i, "--size", NULL))) {
            axis_add(&axes[0], spec_parse("--size", v, 0));
        } else if ((v = cliopt_value(argc, argv, &i, "--layout", NULL))) {
            axis_add(&axes[1], spec_parse("--layout", v, 1));
        } else if ((v = cliopt_value(argc, argv, &i, "--vary", NULL))) {
            axes[naxes++] = vary_parse(v);
        } else if ((v = cliopt_value(argc, argv, &i, "--set", NULL))) {
            sw.sets[sw.nsets++] = (char *)v;
        } else if ((v = cliopt_value(argc, argv, &i, "--batch-tokens", NULL))) {
            sw.batch_tokens = cliopt_int("--batch-tokens", v, 1, (long long)1 << 50);
        } else if ((v = cliopt_value(argc, argv, &i, "--metrics-dir", NULL))) {
            sw.metrics_dir = v;
        } else if ((v = cliopt_value(argc, argv, &i, "--check", NULL))) {
            check = v;
        } else if ((v = cliopt_value(argc, argv, &i, "--ranks", NULL))) {
            ranks = v;
        } else {
            fail_input("unknown option '%s' (see megasweep --help)", argv[i]);
        }
    }
    if (!info && check)
        check_main(&sw, axes, naxes, check, ranks);
    else if (!info)
        sweep_main(&sw, axes, naxes, ranks);
    for (int a = 0; a < naxes; a++)
        axis_free(&axes[a]);
    free(axes);
    free(sw.sets);
    return 0;
}
