/* infile.h: an input file of megadata build read as a stream of bytes or of lines, plain or
   gzip-compressed (a name ending in .gz; several gzip members in a row are one stream). Any
   problem reading it (a missing file, corrupt or truncated gzip data, gzip support not built)
   stops through fail_input with one message naming the file. */
#ifndef MEGATRAIN_INFILE_H
#define MEGATRAIN_INFILE_H

#include <stddef.h>
#include <stdint.h>

typedef struct InFile InFile;

/* 1 when path names gzip data (it ends in .gz). */
int infile_is_gz(const char *path);
/* Open path at byte `begin` of its text (a plain file only; gzip data starts at 0). */
InFile *infile_open(const char *path, int64_t begin);
void infile_close(InFile *f);

/* The next line, without its '\n' and NUL-terminated, in f's buffer until the next call; *len
   gets its length (NUL bytes included). NULL at the end of the file; the last line needs no '\n'. */
char *infile_line(InFile *f, size_t *len);
/* Up to n bytes into buf; 0 at the end. */
size_t infile_read(InFile *f, void *buf, size_t n);
/* Where the next byte or line starts in the file's text (decompressed). */
int64_t infile_offset(const InFile *f);
/* Bytes of the file on disk read so far (compressed bytes for gzip), for progress. */
int64_t infile_disk_offset(const InFile *f);

/* The whole text of path, NUL-terminated (len excludes the NUL), in a fresh heap buffer. */
char *infile_read_all(const char *path, size_t *len);
/* The number of '\n' in the first `end` bytes of path's text: the line number before `end`. */
int64_t infile_count_lines(const char *path, int64_t end);

#endif
