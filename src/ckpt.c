/* ckpt.c: writing, finding, verifying and reading checkpoints (see ckpt.h). */
#include "src/ckpt.h"

#include "autoconfig.h"
#include "parallel/mpi_check.h"
#include "parallel/watchdog.h"
#include "src/h5util.h"
#include "base/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
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

/* pipeline stage of a parameter under a layout of pp stages: the one holding its block, the first
   for what comes before the blocks, the last for what follows them */
static int stage_of(const ParamInfo *p, const ModelDims *d, int pp)
{
    for (int s = 0; s < pp; s++) {
        ModelPart part = model_part(d, 1, 0, pp, s);
        if (p->layer < part.layer0 + part.n_layers)
            return s;
    }
    return pp - 1;
}

/* length of "step-" and at least 8 digits at the start of s, else 0 */
static size_t step_len(const char *s)
{
    size_t n = 5;
    if (strncmp(s, "step-", 5))
        return 0;
    while (s[n] >= '0' && s[n] <= '9')
        n++;
    return n >= 13 ? n : 0;
}

CkptName ckpt_name(const char *name, int64_t *step)
{
    const int dot = name[0] == '.';
    const size_t n = step_len(name + dot);
    const char *rest = name + dot + n;
    if (!n || (dot ? strcmp(rest, ".tmp") && strcmp(rest, ".del.tmp") : *rest != '\0'))
        return CKPT_OTHER;
    if (step)
        *step = atoll(name + dot + 5);
    return dot ? CKPT_LEFTOVER : CKPT_STEP;
}

/* the files megatrain writes in a checkpoint folder: meta.h5 and shard-pp%03d-tp%03d.h5 */
static int own_file(const char *name)
{
    int s, r;
    char again[64];
    if (!strcmp(name, "meta.h5"))
        return 1;
    if (sscanf(name, "shard-pp%d-tp%d", &s, &r) != 2 || s < 0 || r < 0)
        return 0;
    snprintf(again, sizeof again, "shard-pp%03d-tp%03d.h5", s, r);
    return !strcmp(again, name);
}

/* Delete the checkpoint folder or leftover at path, and only what megatrain wrote: a symlink in its
   place loses the link, never its target's files; a folder loses its own files, and stays (with a
   warning) when it holds anything else. */
static void remove_own(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return;
    if (!S_ISDIR(sb.st_mode)) {
        if (!S_ISLNK(sb.st_mode))
            log_warn("%s: left in place: megatrain writes folders, not this", path);
        else if (unlink(path) != 0)
            log_warn("%s: cannot delete the link: %s", path, strerror(errno));
        return;
    }
    char first[256] = "";
    int others = 0;
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *p = xasprintf("%s/%s", path, e->d_name);
        if (own_file(e->d_name))
            unlink(p); /* a failure shows as the folder's rmdir failing */
        else if (!others++)
            snprintf(first, sizeof first, "%s", e->d_name);
        free(p);
    }
    if (d)
        closedir(d);
    if (rmdir(path) == 0)
        return;
    if (others)
        log_warn("%s: left in place: it holds %s%s, which megatrain did not write (move it away)", path, first,
                 others > 1 ? " and other entries" : "");
    else
        log_warn("%s: cannot delete: %s", path, strerror(errno));
}

/* Delete a checkpoint folder so that a kill part-way never leaves one that looks whole: first
   rename it to a leftover name (removed by the next ckpt_save), then delete. */
static void discard(const char *dir, const char *path)
{
    char *gone = xasprintf("%s/.%s.del.tmp", dir, strrchr(path, '/') + 1);
    remove_own(gone);
    if (rename(path, gone) == 0)
        remove_own(gone);
    else if (errno != ENOENT)
        log_warn("%s: cannot delete (renaming it to %s): %s", path, gone, strerror(errno));
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

int ckpt_list(const char *dir, char ***paths)
{
    int n = 0, cap = 16;
    char **out = xmalloc((size_t)cap * sizeof *out);
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        struct stat sb;
        char *path = xasprintf("%s/%s", dir, e->d_name);
        if (ckpt_name(e->d_name, NULL) != CKPT_STEP || stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            free(path);
            continue;
        }
        if (n == cap)
            out = realloc(out, (size_t)(cap *= 2) * sizeof *out);
        if (!out)
            fail("out of memory listing %s", dir);
        out[n++] = path;
    }
    if (d)
        closedir(d);
    qsort(out, (size_t)n, sizeof *out, cmp_desc);
    *paths = out;
    return n;
}

/* ---- meta.h5 ---- */

/* Its integer attributes, in checksum order (doc/checkpoint.md), each with the range of a sound
   value; then its floats and strings. */
static const struct {
    const char *name;
    int64_t lo, hi;
} meta_ints[] = {
    {"format_version", 1, CKPT_VERSION}, {"step", 0, INT64_MAX}, {"cursor", 0, INT64_MAX},
    {"seed", INT64_MIN, INT64_MAX}, {"tp", 1, INT_MAX}, {"pp", 1, INT_MAX}, {"dp", 1, INT_MAX}, {"cp", 1, INT_MAX},
    {"vocab_size", 1, INT_MAX}, {"n_layers", 1, INT_MAX}, {"d_model", 1, INT_MAX}, {"n_heads", 1, INT_MAX},
    {"z_dim", 1, INT_MAX}, {"v_dim", 1, INT_MAX}, {"ffn_dim", 1, INT_MAX}, {"swiglu", 0, 1}, {"chunk", 1, INT_MAX},
    {"groups", 1, INT_MAX}, {"cema_ndim", 1, INT_MAX}, {"scale_emb", 0, 1}, {"share_emb", 0, 1},
    {"data_fingerprint", INT64_MIN, INT64_MAX}};
enum { META_INTS = sizeof meta_ints / sizeof meta_ints[0], META_FIRST_INT = 4 /* tp: the first of int type */ };
static const char *const meta_floats[2] = {"rope_base", "norm_eps"};
static const char *const meta_strings[4] = {"format", "time", "git", "config"};

/* The int fields of a CkptInfo, in meta_ints order from META_FIRST_INT up to the fingerprint. */
static void int_fields(CkptInfo *ck, int **f)
{
    ModelDims *d = &ck->dims;
    int *all[] = {&ck->tp, &ck->pp, &ck->dp, &ck->cp, &d->vocab, &d->n_layers, &d->D, &d->H, &d->Z,
                  &d->V, &d->F, &d->swiglu, &d->C, &d->G, &d->N, &d->scale_emb, &d->share_emb};
    memcpy(f, all, sizeof all);
}

/* FNV-1a 64 of the name with its NUL, then of the value's 8 bytes, little-endian */
static uint64_t hash_value(uint64_t h, const char *name, uint64_t v)
{
    unsigned char le[8];
    for (int b = 0; b < 8; b++)
        le[b] = (unsigned char)(v >> 8 * b);
    return util_fnv1a(le, 8, util_fnv1a(name, strlen(name) + 1, h));
}

/* The checksum of every other attribute: integers, floats (their float64 bits), then strings (with
   their NUL), each after its name. */
static uint64_t meta_checksum(const int64_t *ints, const double *floats, const char *const *strings)
{
    uint64_t h = UTIL_FNV_INIT, bits;
    for (int k = 0; k < META_INTS; k++)
        h = hash_value(h, meta_ints[k].name, (uint64_t)ints[k]);
    for (int k = 0; k < 2; k++) {
        memcpy(&bits, &floats[k], sizeof bits);
        h = hash_value(h, meta_floats[k], bits);
    }
    for (int k = 0; k < 4; k++)
        h = util_fnv1a(strings[k], strlen(strings[k]) + 1,
                       util_fnv1a(meta_strings[k], strlen(meta_strings[k]) + 1, h));
    return h;
}

static void write_meta(const char *file, const CkptInfo *ck)
{
    CkptInfo c = *ck;
    int *f[META_INTS];
    int64_t ints[META_INTS] = {CKPT_VERSION, ck->step, ck->cursor, ck->seed};
    int_fields(&c, f);
    for (int k = META_FIRST_INT; k < META_INTS - 1; k++)
        ints[k] = *f[k - META_FIRST_INT];
    ints[META_INTS - 1] = (int64_t)ck->data_fingerprint;
    const double floats[2] = {ck->dims.rope_base, ck->dims.eps};
    char stamp[64];
    time_t now = time(NULL);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    const char *strings[4] = {CKPT_FORMAT, stamp, MEGATRAIN_GIT_REV, ck->config ? ck->config : ""};
    const int64_t sum = (int64_t)meta_checksum(ints, floats, strings);

    hid_t h = h5u_create_sealed(file);
    for (int k = 0; k < META_INTS; k++)
        h5u_attr_write_i64s(h, file, meta_ints[k].name, 1, &ints[k]);
    for (int k = 0; k < 2; k++)
        h5u_attr_write(h, file, meta_floats[k], H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, &floats[k]);
    for (int k = 0; k < 4; k++)
        h5u_attr_write_string(h, file, meta_strings[k], strings[k]);
    h5u_attr_write_i64s(h, file, "fnv1a64", 1, &sum);
    H5_CHECK_AT(file, H5Fclose(h));
    h5u_seal(file); /* fsyncs it */
}

typedef struct {
    const char *file; /* the meta.h5 */
    char *strings[4]; /* what was read of meta_strings, freed by ckpt_info whatever happens */
    CkptInfo *info;
} InfoArgs;

/* What no sound checkpoint holds, even with a matching checksum (format 1 has none). */
static void meta_check(const char *file, const int64_t *ints, const double *floats, const CkptInfo *ck)
{
    for (int k = 0; k < META_INTS; k++)
        if (ints[k] < meta_ints[k].lo || ints[k] > meta_ints[k].hi)
            data_bad(file, "attribute %s = %lld is out of range (expected %lld to %lld)", meta_ints[k].name,
                     (long long)ints[k], (long long)meta_ints[k].lo, (long long)meta_ints[k].hi);
    for (int k = 0; k < 2; k++)
        if (!(floats[k] > 0 && floats[k] <= FLT_MAX))
            data_bad(file, "attribute %s = %g: expected a positive float32", meta_floats[k], floats[k]);
    const ModelDims *d = &ck->dims;
    if (d->D % d->G || d->Z % d->H || d->V % d->H)
        data_bad(file, "a model of d_model %d, groups %d, n_heads %d, z_dim %d, v_dim %d (groups must divide d_model, "
                 "n_heads z_dim and v_dim)", d->D, d->G, d->H, d->Z, d->V);
    if (d->H % ck->tp || d->D % ck->tp || d->G % ck->tp || d->F % ck->tp || d->vocab % ck->tp ||
        d->n_layers < ck->pp)
        data_bad(file, "layout tp %d pp %d does not fit the model (n_heads %d, d_model %d, groups %d, ffn_dim %d, "
                 "vocab_size %d, %d layers)", ck->tp, ck->pp, d->H, d->D, d->G, d->F, d->vocab, d->n_layers);
}

static void info_body(void *arg)
{
    InfoArgs *a = arg;
    const char *file = a->file;
    CkptInfo *ck = a->info;
    hid_t h = h5u_open(file, 0);
    a->strings[0] = h5u_attr_string(h, file, "format");
    if (strcmp(a->strings[0], CKPT_FORMAT))
        data_bad(file, "not a megatrain checkpoint (format '%s')", a->strings[0]);
    int64_t ints[META_INTS];
    ints[0] = h5u_attr_i64(h, file, "format_version");
    if (ints[0] < 1 || ints[0] > CKPT_VERSION)
        data_bad(file, "format version %lld, this megatrain reads 1 to %d", (long long)ints[0], CKPT_VERSION);
    for (int k = 1; k < META_INTS; k++)
        ints[k] = h5u_attr_i64(h, file, meta_ints[k].name);
    double floats[2];
    for (int k = 0; k < 2; k++)
        floats[k] = h5u_attr_f64(h, file, meta_floats[k]);
    for (int k = 1; k < 4; k++)
        a->strings[k] = h5u_attr_string(h, file, meta_strings[k]);
    /* a single bit flip never turns version 2 into 1, which has no checksum to check */
    if (ints[0] >= 2 &&
        (uint64_t)h5u_attr_i64(h, file, "fnv1a64") != meta_checksum(ints, floats, (const char *const *)a->strings))
        data_bad(file, "checksum mismatch: a value changed after megatrain wrote it (the file is corrupted)");
    H5_CHECK_AT(file, H5Fclose(h));

    int *f[META_INTS];
    int_fields(ck, f);
    for (int k = META_FIRST_INT; k < META_INTS - 1; k++)
        *f[k - META_FIRST_INT] = (int)ints[k];
    ck->version = (int)ints[0];
    ck->step = ints[1];
    ck->cursor = ints[2];
    ck->seed = ints[3];
    ck->data_fingerprint = (uint64_t)ints[META_INTS - 1];
    ck->dims.rope_base = (float)floats[0];
    ck->dims.eps = (float)floats[1];
    meta_check(file, ints, floats, ck);
    ck->config = a->strings[3];
    a->strings[3] = NULL;
}

int ckpt_info(const char *path, CkptInfo *info, char *err, size_t errlen)
{
    memset(info, 0, sizeof *info);
    char *file = xasprintf("%s/meta.h5", path);
    InfoArgs a = {.file = file, .info = info};
    const int ok = data_try(info_body, &a, err, errlen);
    for (int k = 0; k < 4; k++)
        free(a.strings[k]);
    free(file);
    if (!ok) {
        ckpt_info_free(info);
        return -1;
    }
    info->path = xstrdup(path);
    return 0;
}

void ckpt_info_free(CkptInfo *info)
{
    free(info->path);
    free(info->config);
    memset(info, 0, sizeof *info);
}

/* ---- writing ---- */

/* Write one shard file: every tensor of `table` (a part's, tp_rank of tp) in the three groups,
   each fetched into a scratch buffer. A copy of another stage's tensor (a tied head) is skipped:
   its owner writes it. */
static void write_shard(const char *file, const ParamInfo *table, int n, int tp, int tp_rank, CkptFetch fetch,
                        void *ctx)
{
    hid_t f = h5u_create(file);
    size_t most = 0;
    for (int i = 0; i < n; i++)
        most = table[i].numel > most ? table[i].numel : most;
    float *buf = xmalloc(most * sizeof(float));
    for (int i = 0; i < n; i++) {
        const ParamInfo *p = &table[i];
        if (p->copy)
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
    batch_idle(tr->reader); /* no data read runs while the checkpoint's HDF5 files are open */
    const Topo *t = tr->t;
    const Model *m = &tr->m;
    const Zero *z = &tr->zero;
    char *tmp = tmp_dir(dir, tr->step), *final = step_dir(dir, tr->step);
    if (t->rank == 0) {
        if (mkdir(dir, 0777) != 0 && errno != EEXIST)
            fail_input("%s: cannot create the checkpoint folder (checkpoint.dir): %s", dir, strerror(errno));
        /* leftovers of a job killed while writing or deleting are incomplete by construction */
        DIR *d = opendir(dir);
        for (struct dirent *e; d && (e = readdir(d));)
            if (ckpt_name(e->d_name, NULL) == CKPT_LEFTOVER) {
                char *p = xasprintf("%s/%s", dir, e->d_name);
                remove_own(p);
                free(p);
            }
        if (d)
            closedir(d);
        if (mkdir(tmp, 0777) != 0)
            fail("%s: cannot create: %s", tmp, strerror(errno));
    }
    watchdog_barrier(t->world_comm, "barrier before writing a checkpoint", "world");

    /* the master weights and moments are spread over the dp x cp group: gathered on its rank 0,
       which writes */
    const int writer = tr->dpcp.rank == 0;
    const float *shards[3] = {z->master, z->m, z->v};
    HostArrays h;
    for (int g = 0; g < 3; g++) {
        float *all = writer ? xmalloc(m->n_padded * sizeof(float)) : NULL;
        zero_gather(z, shards[g], all);
        h.arrays[g] = all;
    }
    if (writer) {
        char *file = shard_file(tmp, t->pp_rank, t->tp_rank);
        write_shard(file, m->params_info, m->n_params, t->tp, t->tp_rank, fetch_host, &h);
        free(file);
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
    watchdog_barrier(t->world_comm, "barrier after writing a checkpoint's files", "world");
    if (t->rank == 0) {
        discard(dir, final); /* a checkpoint of this step from an earlier attempt */
        if (rename(tmp, final) != 0)
            fail("%s: cannot rename to %s: %s", tmp, final, strerror(errno));
        fsync_path(dir);
        prune(dir, tr->c->checkpoint.keep_last, tr->c->checkpoint.keep_every);
        log_info("checkpoint %s written", final);
    }
    watchdog_barrier(t->world_comm, "barrier after renaming a checkpoint", "world");
    for (int g = 0; g < 3; g++)
        free((float *)h.arrays[g]);
    free(tmp);
    free(final);
}

/* ---- reading ---- */

typedef struct {
    const CkptInfo *ck;
    const ParamInfo *p;
    int tp_rank;
    float *out;
    char *name, *file; /* the dataset and the file being read: with buf, freed by ckpt_read */
    float *buf;        /* (the source shard's numel) */
} ReadArgs;

/* Read the dataset whole from shard file (stage, tp rank s) into a->buf, checking its shape and
   checksum. */
static void read_source(ReadArgs *a, int stage, int s, const int64_t *src_local)
{
    const ParamInfo *p = a->p;
    hsize_t shape[PARAM_MAXDIM];
    size_t n = 1;
    for (int k = 0; k < p->ndim; k++)
        n *= (size_t)(shape[k] = (hsize_t)src_local[k]);
    if (!a->buf)
        a->buf = xmalloc(n * sizeof(float));
    free(a->file);
    a->file = shard_file(a->ck->path, stage, s);
    const char *file = a->file, *name = a->name;
    hid_t f = h5u_open(file, 0);
    h5u_read(f, name, H5T_NATIVE_FLOAT, p->ndim, shape, a->buf, file);
    hid_t d = H5_CHECK_AT(file, H5Dopen2(f, name, H5P_DEFAULT));
    int64_t sum;
    h5u_attr_i64s(d, file, "fnv1a64", 1, &sum);
    if ((uint64_t)sum != util_fnv1a(a->buf, n * sizeof(float), UTIL_FNV_INIT))
        data_bad(file, "%s: checksum mismatch (the file is corrupted)", name);
    H5_CHECK_AT(file, H5Dclose(d));
    H5_CHECK_AT(file, H5Fclose(f));
}

/* The dimension the writer cut the tensor along, from its file's split_tp_rank (-1: whole in
   every file): an older table may have cut it elsewhere than this one does. */
static int source_split(ReadArgs *a, int stage)
{
    const ParamInfo *p = a->p;
    free(a->file);
    a->file = shard_file(a->ck->path, stage, a->tp_rank % a->ck->tp);
    const char *file = a->file;
    hid_t f = h5u_open(file, 0), d = H5_CHECK_AT(file, H5Dopen2(f, a->name, H5P_DEFAULT));
    int64_t meta[3];
    h5u_attr_i64s(d, file, "split_tp_rank", 3, meta);
    H5_CHECK_AT(file, H5Dclose(d));
    H5_CHECK_AT(file, H5Fclose(f));
    if (meta[0] < -1 || meta[0] >= p->ndim || meta[1] != a->ck->tp ||
        (meta[0] >= 0 && p->shape[meta[0]] % meta[1]))
        data_bad(file, "%s: split_tp_rank (%lld, %lld, %lld) does not fit a tensor of %d dimensions written under "
                 "tp %d", a->name, (long long)meta[0], (long long)meta[1], (long long)meta[2], p->ndim, a->ck->tp);
    return (int)meta[0];
}

/* Copy the box of global indices [lo, hi) (each dimension) from src, the block of shape src_n at
   src_lo, into dst, the block of shape dst_n at dst_lo: runs along the last dimension. */
static void copy_box(float *dst, const int64_t *dst_lo, const int64_t *dst_n, const float *src, const int64_t *src_lo,
                     const int64_t *src_n, const int64_t *lo, const int64_t *hi, int ndim)
{
    int64_t g[PARAM_MAXDIM];
    memcpy(g, lo, (size_t)ndim * sizeof *g);
    int k;
    do {
        int64_t di = 0, si = 0;
        for (int j = 0; j < ndim; j++) {
            di = di * dst_n[j] + g[j] - dst_lo[j];
            si = si * src_n[j] + g[j] - src_lo[j];
        }
        memcpy(dst + di, src + si, (size_t)(hi[ndim - 1] - lo[ndim - 1]) * sizeof(float));
        for (k = ndim - 2; k >= 0 && ++g[k] == hi[k]; k--) /* the next run */
            g[k] = lo[k];
    } while (k >= 0);
}

/* This rank's shard from the files' blocks that overlap it, however each was cut. */
static void read_body(void *arg)
{
    ReadArgs *a = arg;
    const CkptInfo *ck = a->ck;
    const ParamInfo *p = a->p;
    const int stage = stage_of(p, &ck->dims, ck->pp), ks = source_split(a, stage);
    int64_t mine_lo[PARAM_MAXDIM], src_lo[PARAM_MAXDIM], src_n[PARAM_MAXDIM], lo[PARAM_MAXDIM], hi[PARAM_MAXDIM];
    for (int j = 0; j < p->ndim; j++) {
        mine_lo[j] = j == p->split ? a->tp_rank * p->local[j] : 0;
        src_n[j] = j == ks ? p->shape[j] / ck->tp : p->shape[j];
    }
    for (int s = 0; s < (ks < 0 ? 1 : ck->tp); s++) {
        int empty = 0;
        for (int j = 0; j < p->ndim; j++) {
            src_lo[j] = j == ks ? s * src_n[j] : 0;
            lo[j] = mine_lo[j] > src_lo[j] ? mine_lo[j] : src_lo[j];
            const int64_t mine_hi = mine_lo[j] + p->local[j], src_hi = src_lo[j] + src_n[j];
            hi[j] = mine_hi < src_hi ? mine_hi : src_hi;
            empty |= lo[j] >= hi[j];
        }
        if (empty)
            continue;
        /* a tensor whole in every file: the same rank's copy when it exists (verify reads each) */
        read_source(a, stage, ks < 0 ? a->tp_rank % ck->tp : s, src_n);
        copy_box(a->out, mine_lo, p->local, a->buf, src_lo, src_n, lo, hi, p->ndim);
    }
}

int ckpt_read(const CkptInfo *ck, const char *group, const ParamInfo *p, int tp_rank, float *out, char *err,
              size_t errlen)
{
    ReadArgs a = {ck, p, tp_rank, out, xasprintf("%s/%s", group, p->name), NULL, NULL};
    const int ok = data_try(read_body, &a, err, errlen);
    free(a.name);
    free(a.file);
    free(a.buf);
    return ok ? 0 : -1;
}

/* ---- resuming ---- */

int ckpt_same_model(const ModelDims *a, const ModelDims *b)
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
    if (!ckpt_same_model(&ck->dims, &tr->dims))
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
        zero_load(z, host[0], host[1], host[2]);
        tr->step = ck->step;
        tr->cursor = ck->cursor;
    }
    for (int g = 0; g < 3; g++)
        free(host[g]);
    return rc;
}

int ckpt_resume(Trainer *tr, const char *path)
{
    batch_idle(tr->reader);
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
    MPI_Request r;
    MPI_CHECK(MPI_Ibcast(&n, 1, MPI_INT, 0, t->world_comm, &r));
    watchdog_wait(&r, 1, "broadcast of the checkpoint count", "world", -1);
    for (int i = 0; i < n; i++) {
        char buf[4096] = "";
        if (t->rank == 0)
            snprintf(buf, sizeof buf, "%s", paths[i]);
        MPI_CHECK(MPI_Ibcast(buf, sizeof buf, MPI_CHAR, 0, t->world_comm, &r));
        watchdog_wait(&r, 1, "broadcast of a checkpoint's path", "world", -1);
        CkptInfo ck;
        char err[1024] = "";
        int ok = load_one(tr, buf, &ck, err, sizeof err) == 0, all = ok;
        MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_MIN, t->world_comm, &r));
        watchdog_wait(&r, 1, "agreement on a checkpoint", "world", -1);
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
        watchdog_barrier(t->world_comm, "barrier after a damaged checkpoint", "world"); /* warnings out first */
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
                if (table[i].copy)
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
    remove_own(tmp);
    if (mkdir(tmp, 0777) != 0)
        fail_input("%s: cannot create: %s", tmp, strerror(errno));
    for (int s = 0; s < meta->pp; s++)
        for (int r = 0; r < meta->tp; r++) {
            ModelPart part = model_part(&meta->dims, meta->tp, r, meta->pp, s);
            ParamInfo *table;
            int n = model_table(&meta->dims, &part, &table);
            char *file = shard_file(tmp, s, r);
            write_shard(file, table, n, meta->tp, r, fetch, ctx);
            free(file);
            free(table);
        }
    char *file = xasprintf("%s/meta.h5", tmp);
    write_meta(file, meta);
    remove_own(path);
    if (rename(tmp, path) != 0)
        fail_input("%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    fsync_path(dir);
    free(file);
    free(tmp);
    free(dir);
}
