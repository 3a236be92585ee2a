/* pairheap.h: the queue of candidate merges of a BPE encoder: a binary min-heap on a 64-bit key
   that orders merges (the encoder packs its priority and the position into it), with two ints
   of payload. */
#ifndef MEGATRAIN_PAIRHEAP_H
#define MEGATRAIN_PAIRHEAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t key; /* smallest first */
    int32_t a, b;
} PairItem;

typedef struct {
    PairItem *v;
    size_t n, cap;
} PairHeap;

void pairheap_push(PairHeap *h, PairItem item);
PairItem pairheap_pop(PairHeap *h); /* h->n > 0 */
void pairheap_free(PairHeap *h);

#endif
