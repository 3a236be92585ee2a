/* sample.h: the next token from a row of logits: the most likely one (temperature 0), or a draw
   from softmax(logits / temperature) over the top_k most likely tokens, cut further to the fewest
   most likely ones whose probability reaches top_p. The draw depends on (seed, index) alone, so a
   generation repeats exactly. */
#ifndef MEGATRAIN_SAMPLE_H
#define MEGATRAIN_SAMPLE_H

#include <stdint.h>

typedef struct {
    double temperature; /* 0: greedy */
    int top_k;          /* 0: every token */
    double top_p;       /* 1: no cut */
    uint64_t seed;
} SampleOpts;

typedef struct {
    double w;    /* unnormalised probability */
    float logit;
    int32_t id;
} SampleCand;

typedef struct {
    SampleOpts o;
    int vocab;
    SampleCand *cand; /* (vocab) scratch, allocated once */
} Sampling;

void sampling_init(Sampling *s, const SampleOpts *o, int vocab);
void sampling_free(Sampling *s);
/* The index-th token drawn (index: any counter of the draws) from logits (vocab). */
int32_t sampling_draw(Sampling *s, const float *logits, uint64_t index);

#endif
