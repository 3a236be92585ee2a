/* idcache.c: a bounded cache of int arrays (see idcache.h). */
#include "data/idcache.h"

#include "base/util.h"

#include <stdlib.h>
#include <string.h>

const int32_t *idcache_get(const IdCache *c, const char *key, size_t len, int *count)
{
    int at = len <= IDCACHE_KEY_MAX ? strmap_get(&c->map, key, len) : -1;
    if (at < 0)
        return NULL;
    *count = c->v[at];
    return c->v + at + 1;
}

void idcache_put(IdCache *c, const char *key, size_t len, const int32_t *values, int count)
{
    if (len > IDCACHE_KEY_MAX || (size_t)count + 1 > IDCACHE_INTS)
        return;
    if (c->n + (size_t)count + 1 > IDCACHE_INTS) {
        strmap_clear(&c->map);
        c->n = 0;
    }
    if (!c->v)
        c->v = xmalloc(IDCACHE_INTS * sizeof *c->v);
    if (strmap_put(&c->map, key, len, (int)c->n) >= 0)
        return;
    c->v[c->n++] = count;
    memcpy(c->v + c->n, values, (size_t)count * sizeof *values);
    c->n += (size_t)count;
}

void idcache_free(IdCache *c)
{
    strmap_free(&c->map);
    free(c->v);
    *c = (IdCache){0};
}
