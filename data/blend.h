/* blend.h: a weighted blend of datasets (data.blend, as Megatron's data blend): its text, and the
   schedule that interleaves their samples in proportion to the weights (doc/data.md, "Blends").
   The text is "WEIGHT PATH WEIGHT PATH ...": positive weights (any scale: they are normalised),
   dataset folders, separated by white space. The schedule repeats every BLEND_PERIOD samples:
   dataset i gets quota[i] of them (its share of the weights, rounded by largest remainders), in
   the order that keeps every dataset's count closest to its share at every sample. So sample k
   of the blend is a function of k alone, as the sampler's contract needs. */
#ifndef MEGATRAIN_BLEND_H
#define MEGATRAIN_BLEND_H

#include <stdint.h>

#define BLEND_PERIOD (1 << 16) /* samples per repetition of the schedule */

typedef struct {
    int n;
    char **paths;    /* (n) */
    double *weights; /* (n) as written */
} BlendSpec;

/* Parse text into *spec. Returns NULL, or what is wrong (then *spec holds nothing): not pairs of
   a weight and a path, a weight that is not a positive number, or one below 1 / BLEND_PERIOD of
   the total (it would never be drawn). */
const char *blend_parse(const char *text, BlendSpec *spec);
void blend_spec_free(BlendSpec *spec);

typedef struct {
    int n;
    int64_t *quota;   /* (n) samples of dataset i in each period */
    uint16_t *member; /* (BLEND_PERIOD) sample t of a period is of dataset member[t] ... */
    uint32_t *index;  /* (BLEND_PERIOD) ... the index[t]-th of that dataset in the period */
} BlendSchedule;

/* The schedule of weights[0, n), which blend_parse accepted. */
void blend_schedule_init(BlendSchedule *bs, const double *weights, int n);
void blend_schedule_free(BlendSchedule *bs);
/* Sample k of the blend is sample *j of dataset *i. */
void blend_sample(const BlendSchedule *bs, uint64_t k, int *i, uint64_t *j);
/* How many of samples [0, k) each dataset gives: out[0, n). */
void blend_counts(const BlendSchedule *bs, uint64_t k, int64_t *out);

#endif
