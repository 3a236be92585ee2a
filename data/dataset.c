/* dataset.c: the shards of one split read as one token stream (see dataset.h). Opening reads
   the manifest and every shard's metadata once, checking that they agree; reads then open shards
   on demand and keep the few most recently used ones open, since a dataset may have thousands of
   shards. The first read of each chunk reads it whole and checks it against the manifest's
   checksum; a bit per chunk remembers that it was checked, so later reads cost nothing more. */
#include "data/dataset.h"

#include "data/blend.h"
#include "data/dataset_internal.h"
#include "data/h5_check.h"
#include "data/manifest.h"
#include "data/shard.h"
#include "base/util.h"

#include <stdlib.h>
#include <string.h>

#define DATASET_OPEN_MAX 4 /* shards kept open at once */

typedef struct {
    int shard; /* index into paths, or -1 when the slot is free */
    hid_t file, tokens;
    uint64_t used; /* read clock at the last use, for least-recently-used eviction */
} OpenShard;

struct Dataset {
    char *name; /* "DIR (split SPLIT)" */
    int nshards;
    char **paths;    /* (nshards) */
    int64_t *start;  /* (nshards + 1) shard i holds stream tokens [start[i], start[i + 1]) */
    ShardMeta *meta; /* (nshards) */
    int vocab, eod;
    char tokenizer[SHARD_NAME_MAX];
    uint64_t fingerprint;
    Manifest manifest;
    int64_t *chunk0;  /* (nshards + 1) index of shard i's first chunk in the manifest */
    uint8_t *checked; /* (chunks of the split / 8) bit c: chunk chunk0[0] + c was read and checked */
    uint32_t *chunk;  /* (manifest.chunk_tokens) a chunk being checked */
    OpenShard open[DATASET_OPEN_MAX];
    uint64_t clock;
    int64_t ntokens;
    int nmembers; /* a blend: its datasets and their weights */
    Dataset **members;
    double *weights;
};

Dataset *dataset_open(const char *dir, const char *split)
{
    ShardName *names;
    int n = shard_list(dir, split, &names);
    Dataset *ds = xcalloc(1, sizeof *ds);
    int have_manifest = manifest_open(dir, &ds->manifest);
    if (have_manifest)
        manifest_check_all_present(&ds->manifest, split);
    if (n == 0)
        data_bad(dir, "no shard of split '%s' (files named %s-NNNNN.h5)", split, split);
    if (!have_manifest)
        manifest_absent(dir);
    ds->name = xasprintf("%s (split %s)", dir, split);
    ds->nshards = n;
    ds->paths = xmalloc(n * sizeof *ds->paths);
    ds->start = xmalloc((n + 1) * sizeof *ds->start);
    ds->meta = xmalloc(n * sizeof *ds->meta);
    ds->chunk0 = xmalloc((n + 1) * sizeof *ds->chunk0);
    ds->start[0] = 0;
    ds->fingerprint = UTIL_FNV_INIT;
    for (int i = 0; i < n; i++) {
        char *path = ds->paths[i] = xasprintf("%s/%s", dir, names[i].name);
        ShardMeta *m = &ds->meta[i];
        hid_t file = shard_open(path);
        shard_meta(path, file, split, m);
        H5_CHECK_AT(path, H5Fclose(file));
        if (i > 0)
            shard_meta_same(path, m, ds->paths[0], &ds->meta[0]);
        int at = manifest_check_shard(&ds->manifest, path, names[i].name, m);
        ds->chunk0[i] = ds->manifest.chunk0[at];
        ds->chunk0[i + 1] = ds->manifest.chunk0[at + 1]; /* the split's shards are consecutive there */
        ds->start[i + 1] = ds->start[i] + m->ntokens;
        uint64_t sizes[2] = {(uint64_t)m->ntokens, m->checksum};
        ds->fingerprint = util_fnv1a(names[i].name, strlen(names[i].name) + 1, ds->fingerprint);
        ds->fingerprint = util_fnv1a(sizes, sizeof sizes, ds->fingerprint);
    }
    ds->vocab = ds->meta[0].vocab;
    ds->eod = ds->meta[0].eod;
    memcpy(ds->tokenizer, ds->meta[0].tokenizer, sizeof ds->tokenizer);
    ds->checked = xcalloc((size_t)(ds->chunk0[n] - ds->chunk0[0] + 7) / 8, 1);
    ds->chunk = xmalloc(ds->manifest.chunk_tokens * sizeof *ds->chunk);
    shard_names_free(names, n);
    free(names);
    for (int i = 0; i < DATASET_OPEN_MAX; i++)
        ds->open[i].shard = -1;
    ds->ntokens = ds->start[n];
    return ds;
}

Dataset *dataset_open_blend(const char *blend, const char *split)
{
    BlendSpec spec;
    const char *err = blend_parse(blend, &spec);
    if (err)
        fail_input("data.blend '%s': %s", blend, err);
    Dataset *ds = xcalloc(1, sizeof *ds);
    ds->name = xasprintf("data.blend (split %s)", split);
    ds->nmembers = spec.n;
    ds->members = xmalloc((size_t)spec.n * sizeof *ds->members);
    ds->weights = xmalloc((size_t)spec.n * sizeof *ds->weights);
    ds->fingerprint = UTIL_FNV_INIT;
    for (int i = 0; i < spec.n; i++) {
        Dataset *m = ds->members[i] = dataset_open(spec.paths[i], split), *m0 = ds->members[0];
        if (m->vocab != m0->vocab || m->eod != m0->eod || strcmp(m->tokenizer, m0->tokenizer) != 0)
            fail_input("%s: vocabulary %d, end-of-document id %d, tokenizer '%s', but %s has %d, %d, '%s': the "
                       "datasets of a blend share one tokenizer",
                       m->name, m->vocab, m->eod, m->tokenizer, m0->name, m0->vocab, m0->eod, m0->tokenizer);
        ds->weights[i] = spec.weights[i];
        ds->ntokens += m->ntokens;
        ds->fingerprint = util_fnv1a(&m->fingerprint, sizeof m->fingerprint, ds->fingerprint);
        ds->fingerprint = util_fnv1a(&ds->weights[i], sizeof ds->weights[i], ds->fingerprint);
    }
    ds->vocab = ds->members[0]->vocab;
    ds->eod = ds->members[0]->eod;
    memcpy(ds->tokenizer, ds->members[0]->tokenizer, sizeof ds->tokenizer);
    blend_spec_free(&spec);
    return ds;
}

static void open_shard_close(Dataset *ds, OpenShard *o)
{
    const char *path = ds->paths[o->shard];
    H5_CHECK_AT(path, H5Dclose(o->tokens));
    H5_CHECK_AT(path, H5Fclose(o->file));
    o->shard = -1;
}

void dataset_close(Dataset *ds)
{
    for (int i = 0; i < ds->nmembers; i++)
        dataset_close(ds->members[i]);
    free(ds->members);
    free(ds->weights);
    for (int i = 0; i < DATASET_OPEN_MAX && !ds->nmembers; i++)
        if (ds->open[i].shard >= 0)
            open_shard_close(ds, &ds->open[i]);
    for (int i = 0; i < ds->nshards; i++)
        free(ds->paths[i]);
    free(ds->paths);
    free(ds->start);
    free(ds->meta);
    free(ds->chunk0);
    free(ds->checked);
    free(ds->chunk);
    manifest_close(&ds->manifest);
    free(ds->name);
    free(ds);
}

const char *dataset_name(const Dataset *ds) { return ds->name; }
int64_t dataset_ntokens(const Dataset *ds) { return ds->ntokens; }
int dataset_vocab(const Dataset *ds) { return ds->vocab; }
int dataset_eod(const Dataset *ds) { return ds->eod; }
const char *dataset_tokenizer(const Dataset *ds) { return ds->tokenizer; }
/* a blend's: its first dataset's */
int dataset_bos(const Dataset *ds) { return ds->nmembers ? dataset_bos(ds->members[0]) : ds->meta[0].bos; }
uint64_t dataset_tokenizer_checksum(const Dataset *ds)
{
    return ds->nmembers ? dataset_tokenizer_checksum(ds->members[0]) : ds->meta[0].tokenizer_checksum;
}
uint64_t dataset_fingerprint(const Dataset *ds) { return ds->fingerprint; }
int dataset_blend_size(const Dataset *ds) { return ds->nmembers; }
Dataset *dataset_blend_member(const Dataset *ds, int i) { return ds->members[i]; }
double dataset_blend_weight(const Dataset *ds, int i) { return ds->weights[i]; }

/* The tokens dataset of shard i, from the cache or opened in the least recently used slot. */
static hid_t dataset_shard(Dataset *ds, int i)
{
    OpenShard *slot = &ds->open[0];
    for (int k = 0; k < DATASET_OPEN_MAX; k++) {
        OpenShard *o = &ds->open[k];
        if (o->shard == i) {
            o->used = ++ds->clock;
            return o->tokens;
        }
        if (o->shard < 0 || (slot->shard >= 0 && o->used < slot->used))
            slot = o;
    }
    if (slot->shard >= 0)
        open_shard_close(ds, slot);
    slot->file = shard_open(ds->paths[i]);
    slot->tokens = shard_tokens_open(ds->paths[i], slot->file);
    slot->shard = i;
    slot->used = ++ds->clock;
    return slot->tokens;
}

/* The shard holding stream token pos: the last i with start[i] <= pos (skipping empty shards). */
static int dataset_find(const Dataset *ds, int64_t pos)
{
    int lo = 0, hi = ds->nshards - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (ds->start[mid] <= pos)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* Check the chunks of shard i that hold its tokens [off, off + n) and were not checked before. */
static void dataset_check_chunks(Dataset *ds, int i, hid_t tokens, int64_t off, int64_t n)
{
    const Manifest *mf = &ds->manifest;
    int64_t c = mf->chunk_tokens;
    for (int64_t k = off / c; k <= (off + n - 1) / c; k++) {
        int64_t bit = ds->chunk0[i] + k - ds->chunk0[0];
        if (ds->checked[bit / 8] & (1 << bit % 8))
            continue;
        uint64_t want;
        manifest_chunk_sums(mf, ds->chunk0[i] + k, 1, &want);
        uint64_t got = shard_read_chunk(ds->paths[i], tokens, &ds->meta[i], c, k, ds->chunk);
        shard_check_chunk(ds->paths[i], c, k, got, want, mf->path);
        ds->checked[bit / 8] |= (uint8_t)(1 << bit % 8);
    }
}

void dataset_read(Dataset *ds, int64_t start, int64_t n, int32_t *out)
{
    if (ds->nmembers)
        fail("dataset_read: %s is a blend of %d datasets, read through a sampler", ds->name, ds->nmembers);
    if (start < 0 || n < 0 || start + n > dataset_ntokens(ds))
        fail("dataset_read: tokens [%lld, %lld) are outside the %lld of the stream", (long long)start,
             (long long)(start + n), (long long)dataset_ntokens(ds));
    while (n > 0) {
        int i = dataset_find(ds, start);
        int64_t off = start - ds->start[i], m = ds->start[i + 1] - start;
        m = m < n ? m : n;
        hid_t tokens = dataset_shard(ds, i);
        dataset_check_chunks(ds, i, tokens, off, m);
        /* ids are < vocab <= INT32_MAX, so reading them as uint32 into out is exact */
        shard_read(ds->paths[i], tokens, ds->vocab, off, m, (uint32_t *)out);
        out += m;
        start += m;
        n -= m;
    }
}
