/* plots.c: megaplot's gnuplot scripts and the running of gnuplot (see plots.h). */
#include "tools/plots.h"

#include "base/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* One figure being written: datablocks go to the script as they come, plot items to cmd. */
typedef struct {
    const char *dir, *name;
    char *path;
    FILE *f;
    FILE *cmd; /* memory stream of the plot command */
    char *cmd_text;
    size_t cmd_len;
    int nblocks, nitems;
} Figure;

static FILE *open_or_fail(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        fail_input("%s: cannot write: %s", path, strerror(errno));
    return f;
}

/* A gnuplot single-quoted string: only ' needs escaping, by doubling it. */
static void gp_quote(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

static void fig_begin(Figure *g, const char *dir, const char *name)
{
    memset(g, 0, sizeof *g);
    g->dir = dir;
    g->name = name;
    g->path = xasprintf("%s/%s.gp", dir, name);
    g->f = open_or_fail(g->path);
    g->cmd = open_memstream(&g->cmd_text, &g->cmd_len);
    if (!g->cmd)
        fail("open_memstream: %s", strerror(errno));
    fprintf(g->f, "# %s.gp: written by megaplot; `gnuplot %s.gp` in this folder redraws %s.png and %s.svg.\n",
            name, name, name, name);
}

/* Start datablock $dN; the caller writes its rows, then fig_block_end. Returns N. */
static int fig_block(Figure *g)
{
    fprintf(g->f, "$d%d << EOD\n", g->nblocks);
    return g->nblocks++;
}

static void fig_block_end(Figure *g) { fputs("EOD\n", g->f); }

/* One plot item: columns "using" of block, drawn with style, titled (NULL: no key entry). */
static void fig_item(Figure *g, int block, const char *using, const char *style, const char *title)
{
    fprintf(g->cmd, "%s$d%d using %s with %s ", g->nitems ? ", \\\n     " : "plot ", block, using, style);
    if (title)
        fputs("title ", g->cmd), gp_quote(g->cmd, title);
    else
        fputs("notitle", g->cmd);
    g->nitems++;
}

static void run_gnuplot(const char *dir, const char *script)
{
    const char *gnuplot = getenv("GNUPLOT");
    if (!gnuplot || !*gnuplot)
        gnuplot = "gnuplot";
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        fail("fork: %s", strerror(errno));
    if (pid == 0) {
        if (chdir(dir) != 0) {
            fprintf(stderr, "megaplot: fatal: %s: %s\n", dir, strerror(errno));
            _exit(127);
        }
        execlp(gnuplot, gnuplot, script, (char *)NULL);
        fprintf(stderr, "megaplot: fatal: cannot run %s: %s (install gnuplot, e.g. the Debian package "
                        "gnuplot-nox, or name it in $GNUPLOT)\n", gnuplot, strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            fail("waitpid: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("%s/%s: gnuplot failed (%s %d)", dir, script, WIFEXITED(status) ? "exit status" : "signal",
             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

/* Settings, the plot command for PNG then SVG; run gnuplot. A figure with nothing to plot is
   removed and noted instead. */
static void fig_end(Figure *g, const char *title, const char *xlabel, const char *ylabel, const char *settings)
{
    fclose(g->cmd);
    if (g->nitems == 0) {
        fclose(g->f);
        remove(g->path);
        fprintf(stderr, "megaplot: note: no data for %s (%s): not drawn\n", g->name, title);
    } else {
        FILE *f = g->f;
        fputs("set title ", f), gp_quote(f, title);
        fputs("\nset xlabel ", f), gp_quote(f, xlabel);
        fputs("\nset ylabel ", f), gp_quote(f, ylabel);
        fprintf(f, "\nset grid\nset key outside right top\n%s", settings);
        const char *term = "size 1000,600 noenhanced font 'sans,10'";
        fprintf(f, "set terminal pngcairo %s\nset output '%s.png'\n%s\n", term, g->name, g->cmd_text);
        fprintf(f, "set terminal svg %s\nset output '%s.svg'\nreplot\nunset output\n", term, g->name);
        if (fclose(f) != 0)
            fail_input("%s: cannot write: %s", g->path, strerror(errno));
        char *script = xasprintf("%s.gp", g->name);
        run_gnuplot(g->dir, script);
        free(script);
    }
    free(g->cmd_text);
    free(g->path);
}

/* "set logscale x 2" with a little room around [lo, hi] */
static char *log2_axis(double lo, double hi)
{
    return xasprintf("set logscale x 2\nset xrange [%g:%g]\n", lo / 1.25, hi * 1.25);
}

/* "set logscale y" over [lo, hi] with room, tics at 1, 2 and 5 times powers of ten (gnuplot labels
   only powers of ten, which a narrow range may not hold) */
static char *log10_axis(double lo, double hi)
{
    lo /= 1.5;
    hi *= 1.5;
    char *tics = xstrdup("");
    for (double decade = pow(10, floor(log10(lo))); decade <= hi; decade *= 10)
        for (int m = 1; m <= 5; m += m == 1 ? 1 : 3) {
            if (m * decade < lo || m * decade > hi)
                continue;
            char *t = xasprintf("%s%s%g", tics, *tics ? ", " : "", m * decade);
            free(tics);
            tics = t;
        }
    char *s = xasprintf("set logscale y\nset yrange [%g:%g]\nset ytics (%s)\n", lo, hi, tics);
    free(tics);
    return s;
}

static void loss_figure(const char *dir, const RunLog *runs, int nruns)
{
    Figure g;
    fig_begin(&g, dir, "loss");
    for (int i = 0; i < nruns; i++) {
        const RunLog *r = &runs[i];
        char style[64], *title;
        int steps = 0, evals = 0;
        for (int s = 0; s < r->nsteps; s++)
            steps += isfinite(r->steps[s].loss);
        for (int e = 0; e < r->nevals; e++)
            evals += isfinite(r->evals[e].val_loss);
        if (steps) {
            int b = fig_block(&g);
            for (int s = 0; s < r->nsteps; s++)
                if (isfinite(r->steps[s].loss))
                    fprintf(g.f, "%lld %.9g\n", (long long)r->steps[s].tokens, r->steps[s].loss);
            fig_block_end(&g);
            snprintf(style, sizeof style, "lines lt %d lw 1.5", i + 1);
            fig_item(&g, b, "1:2", style, r->name);
        }
        if (evals) {
            int b = fig_block(&g);
            for (int e = 0; e < r->nevals; e++)
                if (isfinite(r->evals[e].val_loss))
                    fprintf(g.f, "%lld %.9g\n", (long long)r->evals[e].tokens, r->evals[e].val_loss);
            fig_block_end(&g);
            snprintf(style, sizeof style, "linespoints lt %d pt 7 dt 2", i + 1);
            title = xasprintf("%s (validation)", r->name);
            fig_item(&g, b, "1:2", style, title);
            free(title);
        }
    }
    fig_end(&g, "Loss against tokens (solid: training; dashed with points: validation)", "tokens", "loss", "");
}

/* Throughput against ranks, one series per model size and sequence length (consecutive rows of
   the sorted table), with linear scaling from the series' fewest ranks dashed. */
static void throughput_figure(const char *dir, const ScalingTable *t)
{
    Figure g;
    fig_begin(&g, dir, "throughput");
    double lo = INFINITY, hi = 0, ylo = INFINITY, yhi = 0;
    for (int i = 0, series = 0; i < t->n; series++) {
        const Segment *first = t->rows[i].seg;
        int b = fig_block(&g), n = 0;
        for (; i < t->n && t->rows[i].seg->params == first->params && t->rows[i].seg->seq_len == first->seq_len; i++) {
            const ScalingRow *r = &t->rows[i];
            if (!isfinite(r->tokens_per_s))
                continue;
            double ideal = r->tokens_per_s / r->efficiency;
            fprintf(g.f, "%d %.9g %.9g\n", r->seg->world, r->tokens_per_s, ideal);
            lo = fmin(lo, r->seg->world);
            hi = fmax(hi, r->seg->world);
            ylo = fmin(ylo, fmin(r->tokens_per_s, ideal));
            yhi = fmax(yhi, fmax(r->tokens_per_s, ideal));
            n++;
        }
        fig_block_end(&g);
        if (!n)
            continue;
        char params[32], style[64], *title;
        scaling_human(params, sizeof params, (double)first->params);
        title = xasprintf("%s params, seq %d", params, first->seq_len);
        snprintf(style, sizeof style, "linespoints lt %d pt 7 lw 1.5", series + 1);
        fig_item(&g, b, "1:2", style, title);
        snprintf(style, sizeof style, "lines lt %d dt 2", series + 1);
        fig_item(&g, b, "1:3", style, NULL);
        free(title);
    }
    char *xaxis = g.nitems ? log2_axis(lo, hi) : xstrdup("");
    char *yaxis = g.nitems ? log10_axis(ylo, yhi) : xstrdup("");
    char *settings = xasprintf("%s%s", xaxis, yaxis);
    fig_end(&g, "Throughput against ranks (dashed: linear scaling from the fewest ranks)", "ranks (GPUs)",
            "tokens/s", settings);
    free(xaxis);
    free(yaxis);
    free(settings);
}

/* MFU against sequence length, one series per model size and rank count. */
static void mfu_figure(const char *dir, const ScalingTable *t)
{
    Figure g;
    fig_begin(&g, dir, "mfu");
    char *done = xcalloc((size_t)t->n + 1, 1); /* rows already in a series */
    double lo = INFINITY, hi = 0;
    for (int i = 0, series = 0; i < t->n; i++) {
        if (done[i])
            continue;
        const Segment *key = t->rows[i].seg;
        int b = fig_block(&g), n = 0;
        for (int j = i; j < t->n; j++) { /* rows are sorted by seq_len within a model size */
            const ScalingRow *r = &t->rows[j];
            if (r->seg->params != key->params || r->seg->world != key->world)
                continue;
            done[j] = 1;
            if (!isfinite(r->mfu))
                continue;
            fprintf(g.f, "%d %.9g\n", r->seg->seq_len, 100 * r->mfu);
            lo = fmin(lo, r->seg->seq_len);
            hi = fmax(hi, r->seg->seq_len);
            n++;
        }
        fig_block_end(&g);
        if (!n)
            continue;
        char params[32], style[64], *title;
        scaling_human(params, sizeof params, (double)key->params);
        title = xasprintf("%s params, %d rank%s", params, key->world, key->world > 1 ? "s" : "");
        snprintf(style, sizeof style, "linespoints lt %d pt 7 lw 1.5", ++series);
        fig_item(&g, b, "1:2", style, title);
        free(title);
    }
    free(done);
    char *settings = g.nitems ? log2_axis(lo, hi) : xstrdup("");
    char *all = xasprintf("%sset yrange [0:*]\n", settings);
    fig_end(&g, "MFU against sequence length", "sequence length (tokens)", "MFU (%)", all);
    free(settings);
    free(all);
}

/* Loss against position in the window (megatrain eval --by-position), one series per file: each
   bucket's mean loss at the bucket's end. */
static void position_figure(const char *dir, const RunLog *runs, int nruns)
{
    Figure g;
    fig_begin(&g, dir, "position");
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < nruns; i++) {
        const RunLog *r = &runs[i];
        if (!r->npositions)
            continue;
        int b = fig_block(&g);
        for (int k = 0; k < r->npositions; k++) {
            fprintf(g.f, "%lld %.9g\n", (long long)r->positions[k].to, r->positions[k].loss);
            lo = fmin(lo, (double)r->positions[k].to);
            hi = fmax(hi, (double)r->positions[k].to);
        }
        fig_block_end(&g);
        char style[64];
        snprintf(style, sizeof style, "linespoints lt %d pt 7 lw 1.5", i + 1);
        fig_item(&g, b, "1:2", style, r->name);
    }
    char *settings = g.nitems ? log2_axis(lo, hi) : xstrdup("");
    fig_end(&g, "Loss by position in the window (each point: the mean over the positions since the previous one)",
            "position (tokens)", "loss (nats per token)", settings);
    free(settings);
}

void plots_draw(const char *dir, const RunLog *runs, int nruns, const ScalingTable *t)
{
    loss_figure(dir, runs, nruns);
    position_figure(dir, runs, nruns);
    throughput_figure(dir, t);
    mfu_figure(dir, t);
}
