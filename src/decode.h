/* decode.h: recurrent decoding (spec section 13): the model fed one token of each of B sequences
   at a time, through its own forward (src/model.c) on pieces of one token. The TimestepNorm and
   CEMA states go from one token to the next as they go from one chunk-parallel piece to the next;
   attention sees the keys and values of the current chunk, kept in a cache of C rows that starts
   over at every chunk boundary. Every buffer is allocated at creation: nothing grows with the
   number of tokens fed. One rank holds the whole model. */
#ifndef MEGATRAIN_DECODE_H
#define MEGATRAIN_DECODE_H

#include "src/model.h"

#include <stdint.h>

typedef struct {
    Model m;            /* B sequences, L = 1; m.pos0 is the position of the next token */
    ModelCache cache;
    float *logits;      /* backend (B, vocab) fp32 */
    int32_t *rows;      /* host (B, 2): the tokens fed, no targets */
} Decoder;

/* The whole model for B sequences; its parameters are set as any model's (model_params_from_host). */
void decode_create(Decoder *dec, const ModelDims *d, const Ops *ops, int B);
void decode_free(Decoder *dec);
/* Feed tokens (B, host) at position dec->m.pos0 of their sequences, which then advances; logits
   (B, vocab, host fp32) gets the scores of the tokens that follow. */
void decode_step(Decoder *dec, const int32_t *tokens, float *logits);

#endif
