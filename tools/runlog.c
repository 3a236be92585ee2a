/* runlog.c: read and check one metrics log (see runlog.h; record fields in doc/scaling.md). */
#include "tools/runlog.h"

#include "base/util.h"
#include "base/jsonl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const runlog_comm_names[COMM_KINDS] = {"dp", "tp", "pp", "cp"};

/* room for one more element in a growing array */
static void *grow(void *a, int n, int *cap, size_t size)
{
    if (n < *cap)
        return a;
    *cap = *cap ? 2 * *cap : 64;
    a = realloc(a, (size_t)*cap * size);
    if (!a)
        fail("out of memory reading a metrics log");
    return a;
}

typedef struct {
    const char *path;
    int line;
    const char *type;
    const JsonRecord *rec;
} Where;

/* A number field: required ones must be present (null allowed only if nullable), optional ones are
   NAN when absent or null. */
static double number(const Where *w, const char *key, int required, int nullable)
{
    const JsonField *f = jsonl_get(w->rec, key);
    if (!f) {
        if (required)
            fail_input("%s:%d: %s record without \"%s\"", w->path, w->line, w->type, key);
        return NAN;
    }
    if (f->kind == JSON_NULL && (nullable || !required))
        return NAN;
    if (f->kind != JSON_NUMBER)
        fail_input("%s:%d: \"%s\": expected a number%s, got %s", w->path, w->line, key, nullable ? " or null" : "",
                   f->kind == JSON_STRING ? "a string" : f->kind == JSON_BOOL ? "true/false" : "null");
    return f->num;
}

static int64_t integer(const Where *w, const char *key, int64_t min)
{
    double v = number(w, key, 1, 0);
    if (v != floor(v) || v < (double)min || v > 9e18)
        fail_input("%s:%d: \"%s\": expected an integer of at least %lld, got %.17g", w->path, w->line, key,
                   (long long)min, v);
    return (int64_t)v;
}

static void read_header(RunLog *r, const Where *w, int *cap)
{
    r->segments = grow(r->segments, r->nsegments, cap, sizeof *r->segments);
    Segment *s = &r->segments[r->nsegments++];
    s->line = w->line;
    s->world = (int)integer(w, "layout.world", 1);
    s->dp = (int)integer(w, "layout.dp", 1);
    s->tp = (int)integer(w, "layout.tp", 1);
    s->pp = (int)integer(w, "layout.pp", 1);
    s->cp = (int)integer(w, "layout.cp", 1);
    if ((int64_t)s->dp * s->tp * s->pp * s->cp != s->world)
        fail_input("%s:%d: layout: dp * tp * pp * cp = %d * %d * %d * %d is not world (%d)", w->path, w->line, s->dp,
                   s->tp, s->pp, s->cp, s->world);
    s->params = integer(w, "params", 1);
    s->seq_len = (int)integer(w, "config.data.seq_len", 1);
    s->batch_size = (int)integer(w, "config.data.batch_size", 1);
    s->peak_tflops = number(w, "peak_tflops_per_rank", 0, 1);
}

/* Steps repeated by a resumed run replace the earlier ones from that step on, evals with them. */
static void drop_from(RunLog *r, int64_t step)
{
    while (r->nsteps > 0 && r->steps[r->nsteps - 1].step >= step)
        r->nsteps--;
    while (r->nevals > 0 && r->evals[r->nevals - 1].step >= step)
        r->nevals--;
}

static void read_step(RunLog *r, const Where *w, int *cap)
{
    StepRecord s = {.line = w->line, .segment = r->nsegments - 1};
    s.step = integer(w, "step", 1);
    s.tokens = integer(w, "tokens", 0);
    s.loss = number(w, "loss", 1, 1);
    static const char *names[] = {"lr", "grad_norm", "step_ms", "tokens_per_s", "tflops", "mfu", "mem_gb",
                                  "compute_ms"};
    double *values[] = {&s.lr, &s.grad_norm, &s.step_ms, &s.tokens_per_s, &s.tflops, &s.mfu, &s.mem_gb,
                        &s.compute_ms};
    for (int i = 0; i < 8; i++)
        *values[i] = number(w, names[i], 0, 1);
    for (int k = 0; k < COMM_KINDS; k++) {
        char key[32];
        snprintf(key, sizeof key, "comm_ms.%s", runlog_comm_names[k]);
        s.comm_ms[k] = number(w, key, 0, 1);
    }
    drop_from(r, s.step);
    const StepRecord *last = r->nsteps ? &r->steps[r->nsteps - 1] : NULL;
    s.index = last && last->segment == s.segment ? last->index + 1 : 0;
    r->steps = grow(r->steps, r->nsteps, cap, sizeof *r->steps);
    r->steps[r->nsteps++] = s;
}

static void read_eval(RunLog *r, const Where *w, int *cap)
{
    EvalRecord e;
    e.step = integer(w, "step", 0);
    e.tokens = integer(w, "tokens", 0);
    e.val_loss = number(w, "val_loss", 1, 1);
    e.val_ppl = number(w, "val_ppl", 0, 1);
    if (r->nevals > 0 && r->evals[r->nevals - 1].step >= e.step)
        r->nevals--; /* evaluated again after a resume */
    r->evals = grow(r->evals, r->nevals, cap, sizeof *r->evals);
    r->evals[r->nevals++] = e;
}

static void read_position(RunLog *r, const Where *w, int *cap)
{
    PositionRecord p = {.from = integer(w, "from", 0), .to = integer(w, "to", 1), .tokens = integer(w, "tokens", 0),
                        .loss = number(w, "loss", 1, 1)};
    if (p.to <= p.from)
        fail_input("%s:%d: position record from %lld to %lld: expected from < to", w->path, w->line,
                   (long long)p.from, (long long)p.to);
    r->positions = grow(r->positions, r->npositions, cap, sizeof *r->positions);
    r->positions[r->npositions++] = p;
}

static char *stem(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char *s = xstrdup(base);
    char *dot = strrchr(s, '.');
    if (dot && dot != s && (!strcmp(dot, ".jsonl") || !strcmp(dot, ".json")))
        *dot = '\0';
    return s;
}

void runlog_read(RunLog *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->path = xstrdup(path);
    r->name = stem(path);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_input("%s: cannot open the metrics log: %s", path, strerror(errno));
    JsonRecord rec = {0};
    char *line = NULL;
    size_t size = 0;
    ssize_t len;
    int lineno = 0, seg_cap = 0, step_cap = 0, eval_cap = 0, pos_cap = 0;
    while ((len = getline(&line, &size, f)) >= 0) {
        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if ((size_t)len != strlen(line))
            fail_input("%s:%d: a NUL byte inside the line (expected one JSON object per line)", path, lineno);
        int col;
        const char *expected = jsonl_parse(line, &rec, &col);
        if (expected)
            fail_input("%s:%d:%d: malformed record: expected %s", path, lineno, col, expected);
        const JsonField *type = jsonl_get(&rec, "type");
        if (!type || type->kind != JSON_STRING)
            fail_input("%s:%d: record without a \"type\" string (header, step or eval)", path, lineno);
        Where w = {path, lineno, type->str, &rec};
        if (!strcmp(type->str, "header"))
            read_header(r, &w, &seg_cap);
        else if (!strcmp(type->str, "position"))
            read_position(r, &w, &pos_cap);
        else if (strcmp(type->str, "step") && strcmp(type->str, "eval"))
            continue; /* a kind of record this reader does not know: later versions may add some */
        else if (r->nsegments == 0)
            fail_input("%s:%d: %s record before the first header record", path, lineno, type->str);
        else if (!strcmp(type->str, "step"))
            read_step(r, &w, &step_cap);
        else
            read_eval(r, &w, &eval_cap);
    }
    if (ferror(f))
        fail_input("%s: read error: %s", path, strerror(errno));
    fclose(f);
    free(line);
    jsonl_free(&rec);
    if (r->nsegments == 0 && r->npositions == 0)
        fail_input("%s: no header record: not a megatrain metrics log (nor a megatrain eval --by-position file)",
                   path);
}

void runlog_free(RunLog *r)
{
    free(r->path);
    free(r->name);
    free(r->segments);
    free(r->steps);
    free(r->evals);
    free(r->positions);
    memset(r, 0, sizeof *r);
}
