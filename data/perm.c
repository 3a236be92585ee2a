/* perm.c: keyed Feistel permutation with cycle walking (see perm.h). */
#include "data/perm.h"

#include "base/util.h"

#define PERM_ROUNDS 6 /* 4 already give a pseudo-random permutation; 6 mix small domains well */

/* One pass of the network over [0, 2^(2h)): a bijection, since each round is invertible. */
static uint64_t perm_feistel(uint64_t key, int h, uint64_t x)
{
    uint64_t mask = (1ULL << h) - 1, left = x >> h, right = x & mask;
    for (uint64_t round = 0; round < PERM_ROUNDS; round++) {
        uint64_t next = left ^ (rng_u64(key + round, right) & mask);
        left = right;
        right = next;
    }
    return left << h | right;
}

uint64_t perm_apply(uint64_t key, uint64_t n, uint64_t i)
{
    if (n <= 1)
        return i;
    int h = 1;
    while (h < 32 && (1ULL << (2 * h)) < n)
        h++;
    /* the domain is below 4n, so fewer than 4 passes are expected; walking the cycle of i until
       it comes back into [0, n) keeps the map a bijection of [0, n) */
    uint64_t x = i;
    do
        x = perm_feistel(key, h, x);
    while (x >= n);
    return x;
}
