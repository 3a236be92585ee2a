/* decode.c: recurrent decoding through the model's forward (see decode.h). */
#include "src/decode.h"

#include "base/util.h"

#include <stdlib.h>

void decode_create(Decoder *dec, const ModelDims *d, const Ops *ops, int B)
{
    ModelPart part = model_part(d, 1, 0, 1, 0);
    Model *m = &dec->m;
    model_create(m, d, &part, ops, B, 1, 0, 1, 1);
    m->want_state_out = 1; /* every token hands its states to the next */
    m->cache = &dec->cache;
    dec->cache.k = xcalloc((size_t)d->n_layers, sizeof(void *));
    dec->cache.v = xcalloc((size_t)d->n_layers, sizeof(void *));
    for (int i = 0; i < d->n_layers; i++) {
        dec->cache.k[i] = ops->alloc((size_t)B * d->C * m->Zl * ops->act_size);
        dec->cache.v[i] = ops->alloc((size_t)B * d->C * m->Vl * ops->act_size);
    }
    dec->logits = ops->alloc((size_t)B * d->vocab * sizeof(float));
    dec->rows = xmalloc((size_t)B * 2 * sizeof(int32_t));
    for (int b = 0; b < B; b++)
        dec->rows[2 * b + 1] = -1; /* an ignored target: the forward's loss is 0 */
}

void decode_free(Decoder *dec)
{
    const Ops *ops = dec->m.ops;
    for (int i = 0; i < dec->m.d.n_layers; i++) {
        ops->release(dec->cache.k[i]);
        ops->release(dec->cache.v[i]);
    }
    free(dec->cache.k);
    free(dec->cache.v);
    ops->release(dec->logits);
    free(dec->rows);
    model_free(&dec->m);
}

void decode_step(Decoder *dec, const int32_t *tokens, float *logits)
{
    Model *m = &dec->m;
    ModelSlot *sl = &m->slots[0];
    const size_t n = (size_t)m->B * m->d.vocab;
    for (int b = 0; b < m->B; b++)
        dec->rows[2 * b] = tokens[b];
    model_set_batch(m, 0, dec->rows);
    model_forward(m, 0, 0.0f); /* from the states in state_in when pos0 > 0 */
    float *t = sl->state_in; /* the final states are the next token's incoming ones */
    sl->state_in = sl->state_out;
    sl->state_out = t;
    m->pos0++;
    m->ops->act_to_f32(dec->logits, sl->logits, n);
    m->ops->download(logits, dec->logits, n * sizeof(float));
}
