/* tokenizer.h: turning a document's text into token ids, through one interface for every kind of
   tokenizer (format facts and the choices made in doc/data.md):
   - "bytes": the byte-level tokenizer maps each byte of the text (UTF-8 or anything else) to its
     value, 0..255, and ends each document with 256: vocabulary 257, and every text can be encoded;
   - a SentencePiece model file (.model, BPE with byte fallback as LLaMA-2 ships it);
   - a Hugging Face tokenizer.json file holding a byte-level BPE (GPT-2 or LLaMA-3 style).
   Token arrays made elsewhere are stored under the name "raw". A Tokenizer keeps a cache of what
   it encoded: use one per thread. */
#ifndef MEGATRAIN_TOKENIZER_H
#define MEGATRAIN_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#define TOKENIZER_BYTES "bytes"
#define TOKENIZER_RAW "raw"
enum { BYTES_VOCAB = 257, BYTES_EOD = 256 };

typedef struct Tokenizer Tokenizer;

/* Ids, appended to: ids[0, n) hold n of cap. Start from {0}; free with token_buf_free. */
typedef struct {
    uint32_t *ids;
    size_t n, cap;
} TokenBuf;

void token_buf_push(TokenBuf *b, uint32_t id);
void token_buf_free(TokenBuf *b);

/* spec is "bytes" or the path of a tokenizer file (its kind is told by its content). A file that
   cannot be read, or holds what this tokenizer cannot encode exactly, stops through fail_input
   (exit 2) with one message naming it. */
Tokenizer *tokenizer_open(const char *spec);
void tokenizer_free(Tokenizer *t);

/* Appends the ids of one whole document, text[0, len) (any bytes: invalid UTF-8 is handled as
   doc/data.md says for each kind), to out. No BOS or EOS is added: the caller adds
   tokenizer_bos / tokenizer_eos where it wants them. */
void tokenizer_encode(Tokenizer *t, const char *text, size_t len, TokenBuf *out);

int tokenizer_vocab(const Tokenizer *t); /* every id is below it */
int tokenizer_bos(const Tokenizer *t);   /* beginning-of-document id, or -1 when there is none */
int tokenizer_eos(const Tokenizer *t);   /* end-of-document id, or -1 when there is none */
/* The kind, as shard files record it: "bytes", "sentencepiece" or "hf-bpe". */
const char *tokenizer_name(const Tokenizer *t);
/* FNV-1a 64 of the tokenizer file's bytes (0 for "bytes"): which vocabulary made a dataset. */
uint64_t tokenizer_checksum(const Tokenizer *t);

/* The bytes of id's text, *len of them (for each kind in doc/data.md: none for BOS, EOS, control
   and added tokens and ids past the vocabulary). prev is the id before it (-1: none): after
   none, BOS or EOS id starts a document, and SentencePiece's dummy-prefix space is then left out,
   being no byte of the text. The pieces of a document's ids, one after the other, are its text. */
const char *tokenizer_piece(const Tokenizer *t, int64_t prev, int64_t id, size_t *len);

#endif
