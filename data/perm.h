/* perm.h: a pseudo-random permutation of [0, n) from a 64-bit key, evaluated one index at a time
   in O(1) memory (n may be 1e9 or more): a balanced Feistel network on the smallest even number
   of bits that covers n, with cycle walking back into [0, n). */
#ifndef MEGATRAIN_PERM_H
#define MEGATRAIN_PERM_H

#include <stdint.h>

/* The image of i (< n) under the permutation of [0, n) that key selects. */
uint64_t perm_apply(uint64_t key, uint64_t n, uint64_t i);

#endif
