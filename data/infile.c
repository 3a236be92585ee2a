/* infile.c: plain and gzip input files as streams of bytes and lines (see infile.h). One buffer
   holds what was read and not yet handed out; a line longer than it grows it. */
#include "autoconfig.h"

#include "data/infile.h"

#include "data/h5_check.h"
#include "base/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef HAVE_ZLIB
#include <zlib.h>
#endif

#define INFILE_BUF (1 << 20) /* bytes read at a time */

struct InFile {
    char *path;
    FILE *plain; /* NULL for gzip */
#ifdef HAVE_ZLIB
    gzFile gz;
#endif
    char *buf;              /* (cap) bytes [start, end) read and not yet handed out */
    size_t cap, start, end;
    int64_t offset; /* of buf[start] in the text */
    int eof;
};

int infile_is_gz(const char *path)
{
    size_t n = strlen(path);
    return n > 3 && strcmp(path + n - 3, ".gz") == 0;
}

InFile *infile_open(const char *path, int64_t begin)
{
    InFile *f = xcalloc(1, sizeof *f);
    f->path = xstrdup(path);
    f->cap = INFILE_BUF;
    f->buf = xmalloc(f->cap);
    f->offset = begin;
    if (!infile_is_gz(path)) {
        f->plain = fopen(path, "rb");
        if (!f->plain)
            fail_input("%s: cannot open: %s", path, strerror(errno));
        if (begin > 0 && fseeko(f->plain, begin, SEEK_SET) != 0)
            fail_input("%s: cannot seek to byte %lld: %s", path, (long long)begin, strerror(errno));
        return f;
    }
#ifdef HAVE_ZLIB
    if (begin != 0)
        fail("infile_open: %s: gzip data is read from its start, not from byte %lld", path, (long long)begin);
    f->gz = gzopen(path, "rb");
    if (!f->gz)
        fail_input("%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
    gzbuffer(f->gz, INFILE_BUF);
    return f;
#else
    fail_input("%s: gzip input needs zlib, and this megadata was built without it (install zlib1g-dev, then "
               "./configure and make again; or decompress the file first)",
               path);
#endif
}

void infile_close(InFile *f)
{
    if (!f)
        return;
    if (f->plain)
        fclose(f->plain);
#ifdef HAVE_ZLIB
    if (f->gz)
        gzclose(f->gz);
#endif
    free(f->path);
    free(f->buf);
    free(f);
}

/* Up to n bytes from the file itself; 0 at its end. */
static size_t read_raw(InFile *f, char *out, size_t n)
{
    if (f->plain) {
        size_t got = fread(out, 1, n, f->plain);
        if (got == 0 && ferror(f->plain))
            fail_input("%s: read error: %s", f->path, strerror(errno));
        return got;
    }
#ifdef HAVE_ZLIB
    int got = gzread(f->gz, out, (unsigned)(n < INFILE_BUF ? n : INFILE_BUF)), err;
    const char *msg = gzerror(f->gz, &err);
    long long text = (long long)(f->offset + (int64_t)(f->end - f->start)); /* decompressed so far */
    if (got < 0 || (err != Z_OK && err != Z_BUF_ERROR))
        fail_input("%s: corrupt gzip data after %lld bytes of text: %s", f->path, text, msg);
    if (got == 0 && err == Z_BUF_ERROR) /* zlib's word for input that ends inside a gzip member */
        fail_input("%s: gzip data cut short after %lld bytes of text (a truncated file?)", f->path, text);
    if (gzdirect(f->gz)) /* zlib would pass other data through as it is */
        fail_input("%s: named .gz but not gzip data", f->path);
    return (size_t)got;
#else
    return 0;
#endif
}

/* Read more after buf[end], first moving what is left to the front and growing a full buffer.
   Keeps one byte free for the NUL that ends a last line. Returns 0 at the end of the file. */
static int fill(InFile *f)
{
    if (f->eof)
        return 0;
    if (f->start > 0) {
        memmove(f->buf, f->buf + f->start, f->end - f->start);
        f->end -= f->start;
        f->start = 0;
    }
    if (f->end + 1 >= f->cap) {
        f->cap *= 2;
        f->buf = realloc(f->buf, f->cap);
        if (!f->buf)
            fail("%s: out of memory for a line of %zu bytes", f->path, f->end);
    }
    size_t got = read_raw(f, f->buf + f->end, f->cap - 1 - f->end);
    f->end += got;
    f->eof = got == 0;
    return got > 0;
}

char *infile_line(InFile *f, size_t *len)
{
    size_t scanned = 0; /* bytes from start known to hold no '\n' (fill keeps them in place from start) */
    for (;;) {
        size_t have = f->end - f->start;
        char *nl = memchr(f->buf + f->start + scanned, '\n', have - scanned);
        if (!nl) {
            scanned = have;
            if (fill(f))
                continue;
            if (f->start == f->end)
                return NULL;
        }
        char *line = f->buf + f->start;
        size_t n = nl ? (size_t)(nl - line) : f->end - f->start;
        line[n] = '\0';
        f->start += n + (nl != NULL);
        f->offset += (int64_t)(n + (nl != NULL));
        *len = n;
        return line;
    }
}

size_t infile_read(InFile *f, void *buf, size_t n)
{
    if (f->start == f->end && !fill(f))
        return 0;
    size_t m = f->end - f->start < n ? f->end - f->start : n;
    memcpy(buf, f->buf + f->start, m);
    f->start += m;
    f->offset += (int64_t)m;
    return m;
}

int64_t infile_offset(const InFile *f) { return f->offset; }

int64_t infile_disk_offset(const InFile *f)
{
#ifdef HAVE_ZLIB
    if (f->gz)
        return (int64_t)gzoffset(f->gz);
#endif
    return f->offset + (int64_t)(f->end - f->start);
}

char *infile_read_all(const char *path, size_t *len)
{
    InFile *f = infile_open(path, 0);
    int64_t cap = 0;
    size_t n = 0, got;
    char *s = NULL;
    do { /* room for a whole buffer's read and the NUL */
        s = data_grow(s, &cap, (int64_t)(n + INFILE_BUF + 1), 1);
        n += got = infile_read(f, s + n, INFILE_BUF);
    } while (got > 0);
    infile_close(f);
    s[n] = '\0';
    *len = n;
    return s;
}

int64_t infile_count_lines(const char *path, int64_t end)
{
    InFile *f = infile_open(path, 0);
    int64_t lines = 0;
    while (f->offset < end && (f->start < f->end || fill(f))) {
        size_t n = f->end - f->start;
        if ((int64_t)n > end - f->offset)
            n = (size_t)(end - f->offset);
        const char *p = f->buf + f->start, *stop = p + n;
        for (; (p = memchr(p, '\n', (size_t)(stop - p))); p++)
            lines++;
        f->start += n;
        f->offset += (int64_t)n;
    }
    infile_close(f);
    return lines;
}
