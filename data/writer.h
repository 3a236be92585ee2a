/* writer.h: write one split of a token dataset as a series of numbered shard files
   (dir/<split>-NNNNN.h5, format in doc/data.md), streaming: memory stays O(chunk), not O(shard).
   Each shard is written under <name>.tmp and renamed when complete, so a reader never sees half a
   shard; writers that use distinct numbers may run in parallel and add shards to a dataset later. */
#ifndef MEGATRAIN_WRITER_H
#define MEGATRAIN_WRITER_H

#include "data/manifest.h"

#include <stdint.h>

typedef struct {
    int vocab;             /* every id is < vocab; vocab <= 65536 stores uint16, else uint32 */
    int eod;               /* end-of-document id, or -1 */
    int bos;               /* beginning-of-document id, or -1 */
    const char *tokenizer; /* "bytes", "raw", ... (tokenizer_name) */
    uint64_t tokenizer_checksum; /* tokenizer_checksum, or 0 */
} TokenFormat;

typedef struct ShardWriter ShardWriter;

/* Shards are numbered from first; each holds shard_tokens tokens (the last one fewer). A shard
   file is created only when its first token comes, so an empty split writes no file. */
ShardWriter *shard_writer_open(const char *dir, const char *split, int first, int64_t shard_tokens,
                               const TokenFormat *fmt);
/* A document starts with the next token. Once called, every shard records doc_offsets. */
void shard_writer_doc(ShardWriter *w);
/* Every shard records doc_offsets, even before a document starts: for a stream written from the
   middle of a document. */
void shard_writer_track_docs(ShardWriter *w);
void shard_writer_append(ShardWriter *w, const uint32_t *ids, int64_t n);
/* Finish the last shard and free w; returns the number of shard files written, and appends their
   names and chunk checksums to *written (*nwritten of them; for manifest_update, freed with
   shard_sums_free). */
int shard_writer_close(ShardWriter *w, ShardSums **written, int *nwritten);

#endif
