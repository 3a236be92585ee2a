/* tokenizer.c: the byte-level tokenizer. */
#include "data/tokenizer.h"

void tokenizer_bytes_encode(const unsigned char *text, size_t n, uint32_t *ids)
{
    for (size_t i = 0; i < n; i++)
        ids[i] = text[i];
}
