/* ckpt.h: checkpoints (format in doc/checkpoint.md).

   DIR/step-00000300/            one folder per checkpoint, written as
                                 DIR/.step-00000300.tmp and renamed when every file is complete
     meta.h5                     step, data cursor, seed, layout, model dimensions, resolved config
                                 and the index: which file holds which elements of each tensor
     rank-00000.h5               one file per rank: the fp32 master weights and AdamW moments of
                                 the elements it owns in the distributed optimizer, as slices of
                                 tensors (src/ckpt_slices.h), each with its checksum in the index

   Any layout reads any checkpoint: a rank reads the slices that overlap the elements it owns,
   whatever layout they were written under. Formats 1 and 2 (one file per stage and tp rank,
   src/ckpt_v2.h) are still read. */
#ifndef MEGATRAIN_CKPT_H
#define MEGATRAIN_CKPT_H

#include "src/model.h"
#include "src/train.h"

#include <stdint.h>

#define CKPT_FORMAT "megatrain-checkpoint"
/* 4: every rank writes its slices to its own file, indexed in meta.h5 (3 is skipped: one bit from
   both 1 and 2); 2: one file per (stage, tp rank), meta.h5 with a checksum; 1: without. 1 and 2
   are still read. */
#define CKPT_VERSION 4

/* A tensor of a format 4 checkpoint, as its writer cut it. */
typedef struct {
    char name[PARAM_NAME];
    int ndim, split;              /* split: the dimension cut into tp shards, -1: one shard, whole */
    int64_t shape[PARAM_MAXDIM];  /* global */
    int first, count;             /* its slices: CkptInfo.slices[first, first + count), by shard and lo */
} CkptTensor;

/* Elements [lo, hi) of shard `shard` of a tensor (row-major in the shard), stored from element
   `offset` of rank file `file` (ckpt_slices.h). */
typedef struct {
    int64_t tensor, shard, lo, hi, file, offset;
    uint64_t sum[3]; /* FNV-1a 64 of its params, adam_m, adam_v */
    int64_t at;      /* writing: where the writer takes it from (not stored) */
} CkptSlice;

typedef struct {
    char *path;            /* the checkpoint folder */
    int version;           /* its format version */
    int64_t step, cursor, seed;
    int tp, pp, dp, cp;    /* the layout that wrote it */
    ModelDims dims;
    char *config;          /* the resolved config (YAML) it was written with */
    uint64_t data_fingerprint;
    /* format 4: the rank files rank-00000.h5 .. and the index */
    int files, ntensors, nslices;
    CkptTensor *tensors;   /* (ntensors) */
    CkptSlice *slices;     /* (nslices) sorted by tensor, shard, lo */
} CkptInfo;

/* Collective: save the trainer's state as DIR/step-<step>, then drop old ones (keep_last,
   keep_every). */
void ckpt_save(Trainer *tr, const char *dir);
/* Collective: load `path` (a checkpoint folder) or, when it is a folder of checkpoints, the newest
   one that loads cleanly; a damaged one is reported by name and the next older one is tried.
   Returns 1 when a checkpoint was loaded, 0 when there was none. */
int ckpt_resume(Trainer *tr, const char *path);

/* Whether two models are the same (a checkpoint of one loads into the other). */
int ckpt_same_model(const ModelDims *a, const ModelDims *b);

/* What an entry of a run folder is to megatrain, by its name (*step: N, when not CKPT_OTHER). The
   next ckpt_save deletes leftovers; nothing else there is ever deleted but old checkpoints. */
typedef enum {
    CKPT_OTHER,    /* not megatrain's: never touched */
    CKPT_STEP,     /* step-N (N of at least 8 digits): a checkpoint */
    CKPT_LEFTOVER, /* .step-N.tmp or .step-N.del.tmp: a write or a deletion that did not finish */
} CkptName;
CkptName ckpt_name(const char *name, int64_t *step);
/* Whether a file of a checkpoint folder is one of its data files: rank-NNNNN.h5 (format 4) or
   shard-ppNNN-tpNNN.h5 (formats 1 and 2); meta.h5 is not. */
int ckpt_data_file(const char *name);
/* The checkpoints (step-N folders, or symlinks to folders) of a run folder, newest first (*paths
   allocated). */
int ckpt_list(const char *dir, char ***paths);
/* Read meta.h5 and check it: its checksum (format 2), every value in range and the writer's layout
   fitting the model. The one judge of a checkpoint's metadata: resume, verify and ls all ask it.
   0, or -1 with the reason in err (and info cleared). */
int ckpt_info(const char *path, CkptInfo *info, char *err, size_t errlen);
void ckpt_info_free(CkptInfo *info);
/* Read elements [lo, hi) (row-major) of shard tp_rank (of p's split, p->local shape) of tensor
   p->name from group "params", "adam_m" or "adam_v" of the checkpoint, checking the checksum of
   everything read; 0, or -1 with the reason in err. ckpt_read: the whole shard. */
int ckpt_read_range(const CkptInfo *ck, const char *group, const ParamInfo *p, int tp_rank, int64_t lo, int64_t hi,
                    float *out, char *err, size_t errlen);
int ckpt_read(const CkptInfo *ck, const char *group, const ParamInfo *p, int tp_rank, float *out, char *err,
              size_t errlen);
/* Check every file and tensor checksum of a checkpoint; prints one line per problem to stderr and
   returns their number. */
int ckpt_verify(const char *path);
/* The data files a checkpoint has: format 4's rank files, or one per (stage, tp rank). */
int ckpt_data_files(const CkptInfo *ck);
/* Where a single-process writer gets each tensor: shard tp_rank of p (p->local shape) of group g
   (0 params, 1 adam_m, 2 adam_v). */
typedef void (*CkptFetch)(void *ctx, int group, const ParamInfo *p, int tp_rank, float *out);
/* Write a whole checkpoint folder from one process, laid out for meta->tp x meta->pp (tools:
   import, reshard); written under a temporary name and renamed when complete. */
void ckpt_write(const char *path, const CkptInfo *meta, CkptFetch fetch, void *ctx);

#endif
