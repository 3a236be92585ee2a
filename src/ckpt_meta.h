/* ckpt_meta.h: a checkpoint's meta.h5 (doc/checkpoint.md), for src/ckpt.c: root attributes
   (step, cursor, layout, model, config) with their checksum and, in format 4, the index of the
   rank files' slices; sealed. Reading and judging it is ckpt_info (ckpt.h). */
#ifndef MEGATRAIN_CKPT_META_H
#define MEGATRAIN_CKPT_META_H

#include "src/ckpt.h"

/* Write meta.h5 of ck at file, format 4, with its index (ck's files, tensors and slices). */
void ckpt_meta_write(const char *file, const CkptInfo *ck);

#endif
