/* codec.h: what eval and generate need of a dataset's tokenizer: a prompt's text as ids, and the
   bytes of each id's text (generate prints them; eval counts them for bits per byte). The
   byte-level tokenizer of data/tokenizer.h is the one known today; another plugs in here. */
#ifndef MEGATRAIN_CODEC_H
#define MEGATRAIN_CODEC_H

#include "data/dataset.h"

#include <stddef.h>
#include <stdint.h>

#define CODEC_PIECE_MAX 64 /* bytes of one id's text, at most */

typedef struct {
    const char *name; /* the dataset's tokenizer, "none" without a dataset */
    int known;        /* 0: ids without text (raw ids, no dataset) */
    int eod;          /* end-of-document id, or -1 */
} Codec;

/* The tokenizer of ds (NULL: none). */
Codec codec_of(Dataset *ds);
/* text (n bytes) as ids (c->known): at most n of them into ids; returns their number. */
size_t codec_encode(const Codec *c, const char *text, size_t n, int32_t *ids);
/* The text of id into piece (CODEC_PIECE_MAX bytes); returns its length (0: no text, as the
   end-of-document id). */
int codec_piece(const Codec *c, int32_t id, char *piece);

#endif
