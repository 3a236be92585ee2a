/* blend.c: data.blend's text and the schedule of its samples (see blend.h). */
#include "data/blend.h"

#include "data/h5_check.h"
#include "base/util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLEND_MAX 1024 /* datasets in a blend (the schedule costs BLEND_PERIOD x n to make) */

void blend_spec_free(BlendSpec *spec)
{
    for (int i = 0; i < spec->n; i++)
        free(spec->paths[i]);
    free(spec->paths);
    free(spec->weights);
    *spec = (BlendSpec){0};
}

/* What is wrong, formatted into a buffer that lives until the next call; spec is emptied. */
static const char *blend_bad(BlendSpec *spec, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *blend_bad(BlendSpec *spec, const char *fmt, ...)
{
    static char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    blend_spec_free(spec);
    return why;
}

const char *blend_parse(const char *text, BlendSpec *spec)
{
    *spec = (BlendSpec){0};
    char *copy = xstrdup(text), *save = NULL;
    int64_t cap_paths = 0, cap_weights = 0;
    double total = 0;
    const char *err = NULL;
    for (char *w = strtok_r(copy, " \t\n", &save); w && !err; w = strtok_r(NULL, " \t\n", &save)) {
        char *path = strtok_r(NULL, " \t\n", &save), *end;
        double v = strtod(w, &end);
        if (end == w || *end || !(v > 0) || !isfinite(v))
            err = blend_bad(spec, "'%s' is not a positive weight (expected WEIGHT PATH pairs)", w);
        else if (!path)
            err = blend_bad(spec, "the weight %s has no dataset after it (expected WEIGHT PATH pairs)", w);
        else if (spec->n == BLEND_MAX)
            err = blend_bad(spec, "more than %d datasets", BLEND_MAX);
        if (err)
            break;
        spec->paths = data_grow(spec->paths, &cap_paths, spec->n + 1, sizeof *spec->paths);
        spec->weights = data_grow(spec->weights, &cap_weights, spec->n + 1, sizeof *spec->weights);
        spec->paths[spec->n] = xstrdup(path);
        spec->weights[spec->n++] = v;
        total += v;
    }
    free(copy);
    if (!err && spec->n == 0)
        err = blend_bad(spec, "no dataset (expected WEIGHT PATH pairs)");
    for (int i = 0; !err && i < spec->n; i++)
        if (spec->weights[i] / total * BLEND_PERIOD < 1)
            err = blend_bad(spec, "the weight %g of %s is less than 1/%d of the total: it would never be drawn",
                            spec->weights[i], spec->paths[i], BLEND_PERIOD);
    return err;
}

void blend_schedule_init(BlendSchedule *bs, const double *weights, int n)
{
    *bs = (BlendSchedule){n, xcalloc((size_t)n, sizeof *bs->quota), xmalloc(BLEND_PERIOD * sizeof *bs->member),
                          xmalloc(BLEND_PERIOD * sizeof *bs->index)};
    /* quotas: each share of BLEND_PERIOD rounded down, then one more for the largest remainders */
    double total = 0, *rest = xmalloc((size_t)n * sizeof *rest);
    int64_t given = 0;
    for (int i = 0; i < n; i++)
        total += weights[i];
    for (int i = 0; i < n; i++) {
        double exact = weights[i] / total * BLEND_PERIOD;
        bs->quota[i] = (int64_t)exact;
        rest[i] = exact - (double)bs->quota[i];
        given += bs->quota[i];
    }
    for (; given < BLEND_PERIOD; given++) {
        int best = 0;
        for (int i = 1; i < n; i++)
            best = rest[i] > rest[best] ? i : best;
        bs->quota[best]++;
        rest[best] = -1;
    }
    /* sample t goes to the dataset furthest behind its share: quota (t + 1) / BLEND_PERIOD - count,
       in integers (ties: the first) */
    int64_t *count = xcalloc((size_t)n, sizeof *count);
    for (int64_t t = 0; t < BLEND_PERIOD; t++) {
        int best = 0;
        int64_t lag = bs->quota[0] * (t + 1) - count[0] * BLEND_PERIOD;
        for (int i = 1; i < n; i++) {
            int64_t d = bs->quota[i] * (t + 1) - count[i] * BLEND_PERIOD;
            if (d > lag) {
                best = i;
                lag = d;
            }
        }
        bs->member[t] = (uint16_t)best;
        bs->index[t] = (uint32_t)count[best]++;
    }
    for (int i = 0; i < n; i++)
        if (count[i] != bs->quota[i])
            fail("blend_schedule_init: dataset %d got %lld samples of a period, not its quota %lld", i,
                 (long long)count[i], (long long)bs->quota[i]);
    free(count);
    free(rest);
}

void blend_schedule_free(BlendSchedule *bs)
{
    free(bs->quota);
    free(bs->member);
    free(bs->index);
    *bs = (BlendSchedule){0};
}

void blend_sample(const BlendSchedule *bs, uint64_t k, int *i, uint64_t *j)
{
    uint64_t t = k % BLEND_PERIOD;
    *i = bs->member[t];
    *j = k / BLEND_PERIOD * (uint64_t)bs->quota[*i] + bs->index[t];
}

void blend_counts(const BlendSchedule *bs, uint64_t k, int64_t *out)
{
    for (int i = 0; i < bs->n; i++)
        out[i] = (int64_t)(k / BLEND_PERIOD) * bs->quota[i];
    for (uint64_t t = 0; t < k % BLEND_PERIOD; t++)
        out[bs->member[t]]++;
}
