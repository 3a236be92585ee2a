/* codec.c: the dataset's tokenizer as eval and generate use it (see codec.h). */
#include "src/codec.h"

#include "base/util.h"
#include "data/tokenizer.h"

#include <stdlib.h>
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
    uint32_t *u = xmalloc((n ? n : 1) * sizeof *u);
    tokenizer_bytes_encode((const unsigned char *)text, n, u);
    for (size_t i = 0; i < n; i++)
        ids[i] = (int32_t)u[i];
    free(u);
    return n;
}

int codec_piece(const Codec *c, int32_t id, char *piece)
{
    if (!c->known || id < 0 || id >= BYTES_EOD)
        return 0;
    piece[0] = (char)id;
    return 1;
}
