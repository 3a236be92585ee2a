/* ckpt_v2.c: reading checkpoints of formats 1 and 2 (see ckpt_v2.h). */
#include "src/ckpt_v2.h"

#include "src/h5util.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *groups[3] = {"params", "adam_m", "adam_v"};

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

int ckpt2_read(const CkptInfo *ck, const char *group, const ParamInfo *p, int tp_rank, float *out, char *err,
               size_t errlen)
{
    ReadArgs a = {ck, p, tp_rank, out, xasprintf("%s/%s", group, p->name), NULL, NULL};
    const int ok = data_try(read_body, &a, err, errlen);
    free(a.name);
    free(a.file);
    free(a.buf);
    return ok ? 0 : -1;
}


static void open_body(void *file) { H5_CHECK_AT((char *)file, H5Fclose(h5u_open(file, 0))); }

int ckpt2_verify(const CkptInfo *ck)
{
    char err[1024];
    int problems = 0;
    for (int s = 0; s < ck->pp; s++)
        for (int r = 0; r < ck->tp; r++) {
            char *file = shard_file(ck->path, s, r);
            int opens = data_try(open_body, file, err, sizeof err);
            free(file);
            if (!opens) { /* one message for the file, not one per tensor */
                fprintf(stderr, "%s\n", err);
                problems++;
                continue;
            }
            ModelPart part = model_part(&ck->dims, ck->tp, r, ck->pp, s);
            ParamInfo *table;
            int n = model_table(&ck->dims, &part, &table);
            for (int i = 0; i < n; i++) {
                if (table[i].copy)
                    continue;
                float *buf = xmalloc(table[i].numel * sizeof(float));
                for (int g = 0; g < 3; g++)
                    if (ckpt2_read(ck, groups[g], &table[i], r, buf, err, sizeof err)) {
                        fprintf(stderr, "%s\n", err);
                        problems++;
                    }
                free(buf);
            }
            free(table);
        }
    return problems;
}
