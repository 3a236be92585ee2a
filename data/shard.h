/* shard.h: one shard file of a token dataset (format in doc/data.md): finding the shards of a
   folder, reading and checking a shard's metadata, reading a range or a chunk of its tokens, its
   checksums. */
#ifndef MEGATRAIN_SHARD_H
#define MEGATRAIN_SHARD_H

#include <hdf5.h>
#include <stdint.h>

#define SHARD_FORMAT "megatrain-tokens"
#define SHARD_FORMAT_VERSION 2 /* the version written; version 1 (no bos_id, tokenizer_checksum) is read too */
#define SHARD_NAME_MAX 64 /* longest split or tokenizer name, with its terminating NUL */
#define SHARD_TOKENS_MAX (1LL << 40) /* most tokens a shard may hold: bounds what a reader allocates per shard */

/* A file named <split>-<number>.h5 */
typedef struct {
    char *name;  /* "train-00003.h5" */
    char *split; /* "train" */
    long number; /* 3 */
} ShardName;

/* A shard's attributes, checked for presence, type and consistency with its tokens. */
typedef struct {
    int64_t ntokens;
    int width; /* bytes per stored token: 2 (uint16) or 4 (uint32) */
    int version; /* format_version */
    int vocab;   /* every id is < vocab */
    int eod;     /* end-of-document id, or -1 */
    int bos;     /* beginning-of-document id, or -1 (version 1: -1) */
    uint64_t tokenizer_checksum; /* which tokenizer file made the ids; 0: none (version 1: 0) */
    uint64_t checksum;
    int64_t ndocs; /* length of doc_offsets, or -1 when the shard has none */
    char tokenizer[SHARD_NAME_MAX];
} ShardMeta;

/* The shard files of dir, of one split (every split when split is NULL), in stream order: by
   split, then by number. Returns how many; *names gets the array. */
int shard_list(const char *dir, const char *split, ShardName **names);
void shard_names_free(ShardName *names, int n);
/* Whether name is a shard file name or a shard being written (<shard name>.tmp). */
int shard_name_parse(const char *name, ShardName *out);
int shard_name_is_tmp(const char *name);
/* Stream order of two shard file names (<0, 0, >0), as shard_list sorts them. */
int shard_name_order(const char *a, const char *b);

/* Read-only, a regular file only (a FIFO would block forever); closing it closes every object
   opened in it. */
hid_t shard_open(const char *path);
/* Read and check the metadata; split is the split the file's name gives. */
void shard_meta(const char *path, hid_t file, const char *split, ShardMeta *m);
/* Shards of one dataset agree on vocab_size, eod_id, bos_id, tokenizer and tokenizer_checksum: m (of
   path) with ref's. */
void shard_meta_same(const char *path, const ShardMeta *m, const char *ref_path, const ShardMeta *ref);
hid_t shard_tokens_open(const char *path, hid_t file);
/* Tokens [start, start + n) of the shard into out, each checked to be < vocab. */
void shard_read(const char *path, hid_t tokens, int vocab, int64_t start, int64_t n, uint32_t *out);
/* Continue FNV-1a hash h over ids stored as width-byte little-endian values. */
uint64_t shard_checksum(const uint32_t *ids, int64_t n, int width, uint64_t h);

/* Chunk k of a shard is its tokens [k C, min((k + 1) C, ntokens)), C = chunk_tokens: the unit a
   manifest checksums. Reads chunk k into buf (C ids, each checked to be < vocab; an HDF5 error
   names the chunk) and returns its checksum. */
uint64_t shard_read_chunk(const char *path, hid_t tokens, const ShardMeta *m, int64_t chunk_tokens, int64_t k,
                          uint32_t *buf);
/* Reads the whole shard, a chunk at a time into buf: sums[k] gets chunk k's checksum and hist (or
   NULL) the count of each id. Returns the checksum of the whole shard. */
uint64_t shard_scan(const char *path, hid_t tokens, const ShardMeta *m, int64_t chunk_tokens, uint32_t *buf,
                    uint64_t *sums, int64_t *hist);
/* h, the checksum of the whole shard, against its checksum attribute. */
void shard_check_checksum(const char *path, const ShardMeta *m, uint64_t h);
/* Chunk k's checksum got against want, the one the manifest file `listed_in` holds. */
void shard_check_chunk(const char *path, int64_t chunk_tokens, int64_t k, uint64_t got, uint64_t want,
                       const char *listed_in);

#endif
