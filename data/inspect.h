/* inspect.h: summarise and check a token dataset folder (`megadata info`, `megadata verify`). */
#ifndef MEGATRAIN_INSPECT_H
#define MEGATRAIN_INSPECT_H

#include <stdio.h>

/* The format and, per split, shards, tokens, documents, bytes and fingerprint (metadata only). */
void data_info(const char *dir, FILE *out);

/* Read every shard of dir to the end and check it: attributes present and consistent across
   shards, ids < vocab, checksums, doc_offsets increasing; and the manifest: present, listing
   exactly the shards there are, with their token counts and checksums and those of every chunk.
   Each problem gets one line on err; each split a summary on out (with the unigram entropy of
   its tokens). Returns the number of problems: bad or missing shards, a missing or bad manifest. */
int data_verify(const char *dir, FILE *out, FILE *err);

#endif
