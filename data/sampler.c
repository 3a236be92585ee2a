/* sampler.c: deterministic training windows (see sampler.h). Window w of a dataset holds stream
   tokens [w L, w L + L]; its sample j is window perm_e(j mod W) of epoch e = j / W, where perm_e
   is the permutation of [0, W) keyed by (seed, e), or the identity when unshuffled. A blend's
   sample k is sample j of dataset i, as its schedule says (blend.h); each of its datasets has its
   own windows, epochs and key. */
#include "data/sampler.h"

#include "data/blend.h"
#include "data/dataset_internal.h"
#include "data/perm.h"
#include "base/util.h"

#include <stdlib.h>

typedef struct {
    Dataset *ds;
    uint64_t key;    /* epoch e permutes with rng_u64(key, e) */
    int64_t windows; /* W */
} Source;

struct Sampler {
    int seq_len; /* L */
    int shuffle;
    int n;          /* datasets: 1, or those of a blend */
    Source *src;    /* (n) */
    BlendSchedule blend; /* a blend: which dataset each sample reads */
};

Sampler *sampler_create(Dataset *ds, uint64_t seed, int seq_len, int shuffle)
{
    if (seq_len < 1)
        fail("sampler_create: seq_len %d < 1", seq_len);
    Sampler *s = xcalloc(1, sizeof *s);
    s->seq_len = seq_len;
    s->shuffle = shuffle;
    s->n = dataset_blend_size(ds);
    if (s->n == 0) {
        s->n = 1;
        s->src = xmalloc(sizeof *s->src);
        s->src[0] = (Source){ds, rng_key(seed, "sampler"), 0};
    } else {
        double *weights = xmalloc((size_t)s->n * sizeof *weights);
        s->src = xmalloc((size_t)s->n * sizeof *s->src);
        for (int i = 0; i < s->n; i++) {
            s->src[i] = (Source){dataset_blend_member(ds, i), rng_u64(rng_key(seed, "blend"), (uint64_t)i), 0};
            weights[i] = dataset_blend_weight(ds, i);
        }
        blend_schedule_init(&s->blend, weights, s->n);
        free(weights);
    }
    for (int i = 0; i < s->n; i++) {
        Dataset *d = s->src[i].ds;
        s->src[i].windows = (dataset_ntokens(d) - 1) / seq_len;
        if (s->src[i].windows < 1)
            fail_input("%s: %lld tokens, fewer than one window of seq_len + 1 = %d", dataset_name(d),
                       (long long)dataset_ntokens(d), seq_len + 1);
    }
    return s;
}

void sampler_free(Sampler *s)
{
    blend_schedule_free(&s->blend);
    free(s->src);
    free(s);
}

int64_t sampler_windows(const Sampler *s)
{
    int64_t w = 0;
    for (int i = 0; i < s->n; i++)
        w += s->src[i].windows;
    return w;
}

int sampler_datasets(const Sampler *s) { return s->n; }

void sampler_counts(const Sampler *s, int64_t cursor, int64_t *out)
{
    if (s->blend.n)
        blend_counts(&s->blend, (uint64_t)cursor, out);
    else
        out[0] = cursor;
}

void sampler_read(Sampler *s, int64_t cursor, int row0, int nrows, int col0, int ncols, int32_t *out)
{
    if (cursor < 0 || row0 < 0 || nrows < 0 || col0 < 0 || ncols < 1 || col0 + ncols > s->seq_len)
        fail("sampler_read: bad request (cursor %lld, rows %d+%d, columns %d+%d of L = %d)", (long long)cursor, row0,
             nrows, col0, ncols, s->seq_len);
    for (int r = 0; r < nrows; r++) {
        uint64_t k = (uint64_t)(cursor + row0 + r), j = k;
        int i = 0;
        if (s->blend.n)
            blend_sample(&s->blend, k, &i, &j);
        const Source *src = &s->src[i];
        uint64_t w = j % (uint64_t)src->windows;
        if (s->shuffle)
            w = perm_apply(rng_u64(src->key, j / (uint64_t)src->windows), (uint64_t)src->windows, w);
        dataset_read(src->ds, (int64_t)w * s->seq_len + col0, ncols + 1, out + (int64_t)r * (ncols + 1));
    }
}
