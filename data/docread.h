/* docread.h: the text documents of an input file of megadata build, or of the byte range of one
   that a part holds. A plain text file is one document, read whole. A JSON Lines file has one
   document a line: the string member text_field of the object on that line ("meta.text" reaches
   into nested objects); a line that is empty or white space is passed over. A malformed line (not
   one JSON object, no such member, a member that is not a string, a NUL byte) is reported as
   FILE:LINE with what is wrong, and either stops the build (exit 2) or is skipped and counted. */
#ifndef MEGATRAIN_DOCREAD_H
#define MEGATRAIN_DOCREAD_H

#include "data/corpus.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *text_field;
    int skip_bad;      /* 1: skip malformed lines; 0: stop on the first */
    int64_t bad_lines; /* skipped so far */
    int64_t shown;     /* of them reported (the first DOCREAD_SHOWN; the rest only counted) */
} DocReader;

#define DOCREAD_SHOWN 20

/* take(ctx, text, len, disk) for each document of f that starts in its bytes [begin, end), in
   order; disk is how many bytes of f on disk were read so far (for progress). text (len bytes,
   NULs possible, then a NUL) is valid during the call. */
typedef void (*DocTake)(void *ctx, const char *text, size_t len, int64_t disk);
void docread_file(DocReader *r, const CorpusFile *f, int64_t begin, int64_t end, DocTake take, void *ctx);

#endif
