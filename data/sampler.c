/* sampler.c: deterministic training windows (see sampler.h). Window w holds stream tokens
   [w L, w L + L]; sample k is window perm_e(k mod W) of epoch e = k / W, where perm_e is the
   permutation of [0, W) keyed by (seed, e), or the identity when unshuffled. */
#include "data/sampler.h"

#include "data/dataset_internal.h"
#include "data/perm.h"
#include "base/util.h"

#include <stdlib.h>

struct Sampler {
    Dataset *ds;
    uint64_t key; /* from the seed; epoch e permutes with rng_u64(key, e) */
    int seq_len;  /* L */
    int shuffle;
    int64_t windows; /* W */
};

Sampler *sampler_create(Dataset *ds, uint64_t seed, int seq_len, int shuffle)
{
    if (seq_len < 1)
        fail("sampler_create: seq_len %d < 1", seq_len);
    int64_t windows = (dataset_ntokens(ds) - 1) / seq_len;
    if (windows < 1)
        fail_input("%s: %lld tokens, fewer than one window of seq_len + 1 = %d", dataset_name(ds),
                   (long long)dataset_ntokens(ds), seq_len + 1);
    Sampler *s = xcalloc(1, sizeof *s);
    s->ds = ds;
    s->key = rng_key(seed, "sampler");
    s->seq_len = seq_len;
    s->shuffle = shuffle;
    s->windows = windows;
    return s;
}

void sampler_free(Sampler *s) { free(s); }

int64_t sampler_windows(const Sampler *s) { return s->windows; }

void sampler_read(Sampler *s, int64_t cursor, int row0, int nrows, int col0, int ncols, int32_t *out)
{
    if (cursor < 0 || row0 < 0 || nrows < 0 || col0 < 0 || ncols < 1 || col0 + ncols > s->seq_len)
        fail("sampler_read: bad request (cursor %lld, rows %d+%d, columns %d+%d of L = %d)", (long long)cursor, row0,
             nrows, col0, ncols, s->seq_len);
    for (int r = 0; r < nrows; r++) {
        uint64_t k = (uint64_t)(cursor + row0 + r), w = k % (uint64_t)s->windows;
        if (s->shuffle)
            w = perm_apply(rng_u64(s->key, k / (uint64_t)s->windows), (uint64_t)s->windows, w);
        dataset_read(s->ds, (int64_t)w * s->seq_len + col0, ncols + 1, out + (int64_t)r * (ncols + 1));
    }
}
