/* scaling.c: rows of the scaling table and its Markdown and CSV forms (columns in doc/scaling.md). */
#include "tools/scaling.h"

#include "base/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int same_config(const Segment *a, const Segment *b)
{
    return a->world == b->world && a->dp == b->dp && a->tp == b->tp && a->pp == b->pp && a->cp == b->cp &&
           a->params == b->params && a->seq_len == b->seq_len && a->batch_size == b->batch_size;
}

/* The per-step values that are averaged, in the order of ScalingRow's mean fields. */
enum {
    MEAN_STEP_MS, MEAN_TOKENS_PER_S, MEAN_TFLOPS, MEAN_MFU, MEAN_COMPUTE_MS, MEAN_COMM,
    NMEANS = MEAN_COMM + COMM_KINDS
};

static void step_values(const StepRecord *s, double v[NMEANS])
{
    v[MEAN_STEP_MS] = s->step_ms;
    v[MEAN_TOKENS_PER_S] = s->tokens_per_s;
    v[MEAN_TFLOPS] = s->tflops;
    v[MEAN_MFU] = s->mfu;
    v[MEAN_COMPUTE_MS] = s->compute_ms;
    for (int k = 0; k < COMM_KINDS; k++)
        v[MEAN_COMM + k] = s->comm_ms[k];
}

/* Fill row from the steps of run r whose segment belongs to group g (seg_group[segment] == g). */
static void row_fill(ScalingRow *row, const RunLog *r, const int *seg_group, int g, int skip)
{
    int n = 0, counted = 0;
    for (int i = 0; i < r->nsteps; i++)
        if (seg_group[r->steps[i].segment] == g) {
            n++;
            counted += r->steps[i].index >= skip;
        }
    double sum[NMEANS] = {0}, v[NMEANS];
    int cnt[NMEANS] = {0};
    int64_t first = -1;
    row->mem_gb = NAN;
    row->loss = NAN;
    for (int i = 0; i < r->nsteps; i++) {
        const StepRecord *s = &r->steps[i];
        if (seg_group[s->segment] != g)
            continue;
        if (first < 0)
            first = s->step;
        row->steps = s->step;
        row->tokens = s->tokens;
        row->loss = s->loss;
        if (counted > 0 && s->index < skip)
            continue;
        if (isfinite(s->mem_gb) && !(s->mem_gb <= row->mem_gb))
            row->mem_gb = s->mem_gb;
        step_values(s, v);
        for (int k = 0; k < NMEANS; k++)
            if (isfinite(v[k])) {
                sum[k] += v[k];
                cnt[k]++;
            }
    }
    row->counted = counted > 0 ? counted : n;
    double mean[NMEANS];
    for (int k = 0; k < NMEANS; k++)
        mean[k] = cnt[k] ? sum[k] / cnt[k] : NAN;
    row->step_ms = mean[MEAN_STEP_MS];
    row->tokens_per_s = mean[MEAN_TOKENS_PER_S];
    row->tflops = mean[MEAN_TFLOPS];
    row->mfu = mean[MEAN_MFU];
    row->compute_ms = mean[MEAN_COMPUTE_MS];
    for (int k = 0; k < COMM_KINDS; k++)
        row->comm_ms[k] = mean[MEAN_COMM + k];
    row->val_loss = row->val_ppl = NAN;
    for (int e = 0; e < r->nevals; e++)
        if (first >= 0 && r->evals[e].step >= first && r->evals[e].step <= row->steps) {
            row->val_loss = r->evals[e].val_loss;
            row->val_ppl = r->evals[e].val_ppl;
        }
}

static int row_cmp(const void *pa, const void *pb)
{
    const ScalingRow *a = pa, *b = pb;
    if (a->seg->params != b->seg->params)
        return a->seg->params < b->seg->params ? -1 : 1;
    if (a->seg->seq_len != b->seg->seq_len)
        return a->seg->seq_len < b->seg->seq_len ? -1 : 1;
    if (a->seg->world != b->seg->world)
        return a->seg->world < b->seg->world ? -1 : 1;
    return strcmp(a->label, b->label);
}

void scaling_build(ScalingTable *t, const RunLog *runs, int nruns, int skip)
{
    int cap = 0;
    for (int r = 0; r < nruns; r++)
        cap += runs[r].nsegments;
    t->rows = xcalloc((size_t)cap, sizeof *t->rows);
    t->n = 0;
    for (int r = 0; r < nruns; r++) {
        const RunLog *run = &runs[r];
        int *seg_group = xmalloc((size_t)run->nsegments * sizeof *seg_group), ngroups = 0;
        for (int s = 0; s < run->nsegments; s++) {
            seg_group[s] = ngroups;
            for (int q = 0; q < s; q++)
                if (same_config(&run->segments[q], &run->segments[s])) {
                    seg_group[s] = seg_group[q];
                    break;
                }
            ngroups += seg_group[s] == ngroups;
        }
        for (int g = 0; g < ngroups; g++) {
            ScalingRow *row = &t->rows[t->n++];
            row->run = run;
            for (int s = 0; s < run->nsegments; s++)
                if (seg_group[s] == g)
                    row->seg = &run->segments[s];
            row->label = ngroups > 1 ? xasprintf("%s#%d", run->name, g + 1) : xstrdup(run->name);
            row_fill(row, run, seg_group, g, skip);
        }
        free(seg_group);
    }
    qsort(t->rows, (size_t)t->n, sizeof *t->rows, row_cmp);
    /* each block of rows with the same params and seq_len, against its first row with a throughput */
    for (int i = 0, end; i < t->n; i = end) {
        const Segment *s = t->rows[i].seg;
        double base = NAN;
        for (end = i; end < t->n && t->rows[end].seg->params == s->params && t->rows[end].seg->seq_len == s->seq_len;
             end++)
            if (isnan(base))
                base = t->rows[end].tokens_per_s / t->rows[end].seg->world;
        for (int j = i; j < end; j++)
            t->rows[j].efficiency = t->rows[j].tokens_per_s / t->rows[j].seg->world / base;
    }
}

void scaling_human(char *buf, size_t size, double v)
{
    static const char units[] = " KMGTP";
    int u = 0;
    while (fabs(v) >= 999.5 && u < 5) {
        v /= 1000;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%.0f", v);
    else
        snprintf(buf, size, "%.3g%c", v, units[u] == 'G' ? 'B' : units[u]);
}

/* The columns: CSV name, Markdown title, Markdown format ("h": human count), Markdown scale. */
typedef enum {
    COL_PARAMS, COL_SEQ_LEN, COL_BATCH_TOKENS, COL_RANKS, COL_DP, COL_TP, COL_PP, COL_CP, COL_STEPS, COL_TOKENS,
    COL_LOSS, COL_VAL_LOSS, COL_VAL_PPL, COL_STEP_MS, COL_TOKENS_PER_S, COL_TOKENS_PER_S_RANK, COL_TFLOPS_RANK, COL_MFU,
    COL_MEM_GB, COL_EFFICIENCY, COL_COMPUTE_MS, COL_COMM, NCOLS = COL_COMM + COMM_KINDS
} Col;

static const struct {
    const char *csv, *md, *fmt;
    double scale;
} cols[NCOLS] = {
    {"params", "params", "h", 1},
    {"seq_len", "seq len", "%.0f", 1},
    {"batch_tokens", "batch tokens", "h", 1},
    {"ranks", "ranks", "%.0f", 1},
    {"dp", "dp", "%.0f", 1},
    {"tp", "tp", "%.0f", 1},
    {"pp", "pp", "%.0f", 1},
    {"cp", "cp", "%.0f", 1},
    {"steps", "steps", "%.0f", 1},
    {"tokens", "tokens", "h", 1},
    {"loss", "loss", "%.4f", 1},
    {"val_loss", "val loss", "%.4f", 1},
    {"val_ppl", "val ppl", "%.2f", 1},
    {"step_ms", "step ms", "%.1f", 1},
    {"tokens_per_s", "tokens/s", "%.0f", 1},
    {"tokens_per_s_per_rank", "tokens/s/rank", "%.0f", 1},
    {"tflops_per_rank", "TFLOP/s/rank", "%.3g", 1},
    {"mfu", "MFU %", "%.1f", 100},
    {"mem_gb", "mem GB", "%.2f", 1},
    {"efficiency", "scaling eff.", "%.2f", 1},
    {"compute_ms", "compute ms", "%.1f", 1},
    {"comm_dp_ms", "dp comm ms", "%.1f", 1},
    {"comm_tp_ms", "tp comm ms", "%.1f", 1},
    {"comm_pp_ms", "pp comm ms", "%.1f", 1},
    {"comm_cp_ms", "cp comm ms", "%.1f", 1},
};

static double col_value(const ScalingRow *r, int c)
{
    const Segment *s = r->seg;
    switch (c) {
    case COL_PARAMS: return (double)s->params;
    case COL_SEQ_LEN: return s->seq_len;
    case COL_BATCH_TOKENS: return (double)s->batch_size * s->seq_len;
    case COL_RANKS: return s->world;
    case COL_DP: return s->dp;
    case COL_TP: return s->tp;
    case COL_PP: return s->pp;
    case COL_CP: return s->cp;
    case COL_STEPS: return (double)r->steps;
    case COL_TOKENS: return (double)r->tokens;
    case COL_LOSS: return r->loss;
    case COL_VAL_LOSS: return r->val_loss;
    case COL_VAL_PPL: return r->val_ppl;
    case COL_STEP_MS: return r->step_ms;
    case COL_TOKENS_PER_S: return r->tokens_per_s;
    case COL_TOKENS_PER_S_RANK: return r->tokens_per_s / s->world;
    case COL_TFLOPS_RANK: return r->tflops / s->world;
    case COL_MFU: return r->mfu;
    case COL_MEM_GB: return r->mem_gb;
    case COL_EFFICIENCY: return r->efficiency;
    case COL_COMPUTE_MS: return r->compute_ms;
    default: return r->comm_ms[c - COL_COMM];
    }
}

/* The timing columns appear only when some log has them. */
static int col_shown(const ScalingTable *t, int c)
{
    if (c < COL_COMPUTE_MS)
        return 1;
    for (int i = 0; i < t->n; i++)
        if (isfinite(col_value(&t->rows[i], c)))
            return 1;
    return 0;
}

/* A label as one CSV field (quoted when it needs to be) or Markdown cell ('|' escaped). */
static void print_label(FILE *f, const char *s, int csv)
{
    int quote = csv && strpbrk(s, ",\"\n");
    if (quote)
        fputc('"', f);
    for (; *s; s++) {
        if ((quote && *s == '"') || (!csv && *s == '|'))
            fputc(csv ? '"' : '\\', f);
        fputc(*s, f);
    }
    if (quote)
        fputc('"', f);
}

void scaling_print(const ScalingTable *t, FILE *f, int csv)
{
    int shown[NCOLS];
    for (int c = 0; c < NCOLS; c++)
        shown[c] = col_shown(t, c);
    fputs(csv ? "run" : "| run |", f);
    for (int c = 0; c < NCOLS; c++)
        if (shown[c])
            fprintf(f, csv ? ",%s" : " %s |", csv ? cols[c].csv : cols[c].md);
    fputc('\n', f);
    if (!csv) {
        fputs("|---|", f);
        for (int c = 0; c < NCOLS; c++)
            if (shown[c])
                fputs("---:|", f);
        fputc('\n', f);
    }
    for (int i = 0; i < t->n; i++) {
        fputs(csv ? "" : "| ", f);
        print_label(f, t->rows[i].label, csv);
        fputs(csv ? "" : " |", f);
        for (int c = 0; c < NCOLS; c++) {
            if (!shown[c])
                continue;
            double v = col_value(&t->rows[i], c);
            char cell[64] = "";
            if (csv && isfinite(v))
                snprintf(cell, sizeof cell, "%.9g", v);
            else if (!csv && !isfinite(v))
                snprintf(cell, sizeof cell, "-");
            else if (!csv && !strcmp(cols[c].fmt, "h"))
                scaling_human(cell, sizeof cell, v);
            else if (!csv)
                snprintf(cell, sizeof cell, cols[c].fmt, v * cols[c].scale);
            fprintf(f, csv ? ",%s" : " %s |", cell);
        }
        fputc('\n', f);
    }
}

void scaling_free(ScalingTable *t)
{
    for (int i = 0; i < t->n; i++)
        free(t->rows[i].label);
    free(t->rows);
    t->rows = NULL;
    t->n = 0;
}
