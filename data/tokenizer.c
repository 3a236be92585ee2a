/* tokenizer.c: the tokenizer interface (see tokenizer.h): opening a spec by kind, the id buffer,
   the ids' texts, and the byte-level tokenizer. */
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

void tokenizer_set_piece(Tokenizer *t, int id, const void *s, size_t n)
{
    if (!t->piece)
        t->piece = xcalloc((size_t)t->vocab, sizeof *t->piece);
    if (t->text_len + n > UINT32_MAX)
        fail_input("%s tokenizer: its pieces hold more than 4 GB of text", t->name);
    t->text = xgrow(t->text, &t->text_cap, t->text_len + n, 1);
    memcpy(t->text + t->text_len, s, n);
    t->piece[id][0] = (uint32_t)t->text_len;
    t->piece[id][1] = (uint32_t)n;
    t->text_len += n;
}

const char *tokenizer_piece(const Tokenizer *t, int64_t prev, int64_t id, size_t *len)
{
    *len = 0;
    if (!t->piece || id < 0 || id >= t->vocab)
        return "";
    const char *s = t->text + t->piece[id][0];
    *len = t->piece[id][1];
    if (t->dummy_prefix && *len && *s == ' ' && (prev < 0 || prev == t->bos || prev == t->eos)) {
        s++;
        (*len)--;
    }
    return s;
}

Tokenizer *tokenizer_open(const char *spec)
{
    if (strcmp(spec, TOKENIZER_BYTES) != 0) {
        size_t size;
        char *file = util_read_file(spec, &size);
        size_t i = strspn(file, " \t\r\n");
        return file[i] == '{' ? hf_open(spec, file, size) : spm_open(spec, file, size);
    }
    Tokenizer *t = xmalloc(sizeof *t);
    *t = (Tokenizer){.name = TOKENIZER_BYTES, .vocab = BYTES_VOCAB, .bos = -1, .eos = BYTES_EOD, .encode = bytes_encode,
                     .free = bytes_free};
    for (int b = 0; b < 256; b++) {
        const char c = (char)b;
        tokenizer_set_piece(t, b, &c, 1);
    }
    return t;
}

void tokenizer_free(Tokenizer *t)
{
    if (!t)
        return;
    free(t->piece);
    free(t->text);
    t->free(t);
}

void tokenizer_encode(Tokenizer *t, const char *text, size_t len, TokenBuf *out) { t->encode(t, text, len, out); }
int tokenizer_vocab(const Tokenizer *t) { return t->vocab; }
int tokenizer_bos(const Tokenizer *t) { return t->bos; }
int tokenizer_eos(const Tokenizer *t) { return t->eos; }
const char *tokenizer_name(const Tokenizer *t) { return t->name; }
uint64_t tokenizer_checksum(const Tokenizer *t) { return t->checksum; }
