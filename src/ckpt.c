/* ckpt.c: writing, finding, verifying and reading checkpoints (see ckpt.h). */
#include "src/ckpt.h"

#include "parallel/mpi_check.h"
#include "parallel/watchdog.h"
#include "src/ckpt_meta.h"
#include "src/ckpt_slices.h"
#include "src/ckpt_v2.h"
#include "data/h5_check.h"
#include "base/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *groups[3] = {"params", "adam_m", "adam_v"};

/* ---- names and folders ---- */

static char *step_dir(const char *dir, int64_t step) { return xasprintf("%s/step-%08lld", dir, (long long)step); }
static char *tmp_dir(const char *dir, int64_t step) { return xasprintf("%s/.step-%08lld.tmp", dir, (long long)step); }
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

int ckpt_data_file(const char *name)
{
    int s, r;
    char again[64];
    if (sscanf(name, "rank-%d", &r) == 1 && r >= 0)
        snprintf(again, sizeof again, "rank-%05d.h5", r);
    else if (sscanf(name, "shard-pp%d-tp%d", &s, &r) == 2 && s >= 0 && r >= 0)
        snprintf(again, sizeof again, "shard-pp%03d-tp%03d.h5", s, r);
    else
        return 0;
    return !strcmp(again, name);
}

/* the files megatrain writes in a checkpoint folder */
static int own_file(const char *name) { return !strcmp(name, "meta.h5") || ckpt_data_file(name); }

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

/* ---- writing ---- */

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

/* fn(ctx, p, lo, hi, at) for each piece of the flat buffer this rank owns in the distributed
   optimizer (parallel/zero.h) and each tensor p it overlaps: elements [lo, hi) of p, from element
   at of the shard arrays. */
static void each_piece(Trainer *tr, void (*fn)(void *ctx, const ParamInfo *p, size_t lo, size_t hi, size_t at),
                       void *ctx)
{
    const Model *m = &tr->m;
    const Zero *z = &tr->zero;
    for (int i = 0; i < z->nbuckets; i++) {
        const size_t o = zero_own(z, i), e = o + z->buckets[i].piece;
        for (int k = 0; k < m->n_params; k++) {
            const ParamInfo *p = &m->params_info[k];
            const size_t lo = p->offset > o ? p->offset : o, hi = p->offset + p->numel < e ? p->offset + p->numel : e;
            if (lo < hi)
                fn(ctx, p, lo - p->offset, hi - p->offset, z->buckets[i].at + (lo - o));
        }
    }
}

typedef struct {
    const CkptInfo *ck; /* its tensors */
    SliceList l;
    int tp_rank, file;
} OwnArgs;

/* A piece as slices of this rank's file. A copy of another stage's tensor (the tied head) is its
   owner's to write, and a tensor whole on every tp rank is tp rank 0's. */
static void own_piece(void *ctx, const ParamInfo *p, size_t lo, size_t hi, size_t at)
{
    OwnArgs *a = ctx;
    if (!p->copy && (p->split >= 0 || a->tp_rank == 0))
        slices_add(&a->l, slices_find(a->ck->tensors, a->ck->ntensors, p->name), p->split < 0 ? 0 : a->tp_rank,
                   (int64_t)lo, (int64_t)hi, a->file, (int64_t)at);
}

typedef struct {
    const CkptInfo *ck;
    const char *path;
    const CkptSlice *s;
    int n;
    float *buf;
} CheckArgs;

static void check_body(void *arg)
{
    CheckArgs *a = arg;
    slices_check(a->ck, a->path, a->s, a->n, a->buf);
}

/* Write this rank's file from its shard arrays, sync it, read it back and check every slice;
   0, or -1 with the reason in err. */
static int write_own(const Trainer *tr, const char *path, const CkptInfo *ck, SliceList *l, char *err,
                     size_t errlen)
{
    const Zero *z = &tr->zero;
    const float *shards[3] = {z->master, z->m, z->v};
    float *buf = xmalloc((size_t)CKPT_SLICE_MAX * sizeof(float));
    SliceFile w;
    slices_create(&w, path, l->len);
    for (int i = 0; i < l->n; i++)
        for (int g = 0; g < 3; g++) {
            z->ops->download(buf, shards[g] + l->s[i].at, (size_t)(l->s[i].hi - l->s[i].lo) * sizeof(float));
            slices_put(&w, &l->s[i], g, buf);
        }
    slices_close(&w);
    fsync_path(path);
    CheckArgs c = {ck, path, l->s, l->n, buf};
    const int ok = data_try(check_body, &c, err, errlen);
    free(buf);
    return ok ? 0 : -1;
}

/* Rank 0: every rank's slices, in rank order (*n of them); NULL when a rank's file did not read
   back (it says why). */
static CkptSlice *gather_slices(const Trainer *tr, const SliceList *l, int ok, int *n)
{
    const Topo *t = tr->t;
    int mine = ok ? l->n * (int)sizeof(CkptSlice) : -1, *bytes = NULL, *at = NULL, bad = 0;
    if (t->rank == 0) {
        bytes = xcalloc((size_t)t->world, sizeof *bytes);
        at = xcalloc((size_t)t->world, sizeof *at);
    }
    MPI_CHECK(MPI_Gather(&mine, 1, MPI_INT, bytes, 1, MPI_INT, 0, t->world_comm));
    int total = 0;
    for (int r = 0; t->rank == 0 && r < t->world; r++) {
        bad |= bytes[r] < 0;
        bytes[r] = bytes[r] < 0 ? 0 : bytes[r];
        at[r] = total;
        total += bytes[r];
    }
    CkptSlice *all = t->rank == 0 ? xmalloc((size_t)total + 1) : NULL;
    MPI_CHECK(MPI_Gatherv(l->s, ok ? mine : 0, MPI_BYTE, all, bytes, at, MPI_BYTE, 0, t->world_comm));
    free(bytes);
    free(at);
    *n = total / (int)sizeof(CkptSlice);
    if (bad) {
        free(all);
        return NULL;
    }
    return all;
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
    const double start = util_now();
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

    /* every rank writes the slices it owns to its own file and reads them back; rank 0 writes the
       index once every file is good */
    CkptInfo ck = {.step = tr->step,
                   .cursor = tr->cursor,
                   .seed = tr->c->train.seed,
                   .tp = t->tp,
                   .pp = t->pp,
                   .dp = t->dp,
                   .cp = t->cp,
                   .dims = tr->dims,
                   .data_fingerprint = tr->data_fingerprint,
                   .files = t->world};
    ck.ntensors = slices_tensors(&tr->dims, t->tp, &ck.tensors);
    OwnArgs own = {.ck = &ck, .tp_rank = t->tp_rank, .file = t->rank};
    each_piece(tr, own_piece, &own);
    SliceList l = own.l;
    char *file = slices_file(tmp, t->rank), err[1024];
    const int ok = write_own(tr, file, &ck, &l, err, sizeof err) == 0;
    if (!ok)
        fprintf(stderr, "megatrain: warning (rank %d): %s: what was written does not read back: %s\n", t->rank,
                file, err);
    ck.slices = gather_slices(tr, &l, ok, &ck.nslices);
    if (t->rank == 0) {
        if (!ck.slices)
            fail("checkpoint %s not written: a rank's file did not read back (see its warning)", final);
        config_text(tr->c, &ck.config);
        char *meta = xasprintf("%s/meta.h5", tmp);
        ckpt_meta_write(meta, &ck);
        free(meta);
    }
    watchdog_barrier(t->world_comm, "barrier after writing a checkpoint's files", "world");
    if (t->rank == 0) {
        discard(dir, final); /* a checkpoint of this step from an earlier attempt */
        if (rename(tmp, final) != 0)
            fail("%s: cannot rename to %s: %s", tmp, final, strerror(errno));
        fsync_path(dir);
        prune(dir, tr->c->checkpoint.keep_last, tr->c->checkpoint.keep_every);
        int64_t elems = 0;
        for (int i = 0; i < ck.nslices; i++)
            elems += ck.slices[i].hi - ck.slices[i].lo;
        log_info("checkpoint %s written (%.3f GB in %d files, %.2f s)", final, 12e-9 * (double)elems, ck.files,
                 util_now() - start);
    }
    watchdog_barrier(t->world_comm, "barrier after renaming a checkpoint", "world");
    free(ck.tensors);
    free(ck.slices);
    free(ck.config);
    free(l.s);
    free(file);
    free(tmp);
    free(final);
}

/* ---- reading ---- */

typedef struct {
    const CkptInfo *ck;
    int g;
    const ParamInfo *p;
    int tp_rank;
    int64_t lo, hi;
    float *out, *buf; /* buf (CKPT_SLICE_MAX): freed by ckpt_read_range */
} RangeArgs;

static void range_body(void *arg)
{
    RangeArgs *a = arg;
    slices_read(a->ck, a->g, a->p, a->tp_rank, a->lo, a->hi, a->out, a->buf);
}

int ckpt_read_range(const CkptInfo *ck, const char *group, const ParamInfo *p, int tp_rank, int64_t lo, int64_t hi,
                    float *out, char *err, size_t errlen)
{
    if (ck->version < 4) { /* the whole shard is one dataset, checked whole */
        const int whole = lo == 0 && hi == (int64_t)p->numel;
        float *all = whole ? out : xmalloc(p->numel * sizeof(float));
        const int rc = ckpt2_read(ck, group, p, tp_rank, all, err, errlen);
        if (!whole && !rc)
            memcpy(out, all + lo, (size_t)(hi - lo) * sizeof(float));
        if (!whole)
            free(all);
        return rc;
    }
    int g = 0;
    while (strcmp(groups[g], group))
        g++;
    RangeArgs a = {ck, g, p, tp_rank, lo, hi, out, xmalloc((size_t)CKPT_SLICE_MAX * sizeof(float))};
    const int ok = data_try(range_body, &a, err, errlen);
    free(a.buf);
    return ok ? 0 : -1;
}

int ckpt_read(const CkptInfo *ck, const char *group, const ParamInfo *p, int tp_rank, float *out, char *err,
              size_t errlen)
{
    return ckpt_read_range(ck, group, p, tp_rank, 0, (int64_t)p->numel, out, err, errlen);
}

/* ---- resuming ---- */

int ckpt_same_model(const ModelDims *a, const ModelDims *b)
{
    return a->vocab == b->vocab && a->n_layers == b->n_layers && a->D == b->D && a->H == b->H && a->Z == b->Z &&
           a->V == b->V && a->F == b->F && a->swiglu == b->swiglu && a->C == b->C && a->G == b->G &&
           a->N == b->N && a->scale_emb == b->scale_emb && a->share_emb == b->share_emb &&
           a->rope_base == b->rope_base && a->eps == b->eps;
}

typedef struct {
    Trainer *tr;
    const CkptInfo *ck;
    float *buf; /* (CKPT_SLICE_MAX) */
    char *err;
    size_t errlen;
    int rc;
} LoadArgs;

/* Read elements [lo, hi) of p into the shard arrays from element at, a slice's worth at a time */
static void load_piece(void *ctx, const ParamInfo *p, size_t lo, size_t hi, size_t at)
{
    LoadArgs *a = ctx;
    Zero *z = &a->tr->zero;
    float *shards[3] = {z->master, z->m, z->v};
    for (size_t b = lo; b < hi && !a->rc; b += (size_t)CKPT_SLICE_MAX) {
        const size_t e = hi - b > (size_t)CKPT_SLICE_MAX ? b + (size_t)CKPT_SLICE_MAX : hi;
        for (int g = 0; g < 3 && !a->rc; g++) {
            a->rc = ckpt_read_range(a->ck, groups[g], p, a->tr->m.part.tp_rank, (int64_t)b, (int64_t)e, a->buf, a->err,
                                    a->errlen);
            if (!a->rc)
                z->ops->upload(shards[g] + at + (b - lo), a->buf, (e - b) * sizeof(float));
        }
    }
}

/* Load this rank's pieces of one checkpoint's master weights and moments (the compute copy
   follows when every rank has: zero_publish); 0, or -1 with the reason. */
static int load_one(Trainer *tr, const char *path, CkptInfo *ck, char *err, size_t errlen)
{
    if (ckpt_info(path, ck, err, errlen))
        return -1;
    if (!ckpt_same_model(&ck->dims, &tr->dims))
        fail_input_all("%s: this checkpoint is of another model (its config says:\n%s)", path, ck->config);
    LoadArgs a = {tr, ck, xmalloc((size_t)CKPT_SLICE_MAX * sizeof(float)), err, errlen, 0};
    each_piece(tr, load_piece, &a);
    free(a.buf);
    if (!a.rc) {
        tr->step = ck->step;
        tr->cursor = ck->cursor;
    }
    return a.rc;
}

int ckpt_resume(Trainer *tr, const char *path)
{
    batch_idle(tr->reader);
    const Topo *t = tr->t;
    const double start = util_now();
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
            zero_publish(&tr->zero);
            if (tr->data_fingerprint && ck.data_fingerprint != tr->data_fingerprint)
                log_warn("%s was written while training on other data (dataset fingerprint differs)", buf);
            log_info("resumed from %s (step %lld, written under tp %d pp %d dp %d cp %d) in %.2f s", buf,
                     (long long)ck.step, ck.tp, ck.pp, ck.dp, ck.cp, util_now() - start);
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

/* Every slice of every rank file read back and checked: the problems, printed. */
static int verify_slices(const CkptInfo *ck)
{
    int problems = 0;
    char err[1024];
    float *buf = xmalloc((size_t)CKPT_SLICE_MAX * sizeof(float));
    for (int f = 0; f < ck->files; f++) {
        char *path = slices_file(ck->path, f);
        CheckArgs c = {ck, path, NULL, 0, buf};
        int good = data_try(check_body, &c, err, sizeof err); /* one message for a file that does not open */
        for (int i = 0; i < ck->nslices && good; i++) {
            c = (CheckArgs){ck, path, &ck->slices[i], 1, buf};
            if (ck->slices[i].file == f && !data_try(check_body, &c, err, sizeof err)) {
                fprintf(stderr, "%s\n", err);
                problems++;
            }
        }
        if (!good) {
            fprintf(stderr, "%s\n", err);
            problems++;
        }
        free(path);
    }
    free(buf);
    return problems;
}

int ckpt_verify(const char *path)
{
    CkptInfo ck;
    char err[1024];
    if (ckpt_info(path, &ck, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const int problems = ck.version < 4 ? ckpt2_verify(&ck) : verify_slices(&ck);
    ckpt_info_free(&ck);
    return problems;
}

/* The file of (stage s, tp rank r) of a tools' layout: every tensor it holds (but copies, and a
   tensor whole on every tp rank but at r = 0) whole, fetched; returns its slices. */
static SliceList write_part(const char *tmp, const CkptInfo *ck, int s, int r, CkptFetch fetch, void *ctx)
{
    ModelPart part = model_part(&ck->dims, ck->tp, r, ck->pp, s);
    ParamInfo *table;
    const int n = model_table(&ck->dims, &part, &table);
    int *first = xmalloc((size_t)(n + 1) * sizeof *first); /* table[i]'s slices: first[i] .. first[i + 1] - 1 */
    size_t most = 0;
    OwnArgs own = {.ck = ck, .tp_rank = r, .file = s * ck->tp + r};
    for (int i = 0; i < n; i++) {
        first[i] = own.l.n;
        own_piece(&own, &table[i], 0, table[i].numel, 0);
        most = table[i].numel > most ? table[i].numel : most;
    }
    first[n] = own.l.n;
    float *buf = xmalloc(most * sizeof(float));
    char *path = slices_file(tmp, own.file);
    SliceFile w;
    slices_create(&w, path, own.l.len);
    for (int i = 0; i < n; i++)
        for (int g = 0; g < 3 && first[i] < first[i + 1]; g++) {
            fetch(ctx, g, &table[i], r, buf);
            for (int j = first[i]; j < first[i + 1]; j++)
                slices_put(&w, &own.l.s[j], g, buf + own.l.s[j].at);
        }
    slices_close(&w);
    fsync_path(path);
    free(path);
    free(buf);
    free(first);
    free(table);
    return own.l;
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
    CkptInfo ck = *meta;
    ck.files = meta->tp * meta->pp;
    ck.nslices = 0; /* meta may be a source checkpoint's info (reshard) */
    ck.ntensors = slices_tensors(&meta->dims, meta->tp, &ck.tensors);
    SliceList *parts = xcalloc((size_t)ck.files, sizeof *parts);
    for (int f = 0; f < ck.files; f++) {
        parts[f] = write_part(tmp, &ck, f / meta->tp, f % meta->tp, fetch, ctx);
        ck.nslices += parts[f].n;
    }
    ck.slices = xmalloc((size_t)ck.nslices * sizeof *ck.slices);
    for (int f = 0, at = 0; f < ck.files; at += parts[f++].n) {
        memcpy(ck.slices + at, parts[f].s, (size_t)parts[f].n * sizeof *ck.slices);
        free(parts[f].s);
    }
    char *file = xasprintf("%s/meta.h5", tmp);
    ckpt_meta_write(file, &ck);
    remove_own(path);
    if (rename(tmp, path) != 0)
        fail_input("%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    fsync_path(dir);
    free(ck.tensors);
    free(ck.slices);
    free(parts);
    free(file);
    free(tmp);
    free(dir);
}

int ckpt_data_files(const CkptInfo *ck) { return ck->version < 4 ? ck->tp * ck->pp : ck->files; }
