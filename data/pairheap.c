/* pairheap.c: a binary min-heap (see pairheap.h). */
#include "data/pairheap.h"

#include "base/util.h"

#include <stdlib.h>

void pairheap_push(PairHeap *h, PairItem item)
{
    h->v = xgrow(h->v, &h->cap, h->n + 1, sizeof *h->v);
    size_t i = h->n++;
    for (; i > 0 && item.key < h->v[(i - 1) / 2].key; i = (i - 1) / 2)
        h->v[i] = h->v[(i - 1) / 2];
    h->v[i] = item;
}

PairItem pairheap_pop(PairHeap *h)
{
    PairItem top = h->v[0], last = h->v[--h->n];
    size_t i = 0, c;
    while ((c = 2 * i + 1) < h->n) {
        if (c + 1 < h->n && h->v[c + 1].key < h->v[c].key)
            c++;
        if (last.key <= h->v[c].key)
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    h->v[i] = last;
    return top;
}

void pairheap_free(PairHeap *h)
{
    free(h->v);
    *h = (PairHeap){0};
}
