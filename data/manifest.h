/* manifest.h: a dataset's manifest, DIR/manifest.h5 (format in doc/data.md): every shard of the
   dataset with its token count and checksum, and a checksum for every chunk of tokens. With it a
   reader finds a missing, added or changed shard when it opens the dataset, and a changed token
   the first time it reads the chunk that holds it. */
#ifndef MEGATRAIN_MANIFEST_H
#define MEGATRAIN_MANIFEST_H

#include "data/shard.h"

#include <hdf5.h>
#include <stdint.h>
#include <stdnoreturn.h>

#define MANIFEST_FILE "manifest.h5"
#define MANIFEST_FORMAT "megatrain-dataset"
#define MANIFEST_VERSION 2       /* of the dataset format: datasets of version 1 had no manifest */
#define MANIFEST_CHUNK (1 << 14) /* tokens a chunk checksum covers, in the manifests megadata writes */
/* The folder of a dataset where megadata build keeps the state of a build under way (its plan and
   the tokens of each part): while it is there without a manifest, the build is unfinished. */
#define DATASET_BUILD_DIR ".megadata-build"

typedef struct {
    char *dir, *path; /* DIR, DIR/manifest.h5 */
    hid_t file, sums; /* kept open: a chunk's checksum is read when the chunk first is */
    int64_t chunk_tokens;
    int n;               /* shards, in stream order */
    size_t name_size;    /* bytes a name takes in names */
    char *names;         /* (n, name_size) "train-00003.h5", NUL-terminated */
    int64_t *ntokens;    /* (n) */
    uint64_t *checksums; /* (n) each shard's checksum attribute */
    int64_t *chunk0;     /* (n + 1) shard i's chunk checksums are [chunk0[i], chunk0[i + 1]) */
} Manifest;

/* The chunk checksums of a shard just written: its writer computed them, so the manifest needs not
   read the shard again. */
typedef struct {
    char *name;     /* "train-00003.h5" */
    int64_t n;      /* its chunks of MANIFEST_CHUNK tokens */
    uint64_t *sums; /* (n) */
} ShardSums;

void shard_sums_free(ShardSums *s, int n);

/* Open and check dir's manifest into *m; returns 0 when dir has none. Bad data stops it through
   data_bad, leaving in *m only what manifest_close releases (so it may run inside data_try). */
int manifest_open(const char *dir, Manifest *m);
void manifest_close(Manifest *m);
/* Stops with data_bad: dir has no manifest (saying how to write one). */
noreturn void manifest_absent(const char *dir);

static inline const char *manifest_name(const Manifest *m, int i) { return m->names + (size_t)i * m->name_size; }
/* The index of shard `name` (a shard file name), or -1 when m does not list it. */
int manifest_find(const Manifest *m, const char *name);
/* Stops with data_bad when m lists the shard `name` (at path) and it is missing. */
void manifest_check_present(const Manifest *m, const char *path, const char *name);
/* Stops with data_bad naming the first shard of split (every split when NULL) that m lists and
   its folder lacks. */
void manifest_check_all_present(const Manifest *m, const char *split);
/* The index of the shard at path, named name, whose metadata is meta: stops with data_bad when m
   does not list it or lists another token count or checksum. */
int manifest_check_shard(const Manifest *m, const char *path, const char *name, const ShardMeta *meta);
/* Chunk checksums [first, first + n) into out. */
void manifest_chunk_sums(const Manifest *m, int64_t first, int64_t n, uint64_t *out);

/* Bring dir's manifest up to date: the shards it lists must be present and unchanged (their
   metadata is checked); the shards in known (nknown of them) are added with their checksums;
   every other shard is read to the end, checked and added. Writes manifest.h5 through
   manifest.h5.tmp. Returns the number of shards read; bad data stops it through data_bad. */
int manifest_update(const char *dir, const ShardSums *known, int nknown);

#endif
