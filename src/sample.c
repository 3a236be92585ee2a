/* sample.c: drawing the next token (see sample.h). */
#include "src/sample.h"

#include "base/util.h"

#include <math.h>
#include <stdlib.h>

void sampling_init(Sampling *s, const SampleOpts *o, int vocab)
{
    s->o = *o;
    s->vocab = vocab;
    s->cand = xmalloc((size_t)vocab * sizeof *s->cand);
}

void sampling_free(Sampling *s) { free(s->cand); }

/* most likely first; ties by id, so the order does not depend on qsort */
static int by_logit(const void *pa, const void *pb)
{
    const SampleCand *a = pa, *b = pb;
    return a->logit != b->logit ? (a->logit < b->logit ? 1 : -1) : (a->id > b->id) - (a->id < b->id);
}

int32_t sampling_draw(Sampling *s, const float *logits, uint64_t index)
{
    const SampleOpts *o = &s->o;
    int n = s->vocab, best = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(logits[i]))
            fail("the model's logit of token %d is %g: the checkpoint or the run is broken", i, logits[i]);
        s->cand[i] = (SampleCand){0, logits[i], i};
        best = logits[i] > logits[best] ? i : best;
    }
    if (o->temperature == 0)
        return best;
    if ((o->top_k > 0 && o->top_k < n) || o->top_p < 1) {
        qsort(s->cand, (size_t)n, sizeof *s->cand, by_logit);
        n = o->top_k > 0 && o->top_k < n ? o->top_k : n;
    }
    double total = 0;
    for (int i = 0; i < n; i++)
        total += s->cand[i].w = exp((s->cand[i].logit - logits[best]) / o->temperature);
    if (o->top_p < 1) { /* the fewest (sorted) tokens that reach top_p of the mass, at least one */
        double mass = 0;
        int k = 0;
        while (k < n && (k == 0 || mass < o->top_p * total))
            mass += s->cand[k++].w;
        n = k;
        total = mass;
    }
    double u = rng_uniform(rng_key(o->seed, "sample"), index) * total;
    for (int i = 0; i < n - 1; i++)
        if ((u -= s->cand[i].w) < 0)
            return s->cand[i].id;
    return s->cand[n - 1].id;
}
