/* build_internal.h: what the phases of a build share (build.c plans and chooses the val split,
   tokenize.c turns parts into token files, assemble.c writes the shards from them). */
#ifndef MEGATRAIN_BUILD_INTERNAL_H
#define MEGATRAIN_BUILD_INTERNAL_H

#include "data/build.h"
#include "data/corpus.h"
#include "data/tokenizer.h"
#include "data/writer.h"

#include <stdint.h>

typedef struct {
    int64_t docs;      /* documents of the part */
    int64_t doc0;      /* the index of its first among all documents */
    int64_t tokens[2]; /* of its tokens, how many go to train and to val */
} BuildPart;

typedef struct {
    const BuildOptions *o;
    int width; /* bytes per input token: 1 for text, 2 or 4 for raw */
    BuildSplit *stats;
    Tokenizer *tok; /* text */
    TokenFormat fmt;
    int stored; /* bytes a stored id takes: 2 or 4 */
    const char *text_field;
    int64_t part_bytes;
    int rank, world; /* in MPI_COMM_WORLD; 0 of 1 without MPI */
    char *work;      /* out_dir/DATASET_BUILD_DIR */
    char *body;      /* rank 0 while it makes the plan: its text but the first line */
    char *plan;      /* the whole plan text, until the corpus is parsed from it (these two are held
                        here, not in locals, so that a failure meanwhile leaves them reachable: no
                        leak reported) */
    Corpus corpus;
    int first[2]; /* the numbers of the first new train and val shards */
    /* the val split, chosen once every part is tokenized */
    BuildPart *parts; /* (corpus.nparts) */
    uint8_t *val;     /* (documents / 8 + 1) bit d: document d goes to val */
    int64_t cut;      /* with a single document: its tokens [0, cut) go to train, the rest to val; else -1 */
} Build;

/* Testing aid, never set in production: MEGADATA_TEST_KILL=PHASE:N makes this process kill itself
   (SIGKILL, as kill -9 would) at the Nth call of build_test_kill(PHASE), so tests can stop a build
   in the middle of a part ("tokenize", after each document) or of a shard ("assemble", after each
   block of ids). */
void build_test_kill(const char *phase);
/* From rank 0 to every rank (nothing to do on one). */
void build_bcast(const Build *b, void *buf, int64_t bytes);
/* The token file of part p in the work folder (heap string). */
char *build_spill_path(const Build *b, int p);
/* Tokenize this rank's share of the parts that have no token file yet; returns when every rank
   has. */
void build_tokenize(Build *b);
/* Write this rank's share of the shards from the token files, filling in the tokens and shards of
   b->stats; on rank 0, returns the names and chunk checksums of every shard written (for the
   manifest), elsewhere none. */
void build_assemble(Build *b, ShardSums **written, int *nwritten);

#endif
