/* dataset.c: the shards of one split read as one token stream (see dataset.h). Opening reads
   every shard's metadata once; reads then open shards on demand and keep the few most recently
   used ones open, since a dataset may have thousands of shards. */
#include "data/dataset.h"

#include "data/dataset_internal.h"
#include "data/h5_check.h"
#include "data/shard.h"
#include "src/util.h"

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
    char **paths;   /* (nshards) */
    int64_t *start; /* (nshards + 1) shard i holds stream tokens [start[i], start[i + 1]) */
    int vocab, eod;
    char tokenizer[SHARD_NAME_MAX];
    uint64_t fingerprint;
    OpenShard open[DATASET_OPEN_MAX];
    uint64_t clock;
};

Dataset *dataset_open(const char *dir, const char *split)
{
    ShardName *names;
    int n = shard_list(dir, split, &names);
    if (n == 0)
        data_bad(dir, "no shard of split '%s' (files named %s-NNNNN.h5)", split, split);
    Dataset *ds = xcalloc(1, sizeof *ds);
    ds->name = xasprintf("%s (split %s)", dir, split);
    ds->nshards = n;
    ds->paths = xmalloc(n * sizeof *ds->paths);
    ds->start = xmalloc((n + 1) * sizeof *ds->start);
    ds->start[0] = 0;
    ds->fingerprint = UTIL_FNV_INIT;
    for (int i = 0; i < n; i++) {
        char *path = ds->paths[i] = xasprintf("%s/%s", dir, names[i].name);
        ShardMeta m;
        hid_t file = shard_open(path);
        shard_meta(path, file, split, &m);
        H5_CHECK_AT(path, H5Fclose(file));
        if (i == 0) {
            ds->vocab = m.vocab;
            ds->eod = m.eod;
            memcpy(ds->tokenizer, m.tokenizer, sizeof ds->tokenizer);
        } else if (m.vocab != ds->vocab || m.eod != ds->eod || strcmp(m.tokenizer, ds->tokenizer) != 0) {
            data_bad(path, "vocab_size %d, eod_id %d, tokenizer '%s' differ from %s (%d, %d, '%s')", m.vocab, m.eod,
                     m.tokenizer, ds->paths[0], ds->vocab, ds->eod, ds->tokenizer);
        }
        ds->start[i + 1] = ds->start[i] + m.ntokens;
        uint64_t sizes[2] = {(uint64_t)m.ntokens, m.checksum};
        ds->fingerprint = util_fnv1a(names[i].name, strlen(names[i].name) + 1, ds->fingerprint);
        ds->fingerprint = util_fnv1a(sizes, sizeof sizes, ds->fingerprint);
    }
    shard_names_free(names, n);
    free(names);
    for (int i = 0; i < DATASET_OPEN_MAX; i++)
        ds->open[i].shard = -1;
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
    for (int i = 0; i < DATASET_OPEN_MAX; i++)
        if (ds->open[i].shard >= 0)
            open_shard_close(ds, &ds->open[i]);
    for (int i = 0; i < ds->nshards; i++)
        free(ds->paths[i]);
    free(ds->paths);
    free(ds->start);
    free(ds->name);
    free(ds);
}

const char *dataset_name(const Dataset *ds) { return ds->name; }
int64_t dataset_ntokens(const Dataset *ds) { return ds->start[ds->nshards]; }
int dataset_vocab(const Dataset *ds) { return ds->vocab; }
int dataset_eod(const Dataset *ds) { return ds->eod; }
const char *dataset_tokenizer(const Dataset *ds) { return ds->tokenizer; }
uint64_t dataset_fingerprint(const Dataset *ds) { return ds->fingerprint; }

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

void dataset_read(Dataset *ds, int64_t start, int64_t n, int32_t *out)
{
    if (start < 0 || n < 0 || start + n > dataset_ntokens(ds))
        fail("dataset_read: tokens [%lld, %lld) are outside the %lld of the stream", (long long)start,
             (long long)(start + n), (long long)dataset_ntokens(ds));
    while (n > 0) {
        int i = dataset_find(ds, start);
        int64_t off = start - ds->start[i], m = ds->start[i + 1] - start;
        m = m < n ? m : n;
        /* ids are < vocab <= INT32_MAX, so reading them as uint32 into out is exact */
        shard_read(ds->paths[i], dataset_shard(ds, i), ds->vocab, off, m, (uint32_t *)out);
        out += m;
        start += m;
        n -= m;
    }
}
