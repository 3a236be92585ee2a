/* tokenize.c: the first phase of a build (see build_internal.h): each rank reads the parts it is
   given and writes each one's ids, document by document, into a token file (spill.h). Parts go
   to ranks largest first, each to the rank with the least input so far; those whose token file
   exists (a resumed build) are not read again. */
#include "data/build_internal.h"

#include "data/docread.h"
#include "data/infile.h"
#include "data/progress.h"
#include "data/spill.h"
#include "base/util.h"

#include <stdlib.h>
#include <unistd.h>

#define TOKENIZE_BLOCK (1 << 16) /* raw ids read at a time */

typedef struct {
    Build *b;
    SpillWriter *w;
    Progress *pg;
    TokenBuf ids;
    int64_t counted; /* bytes of the file being read already counted as progress */
} Tokenize;

static void take_text(void *ctx, const char *text, size_t len, int64_t disk)
{
    Tokenize *t = ctx;
    Tokenizer *tok = t->b->tok;
    t->ids.n = 0;
    if (t->b->o->bos)
        token_buf_push(&t->ids, (uint32_t)tokenizer_bos(tok));
    tokenizer_encode(tok, text, len, &t->ids);
    token_buf_push(&t->ids, (uint32_t)tokenizer_eos(tok));
    spill_append(t->w, t->ids.ids, (int64_t)t->ids.n);
    spill_end_doc(t->w);
    progress_add(t->pg, disk - t->counted, 1, (int64_t)t->ids.n);
    t->counted = disk;
    build_test_kill("tokenize");
}

/* n bytes into buf unless the file ends first; returns how many. */
static size_t read_full(InFile *in, unsigned char *buf, size_t n)
{
    size_t got = 0, m;
    while (got < n && (m = infile_read(in, buf + got, n - got)) > 0)
        got += m;
    return got;
}

/* A file of little-endian ids, one document, each id checked against --vocab. */
static void raw_file(Tokenize *t, const CorpusFile *f)
{
    const int width = t->b->width;
    const int64_t vocab = t->b->o->vocab;
    InFile *in = infile_open(f->path, 0);
    static unsigned char bytes[TOKENIZE_BLOCK * 4];
    static uint32_t ids[TOKENIZE_BLOCK];
    int64_t pos = 0;
    size_t got;
    while ((got = read_full(in, bytes, (size_t)TOKENIZE_BLOCK * width)) > 0) {
        if (got % width)
            fail_input("%s: %lld bytes is not a whole number of %d-byte tokens", f->path,
                       (long long)(pos * width + (int64_t)got), width);
        int64_t n = (int64_t)got / width;
        for (int64_t i = 0; i < n; i++) {
            const unsigned char *p = bytes + i * width;
            ids[i] = width == 2 ? (uint32_t)p[0] | (uint32_t)p[1] << 8
                                : (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            if (ids[i] >= vocab)
                fail_input("%s: token %lld (byte offset %lld) is %u, not below --vocab %lld", f->path,
                           (long long)(pos + i), (long long)((pos + i) * width), ids[i], (long long)vocab);
        }
        spill_append(t->w, ids, n);
        pos += n;
        progress_add(t->pg, infile_disk_offset(in) - t->counted, 0, n);
        t->counted = infile_disk_offset(in);
    }
    infile_close(in);
    if (pos > 0) { /* an empty file is no document */
        spill_end_doc(t->w);
        progress_add(t->pg, 0, 1, 0);
    }
}

static void tokenize_part(Tokenize *t, int p, DocReader *r)
{
    const Build *b = t->b;
    const CorpusPart *part = &b->corpus.parts[p];
    char *path = build_spill_path(b, p);
    t->w = spill_create(path, b->stored);
    int64_t bad = r->bad_lines, counted = 0;
    for (int i = part->file0; i < part->file1; i++) {
        const CorpusFile *f = &b->corpus.files[i];
        int64_t begin = part->file1 - part->file0 == 1 ? part->begin : 0;
        t->counted = begin;
        if (f->kind == CORPUS_RAW)
            raw_file(t, f);
        else
            docread_file(r, f, begin, part->end, take_text, t);
        counted += t->counted - begin;
    }
    progress_add(t->pg, part->bytes - counted, 0, 0); /* what was read past the part, or not read */
    spill_finish(t->w, r->bad_lines - bad);
    free(path);
}

typedef struct {
    int64_t bytes;
    int part;
} BySize;

static int larger_first(const void *a, const void *b)
{
    const BySize *x = a, *y = b;
    if (x->bytes != y->bytes)
        return x->bytes > y->bytes ? -1 : 1;
    return x->part - y->part;
}

/* Each part's rank (-1: done already): parts largest first, each to the rank with the least input
   so far. */
static int *assign(const Build *b, const char *done)
{
    const Corpus *c = &b->corpus;
    BySize *order = xmalloc((size_t)c->nparts * sizeof *order);
    int *rank = xmalloc((size_t)c->nparts * sizeof *rank), n = 0;
    for (int p = 0; p < c->nparts; p++) {
        rank[p] = -1;
        if (!done[p])
            order[n++] = (BySize){c->parts[p].bytes, p};
    }
    qsort(order, n, sizeof *order, larger_first);
    int64_t *load = xcalloc((size_t)b->world, sizeof *load);
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int r = 1; r < b->world; r++)
            best = load[r] < load[best] ? r : best;
        rank[order[i].part] = best;
        load[best] += order[i].bytes;
    }
    free(load);
    free(order);
    return rank;
}

void build_tokenize(Build *b)
{
    const Corpus *c = &b->corpus;
    char *done = xcalloc((size_t)c->nparts + 1, 1); /* 1: the part's token file exists (rank 0 looks) */
    int64_t todo = 0;
    if (b->rank == 0)
        for (int p = 0; p < c->nparts; p++) {
            char *path = build_spill_path(b, p);
            done[p] = access(path, F_OK) == 0;
            free(path);
        }
    build_bcast(b, done, c->nparts);
    for (int p = 0; p < c->nparts; p++)
        todo += done[p] ? 0 : c->parts[p].bytes;
    int *rank = assign(b, done);
    Progress pg;
    progress_start(&pg, "tokenizing", "MB", todo, b->rank, b->world);
    Tokenize t = {.b = b, .pg = &pg};
    DocReader r = {.text_field = b->text_field, .skip_bad = b->o->skip_bad_lines};
    for (int p = 0; p < c->nparts; p++)
        if (rank[p] == b->rank)
            tokenize_part(&t, p, &r);
    int64_t sum[PROGRESS_NCOUNTS];
    progress_finish(&pg, sum);
    token_buf_free(&t.ids);
    free(rank);
    free(done);
}
