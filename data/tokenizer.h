/* tokenizer.h: turning text into token ids. The byte-level tokenizer maps each byte of the text
   (UTF-8 or anything else) to its value, 0..255, and ends each document with 256: vocabulary 257,
   and every text can be encoded. Token arrays made elsewhere are stored under the name "raw". */
#ifndef MEGATRAIN_TOKENIZER_H
#define MEGATRAIN_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#define TOKENIZER_BYTES "bytes"
#define TOKENIZER_RAW "raw"
enum { BYTES_VOCAB = 257, BYTES_EOD = 256 };

/* ids[i] = text[i] for i < n */
void tokenizer_bytes_encode(const unsigned char *text, size_t n, uint32_t *ids);

#endif
