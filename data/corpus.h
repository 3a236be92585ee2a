/* corpus.h: the inputs of megadata build as files in a fixed order, and their division into parts,
   the units of work that ranks tokenize independently (doc/data.md, "megadata build").
   - An input is a file, a folder (walked recursively in byte order of the names, skipping names
     that start with '.') or, when no file has its name, a glob(3) pattern (matches in byte order).
   - A file's name says what it holds: a name ending in .jsonl or .ndjson (before an optional .gz)
     is JSON Lines, one document a line; any other is one document of plain text; with raw token
     inputs (--kind uint16|uint32) every file is one document of ids. A .gz ending means gzip.
   - Parts: consecutive files together up to part_bytes bytes on disk; a plain JSON Lines file
     larger than that is cut into byte ranges of part_bytes (a line belongs to the range where it
     starts). The documents of the parts in order are the documents of the inputs in order, so
     the division changes nothing in the output. */
#ifndef MEGATRAIN_CORPUS_H
#define MEGATRAIN_CORPUS_H

#include <stdint.h>

typedef enum { CORPUS_TEXT, CORPUS_JSONL, CORPUS_RAW } CorpusKind;

typedef struct {
    char *path;
    CorpusKind kind;
    int64_t size;     /* bytes on disk */
    int64_t mtime_ns; /* modification time, to tell a changed input when a build resumes */
} CorpusFile;

typedef struct {
    int file0, file1;   /* files [file0, file1) */
    int64_t begin, end; /* the bytes [begin, end) of each file: every byte but for a cut file */
    int64_t bytes;      /* on disk */
} CorpusPart;

typedef struct {
    CorpusFile *files;
    int nfiles;
    CorpusPart *parts;
    int nparts;
    int64_t bytes; /* of every file */
} Corpus;

/* List the files of inputs[0, n) in order; raw: every file holds token ids. Bad input (a missing
   file, a pattern that matches nothing, a file listed twice, a compression other than gzip)
   stops through fail_input. */
void corpus_list(Corpus *c, char *const *inputs, int n, int raw);
/* The files as text, one line each ("file KIND SIZE MTIME PATH"), for the build's plan. */
char *corpus_describe(const Corpus *c);
/* The files back from corpus_describe's text (lines not starting with "file " are skipped). */
void corpus_parse(Corpus *c, const char *text);
/* Divide the files into parts of about part_bytes. */
void corpus_plan_parts(Corpus *c, int64_t part_bytes);
void corpus_free(Corpus *c);

#endif
