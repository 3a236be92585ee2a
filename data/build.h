/* build.h: build a token dataset from text files or raw token files (`megadata build`). Each
   input file is one document; text documents are encoded by the tokenizer (tokenizer.h) and each
   is followed by its end-of-document id. About val_fraction of the tokens, as whole documents chosen from the seed,
   go to the val split (with a single input file, its last val_fraction of tokens). */
#ifndef MEGATRAIN_BUILD_H
#define MEGATRAIN_BUILD_H

#include <stdint.h>

typedef enum { BUILD_TEXT, BUILD_UINT16, BUILD_UINT32 } BuildKind;

typedef struct {
    const char *out_dir;
    char *const *inputs; /* files, or folders walked recursively in name order (skipping dot-files) */
    int ninputs;
    BuildKind kind;
    const char *tokenizer; /* text: a tokenizer_open spec; NULL for the byte-level tokenizer */
    int vocab, eod;      /* raw kinds: every id is < vocab; eod is the end-of-document id or -1 */
    double val_fraction; /* in [0, 1) */
    int64_t shard_tokens;
    uint64_t seed;
    int force;  /* replace the shards out_dir holds */
    int append; /* add shards after those out_dir holds */
} BuildOptions;

typedef struct {
    int64_t tokens, docs;
    int shards;
} BuildSplit;

/* Writes out_dir/{train,val}-NNNNN.h5; stats[0] describes train, stats[1] val. Bad input (a
   missing file, an id >= vocab, an out_dir that is not empty) stops through fail_input. */
void data_build(const BuildOptions *o, BuildSplit stats[2]);

#endif
