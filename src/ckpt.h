/* ckpt.h: checkpoints (format in doc/checkpoint.md).

   DIR/step-00000300/            one folder per checkpoint, written as
                                 DIR/.step-00000300.tmp and renamed when every file is complete
     meta.h5                     step, data cursor, seed, layout, model dimensions, resolved config
     shard-pp000-tp000.h5        one file per (pipeline stage, tensor-parallel rank): the fp32
                                 master weights and AdamW moments of the tensors it owns,
                                 /params/<name>, /adam_m/<name>, /adam_v/<name>, each its shard of
                                 the global tensor, with the global shape, the split and a
                                 checksum as attributes

   Any layout reads any checkpoint: a rank assembles each of its shards from the overlapping
   shards of the files, whatever tp and pp they were written under. */
#ifndef MEGATRAIN_CKPT_H
#define MEGATRAIN_CKPT_H

#include "src/model.h"
#include "src/train.h"

#include <stdint.h>

#define CKPT_FORMAT "megatrain-checkpoint"
#define CKPT_VERSION 2 /* 2: meta.h5 carries a checksum of its values; 1 (none) is still read */

typedef struct {
    char *path;            /* the checkpoint folder */
    int version;           /* its format version */
    int64_t step, cursor, seed;
    int tp, pp, dp, cp;    /* the layout that wrote it */
    ModelDims dims;
    char *config;          /* the resolved config (YAML) it was written with */
    uint64_t data_fingerprint;
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
/* The checkpoints (step-N folders, or symlinks to folders) of a run folder, newest first (*paths
   allocated). */
int ckpt_list(const char *dir, char ***paths);
/* Read meta.h5 and check it: its checksum (format 2), every value in range and the writer's layout
   fitting the model. The one judge of a checkpoint's metadata: resume, verify and ls all ask it.
   0, or -1 with the reason in err (and info cleared). */
int ckpt_info(const char *path, CkptInfo *info, char *err, size_t errlen);
void ckpt_info_free(CkptInfo *info);
/* Read shard tp_rank (of p's split, p->local shape) of tensor p->name from group "params",
   "adam_m" or "adam_v" of the checkpoint, checking the checksum of everything read; 0, or -1 with
   the reason in err. */
int ckpt_read(const CkptInfo *ck, const char *group, const ParamInfo *p, int tp_rank, float *out, char *err,
              size_t errlen);
/* Check every file and tensor checksum of a checkpoint; prints one line per problem to stderr and
   returns their number. */
int ckpt_verify(const char *path);
/* Where a single-process writer gets each tensor: shard tp_rank of p (p->local shape) of group g
   (0 params, 1 adam_m, 2 adam_v). */
typedef void (*CkptFetch)(void *ctx, int group, const ParamInfo *p, int tp_rank, float *out);
/* Write a whole checkpoint folder from one process, laid out for meta->tp x meta->pp (tools:
   import, reshard); written under a temporary name and renamed when complete. */
void ckpt_write(const char *path, const CkptInfo *meta, CkptFetch fetch, void *ctx);

#endif
