/* spill.c: a part's tokens on disk between the two phases of a build (see spill.h). */
#include "data/spill.h"

#include "data/h5_check.h"
#include "base/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SPILL_MAGIC "MTSPILL1"
#define SPILL_BLOCK 65536 /* ids converted at a time */

typedef struct {
    char magic[8];
    uint32_t width, unused;
    int64_t ntokens, ndocs, bad_lines;
} RawHeader;

struct SpillWriter {
    char *path, *tmp;
    FILE *f;
    SpillHeader h;
    int64_t doc_start; /* the token where the document being written started */
    int64_t *docs;     /* (ndocs) token counts */
    int64_t docs_cap;
};

static void write_or_fail(const char *path, FILE *f, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, f) != n)
        fail_input("%s: cannot write: %s", path, strerror(errno));
}

SpillWriter *spill_create(const char *path, int width)
{
    SpillWriter *w = xcalloc(1, sizeof *w);
    w->path = xstrdup(path);
    w->tmp = xasprintf("%s.tmp", path);
    w->f = fopen(w->tmp, "wb");
    if (!w->f)
        fail_input("%s: cannot create: %s", w->tmp, strerror(errno));
    w->h.width = width;
    RawHeader blank = {0}; /* rewritten when the counts are known */
    write_or_fail(w->tmp, w->f, &blank, sizeof blank);
    return w;
}

void spill_append(SpillWriter *w, const uint32_t *ids, int64_t n)
{
    uint16_t narrow[SPILL_BLOCK];
    if (w->h.width == 4) {
        write_or_fail(w->tmp, w->f, ids, (size_t)n * 4);
    } else {
        for (int64_t i = 0; i < n; i += SPILL_BLOCK) {
            int64_t m = n - i < SPILL_BLOCK ? n - i : SPILL_BLOCK;
            for (int64_t j = 0; j < m; j++)
                narrow[j] = (uint16_t)ids[i + j];
            write_or_fail(w->tmp, w->f, narrow, (size_t)m * 2);
        }
    }
    w->h.ntokens += n;
}

void spill_end_doc(SpillWriter *w)
{
    w->docs = data_grow(w->docs, &w->docs_cap, w->h.ndocs + 1, sizeof *w->docs);
    w->docs[w->h.ndocs++] = w->h.ntokens - w->doc_start;
    w->doc_start = w->h.ntokens;
}

void spill_finish(SpillWriter *w, int64_t bad_lines)
{
    w->h.bad_lines = bad_lines;
    write_or_fail(w->tmp, w->f, w->docs, (size_t)w->h.ndocs * sizeof *w->docs);
    RawHeader rh = {SPILL_MAGIC, (uint32_t)w->h.width, 0, w->h.ntokens, w->h.ndocs, w->h.bad_lines};
    if (fseek(w->f, 0, SEEK_SET) != 0)
        fail_input("%s: cannot seek: %s", w->tmp, strerror(errno));
    write_or_fail(w->tmp, w->f, &rh, sizeof rh);
    if (fclose(w->f) != 0)
        fail_input("%s: cannot write: %s", w->tmp, strerror(errno));
    if (rename(w->tmp, w->path) != 0)
        fail_input("%s: cannot rename %s to it: %s", w->path, w->tmp, strerror(errno));
    free(w->path);
    free(w->tmp);
    free(w->docs);
    free(w);
}

static void read_or_fail(Spill *s, void *p, size_t n, const char *what)
{
    if (n && fread(p, 1, n, s->f) != n)
        fail_input("%s: cannot read its %s: %s (remove the file to tokenize its part again)", s->path, what,
                   ferror(s->f) ? strerror(errno) : "the file is shorter than its header says");
}

void spill_open(Spill *s, const char *path)
{
    *s = (Spill){.path = xstrdup(path)};
    s->f = fopen(path, "rb");
    if (!s->f)
        fail_input("%s: cannot open: %s", path, strerror(errno));
    RawHeader rh;
    read_or_fail(s, &rh, sizeof rh, "header");
    s->h = (SpillHeader){(int)rh.width, rh.ntokens, rh.ndocs, rh.bad_lines};
    struct stat st;
    int ok = memcmp(rh.magic, SPILL_MAGIC, 8) == 0 && (rh.width == 2 || rh.width == 4) && rh.ntokens >= 0 &&
             rh.ndocs >= 0 && fstat(fileno(s->f), &st) == 0 &&
             st.st_size == (off_t)sizeof rh + rh.ntokens * rh.width + rh.ndocs * (off_t)sizeof *s->doc_tokens;
    if (!ok)
        fail_input("%s: not a whole token file of this build (remove it to tokenize its part again)", path);
    s->doc_tokens = xmalloc((size_t)s->h.ndocs * sizeof *s->doc_tokens);
    if (fseeko(s->f, (off_t)sizeof rh + s->h.ntokens * s->h.width, SEEK_SET) != 0)
        fail_input("%s: cannot seek: %s", path, strerror(errno));
    read_or_fail(s, s->doc_tokens, (size_t)s->h.ndocs * sizeof *s->doc_tokens, "document sizes");
}

void spill_read(Spill *s, int64_t start, int64_t n, uint32_t *out)
{
    if (fseeko(s->f, (off_t)sizeof(RawHeader) + start * s->h.width, SEEK_SET) != 0)
        fail_input("%s: cannot seek: %s", s->path, strerror(errno));
    if (s->h.width == 4) {
        read_or_fail(s, out, (size_t)n * 4, "tokens");
        return;
    }
    uint16_t narrow[SPILL_BLOCK];
    for (int64_t i = 0; i < n; i += SPILL_BLOCK) {
        int64_t m = n - i < SPILL_BLOCK ? n - i : SPILL_BLOCK;
        read_or_fail(s, narrow, (size_t)m * 2, "tokens");
        for (int64_t j = 0; j < m; j++)
            out[i + j] = narrow[j];
    }
}

void spill_close(Spill *s)
{
    if (s->f)
        fclose(s->f);
    free(s->path);
    free(s->doc_tokens);
    *s = (Spill){0};
}
