/* strmap.c: open addressing with linear probing (see strmap.h). */
#include "data/strmap.h"

#include "base/util.h"

#include <stdlib.h>
#include <string.h>

/* Eight bytes a step (keys are pieces and words: short, and hashed on every lookup). */
static uint64_t strmap_hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = len, w;
    for (; len >= 8; p += 8, len -= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 31;
    }
    if (len) {
        w = 0;
        memcpy(&w, p, len);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
    }
    return rng_mix(h);
}

static StrMapSlot *strmap_find(const StrMap *m, const void *key, size_t len, uint64_t h)
{
    size_t mask = m->nslots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        StrMapSlot *s = &m->slots[i];
        if (s->value < 0 || (s->hash == h && s->len == len && memcmp(m->keys + s->off, key, len) == 0))
            return s;
    }
}

static void strmap_grow(StrMap *m)
{
    StrMap old = *m;
    m->nslots = old.nslots ? 2 * old.nslots : 64;
    m->slots = xmalloc(m->nslots * sizeof *m->slots);
    for (size_t i = 0; i < m->nslots; i++)
        m->slots[i].value = -1;
    for (size_t i = 0; i < old.nslots; i++)
        if (old.slots[i].value >= 0)
            *strmap_find(m, old.keys + old.slots[i].off, old.slots[i].len, old.slots[i].hash) = old.slots[i];
    free(old.slots);
}

int strmap_get(const StrMap *m, const void *key, size_t len)
{
    return m->n ? strmap_find(m, key, len, strmap_hash(key, len))->value : -1;
}

int strmap_put(StrMap *m, const void *key, size_t len, int value)
{
    if (2 * (m->n + 1) > m->nslots)
        strmap_grow(m);
    uint64_t h = strmap_hash(key, len);
    StrMapSlot *s = strmap_find(m, key, len, h);
    if (s->value >= 0)
        return s->value;
    m->keys = xgrow(m->keys, &m->keys_cap, m->keys_len + len + 1, 1);
    memcpy(m->keys + m->keys_len, key, len);
    *s = (StrMapSlot){h, m->keys_len, (uint32_t)len, value};
    m->keys_len += len;
    m->n++;
    return -1;
}

void strmap_clear(StrMap *m)
{
    for (size_t i = 0; i < m->nslots; i++)
        m->slots[i].value = -1;
    m->n = m->keys_len = 0;
}

void strmap_free(StrMap *m)
{
    free(m->slots);
    free(m->keys);
    *m = (StrMap){0};
}
