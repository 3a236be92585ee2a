/* codec.c: the dataset's tokenizer as eval and generate use it (see codec.h). */
#include "src/codec.h"

#include "base/util.h"

#include <stdlib.h>
#include <string.h>

void codec_open(Codec *c, Dataset *ds, const char *data, const char *file)
{
    *c = (Codec){NULL, ds ? dataset_tokenizer(ds) : "none", ds ? dataset_eod(ds) : -1, ds ? dataset_bos(ds) : -1};
    const int bytes = !strcmp(c->name, TOKENIZER_BYTES);
    if (!ds || (!file && !bytes))
        return;
    c->tok = tokenizer_open(file ? file : TOKENIZER_BYTES);
    const uint64_t want = dataset_tokenizer_checksum(ds), got = tokenizer_checksum(c->tok);
    if (got != want || strcmp(tokenizer_name(c->tok), c->name) != 0) {
        const char *kind = tokenizer_name(c->tok);
        tokenizer_free(c->tok); /* exit 2 leaves nothing behind (LeakSanitizer) */
        fail_input_all("--tokenizer %s: a %s tokenizer of checksum %016llx, but the dataset %s was made with a %s "
                       "tokenizer of checksum %016llx",
                       file ? file : TOKENIZER_BYTES, kind, (unsigned long long)got, data, c->name,
                       (unsigned long long)want);
    }
}

void codec_close(Codec *c)
{
    tokenizer_free(c->tok);
    c->tok = NULL;
}

size_t codec_encode(const Codec *c, const char *text, int32_t **ids)
{
    TokenBuf b = {0};
    if (c->bos >= 0)
        token_buf_push(&b, (uint32_t)c->bos);
    tokenizer_encode(c->tok, text, strlen(text), &b);
    *ids = xmalloc((b.n + 1) * sizeof **ids);
    for (size_t i = 0; i < b.n; i++)
        (*ids)[i] = (int32_t)b.ids[i];
    const size_t n = b.n;
    token_buf_free(&b);
    return n;
}

const char *codec_piece(const Codec *c, int32_t prev, int32_t id, size_t *len)
{
    return tokenizer_piece(c->tok, prev, id, len);
}
