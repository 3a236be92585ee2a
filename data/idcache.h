/* idcache.h: what an encoder computed for short pieces of text (a word, a segment), so that a
   piece seen before costs one lookup: byte strings -> arrays of ints. It empties itself when it
   holds more than IDCACHE_INTS ints, so its memory stays bounded. */
#ifndef MEGATRAIN_IDCACHE_H
#define MEGATRAIN_IDCACHE_H

#include "data/strmap.h"

#include <stddef.h>
#include <stdint.h>

#define IDCACHE_KEY_MAX 64        /* longer keys are not cached */
#define IDCACHE_INTS (1u << 22)

typedef struct {
    StrMap map;  /* key -> offset in v of [count, values...] */
    int32_t *v; /* IDCACHE_INTS of them once the first key comes */
    size_t n;
} IdCache;

/* The values stored for key (*count of them), or NULL. */
const int32_t *idcache_get(const IdCache *c, const char *key, size_t len, int *count);
/* Remembers count values for key, when the key is short enough. */
void idcache_put(IdCache *c, const char *key, size_t len, const int32_t *values, int count);
void idcache_free(IdCache *c);

#endif
