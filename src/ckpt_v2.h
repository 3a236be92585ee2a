/* ckpt_v2.h: reading checkpoints of formats 1 and 2 (doc/checkpoint.md), for src/ckpt.c: one
   file shard-ppSSS-tpRRR.h5 per (pipeline stage, tp rank) of the writer's layout, each tensor's
   shard whole in /params/<name>, /adam_m/<name>, /adam_v/<name> with its global shape, its
   split and its checksum as attributes. */
#ifndef MEGATRAIN_CKPT_V2_H
#define MEGATRAIN_CKPT_V2_H

#include "src/ckpt.h"

/* ckpt_read for formats 1 and 2. */
int ckpt2_read(const CkptInfo *ck, const char *group, const ParamInfo *p, int tp_rank, float *out, char *err,
               size_t errlen);
/* ckpt_verify's reading of every file and tensor for formats 1 and 2: returns the problems,
   printed to stderr. */
int ckpt2_verify(const CkptInfo *ck);

#endif
