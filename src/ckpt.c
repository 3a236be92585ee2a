/* ckpt.c: writing, finding, verifying and reading checkpoints (see ckpt.h). */
#include "src/ckpt.h"

#include "autoconfig.h"
#include "parallel/mpi_check.h"
#include "src/h5util.h"
#include "src/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *groups[3] = {"params", "adam_m", "adam_v"};

/* ---- names and folders ---- */

static char *step_dir(const char *dir, int64_t step) { return xasprintf("%s/step-%08lld", dir, (long long)step); }
static char *tmp_dir(const char *dir, int64_t step) { return xasprintf("%s/.step-%08lld.tmp", dir, (long long)step); }
static char *shard_file(const char *ckpt, int pp_rank, int tp_rank)
{
    return xasprintf("%s/shard-pp%03d-tp%03d.h5", ckpt, pp_rank, tp_rank);
}

/* pipeline stage of a parameter under a layout of pp stages */
static int stage_of(const char *name, const ModelDims *d, int pp)
{
    int l;
    if (sscanf(name, "layers.%d.", &l) == 1)
        for (int s = 0; s < pp; s++) {
            ModelPart part = model_part(d, 1, 0, pp, s);
            if (l >= part.layer0 && l < part.layer0 + part.n_layers)
                return s;
        }
    return strncmp(name, "output.", 7) ? 0 : pp - 1;
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        for (struct dirent *e; (e = readdir(d));) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char *p = xasprintf("%s/%s", path, e->d_name);
            remove_tree(p);
            free(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Delete a checkpoint folder so that a kill part-way never leaves one that looks whole: first
   rename it to a leftover name (removed by the next ckpt_save), then delete. */
static void discard(const char *dir, const char *path)
{
    char *gone = xasprintf("%s/.%s.del.tmp", dir, strrchr(path, '/') + 1);
    remove_tree(gone);
    if (rename(path, gone) == 0)
        remove_tree(gone);
    free(gone);
}

static void fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0)
        fail("%s: cannot sync to disk: %s", path, strerror(errno));
    close(fd);
}

static int64_t step_of(const char *path) { return atoll(strrchr(path, '-') + 1); }

static int cmp_desc(const void *a, const void *b)
{
    int64_t x = step_of(*(char *const *)a), y = step_of(*(char *const *)b);
    return x < y ? 1 : x > y ? -1 : 0;
}

/* "step-" and at least 8 digits */
static int is_step_name(const char *name)
{
    if (strncmp(name, "step-", 5) || strlen(name) < 13)
        return 0;
    for (const char *c = name + 5; *c; c++)
        if (*c < '0' || *c > '9')
            return 0;
    return 1;
}

int ckpt_list(const char *dir, char ***paths)
{
    int n = 0, cap = 16;
    char **out = xmalloc((size_t)cap * sizeof *out);
    DIR *d = opendir(dir);
    if (d) {
        for (struct dirent *e; (e = readdir(d));) {
            if (!is_step_name(e->d_name))
                continue;
            if (n == cap)
                out = realloc(out, (size_t)(cap *= 2) * sizeof *out);
            if (!out)
                fail("out of memory listing %s", dir);
            out[n++] = xasprintf("%s/%s", dir, e->d_name);
        }
        closedir(d);
    }
    qsort(out, (size_t)n, sizeof *out, cmp_desc);
    *paths = out;
    return n;
}

/* ---- writing ---- */

/* Write one shard file: every tensor of `table` (a part's, tp_rank of tp) in the three groups,
   each fetched into a scratch buffer. The tied embedding of a last stage is skipped (stage 0
   writes it). */
static void write_shard(const char *file, const ParamInfo *table, int n, int tp, int tp_rank, int skip_embed,
                        CkptFetch fetch, void *ctx)
{
    hid_t f = h5u_create(file);
    size_t most = 0;
    for (int i = 0; i < n; i++)
        most = table[i].numel > most ? table[i].numel : most;
    float *buf = xmalloc(most * sizeof(float));
    for (int i = 0; i < n; i++) {
        const ParamInfo *p = &table[i];
        if (skip_embed && !strcmp(p->name, "embed.weight"))
            continue;
        hsize_t local[PARAM_MAXDIM];
        for (int k = 0; k < p->ndim; k++)
            local[k] = (hsize_t)p->local[k];
        for (int g = 0; g < 3; g++) {
            fetch(ctx, g, p, tp_rank, buf);
            char *name = xasprintf("%s/%s", groups[g], p->name);
            h5u_write(f, file, name, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, p->ndim, local, buf);
            hid_t d = H5_CHECK_AT(file, H5Dopen2(f, name, H5P_DEFAULT));
            int64_t sum = (int64_t)util_fnv1a(buf, p->numel * sizeof(float), UTIL_FNV_INIT);
            int64_t meta[3] = {p->split, tp, tp_rank};
            h5u_attr_write_i64s(d, file, "global_shape", p->ndim, p->shape);
            h5u_attr_write_i64s(d, file, "split_tp_rank", 3, meta);
            h5u_attr_write_i64s(d, file, "fnv1a64", 1, &sum);
            H5_CHECK_AT(file, H5Dclose(d));
            free(name);
        }
    }
    free(buf);
    H5_CHECK_AT(file, H5Fclose(f));
    fsync_path(file);
}

static void write_meta(const char *file, const CkptInfo *ck)
{
    hid_t f = h5u_create(file);
    const ModelDims *d = &ck->dims;
    h5u_attr_write_string(f, file, "format", CKPT_FORMAT);
    const char *names[] = {"format_version", "step", "cursor", "seed", "tp", "pp", "dp", "cp", "vocab_size",
                           "n_layers", "d_model", "n_heads", "z_dim", "v_dim", "ffn_dim", "swiglu", "chunk",
                           "groups", "cema_ndim", "scale_emb", "share_emb", "data_fingerprint"};
    const int64_t values[] = {CKPT_VERSION, ck->step, ck->cursor, ck->seed, ck->tp, ck->pp, ck->dp, ck->cp, d->vocab,
                              d->n_layers, d->D, d->H, d->Z, d->V, d->F, d->swiglu, d->C, d->G, d->N, d->scale_emb,
                              d->share_emb, (int64_t)ck->data_fingerprint};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        h5u_attr_write_i64s(f, file, names[i], 1, &values[i]);
    double rope = d->rope_base, eps = d->eps;
    h5u_attr_write(f, file, "rope_base", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, &rope);
    h5u_attr_write(f, file, "norm_eps", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, &eps);
    char stamp[64];
    time_t now = time(NULL);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    h5u_attr_write_string(f, file, "time", stamp);
    h5u_attr_write_string(f, file, "git", MEGATRAIN_GIT_REV);
    h5u_attr_write_string(f, file, "config", ck->config ? ck->config : "");
    H5_CHECK_AT(file, H5Fclose(f));
    fsync_path(file);
}

/* Keep the newest keep_last and every multiple of keep_every; drop the others. */
static void prune(const char *dir, int keep_last, int keep_every)
{
    char **paths;
    int n = ckpt_list(dir, &paths);
    for (int i = 0; i < n; i++) {
        int64_t step = step_of(paths[i]);
        if (i >= keep_last && !(keep_every > 0 && step % keep_every == 0))
            discard(dir, paths[i]);
        free(paths[i]);
    }
    free(paths);
}

typedef struct {
    const float *arrays[3];
} HostArrays;

static void fetch_host(void *ctx, int group, const ParamInfo *p, int tp_rank, float *out)
{
    const HostArrays *h = ctx;
    (void)tp_rank; /* the arrays are this rank's shard */
    memcpy(out, h->arrays[group] + p->offset, p->numel * sizeof(float));
}

static void config_text(const Config *c, char **out)
{
    size_t n;
    FILE *f = open_memstream(out, &n);
    if (!f)
        fail("open_memstream: %s", strerror(errno));
    config_print(c, f);
    fclose(f);
}

void ckpt_save(Trainer *tr, const char *dir)
{
    const Topo *t = tr->t;
    const Model *m = &tr->m;
    const Zero *z = &tr->zero;
    char *tmp = tmp_dir(dir, tr->step), *final = step_dir(dir, tr->step);
    if (t->rank == 0) {
        if (mkdir(dir, 0777) != 0 && errno != EEXIST)
            fail_input("%s: cannot create the checkpoint folder (checkpoint.dir): %s", dir, strerror(errno));
        /* leftovers of a job killed while writing are incomplete by construction */
        DIR *d = opendir(dir);
        for (struct dirent *e; d && (e = readdir(d));)
            if (e->d_name[0] == '.' && strstr(e->d_name, ".tmp")) {
                char *p = xasprintf("%s/%s", dir, e->d_name);
                remove_tree(p);
                free(p);
            }
        if (d)
            closedir(d);
        if (mkdir(tmp, 0777) != 0)
            fail("%s: cannot create: %s", tmp, strerror(errno));
    }
    MPI_CHECK(MPI_Barrier(t->world_comm));

    /* the moments are sharded over the dp x cp group: gather them on its rank 0, which writes */
    const int writer = tr->dpcp.rank == 0;
    const size_t shard = z->shard;
    float *ms = xmalloc(shard * sizeof(float)), *vs = xmalloc(shard * sizeof(float));
    tr->ops->download(ms, z->m, shard * sizeof(float));
    tr->ops->download(vs, z->v, shard * sizeof(float));
    float *mall = writer ? xmalloc(m->n_padded * sizeof(float)) : NULL;
    float *vall = writer ? xmalloc(m->n_padded * sizeof(float)) : NULL;
    MPI_CHECK(MPI_Gather(ms, (int)shard, MPI_FLOAT, mall, (int)shard, MPI_FLOAT, 0, t->dpcp_comm));
    MPI_CHECK(MPI_Gather(vs, (int)shard, MPI_FLOAT, vall, (int)shard, MPI_FLOAT, 0, t->dpcp_comm));
    if (writer) {
        float *params = xmalloc(m->n_elems * sizeof(float));
        model_params_to_host(m, params);
        HostArrays h = {{params, mall, vall}};
        char *file = shard_file(tmp, t->pp_rank, t->tp_rank);
        write_shard(file, m->params_info, m->n_params, t->tp, t->tp_rank, !m->part.first, fetch_host, &h);
        free(file);
        free(params);
    }
    if (t->rank == 0) {
        CkptInfo ck = {.step = tr->step,
                       .cursor = tr->cursor,
                       .seed = tr->c->train.seed,
                       .tp = t->tp,
                       .pp = t->pp,
                       .dp = t->dp,
                       .cp = t->cp,
                       .dims = tr->dims,
                       .data_fingerprint = tr->data_fingerprint};
        config_text(tr->c, &ck.config);
        char *meta = xasprintf("%s/meta.h5", tmp);
        write_meta(meta, &ck);
        free(meta);
        free(ck.config);
    }
    MPI_CHECK(MPI_Barrier(t->world_comm));
    if (t->rank == 0) {
        discard(dir, final); /* a checkpoint of this step from an earlier attempt */
        if (rename(tmp, final) != 0)
            fail("%s: cannot rename to %s: %s", tmp, final, strerror(errno));
        fsync_path(dir);
        prune(dir, tr->c->checkpoint.keep_last, tr->c->checkpoint.keep_every);
        log_info("checkpoint %s written", final);
    }
    MPI_CHECK(MPI_Barrier(t->world_comm));
    free(ms);
    free(vs);
    free(mall);
    free(vall);
    free(tmp);
    free(final);
}

/* ---- reading ---- */

typedef struct {
    const char *path;
    CkptInfo *info;
    char *file, *format; /* ckpt_info frees them however info_body ends */
} InfoArgs;

static void info_body(void *arg)
{
    InfoArgs *a = arg;
    CkptInfo *ck = a->info;
    const char *file = a->file = xasprintf("%s/meta.h5", a->path);
    hid_t f = h5u_open(file, 0);
    a->format = h5u_attr_string(f, file, "format");
    if (strcmp(a->format, CKPT_FORMAT))
        data_bad(file, "not a megatrain checkpoint (format '%s')", a->format);
    if (h5u_attr_i64(f, file, "format_version") != CKPT_VERSION)
        data_bad(file, "format version %lld, this megatrain reads %d",
                 (long long)h5u_attr_i64(f, file, "format_version"), CKPT_VERSION);
    ck->path = xstrdup(a->path);
    ck->step = h5u_attr_i64(f, file, "step");
    ck->cursor = h5u_attr_i64(f, file, "cursor");
    ck->seed = h5u_attr_i64(f, file, "seed");
    ck->tp = (int)h5u_attr_i64(f, file, "tp");
    ck->pp = (int)h5u_attr_i64(f, file, "pp");
    ck->dp = (int)h5u_attr_i64(f, file, "dp");
    ck->cp = (int)h5u_attr_i64(f, file, "cp");
    ck->data_fingerprint = (uint64_t)h5u_attr_i64(f, file, "data_fingerprint");
    ModelDims *d = &ck->dims;
    int *fields[] = {&d->vocab, &d->n_layers, &d->D,   &d->H,         &d->Z,        &d->V,        &d->F,
                     &d->swiglu, &d->C,       &d->G,   &d->N,         &d->scale_emb, &d->share_emb};
    const char *names[] = {"vocab_size", "n_layers", "d_model", "n_heads", "z_dim",     "v_dim",    "ffn_dim",
                           "swiglu",     "chunk",    "groups",  "cema_ndim", "scale_emb", "share_emb"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        *fields[i] = (int)h5u_attr_i64(f, file, names[i]);
    d->rope_base = (float)h5u_attr_f64(f, file, "rope_base");
    d->eps = (float)h5u_attr_f64(f, file, "norm_eps");
    ck->config = h5u_attr_string(f, file, "config");
    if (ck->tp < 1 || ck->pp < 1 || d->n_layers < ck->pp)
        data_bad(file, "layout tp %d pp %d does not fit %d layers", ck->tp, ck->pp, d->n_layers);
    H5_CHECK_AT(file, H5Fclose(f));
}

int ckpt_info(const char *path, CkptInfo *info, char *err, size_t errlen)
{
    memset(info, 0, sizeof *info);
    InfoArgs a = {path, info, NULL, NULL};
    int ok = data_try(info_body, &a, err, errlen);
    free(a.file);
    free(a.format);
    if (!ok)
        ckpt_info_free(info); /* what info_body had filled in before it stopped */
    return ok ? 0 : -1;
}

void ckpt_info_free(CkptInfo *info)
{
    free(info->path);
    free(info->config);
    memset(info, 0, sizeof *info);
}

typedef struct {
    const CkptInfo *ck;
    const char *group;
    const ParamInfo *p;
    int tp_rank;
    float *out;
} ReadArgs;

/* Read source dataset group/name of one shard file whole, checking shape and checksum. */
static float *read_source(const char *file, const char *group, const ParamInfo *p, const int64_t *src_local)
{
    hid_t f = h5u_open(file, 0);
    char *name = xasprintf("%s/%s", group, p->name);
    hsize_t shape[PARAM_MAXDIM];
    size_t n = 1;
    for (int k = 0; k < p->ndim; k++)
        n *= (size_t)(shape[k] = (hsize_t)src_local[k]);
    float *buf = xmalloc(n * sizeof(float));
    h5u_read(f, name, H5T_NATIVE_FLOAT, p->ndim, shape, buf, file);
    hid_t d = H5_CHECK_AT(file, H5Dopen2(f, name, H5P_DEFAULT));
    int64_t sum;
    h5u_attr_i64s(d, file, "fnv1a64", 1, &sum);
    if ((uint64_t)sum != util_fnv1a(buf, n * sizeof(float), UTIL_FNV_INIT))
        data_bad(file, "%s: checksum mismatch (the file is corrupted)", name);
    H5_CHECK_AT(file, H5Dclose(d));
    H5_CHECK_AT(file, H5Fclose(f));
    free(name);
    return buf;
}

static void read_body(void *arg)
{
    ReadArgs *a = arg;
    const CkptInfo *ck = a->ck;
    const ParamInfo *p = a->p;
    const int stage = stage_of(p->name, &ck->dims, ck->pp);
    const int k = p->split, tp_src = k < 0 ? 1 : ck->tp;
    int64_t src_local[PARAM_MAXDIM];
    int64_t outer = 1, inner = 1;
    for (int j = 0; j < p->ndim; j++) {
        src_local[j] = j == k ? p->shape[j] / ck->tp : p->shape[j];
        if (k >= 0 && j < k)
            outer *= p->shape[j];
        if (k >= 0 && j > k)
            inner *= p->shape[j];
    }
    if (k < 0) { /* replicated: any tp rank's copy; the same rank's when it exists (verify reads each) */
        char *file = shard_file(ck->path, stage, a->tp_rank % ck->tp);
        float *buf = read_source(file, a->group, p, src_local);
        memcpy(a->out, buf, p->numel * sizeof(float));
        free(buf);
        free(file);
        return;
    }
    /* along the split dimension, this shard is [lo, hi); source s holds [s S, (s + 1) S) */
    const int64_t mine = p->local[k], src = src_local[k], lo = (int64_t)a->tp_rank * mine, hi = lo + mine;
    for (int s = 0; s < tp_src; s++) {
        int64_t a0 = s * src > lo ? s * src : lo, b0 = (s + 1) * src < hi ? (s + 1) * src : hi;
        if (a0 >= b0)
            continue;
        char *file = shard_file(ck->path, stage, s);
        float *buf = read_source(file, a->group, p, src_local);
        for (int64_t o = 0; o < outer; o++)
            memcpy(a->out + (o * mine + (a0 - lo)) * inner, buf + (o * src + (a0 - s * src)) * inner,
                   (size_t)((b0 - a0) * inner) * sizeof(float));
        free(buf);
        free(file);
    }
}

int ckpt_read(const CkptInfo *ck, const char *group, const ParamInfo *p, int tp_rank, float *out, char *err,
              size_t errlen)
{
    ReadArgs a = {ck, group, p, tp_rank, out};
    return data_try(read_body, &a, err, errlen) ? 0 : -1;
}

/* ---- resuming ---- */

/* The model of the checkpoint must be this run's. */
static int same_model(const ModelDims *a, const ModelDims *b)
{
    return a->vocab == b->vocab && a->n_layers == b->n_layers && a->D == b->D && a->H == b->H && a->Z == b->Z &&
           a->V == b->V && a->F == b->F && a->swiglu == b->swiglu && a->C == b->C && a->G == b->G &&
           a->N == b->N && a->scale_emb == b->scale_emb && a->share_emb == b->share_emb &&
           a->rope_base == b->rope_base && a->eps == b->eps;
}

/* Load one checkpoint on this rank; 0, or -1 with the reason. */
static int load_one(Trainer *tr, const char *path, CkptInfo *ck, char *err, size_t errlen)
{
    Model *m = &tr->m;
    Zero *z = &tr->zero;
    if (ckpt_info(path, ck, err, errlen))
        return -1;
    if (!same_model(&ck->dims, &tr->dims))
        fail_input_all("%s: this checkpoint is of another model (its config says:\n%s)", path, ck->config);
    float *host[3];
    int rc = 0;
    for (int g = 0; g < 3; g++)
        host[g] = xcalloc(m->n_padded, sizeof(float));
    for (int i = 0; i < m->n_params && !rc; i++)
        for (int g = 0; g < 3 && !rc; g++)
            rc = ckpt_read(ck, groups[g], &m->params_info[i], m->part.tp_rank, host[g] + m->params_info[i].offset,
                           err, errlen);
    if (!rc) {
        model_params_from_host(m, host[0]);
        tr->ops->upload(z->m, host[1] + z->lo, z->shard * sizeof(float));
        tr->ops->upload(z->v, host[2] + z->lo, z->shard * sizeof(float));
        tr->step = ck->step;
        tr->cursor = ck->cursor;
    }
    for (int g = 0; g < 3; g++)
        free(host[g]);
    return rc;
}

int ckpt_resume(Trainer *tr, const char *path)
{
    const Topo *t = tr->t;
    char **paths = NULL;
    int n = 0;
    if (t->rank == 0) {
        char *meta = xasprintf("%s/meta.h5", path);
        if (access(meta, F_OK) == 0) {
            paths = xmalloc(sizeof *paths);
            paths[n++] = xstrdup(path);
        } else {
            n = ckpt_list(path, &paths);
        }
        free(meta);
    }
    MPI_CHECK(MPI_Bcast(&n, 1, MPI_INT, 0, t->world_comm));
    for (int i = 0; i < n; i++) {
        char buf[4096] = "";
        if (t->rank == 0)
            snprintf(buf, sizeof buf, "%s", paths[i]);
        MPI_CHECK(MPI_Bcast(buf, sizeof buf, MPI_CHAR, 0, t->world_comm));
        CkptInfo ck;
        char err[1024] = "";
        int ok = load_one(tr, buf, &ck, err, sizeof err) == 0, all = ok;
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_MIN, t->world_comm));
        if (!ok)
            fprintf(stderr, "megatrain: warning (rank %d): checkpoint %s is damaged: %s\n", t->rank, buf, err);
        if (all) {
            if (tr->data_fingerprint && ck.data_fingerprint != tr->data_fingerprint)
                log_warn("%s was written while training on other data (dataset fingerprint differs)", buf);
            log_info("resumed from %s (step %lld, written under tp %d pp %d dp %d cp %d)", buf, (long long)ck.step,
                     ck.tp, ck.pp, ck.dp, ck.cp);
            ckpt_info_free(&ck);
            for (int j = 0; j < n && t->rank == 0; j++)
                free(paths[j]);
            free(paths);
            return 1;
        }
        ckpt_info_free(&ck);
        MPI_CHECK(MPI_Barrier(t->world_comm)); /* let the warnings out first */
        if (i + 1 < n)
            log_warn("trying the next older checkpoint");
    }
    for (int j = 0; j < n && t->rank == 0; j++)
        free(paths[j]);
    free(paths);
    if (n > 0)
        fail_input_all("%s: none of its %d checkpoint(s) could be loaded (see the warnings above); move them "
                       "away to start afresh",
                       path, n);
    return 0;
}

/* ---- verifying and writing whole checkpoints (tools) ---- */

static void open_body(void *file) { H5_CHECK_AT((char *)file, H5Fclose(h5u_open(file, 0))); }

int ckpt_verify(const char *path)
{
    CkptInfo ck;
    char err[1024];
    if (ckpt_info(path, &ck, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int problems = 0;
    for (int s = 0; s < ck.pp; s++)
        for (int r = 0; r < ck.tp; r++) {
            char *file = shard_file(path, s, r);
            int opens = data_try(open_body, file, err, sizeof err);
            free(file);
            if (!opens) { /* one message for the file, not one per tensor */
                fprintf(stderr, "%s\n", err);
                problems++;
                continue;
            }
            ModelPart part = model_part(&ck.dims, ck.tp, r, ck.pp, s);
            ParamInfo *table;
            int n = model_table(&ck.dims, &part, &table);
            for (int i = 0; i < n; i++) {
                if (s > 0 && !strcmp(table[i].name, "embed.weight"))
                    continue;
                float *buf = xmalloc(table[i].numel * sizeof(float));
                for (int g = 0; g < 3; g++)
                    if (ckpt_read(&ck, groups[g], &table[i], r, buf, err, sizeof err)) {
                        fprintf(stderr, "%s\n", err);
                        problems++;
                    }
                free(buf);
            }
            free(table);
        }
    ckpt_info_free(&ck);
    return problems;
}

void ckpt_write(const char *path, const CkptInfo *meta, CkptFetch fetch, void *ctx)
{
    char *dir = xstrdup(path), *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    char *tmp = xasprintf("%s.tmp", path);
    remove_tree(tmp);
    if (mkdir(tmp, 0777) != 0)
        fail_input("%s: cannot create: %s", tmp, strerror(errno));
    for (int s = 0; s < meta->pp; s++)
        for (int r = 0; r < meta->tp; r++) {
            ModelPart part = model_part(&meta->dims, meta->tp, r, meta->pp, s);
            ParamInfo *table;
            int n = model_table(&meta->dims, &part, &table);
            char *file = shard_file(tmp, s, r);
            write_shard(file, table, n, meta->tp, r, s > 0, fetch, ctx);
            free(file);
            free(table);
        }
    char *file = xasprintf("%s/meta.h5", tmp);
    write_meta(file, meta);
    remove_tree(path);
    if (rename(tmp, path) != 0)
        fail_input("%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    fsync_path(dir);
    free(file);
    free(tmp);
    free(dir);
}
