/* build.h: build a token dataset from text or raw token files (`megadata build`), on one rank or
   many under mpirun. The inputs (corpus.h: text files, JSON Lines, gzip, folders, patterns) are
   cut into parts; each rank tokenizes its share of the parts into token files in the output's
   work folder, then about val_fraction of the tokens, as whole documents chosen from the seed, are
   assigned to the val split (with a single document, its last val_fraction of tokens), and the
   ranks write the shards. Every text document is encoded by the tokenizer (tokenizer.h) and
   followed by its end-of-document id. The shards and the manifest are the same bytes for any
   number of ranks; the manifest is written last, and an interrupted build can be resumed. */
#ifndef MEGATRAIN_BUILD_H
#define MEGATRAIN_BUILD_H

#include <stdint.h>

typedef enum { BUILD_TEXT, BUILD_UINT16, BUILD_UINT32 } BuildKind;

#define BUILD_PART_BYTES (64LL << 20) /* input bytes per part unless told */

typedef struct {
    const char *out_dir;
    char *const *inputs; /* files, folders, patterns (corpus.h) */
    int ninputs;
    BuildKind kind;
    const char *tokenizer; /* text: a tokenizer_open spec; NULL for the byte-level tokenizer */
    const char *text_field; /* JSON Lines: the member holding the text ("meta.text": nested; NULL: "text") */
    int bos;                /* text: start every document with the tokenizer's BOS id */
    int skip_bad_lines;     /* JSON Lines: skip (and count) malformed lines instead of stopping */
    int vocab, eod;      /* raw kinds: every id is < vocab; eod is the end-of-document id or -1 */
    double val_fraction; /* in [0, 1) */
    int64_t shard_tokens;
    int64_t part_bytes; /* input bytes per part, the unit of work of a rank (0: BUILD_PART_BYTES) */
    uint64_t seed;
    int force;  /* replace the shards out_dir holds */
    int append; /* add shards after those out_dir holds */
    int resume; /* finish the interrupted build in out_dir (else start as without it) */
} BuildOptions;

typedef struct {
    int64_t tokens, docs;
    int shards;
} BuildSplit;

/* Writes out_dir/{train,val}-NNNNN.h5; stats[0] describes train, stats[1] val. Returns the number
   of malformed lines skipped. Collective over MPI_COMM_WORLD when MPI is initialised (alone when
   not). Bad input (a missing file, a malformed line, an id >= vocab, an out_dir that is not empty)
   stops through fail_input. */
int64_t data_build(const BuildOptions *o, BuildSplit stats[2]);
/* Whether dir holds the state of an unfinished build (then its shards are not a whole dataset). */
int data_build_unfinished(const char *dir);

#endif
