/* codec.c: the dataset's tokenizer as eval and generate use it (see codec.h). */
#include "src/codec.h"

#include "data/tokenizer.h"

#include <string.h>

Codec codec_of(Dataset *ds)
{
    if (!ds)
        return (Codec){"none", 0, -1};
    const char *name = dataset_tokenizer(ds);
    return (Codec){name, !strcmp(name, TOKENIZER_BYTES), dataset_eod(ds)};
}

size_t codec_encode(const Codec *c, const char *text, size_t n, int32_t *ids)
{
    Tokenizer *t = tokenizer_open(c->name);
    TokenBuf b = {0};
    tokenizer_encode(t, text, n, &b);
    const size_t m = b.n < n ? b.n : n;
    for (size_t i = 0; i < m; i++)
        ids[i] = (int32_t)b.ids[i];
    token_buf_free(&b);
    tokenizer_free(t);
    return m;
}

int codec_piece(const Codec *c, int32_t id, char *piece)
{
    if (!c->known || id < 0 || id >= BYTES_EOD)
        return 0;
    piece[0] = (char)id;
    return 1;
}
