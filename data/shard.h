/* shard.h: one shard file of a token dataset (format in doc/data.md): finding the shards of a
   folder, reading and checking a shard's metadata, reading a range of its tokens, its checksum. */
#ifndef MEGATRAIN_SHARD_H
#define MEGATRAIN_SHARD_H

#include <hdf5.h>
#include <stdint.h>

#define SHARD_FORMAT "megatrain-tokens"
#define SHARD_FORMAT_VERSION 1
#define SHARD_NAME_MAX 64 /* longest split or tokenizer name, with its terminating NUL */

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
    int vocab; /* every id is < vocab */
    int eod;   /* end-of-document id, or -1 */
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

/* Read-only, a regular file only (a FIFO would block forever); closing it closes every object
   opened in it. */
hid_t shard_open(const char *path);
/* Read and check the metadata; split is the split the file's name gives. */
void shard_meta(const char *path, hid_t file, const char *split, ShardMeta *m);
hid_t shard_tokens_open(const char *path, hid_t file);
/* Tokens [start, start + n) of the shard into out, each checked to be < vocab. */
void shard_read(const char *path, hid_t tokens, int vocab, int64_t start, int64_t n, uint32_t *out);
/* Continue FNV-1a hash h over ids stored as width-byte little-endian values. */
uint64_t shard_checksum(const uint32_t *ids, int64_t n, int width, uint64_t h);

#endif
