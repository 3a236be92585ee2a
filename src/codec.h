/* codec.h: what eval and generate need of a dataset's tokenizer (data/tokenizer.h): a prompt's
   text as ids, and the bytes of each id's text (generate prints them; eval counts them for bits
   per byte). The byte-level tokenizer is the dataset's own; a tokenizer file is given by the
   user (--tokenizer), since datasets record its checksum, not its path. */
#ifndef MEGATRAIN_CODEC_H
#define MEGATRAIN_CODEC_H

#include "data/dataset.h"
#include "data/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    Tokenizer *tok;   /* NULL: ids without text (raw ids, no dataset, no --tokenizer file) */
    const char *name; /* the dataset's tokenizer, "none" without a dataset */
    int eod, bos;     /* the dataset's end- and beginning-of-document ids, or -1 */
} Codec;

/* The tokenizer of ds (NULL: none), named data in messages: "bytes" itself, another kind from
   file (NULL: not given), which must be the one the dataset records (its checksum), else exit 2
   naming both. */
void codec_open(Codec *c, Dataset *ds, const char *data, const char *file);
void codec_close(Codec *c);
/* text as the ids of a document's start (BOS first when the dataset's documents start with one),
   into a new array *ids; returns their number (c->tok). */
size_t codec_encode(const Codec *c, const char *text, int32_t **ids);
/* The bytes of id's text after prev (-1: none), *len of them (tokenizer_piece). */
const char *codec_piece(const Codec *c, int32_t prev, int32_t id, size_t *len);

#endif
