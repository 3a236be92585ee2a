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
};

/* Each kind's constructor takes the file's bytes (file[0, size), NUL-terminated after them), which
   the tokenizer then owns. */
Tokenizer *spm_open(const char *path, char *file, size_t size);
Tokenizer *hf_open(const char *path, char *file, size_t size);

#endif
