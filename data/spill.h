/* spill.h: the tokens of one part of a megadata build, kept in the build's work folder between
   tokenizing the part and writing the shards: a header, the ids (2 or 4 bytes each) and each
   document's token count, in the machine's byte order (only the build that wrote a spill reads
   it). Written under NAME.tmp and renamed when complete, so a spill with its final name is whole
   and a resumed build keeps it. */
#ifndef MEGATRAIN_SPILL_H
#define MEGATRAIN_SPILL_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    int width;                /* bytes an id takes: 2 or 4 */
    int64_t ntokens, ndocs;
    int64_t bad_lines;        /* malformed input lines the part skipped */
} SpillHeader;

typedef struct SpillWriter SpillWriter;

SpillWriter *spill_create(const char *path, int width);
/* Ids of the document being written. */
void spill_append(SpillWriter *w, const uint32_t *ids, int64_t n);
/* The document being written ends (it may hold no id). */
void spill_end_doc(SpillWriter *w);
/* Write the counts and the header, close and rename to path; frees w. */
void spill_finish(SpillWriter *w, int64_t bad_lines);

typedef struct {
    char *path;
    FILE *f;
    SpillHeader h;
    int64_t *doc_tokens; /* (h.ndocs) */
} Spill;

/* Open a finished spill and read its header and counts; a damaged one stops through fail_input. */
void spill_open(Spill *s, const char *path);
/* Ids [start, start + n) of the part into out. */
void spill_read(Spill *s, int64_t start, int64_t n, uint32_t *out);
void spill_close(Spill *s);

#endif
