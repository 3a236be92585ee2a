/* dump.h: `megatrain dump`: one batch through the model, written to HDF5 under the reference
   repository's parameter names (spec section 16) so any tool can check the model: parameters,
   tokens, logits, loss, every gradient, and optionally the parameters after K AdamW steps.
   Format: doc/model-check.md. */
#ifndef MEGATRAIN_DUMP_H
#define MEGATRAIN_DUMP_H

#include "data/dataset.h"
#include "src/config.h"

/* train: the training split (NULL: random tokens); load: HDF5 file whose /params/<name> replace
   the initialisation (NULL: initialise from the seed); steps: AdamW steps to take on the batch
   (0: none). */
void dump_run(const Config *c, Dataset *train, const char *out_path, const char *load_path, int steps);

#endif
