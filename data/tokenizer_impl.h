/* tokenizer_impl.h: what each kind of tokenizer provides behind tokenizer.h. An implementation's
   own struct starts with a Tokenizer, so a Tokenizer * is a pointer to it. */
#ifndef MEGATRAIN_TOKENIZER_IMPL_H
#define MEGATRAIN_TOKENIZER_IMPL_H

#include "data/tokenizer.h"

struct Tokenizer {
    const char *name; /* the kind, as tokenizer_name gives it */
    int vocab, bos, eos;
    uint64_t checksum;
    void (*encode)(Tokenizer *t, const char *text, size_t len, TokenBuf *out);
    void (*free)(Tokenizer *t);
    int dummy_prefix;   /* a document's first piece starts with a space that is no text (SentencePiece) */
    uint32_t (*piece)[2]; /* (vocab) id's text is text[piece[id][0], + piece[id][1]); NULL: none yet */
    char *text;         /* every id's text, as tokenizer_set_piece stored it */
    size_t text_len, text_cap;
};

/* Sets id's text (s[0, n)) as tokenizer_piece gives it; each kind sets its ids' at open, an id
   never set has none. A later call for the same id replaces the earlier. */
void tokenizer_set_piece(Tokenizer *t, int id, const void *s, size_t n);

/* Each kind's constructor takes the file's bytes (file[0, size), NUL-terminated after them), which
   the tokenizer then owns. */
Tokenizer *spm_open(const char *path, char *file, size_t size);
Tokenizer *hf_open(const char *path, char *file, size_t size);

#endif
