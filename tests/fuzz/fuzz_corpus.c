/* fuzz_corpus.c: libFuzzer target for the JSON Lines corpus reader of megadata build (docread.h).
   The input's first byte chooses how it is read, the next two where a part boundary falls; the
   rest is the file. Read whole with --on-bad-line skip, a plain file must give its documents
   without stopping; read as two parts cut at the boundary, the same documents and malformed
   lines; read with --on-bad-line fail, the same documents or exit 2 (when a line was skipped).
   With flag 1 the file is named .jsonl.gz: corrupt gzip data may stop the reader, with exit 2
   and nothing else. */
#include "data/corpus.h"
#include "data/docread.h"
#include "base/util.h"
#include "tests/fuzz/fuzz.h"

#include <stdint.h>
#include <string.h>

enum { FLAG_GZ = 1, FLAG_FIELD = 2, HEADER = 3 }; /* the input's first byte; HEADER bytes of options */

typedef struct {
    DocReader r;
    CorpusFile f;
    int64_t begin, end;
    uint64_t hash; /* of every document, length first */
    int64_t docs;
} Read;

static void take(void *ctx, const char *text, size_t len, int64_t disk)
{
    Read *rd = ctx;
    uint64_t n = len;
    rd->hash = util_fnv1a(&n, sizeof n, rd->hash);
    rd->hash = util_fnv1a(text, len, rd->hash);
    rd->docs++;
    if (text[len] != '\0' || disk < 0)
        fuzz_found("a document of %zu bytes without its NUL, or disk offset %lld", len, (long long)disk);
}

static void read_part(void *arg)
{
    Read *rd = arg;
    docread_file(&rd->r, &rd->f, rd->begin, rd->end, take, rd);
}

/* Read f's bytes [begin, end) into a fresh *rd, its document hash continuing from hash; returns
   the exit status. */
static int read_range(Read *rd, const CorpusFile *f, const char *field, int skip, int64_t begin, int64_t end,
                      uint64_t hash)
{
    *rd = (Read){.r = {.text_field = field, .skip_bad = skip}, .f = *f, .begin = begin, .end = end, .hash = hash};
    return fuzz_call(read_part, rd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HEADER)
        return 0;
    const int flags = data[0];
    const char *field = flags & FLAG_FIELD ? "meta.text" : "text";
    const int64_t n = (int64_t)size - HEADER;
    const int64_t cut = (data[1] | data[2] << 8) % (n + 1);
    const char *path = fuzz_write(flags & FLAG_GZ ? "in.jsonl.gz" : "in.jsonl", data + HEADER, (size_t)n);
    CorpusFile f = {(char *)path, CORPUS_JSONL, n, 0};
    Read whole, a, b, strict;
    int status = read_range(&whole, &f, field, 1, 0, INT64_MAX, UTIL_FNV_INIT);
    if (flags & FLAG_GZ) {
        if (status != FUZZ_RETURNED && status != UTIL_EXIT_INPUT)
            fuzz_found("gzip input: exit %d, bad input must give exit %d", status, UTIL_EXIT_INPUT);
        return 0;
    }
    if (status != FUZZ_RETURNED)
        fuzz_found("--on-bad-line skip stopped with exit %d on a plain file", status);
    if (read_range(&a, &f, field, 1, 0, cut, UTIL_FNV_INIT) != FUZZ_RETURNED ||
        read_range(&b, &f, field, 1, cut, n, a.hash) != FUZZ_RETURNED)
        fuzz_found("a part cut at byte %lld stopped", (long long)cut);
    if (b.hash != whole.hash || a.docs + b.docs != whole.docs || a.r.bad_lines + b.r.bad_lines != whole.r.bad_lines)
        fuzz_found("cut at byte %lld: %lld + %lld documents and %lld + %lld malformed lines (whole: %lld and %lld)%s",
                   (long long)cut, (long long)a.docs, (long long)b.docs, (long long)a.r.bad_lines,
                   (long long)b.r.bad_lines, (long long)whole.docs, (long long)whole.r.bad_lines,
                   b.hash != whole.hash ? ", other documents" : "");
    status = read_range(&strict, &f, field, 0, 0, INT64_MAX, UTIL_FNV_INIT);
    if (status == FUZZ_RETURNED ? whole.r.bad_lines != 0 || strict.hash != whole.hash
                                : status != UTIL_EXIT_INPUT || whole.r.bad_lines == 0)
        fuzz_found("--on-bad-line fail: exit %d with %lld malformed lines", status, (long long)whole.r.bad_lines);
    return 0;
}
