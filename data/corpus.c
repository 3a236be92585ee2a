/* corpus.c: listing the inputs of megadata build and dividing them into parts (see corpus.h). */
#include "data/corpus.h"

#include "data/h5_check.h"
#include "data/infile.h"
#include "base/util.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CORPUS_MAX_DEPTH 64 /* folder nesting; deeper is taken for a symbolic-link loop */

typedef struct {
    dev_t dev;
    ino_t ino;
    int file;
} FileId;

typedef struct {
    Corpus *c;
    int raw;
    int64_t files_cap, ids_cap;
    FileId *ids; /* (c->nfiles) to find a file listed twice */
} Lister;

static const char *kind_names[] = {"text", "jsonl", "raw"};

static int ends_with(const char *s, size_t n, const char *tail)
{
    size_t t = strlen(tail);
    return n >= t && memcmp(s + n - t, tail, t) == 0;
}

static CorpusKind kind_of(const char *path, int raw)
{
    size_t n = strlen(path);
    if (infile_is_gz(path))
        n -= 3;
    static const char *other[] = {".zst", ".xz", ".bz2", ".lz4", ".zip", ".7z"};
    for (size_t i = 0; i < sizeof other / sizeof *other; i++)
        if (ends_with(path, n, other[i]))
            fail_input("%s: %s compression is not read: decompress the file first (or compress it with gzip)", path,
                       other[i] + 1);
    if (raw)
        return CORPUS_RAW;
    return ends_with(path, n, ".jsonl") || ends_with(path, n, ".ndjson") ? CORPUS_JSONL : CORPUS_TEXT;
}

static void add_file(Lister *l, const char *path, const struct stat *st)
{
    Corpus *c = l->c;
    if (strchr(path, '\n'))
        fail_input("%s: a file name with a newline is not read", path);
    c->files = data_grow(c->files, &l->files_cap, c->nfiles + 1, sizeof *c->files);
    l->ids = data_grow(l->ids, &l->ids_cap, c->nfiles + 1, sizeof *l->ids);
    c->files[c->nfiles] = (CorpusFile){xstrdup(path), kind_of(path, l->raw), st->st_size,
                                       (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec};
    l->ids[c->nfiles] = (FileId){st->st_dev, st->st_ino, c->nfiles};
    c->nfiles++;
    c->bytes += st->st_size;
}

static int skip_dot(const struct dirent *e) { return e->d_name[0] != '.'; }

/* Byte order, not the locale's: the same inputs give the same dataset everywhere. */
static int name_cmp(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }
static int path_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void walk(Lister *l, const char *path, int depth);

/* An input that names no file but holds a wildcard: its matches, in byte order. */
static void expand(Lister *l, const char *pattern, int depth)
{
    glob_t g;
    int rc = glob(pattern, GLOB_NOSORT, NULL, &g);
    if (rc == GLOB_NOMATCH)
        fail_input("%s: no such file, and no file matches it as a pattern", pattern);
    if (rc != 0)
        fail_input("%s: cannot expand the pattern (%s)", pattern, rc == GLOB_NOSPACE ? "out of memory" : "read error");
    qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv, path_cmp);
    for (size_t i = 0; i < g.gl_pathc; i++)
        walk(l, g.gl_pathv[i], depth + 1);
    globfree(&g);
}

static void walk(Lister *l, const char *path, int depth)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno != ENOENT || depth > 0 || !strpbrk(path, "*?["))
            fail_input("%s: cannot read input: %s", path, strerror(errno));
        expand(l, path, depth);
        return;
    }
    if (S_ISREG(st.st_mode)) {
        add_file(l, path, &st);
        return;
    }
    if (!S_ISDIR(st.st_mode))
        fail_input("%s: input is neither a file nor a folder", path);
    if (depth > CORPUS_MAX_DEPTH)
        fail_input("%s: folders nested more than %d deep (a symbolic-link loop?)", path, CORPUS_MAX_DEPTH);
    struct dirent **list;
    int n = scandir(path, &list, skip_dot, name_cmp);
    if (n < 0)
        fail_input("%s: cannot list folder: %s", path, strerror(errno));
    for (int i = 0; i < n; i++) {
        char *child = xasprintf("%s/%s", path, list[i]->d_name);
        walk(l, child, depth + 1);
        free(child);
        free(list[i]);
    }
    free(list);
}

static int id_cmp(const void *a, const void *b)
{
    const FileId *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    return x->file - y->file;
}

void corpus_list(Corpus *c, char *const *inputs, int n, int raw)
{
    *c = (Corpus){0};
    Lister l = {.c = c, .raw = raw};
    for (int i = 0; i < n; i++)
        walk(&l, inputs[i], 0);
    qsort(l.ids, c->nfiles, sizeof *l.ids, id_cmp);
    for (int i = 1; i < c->nfiles; i++)
        if (l.ids[i].dev == l.ids[i - 1].dev && l.ids[i].ino == l.ids[i - 1].ino)
            fail_input("%s: the same file as %s: an input listed twice would be read twice",
                       c->files[l.ids[i].file].path, c->files[l.ids[i - 1].file].path);
    free(l.ids);
}

char *corpus_describe(const Corpus *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        fail("open_memstream: %s", strerror(errno));
    for (int i = 0; i < c->nfiles; i++) {
        const CorpusFile *cf = &c->files[i];
        fprintf(f, "file %s %lld %lld %s\n", kind_names[cf->kind], (long long)cf->size, (long long)cf->mtime_ns,
                cf->path);
    }
    fclose(f);
    return text;
}

void corpus_parse(Corpus *c, const char *text)
{
    *c = (Corpus){0};
    int64_t cap = 0;
    for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
        const char *nl = strchr(line, '\n');
        if (!nl)
            fail("corpus_parse: an unfinished line");
        char kind[16];
        long long size, mtime;
        int at = 0;
        if (strncmp(line, "file ", 5) != 0)
            continue;
        if (sscanf(line, "file %15s %lld %lld %n", kind, &size, &mtime, &at) != 3 || at == 0)
            fail("corpus_parse: a bad line: %.*s", (int)(nl - line), line);
        c->files = data_grow(c->files, &cap, c->nfiles + 1, sizeof *c->files);
        CorpusFile *cf = &c->files[c->nfiles++];
        *cf = (CorpusFile){xasprintf("%.*s", (int)(nl - line - at), line + at), CORPUS_TEXT, size, mtime};
        while (strcmp(kind_names[cf->kind], kind) != 0)
            if (++cf->kind > CORPUS_RAW)
                fail("corpus_parse: an unknown kind '%s'", kind);
        c->bytes += size;
    }
}

static void add_part(Corpus *c, int64_t *cap, CorpusPart p)
{
    c->parts = data_grow(c->parts, cap, c->nparts + 1, sizeof *c->parts);
    c->parts[c->nparts++] = p;
}

void corpus_plan_parts(Corpus *c, int64_t part_bytes)
{
    int64_t cap = 0;
    CorpusPart cur = {0, 0, 0, INT64_MAX, 0}; /* files being gathered: [cur.file0, cur.file1) */
    for (int i = 0; i < c->nfiles; i++) {
        const CorpusFile *f = &c->files[i];
        int cut = f->kind == CORPUS_JSONL && !infile_is_gz(f->path) && f->size > part_bytes;
        if (cur.file1 > cur.file0 && (cut || cur.bytes + f->size > part_bytes)) {
            add_part(c, &cap, cur);
            cur = (CorpusPart){i, i, 0, INT64_MAX, 0};
        }
        if (!cut) {
            cur.file0 = cur.file1 > cur.file0 ? cur.file0 : i;
            cur.file1 = i + 1;
            cur.bytes += f->size;
            continue;
        }
        for (int64_t b = 0; b < f->size; b += part_bytes) {
            int64_t e = f->size - b > part_bytes ? b + part_bytes : f->size;
            add_part(c, &cap, (CorpusPart){i, i + 1, b, e, e - b});
        }
        cur = (CorpusPart){i + 1, i + 1, 0, INT64_MAX, 0};
    }
    if (cur.file1 > cur.file0)
        add_part(c, &cap, cur);
}

void corpus_free(Corpus *c)
{
    for (int i = 0; i < c->nfiles; i++)
        free(c->files[i].path);
    free(c->files);
    free(c->parts);
    *c = (Corpus){0};
}
