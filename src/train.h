/* train.h: the training loop (data, forward/backward over micro-batches, gradient reduction,
   clipping, AdamW, evaluation, metrics) and the batch source it shares with `megatrain dump`. */
#ifndef MEGATRAIN_TRAIN_H
#define MEGATRAIN_TRAIN_H

#include "data/dataset.h"
#include "data/sampler.h"
#include "parallel/topo.h"
#include "src/config.h"

#include <stdint.h>

/* Where token windows come from: a dataset's sampler, or (no dataset) random ids that depend only
   on (seed, sample, position), so benchmarks and tests need no data. */
typedef struct {
    Sampler *sampler; /* NULL: random tokens */
    uint64_t seed;
    int L, vocab;
} BatchSource;

/* Samples first .. first + nrows - 1 of the run, all L + 1 columns: out (nrows, L + 1). */
void batch_read(BatchSource *src, int64_t first, int nrows, int32_t *out);

/* Train as configured on the grid t; train/val may be NULL (random tokens / no evaluation). */
void train_run(const Config *c, const char *config_path, const Topo *t, Dataset *train, Dataset *val);

#endif
