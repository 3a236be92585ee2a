/* ckpt_slices.c: the slices of a format 4 checkpoint: building them, writing rank files, the
   index in meta.h5 and reading under any layout (see ckpt_slices.h). */
#include "src/ckpt_slices.h"

#include "src/h5util.h"
#include "base/util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *groups[3] = {"params", "adam_m", "adam_v"};

/* ---- building ---- */

int slices_tensors(const ModelDims *d, int tp, CkptTensor **out)
{
    ModelPart part = model_part(d, tp, 0, 1, 0);
    ParamInfo *table;
    int n = model_table(d, &part, &table);
    CkptTensor *t = xcalloc((size_t)n, sizeof *t);
    for (int i = 0; i < n; i++) {
        memcpy(t[i].name, table[i].name, PARAM_NAME);
        t[i].ndim = table[i].ndim;
        t[i].split = table[i].split;
        memcpy(t[i].shape, table[i].shape, sizeof t[i].shape);
    }
    free(table);
    *out = t;
    return n;
}

int slices_find(const CkptTensor *t, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name))
            return i;
    return -1;
}

void slices_add(SliceList *l, int tensor, int shard, int64_t lo, int64_t hi, int file, int64_t at)
{
    for (int64_t a = lo; a < hi; a += CKPT_SLICE_MAX) {
        const int64_t b = hi - a > CKPT_SLICE_MAX ? a + CKPT_SLICE_MAX : hi;
        if (l->n == l->cap) {
            l->cap = l->cap ? 2 * l->cap : 64;
            if (!(l->s = realloc(l->s, (size_t)l->cap * sizeof *l->s)))
                fail("out of memory listing a checkpoint's slices");
        }
        l->s[l->n++] = (CkptSlice){.tensor = tensor, .shard = shard, .lo = a, .hi = b, .file = file,
                                   .offset = l->len, .at = at + (a - lo)};
        l->len += b - a;
    }
}

/* ---- rank files ---- */

void slices_create(SliceFile *w, const char *path, int64_t len)
{
    w->path = path;
    w->f = h5u_create(path);
    for (int g = 0; g < 3; g++)
        w->d[g] = h5u_create_f32(w->f, path, groups[g], len);
}

void slices_put(SliceFile *w, CkptSlice *s, int g, const float *data)
{
    const int64_t n = s->hi - s->lo;
    h5u_write_part(w->d[g], w->path, s->offset, n, data);
    s->sum[g] = util_fnv1a(data, (size_t)n * sizeof(float), UTIL_FNV_INIT);
}

void slices_close(SliceFile *w)
{
    for (int g = 0; g < 3; g++)
        H5_CHECK_AT(w->path, H5Dclose(w->d[g]));
    H5_CHECK_AT(w->path, H5Fclose(w->f));
}

char *slices_file(const char *dir, int64_t file) { return xasprintf("%s/rank-%05lld.h5", dir, (long long)file); }

/* group g of slice s from the open rank file f into buf, its checksum checked */
static void get(const CkptInfo *ck, hid_t f, const char *path, const CkptSlice *s, int g, float *buf)
{
    const int64_t n = s->hi - s->lo;
    h5u_read_part(f, groups[g], s->offset, n, buf, path);
    if (util_fnv1a(buf, (size_t)n * sizeof(float), UTIL_FNV_INIT) != s->sum[g])
        data_bad(path, "%s/%s, elements %lld to %lld of shard %lld: checksum mismatch (the file is corrupted)",
                 groups[g], ck->tensors[s->tensor].name, (long long)s->lo, (long long)s->hi - 1,
                 (long long)s->shard);
}

void slices_check(const CkptInfo *ck, const char *path, const CkptSlice *s, int n, float *buf)
{
    hid_t f = h5u_open(path, 0);
    for (int i = 0; i < n; i++)
        for (int g = 0; g < 3; g++)
            get(ck, f, path, &s[i], g, buf);
    H5_CHECK_AT(path, H5Fclose(f));
}

/* ---- reading under any layout ---- */

/* Walk elements [lo, hi) of the reader's shard tp_rank of p in runs that are contiguous in the
   writer's shard too (t: how the writer cut it, src_n: its shard's shape); of each run, the part
   slice s holds is copied from src (s's elements) into out (which holds [lo, hi)) when src is
   given. Returns the number of elements of [lo, hi) that s holds. */
static int64_t walk(const CkptTensor *t, const int64_t *src_n, const ParamInfo *p, int tp_rank, int64_t lo,
                    int64_t hi, const CkptSlice *s, const float *src, float *out)
{
    const int nd = p->ndim, cut = p->split > t->split ? p->split : t->split;
    /* past both cuts every dimension is whole in both shards: a run ends only where the reader's
       or the writer's shard leaves its block along dimension `cut` */
    int64_t block = 1;
    for (int k = cut + 1; k < nd; k++)
        block *= p->shape[k];
    const int64_t dblock = cut < 0 ? block : block * p->local[cut], sblock = cut < 0 ? block : block * src_n[cut];
    int64_t got = 0;
    for (int64_t e = lo; e < hi;) {
        int64_t idx[PARAM_MAXDIM], rest = e, se = 0, shard = 0;
        for (int k = nd - 1; k >= 0; k--) {
            idx[k] = rest % p->local[k];
            rest /= p->local[k];
        }
        for (int k = 0; k < nd; k++) {
            int64_t g = idx[k] + (k == p->split ? tp_rank * p->local[k] : 0);
            if (k == t->split) {
                shard = g / src_n[k];
                g -= shard * src_n[k];
            }
            se = se * src_n[k] + g;
        }
        int64_t run = hi - e < dblock - e % dblock ? hi - e : dblock - e % dblock;
        run = run < sblock - se % sblock ? run : sblock - se % sblock;
        const int64_t a = se > s->lo ? se : s->lo, b = se + run < s->hi ? se + run : s->hi;
        if (shard == s->shard && a < b) {
            if (src)
                memcpy(out + (e - lo) + (a - se), src + (a - s->lo), (size_t)(b - a) * sizeof(float));
            got += b - a;
        }
        e += run;
    }
    return got;
}

void slices_read(const CkptInfo *ck, int g, const ParamInfo *p, int tp_rank, int64_t lo, int64_t hi, float *out,
                 float *buf)
{
    const int i = slices_find(ck->tensors, ck->ntensors, p->name);
    if (i < 0) /* the index holds every tensor of the model (slices_from_rows) */
        fail("%s: %s is not in the checkpoint's index", ck->path, p->name);
    const CkptTensor *t = &ck->tensors[i];
    int64_t src_n[PARAM_MAXDIM];
    for (int k = 0; k < t->ndim; k++)
        src_n[k] = k == t->split ? t->shape[k] / ck->tp : t->shape[k];
    char path[PATH_MAX + 32];
    for (int j = t->first; j < t->first + t->count; j++) {
        const CkptSlice *s = &ck->slices[j];
        if (!walk(t, src_n, p, tp_rank, lo, hi, s, NULL, NULL))
            continue;
        snprintf(path, sizeof path, "%s/rank-%05lld.h5", ck->path, (long long)s->file);
        hid_t f = h5u_open(path, 0);
        get(ck, f, path, s, g, buf);
        H5_CHECK_AT(path, H5Fclose(f));
        walk(t, src_n, p, tp_rank, lo, hi, s, buf, out);
    }
}

/* ---- the index in meta.h5 ---- */

int64_t *slices_tensor_rows(const CkptInfo *ck)
{
    int64_t *r = xcalloc((size_t)ck->ntensors * SLICES_TENSOR_COLS, sizeof *r);
    for (int i = 0; i < ck->ntensors; i++) {
        const CkptTensor *t = &ck->tensors[i];
        int64_t *row = r + (size_t)i * SLICES_TENSOR_COLS;
        row[0] = t->ndim;
        memcpy(row + 1, t->shape, (size_t)t->ndim * sizeof *row);
        row[4] = t->split;
    }
    return r;
}

int64_t *slices_slice_rows(const CkptInfo *ck)
{
    int64_t *r = xmalloc((size_t)ck->nslices * SLICES_SLICE_COLS * sizeof *r);
    for (int i = 0; i < ck->nslices; i++) {
        const CkptSlice *s = &ck->slices[i];
        const int64_t row[SLICES_SLICE_COLS] = {s->tensor, s->shard, s->lo, s->hi, s->file, s->offset,
                                                (int64_t)s->sum[0], (int64_t)s->sum[1], (int64_t)s->sum[2]};
        memcpy(r + (size_t)i * SLICES_SLICE_COLS, row, sizeof row);
    }
    return r;
}

static int slice_cmp(const void *pa, const void *pb)
{
    const CkptSlice *a = pa, *b = pb;
    if (a->tensor != b->tensor)
        return a->tensor < b->tensor ? -1 : 1;
    if (a->shard != b->shard)
        return a->shard < b->shard ? -1 : 1;
    return a->lo < b->lo ? -1 : a->lo > b->lo;
}

/* The tensors, in the order of the model's table (every one once, with its shape), from nt
   rows. */
static void tensors_from_rows(const char *file, CkptInfo *ck, const char *names, const int64_t *rows, int nt)
{
    if (ck->dims.n_layers > nt) /* each layer has several: the model's table stays small */
        data_bad(file, "the index holds %d tensors, too few for %d layers", nt, ck->dims.n_layers);
    ck->ntensors = slices_tensors(&ck->dims, 1, &ck->tensors);
    if (nt != ck->ntensors)
        data_bad(file, "the index holds %d tensors, the model has %d", nt, ck->ntensors);
    for (int i = 0; i < nt; i++) {
        CkptTensor *t = &ck->tensors[i];
        const int64_t *row = rows + (size_t)i * SLICES_TENSOR_COLS;
        const size_t len = strcspn(names, "\n");
        int same = len == strlen(t->name) && !strncmp(names, t->name, len) && row[0] == t->ndim;
        for (int k = 0; same && k < 3; k++)
            same = row[1 + k] == (k < t->ndim ? t->shape[k] : 0);
        if (!same || row[4] < -1 || row[4] >= t->ndim || (row[4] >= 0 && t->shape[row[4]] % ck->tp))
            data_bad(file, "tensor %d of the index ('%.*s') is not the model's %s, or its split does not fit tp %d",
                     i, (int)(len < 200 ? len : 200), names, t->name, ck->tp);
        t->split = (int)row[4];
        names += len + (names[len] == '\n');
    }
    if (names[0])
        data_bad(file, "tensor_names holds more names than the index has tensors (%d)", nt);
}

void slices_from_rows(const char *file, CkptInfo *ck, const char *names, const int64_t *tensors, int nt,
                      const int64_t *slices, int ns)
{
    tensors_from_rows(file, ck, names, tensors, nt);
    ck->slices = xcalloc((size_t)ns, sizeof *ck->slices);
    ck->nslices = ns;
    for (int i = 0; i < ns; i++) {
        const int64_t *r = slices + (size_t)i * SLICES_SLICE_COLS;
        CkptSlice *s = &ck->slices[i];
        *s = (CkptSlice){r[0], r[1], r[2], r[3], r[4], r[5], {(uint64_t)r[6], (uint64_t)r[7], (uint64_t)r[8]}, 0};
        if (s->tensor < 0 || s->tensor >= ck->ntensors || s->file < 0 || s->file >= ck->files || s->offset < 0 ||
            s->offset > INT64_MAX / 2 || s->lo < 0 || s->lo >= s->hi || s->hi > INT64_MAX / 2 || s->shard < 0)
            data_bad(file, "/slices row %d is out of range", i);
    }
    qsort(ck->slices, (size_t)ck->nslices, sizeof *ck->slices, slice_cmp);
    /* every shard of every tensor tiled exactly: no element missing, none twice */
    int i = 0;
    for (int k = 0; k < ck->ntensors; k++) {
        CkptTensor *t = &ck->tensors[k];
        const int64_t shards = t->split < 0 ? 1 : ck->tp;
        uint64_t numel = 1; /* of a shard */
        for (int d = 0; d < t->ndim; d++)
            numel *= (uint64_t)t->shape[d];
        numel /= (uint64_t)shards;
        t->first = i;
        for (int64_t sh = 0; sh < shards; sh++)
            for (int64_t at = 0; (uint64_t)at < numel; at = ck->slices[i++].hi)
                if (i == ck->nslices || ck->slices[i].tensor != k || ck->slices[i].shard != sh ||
                    ck->slices[i].lo != at || (uint64_t)ck->slices[i].hi > numel)
                    data_bad(file, "the index does not hold element %lld of shard %lld of %s exactly once",
                             (long long)at, (long long)sh, t->name);
        t->count = i - t->first;
        if (i < ck->nslices && ck->slices[i].tensor == k)
            data_bad(file, "the index holds elements past the end of %s", t->name);
    }
}
