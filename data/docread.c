/* docread.c: text documents from plain text and JSON Lines files (see docread.h). A part that
   starts inside a JSON Lines file begins one byte early and drops the line it lands in: that line
   started before the part and belongs to the one before. */
#include "data/docread.h"

#include "data/infile.h"
#include "base/jsonl.h"
#include "base/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    DocReader *r;
    const char *path;
    int64_t first; /* where the part's first line starts */
    int64_t base;  /* lines before it, counted the first time a message needs them; -1 before */
} Lines;

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

static void bad_line(Lines *ls, int64_t k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void bad_line(Lines *ls, int64_t k, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (ls->base < 0)
        ls->base = ls->first > 0 ? infile_count_lines(ls->path, ls->first) : 0;
    long long line = (long long)(ls->base + k);
    DocReader *r = ls->r;
    if (!r->skip_bad)
        fail_input("%s:%lld: %s (--on-bad-line skip skips such lines)", ls->path, line, what);
    r->bad_lines++;
    if (r->shown++ < DOCREAD_SHOWN)
        fprintf(stderr, "%s: warning: %s:%lld: %s; skipped%s\n", util_progname(), ls->path, line, what,
                r->shown == DOCREAD_SHOWN ? " (further malformed lines are counted, not shown)" : "");
}

/* Whether rec has fields under key: an object or array there was flattened into them. */
static int has_members(const JsonRecord *rec, const char *key)
{
    size_t n = strlen(key);
    for (int i = 0; i < rec->n; i++)
        if (strncmp(rec->fields[i].key, key, n) == 0 && rec->fields[i].key[n] == '.')
            return 1;
    return 0;
}

/* The text member of line k, or NULL when the line is malformed (reported). */
static const JsonField *text_of(Lines *ls, int64_t k, const char *line, size_t len, JsonRecord *rec)
{
    const char *nul = memchr(line, '\0', len);
    if (nul) {
        bad_line(ls, k, "a NUL byte at column %lld", (long long)(nul - line) + 1);
        return NULL;
    }
    int col;
    const char *expected = jsonl_parse(line, rec, &col);
    if (expected) {
        bad_line(ls, k, "expected %s at column %d", expected, col);
        return NULL;
    }
    const char *key = ls->r->text_field;
    const JsonField *f = jsonl_get(rec, key);
    if (f && f->kind == JSON_STRING)
        return f;
    static const char *kinds[] = {"null", "true or false", "a number"};
    if (f)
        bad_line(ls, k, "member '%s' is %s, expected a string", key, kinds[f->kind]);
    else if (has_members(rec, key))
        bad_line(ls, k, "member '%s' is an object or an array, expected a string", key);
    else
        bad_line(ls, k, "no member '%s' (--text-field names the member that holds the text)", key);
    return NULL;
}

static void jsonl_file(DocReader *r, const CorpusFile *f, int64_t begin, int64_t end, DocTake take, void *ctx)
{
    InFile *in = infile_open(f->path, begin > 0 ? begin - 1 : 0);
    size_t len;
    if (begin > 0)
        infile_line(in, &len);
    Lines ls = {r, f->path, infile_offset(in), -1};
    JsonRecord rec = {0};
    char *line;
    for (int64_t k = 1; infile_offset(in) < end && (line = infile_line(in, &len)); k++) {
        if (k == 1 && ls.first == 0 && len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) { /* a UTF-8 BOM */
            line += 3;
            len -= 3;
        }
        const JsonField *text = blank(line, len) ? NULL : text_of(&ls, k, line, len, &rec);
        if (text)
            take(ctx, text->str, text->len, infile_disk_offset(in));
    }
    jsonl_free(&rec);
    infile_close(in);
}

void docread_file(DocReader *r, const CorpusFile *f, int64_t begin, int64_t end, DocTake take, void *ctx)
{
    if (f->kind == CORPUS_JSONL) {
        jsonl_file(r, f, begin, end, take, ctx);
        return;
    }
    size_t len;
    char *text = infile_read_all(f->path, &len);
    take(ctx, text, len, f->size);
    free(text);
}
