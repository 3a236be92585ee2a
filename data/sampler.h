/* sampler.h: deterministic (B, L+1) training windows. Sample k of a run (k = 0, 1, 2, ... over
   the whole run) is a function of (seed, k) alone, so the global batch is the same for any number
   of ranks and a run resumes exactly from its cursor, the number of samples already drawn.
   Windows are the dataset's non-overlapping L+1 windows (stride L), visited in a fresh
   pseudo-random order every epoch; an unshuffled sampler visits them in order (validation). A
   blend (dataset_open_blend) draws each sample from one of its datasets, in proportion to the
   weights, by a schedule that depends on k alone; each dataset has its own epochs. */
#ifndef MEGATRAIN_SAMPLER_H
#define MEGATRAIN_SAMPLER_H

#include "data/dataset.h"

#include <stdint.h>

typedef struct Sampler Sampler;

/* seq_len is L (each window holds L+1 tokens: inputs and shifted targets). Stops the job with
   fail_input() when the dataset is shorter than one window. */
Sampler *sampler_create(Dataset *ds, uint64_t seed, int seq_len, int shuffle);
void sampler_free(Sampler *s);
int64_t sampler_windows(const Sampler *s); /* windows per epoch (of a blend: of all its datasets) */
/* The datasets it draws from: 1, or a blend's; and how many of samples [0, cursor) each gave
   (out[0, sampler_datasets)). */
int sampler_datasets(const Sampler *s);
void sampler_counts(const Sampler *s, int64_t cursor, int64_t *out);

/* Tokens of samples cursor + row0 .. cursor + row0 + nrows - 1, columns [col0, col0 + ncols]
   of each window (ncols + 1 tokens, so the last column is the target of column col0+ncols-1):
   out is (nrows, ncols + 1). Reads only those tokens. */
void sampler_read(Sampler *s, int64_t cursor, int row0, int nrows, int col0, int ncols, int32_t *out);

#endif
