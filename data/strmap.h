/* strmap.h: a hash map from byte strings (any bytes, with their length) to non-negative ints, for
   the tokenizers' vocabularies, merge tables and caches. Keys are copied into the map. */
#ifndef MEGATRAIN_STRMAP_H
#define MEGATRAIN_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t hash;
    size_t off; /* the key's bytes are keys[off, off + len) */
    uint32_t len;
    int32_t value; /* -1: an empty slot */
} StrMapSlot;

typedef struct {
    StrMapSlot *slots; /* a power of two of them, at most half used */
    size_t nslots, n;
    char *keys;
    size_t keys_len, keys_cap;
} StrMap;

/* Start from (StrMap){0}. */
void strmap_free(StrMap *m);
/* Forget every key, keeping the memory. */
void strmap_clear(StrMap *m);
/* The value of key, or -1. */
int strmap_get(const StrMap *m, const void *key, size_t len);
/* Adds key with value (>= 0) and returns -1; a key already there keeps its value, returned. */
int strmap_put(StrMap *m, const void *key, size_t len, int value);

#endif
