/* batch.h: where the trainer's token windows come from, and the reader that fetches the next
   micro-batch on a thread of its own while the current one computes. The trainer knows its
   schedule and asks for the next batch explicitly (batch_prefetch); batch_take then hands over
   the buffer the thread filled. A batch is named by its samples and columns, never by a position
   in a stream, so the data cursor stays the trainer's alone and checkpoints keep it exact. */
#ifndef MEGATRAIN_BATCH_H
#define MEGATRAIN_BATCH_H

#include "data/sampler.h"

#include <stddef.h>
#include <stdint.h>

/* Where token windows come from: a dataset's sampler, or (no dataset) random ids that depend only
   on (seed, sample, position), so benchmarks and tests need no data. */
typedef struct {
    Sampler *sampler; /* NULL: random tokens */
    uint64_t seed;
    int L, vocab;
} BatchSource;

/* Samples first .. first + nrows - 1 of the run, columns col0 .. col0 + ncols (ncols + 1 tokens:
   inputs and the shifted targets): out (nrows, ncols + 1). */
void batch_read(BatchSource *src, int64_t first, int nrows, int col0, int ncols, int32_t *out);

/* One batch_read's arguments. */
typedef struct {
    BatchSource *src;
    int64_t first;
    int nrows, col0, ncols;
} BatchWant;

typedef struct BatchReader BatchReader;

/* A reader of batches of at most elems tokens. With prefetch, a thread reads ahead, if HDF5 is
   thread-safe (else it says so in a log line and reads when asked). */
BatchReader *batch_reader_create(size_t elems, int prefetch);
/* Waits for the thread's read, then ends the thread. */
void batch_reader_free(BatchReader *r);
/* Start reading w on the thread (nothing without one). A batch asked for and not taken is
   dropped by the next batch_prefetch or batch_take. */
void batch_prefetch(BatchReader *r, const BatchWant *w);
/* The tokens of w, (nrows, ncols + 1), valid until the next batch_take: the prefetched buffer when
   w is what batch_prefetch asked for (a read that failed there stops the job now, with the
   message and exit code of a read here), else read now. */
const int32_t *batch_take(BatchReader *r, const BatchWant *w);
/* Wait until the thread reads nothing: call before anything else uses the data layer or HDF5
   (evaluation, checkpoints). A prefetched batch stays for batch_take. */
void batch_idle(BatchReader *r);

#endif
