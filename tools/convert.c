/* convert.c: checkpoints to and from safetensors (see convert.h). */
#include "tools/convert.h"

#include "base/util.h"
#include "tools/safetensors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_MAX 10 /* problems named in one message */

/* The whole model's parameter table (one rank, one stage): every tensor at its global shape. */
static int whole_table(const ModelDims *d, ParamInfo **table)
{
    ModelPart part = model_part(d, 1, 0, 1, 0);
    return model_table(d, &part, table);
}

/* The parameter that has this name, as its own or as its second name (a tied head). */
static const ParamInfo *find_param(const ParamInfo *table, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(table[i].name, name) || (table[i].tied_as && !strcmp(table[i].tied_as, name)))
            return &table[i];
    return NULL;
}

/* A parameter's name in the safetensors file's two passes: every parameter under its own name,
   then those that serve twice (a tied head) under their second (NULL: none). */
static const char *name_in(const ParamInfo *p, int pass) { return pass ? p->tied_as : p->name; }

/* ---- export ---- */

typedef struct {
    const CkptInfo *ck;
    const ParamInfo **params; /* what each safetensors entry holds */
} Export;

static void export_fill(void *ctx, int i, float *out)
{
    Export *x = ctx;
    char err[1024];
    if (ckpt_read(x->ck, "params", x->params[i], 0, out, err, sizeof err))
        fail_input("%s", err);
}

void convert_export(const CkptInfo *ck, const char *out)
{
    ParamInfo *table;
    int n = whole_table(&ck->dims, &table), total = 0;
    SafeTensorSpec *specs = xcalloc(2 * (size_t)n, sizeof *specs);
    Export x = {ck, xcalloc(2 * (size_t)n, sizeof *x.params)};
    for (int e = 0; e < 2 * n; e++) { /* both passes */
        const ParamInfo *p = &table[e % n];
        if (!name_in(p, e / n))
            continue;
        x.params[total] = p;
        specs[total++] = (SafeTensorSpec){name_in(p, e / n), p->ndim, p->shape};
    }
    char step[32];
    snprintf(step, sizeof step, "%lld", (long long)ck->step);
    const char *metadata[] = {"format", "pt", "megatrain_step", step, "megatrain_config", ck->config, NULL};
    safetensors_write(out, specs, total, metadata, export_fill, &x);
    free(x.params);
    free(specs);
    free(table);
}

/* ---- import ---- */

typedef struct {
    SafeTensors st;
    float *full;            /* the last tensor read, whole */
    const SafeTensor *have; /* its entry in st (a parameter table's names go with its shard file) */
} Import;

/* shape as "[a, b, c]" into buf */
static const char *shape_text(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t at = (size_t)snprintf(buf, len, "[");
    for (int k = 0; k < ndim && at < len; k++)
        at += (size_t)snprintf(buf + at, len - at, "%s%lld", k ? ", " : "", (long long)shape[k]);
    if (at < len)
        snprintf(buf + at, len - at, "]");
    return buf;
}

/* Every tensor of the model present, F32, of its shape (a second name is optional); one message
   naming all that are not. */
static void import_check(const SafeTensors *st, const ParamInfo *table, int n)
{
    char *list;
    size_t len;
    FILE *f = open_memstream(&list, &len);
    if (!f)
        fail("open_memstream: %s", strerror(errno));
    int bad = 0;
    for (int e = 0; e < 2 * n; e++) { /* both passes */
        const ParamInfo *p = &table[e % n];
        const char *name = name_in(p, e / n);
        const SafeTensor *t = name ? safetensors_find(st, name) : NULL;
        if (!name || (!t && e >= n))
            continue; /* a second name is optional */
        char want[128], got[128];
        shape_text(want, sizeof want, p->ndim, p->shape);
        int same = t && t->ndim == p->ndim;
        for (int k = 0; same && k < p->ndim; k++)
            same = t->shape[k] == p->shape[k];
        if (t && same && !strcmp(t->dtype, "F32"))
            continue;
        if (bad++ < LIST_MAX) {
            fprintf(f, "\n  %s: ", name);
            if (!t)
                fprintf(f, "missing (expected F32 %s)", want);
            else
                fprintf(f, "%s %s, expected F32 %s", t->dtype, shape_text(got, sizeof got, t->ndim, t->shape), want);
        }
    }
    if (bad > LIST_MAX)
        fprintf(f, "\n  and %d more", bad - LIST_MAX);
    fclose(f);
    if (bad)
        fail_input("%s: %d tensor(s) missing or not as the run file's model has them:%s", st->path, bad, list);
    free(list);
    int extra = 0;
    for (int i = 0; i < st->n; i++)
        if (!find_param(table, n, st->t[i].name) && extra++ < LIST_MAX)
            log_warn("%s: tensor %s is not a parameter of this model: ignored", st->path, st->t[i].name);
    if (extra > LIST_MAX)
        log_warn("%s: and %d more tensors ignored", st->path, extra - LIST_MAX);
}

static void import_read(Import *x, const char *name)
{
    const SafeTensor *t = safetensors_find(&x->st, name);
    if (t == x->have)
        return;
    safetensors_read_f32(&x->st, t, x->full);
    x->have = t;
}

static void import_fill(void *ctx, int group, const ParamInfo *p, int tp_rank, float *out)
{
    Import *x = ctx;
    if (group) { /* AdamW moments: a fresh start */
        memset(out, 0, p->numel * sizeof(float));
        return;
    }
    import_read(x, p->name);
    for (size_t e = 0; e < p->numel; e++)
        out[e] = x->full[param_global_index(p, tp_rank, (int64_t)e)];
}

void convert_import(const char *in, const char *out, const CkptInfo *meta)
{
    Import x = {0};
    safetensors_open(&x.st, in);
    ParamInfo *table;
    int n = whole_table(&meta->dims, &table);
    import_check(&x.st, table, n);
    size_t most = 0;
    for (int i = 0; i < n; i++)
        most = table[i].numel > most ? table[i].numel : most;
    x.full = xmalloc(most * sizeof(float));
    for (int i = 0; i < n; i++) {
        const ParamInfo *p = &table[i];
        if (!p->tied_as || !safetensors_find(&x.st, p->tied_as))
            continue;
        float *second = xmalloc(p->numel * sizeof(float));
        import_read(&x, p->tied_as);
        memcpy(second, x.full, p->numel * sizeof(float));
        import_read(&x, p->name);
        if (memcmp(second, x.full, p->numel * sizeof(float)))
            log_warn("%s: %s differs from %s; the model ties them (model.share_emb): %s is used", in, p->tied_as,
                     p->name, p->name);
        free(second);
    }
    ckpt_write(out, meta, import_fill, &x);
    free(x.full);
    free(table);
    safetensors_close(&x.st);
}
