/* convert.h: megackpt export and import: a checkpoint's model weights to and from a safetensors
   file under the reference repository's names and shapes (spec section 16). */
#ifndef MEGATRAIN_CONVERT_H
#define MEGATRAIN_CONVERT_H

#include "src/ckpt.h"

/* Write the fp32 weights of checkpoint ck as a safetensors file; a tied head is written under
   both of its names. */
void convert_export(const CkptInfo *ck, const char *out);
/* Write checkpoint folder out, at step 0 with zero AdamW moments, for the model and layout
   (parallel.tp, parallel.pp) of meta, from the tensors of safetensors file in. Every tensor the
   model has must be there, F32 and of its shape: else bad input naming each that is not. */
void convert_import(const char *in, const char *out, const CkptInfo *meta);

#endif
