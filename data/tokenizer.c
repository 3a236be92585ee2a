/* tokenizer.c: the tokenizer interface (see tokenizer.h): opening a spec by kind, the id buffer,
   and the byte-level tokenizer. */
#include "data/tokenizer_impl.h"

#include "base/util.h"

#include <stdlib.h>
#include <string.h>

void token_buf_push(TokenBuf *b, uint32_t id)
{
    if (b->n == b->cap)
        b->ids = xgrow(b->ids, &b->cap, b->n + 1024, sizeof *b->ids);
    b->ids[b->n++] = id;
}

void token_buf_free(TokenBuf *b)
{
    free(b->ids);
    *b = (TokenBuf){0};
}

static void bytes_encode(Tokenizer *t, const char *text, size_t len, TokenBuf *out)
{
    for (size_t i = 0; i < len; i++)
        token_buf_push(out, (unsigned char)text[i]);
}

static void bytes_free(Tokenizer *t) { free(t); }

Tokenizer *tokenizer_open(const char *spec)
{
    if (strcmp(spec, TOKENIZER_BYTES) != 0) {
        size_t size;
        char *file = util_read_file(spec, &size);
        size_t i = strspn(file, " \t\r\n");
        return file[i] == '{' ? hf_open(spec, file, size) : spm_open(spec, file, size);
    }
    Tokenizer *t = xmalloc(sizeof *t);
    *t = (Tokenizer){TOKENIZER_BYTES, BYTES_VOCAB, -1, BYTES_EOD, 0, bytes_encode, bytes_free};
    return t;
}

void tokenizer_free(Tokenizer *t)
{
    if (t)
        t->free(t);
}

void tokenizer_encode(Tokenizer *t, const char *text, size_t len, TokenBuf *out) { t->encode(t, text, len, out); }
int tokenizer_vocab(const Tokenizer *t) { return t->vocab; }
int tokenizer_bos(const Tokenizer *t) { return t->bos; }
int tokenizer_eos(const Tokenizer *t) { return t->eos; }
const char *tokenizer_name(const Tokenizer *t) { return t->name; }
uint64_t tokenizer_checksum(const Tokenizer *t) { return t->checksum; }
