/* fuzz_tokenizer.c: libFuzzer target for the tokenizer files megadata build reads (tokenizer.h: a
   SentencePiece .model, a Hugging Face tokenizer.json). The input's first two bytes give the
   length of a text, which follows; the rest is the tokenizer file. A file must open or stop with
   exit 2; one that opens must encode the text, twice (the second time through its cache), to the
   same ids, each below the vocabulary, and so must its BOS and EOS be. */
#include "data/tokenizer.h"
#include "base/util.h"
#include "tests/fuzz/fuzz.h"

#include <string.h>

enum { HEADER = 2 }; /* the text's length, little-endian */

typedef struct {
    const char *path, *text;
    size_t len;
    Tokenizer *t;
    TokenBuf ids[2];
} Run;

static void open_file(void *arg)
{
    Run *r = arg;
    r->t = tokenizer_open(r->path);
}

static void encode_twice(void *arg)
{
    Run *r = arg;
    for (int k = 0; k < 2; k++)
        tokenizer_encode(r->t, r->text, r->len, &r->ids[k]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HEADER)
        return 0;
    size_t len = (size_t)(data[0] | data[1] << 8);
    len = len < size - HEADER ? len : size - HEADER;
    Run r = {.text = (const char *)data + HEADER, .len = len};
    r.path = fuzz_write("tok", data + HEADER + len, size - HEADER - len);
    int status = fuzz_call(open_file, &r);
    if (status != FUZZ_RETURNED) {
        if (status != UTIL_EXIT_INPUT)
            fuzz_found("a bad tokenizer file: exit %d, bad input must give exit %d", status, UTIL_EXIT_INPUT);
        return 0;
    }
    const int vocab = tokenizer_vocab(r.t);
    if (vocab <= 0 || tokenizer_bos(r.t) >= vocab || tokenizer_eos(r.t) >= vocab)
        fuzz_found("vocabulary %d, bos %d, eos %d", vocab, tokenizer_bos(r.t), tokenizer_eos(r.t));
    status = fuzz_call(encode_twice, &r);
    if (status != FUZZ_RETURNED)
        fuzz_found("a tokenizer that opened stopped with exit %d encoding %zu bytes", status, len);
    const size_t n = r.ids[0].n;
    if (r.ids[1].n != n || (n && memcmp(r.ids[0].ids, r.ids[1].ids, n * sizeof *r.ids[0].ids)))
        fuzz_found("the same %zu bytes encoded twice: %zu ids, then %zu or other ones", len, n, r.ids[1].n);
    for (size_t i = 0; i < n; i++)
        if (r.ids[0].ids[i] >= (uint32_t)vocab)
            fuzz_found("id %u at %zu is not below the vocabulary %d", r.ids[0].ids[i], i, vocab);
    token_buf_free(&r.ids[0]);
    token_buf_free(&r.ids[1]);
    tokenizer_free(r.t);
    return 0;
}
