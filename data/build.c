/* build.c: inputs to shards (see build.h). First the inputs are listed with their sizes (so the
   validation documents can be chosen before any token is read), then every document goes once
   into the writer of its split: a raw token file streamed block by block, a text document read
   whole and encoded. */
#include "data/build.h"

#include "data/h5_check.h"
#include "data/manifest.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "data/writer.h"
#include "base/util.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUILD_BLOCK (1 << 16) /* bytes read at a time: a whole number of tokens of any width */
#define BUILD_MAX_DEPTH 64    /* folder nesting; deeper is taken for a symbolic-link loop */

typedef struct {
    char *path;
    int64_t bytes, ntokens;
    int64_t cut; /* tokens [0, cut) go to train, [cut, ntokens) to val */
} Doc;

typedef struct {
    const BuildOptions *o;
    int width; /* bytes per input token: 1 for text, 2 or 4 for raw */
    Doc *docs;
    int ndocs, cap;
    ShardWriter *writer[2]; /* train, val */
    BuildSplit *stats;
    Tokenizer *tok; /* text */
    TokenBuf ids;   /* text: the document being written */
} Build;

static void build_add_doc(Build *b, const char *path, int64_t bytes)
{
    if (bytes % b->width)
        fail_input("%s: %lld bytes is not a whole number of %d-byte tokens", path, (long long)bytes, b->width);
    int64_t ntokens = bytes / b->width + (b->o->kind == BUILD_TEXT); /* text ends with the EOD id */
    if (ntokens == 0)
        return;
    if (b->ndocs == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->docs = realloc(b->docs, b->cap * sizeof *b->docs);
        if (!b->docs)
            fail("out of memory listing the inputs");
    }
    b->docs[b->ndocs++] = (Doc){xstrdup(path), bytes, ntokens, ntokens};
}

static int build_skip_dot(const struct dirent *e) { return e->d_name[0] != '.'; }

/* Byte order, not the locale's: the same inputs give the same dataset everywhere. */
static int build_name_cmp(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void build_walk(Build *b, const char *path, int depth)
{
    struct stat st;
    if (stat(path, &st) != 0)
        fail_input("%s: cannot read input: %s", path, strerror(errno));
    if (S_ISREG(st.st_mode)) {
        build_add_doc(b, path, st.st_size);
        return;
    }
    if (!S_ISDIR(st.st_mode))
        fail_input("%s: input is neither a file nor a folder", path);
    if (depth > BUILD_MAX_DEPTH)
        fail_input("%s: folders nested more than %d deep (a symbolic-link loop?)", path, BUILD_MAX_DEPTH);
    struct dirent **list;
    int n = scandir(path, &list, build_skip_dot, build_name_cmp);
    if (n < 0)
        fail_input("%s: cannot list folder: %s", path, strerror(errno));
    for (int i = 0; i < n; i++) {
        char *child = xasprintf("%s/%s", path, list[i]->d_name);
        build_walk(b, child, depth + 1);
        free(child);
        free(list[i]);
    }
    free(list);
}

/* Whole documents in a seeded pseudo-random order join val while each brings its token count
   closer to the target; at least one document stays in train. One document is cut instead. */
static void build_choose_val(Build *b, int64_t total)
{
    double target = b->o->val_fraction * (double)total;
    if (target <= 0)
        return;
    if (b->ndocs == 1) {
        int64_t cut = total - (int64_t)(target + 0.5);
        b->docs[0].cut = cut < 1 ? 1 : cut; /* train keeps at least one token */
        return;
    }
    uint64_t key = rng_key(b->o->seed, "val-split");
    int *order = xmalloc(b->ndocs * sizeof *order);
    for (int i = 0; i < b->ndocs; i++)
        order[i] = i;
    for (int i = b->ndocs - 1; i > 0; i--) { /* Fisher-Yates */
        int j = (int)(rng_u64(key, (uint64_t)i) % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    double val = 0;
    int nval = 0;
    for (int k = 0; k < b->ndocs && nval < b->ndocs - 1; k++) {
        Doc *d = &b->docs[order[k]];
        if (val + (double)d->ntokens / 2 < target) {
            d->cut = 0;
            val += (double)d->ntokens;
            nval++;
        }
    }
    free(order);
}

static int build_is_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        fail_input("%s: cannot open output folder: %s", dir, strerror(errno));
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)))
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return empty;
}

static void build_mkdirs(const char *dir)
{
    char *p = xstrdup(dir);
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            fail_input("%s: cannot create folder: %s", p, strerror(errno));
        *s = c;
        if (!c)
            break;
    }
    free(p);
}

/* Remove the shards (and unfinished .tmp shards) of dir and its manifest, leaving any other file
   alone. */
static void build_remove_shards(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        fail_input("%s: cannot open output folder: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!shard_name_parse(e->d_name, NULL) && !shard_name_is_tmp(e->d_name) &&
            strcmp(e->d_name, MANIFEST_FILE) != 0 && strcmp(e->d_name, MANIFEST_FILE ".tmp") != 0)
            continue;
        char *path = xasprintf("%s/%s", dir, e->d_name);
        if (unlink(path) != 0)
            fail_input("%s: cannot remove: %s", path, strerror(errno));
        free(path);
    }
    closedir(d);
}

/* With --append: the existing shards must share the format and be those the manifest lists (a
   dataset without one gets one first); new ones are numbered after them. */
static void build_after_existing(const char *dir, const TokenFormat *fmt, int first[2])
{
    static const char *splits[2] = {"train", "val"};
    ShardName *names;
    int n = shard_list(dir, NULL, &names);
    for (int i = 0; i < n; i++) {
        for (int s = 0; s < 2; s++)
            if (strcmp(names[i].split, splits[s]) == 0 && names[i].number >= first[s])
                first[s] = (int)names[i].number + 1;
        if (i > 0)
            continue;
        char *path = xasprintf("%s/%s", dir, names[i].name);
        ShardMeta m;
        hid_t file = shard_open(path);
        shard_meta(path, file, names[i].split, &m);
        H5_CHECK_AT(path, H5Fclose(file));
        if (m.vocab != fmt->vocab || m.eod != fmt->eod || m.bos != fmt->bos ||
            strcmp(m.tokenizer, fmt->tokenizer) != 0 || m.tokenizer_checksum != fmt->tokenizer_checksum)
            fail_input("%s: cannot append: it has vocab_size %d, eod_id %d, bos_id %d, tokenizer '%s' (checksum "
                       "%016" PRIx64 "); the new shards would have %d, %d, %d, '%s' (%016" PRIx64 ")",
                       path, m.vocab, m.eod, m.bos, m.tokenizer, m.tokenizer_checksum, fmt->vocab, fmt->eod, fmt->bos,
                       fmt->tokenizer, fmt->tokenizer_checksum);
        free(path);
    }
    if (n)
        manifest_update(dir, NULL, 0);
    shard_names_free(names, n);
    free(names);
}

static void build_prepare_out(const BuildOptions *o, const TokenFormat *fmt, int first[2])
{
    struct stat st;
    first[0] = first[1] = 0;
    if (stat(o->out_dir, &st) != 0) {
        build_mkdirs(o->out_dir);
        return;
    }
    if (!S_ISDIR(st.st_mode))
        fail_input("%s: output exists and is not a folder", o->out_dir);
    if (o->append)
        build_after_existing(o->out_dir, fmt, first);
    else if (o->force)
        build_remove_shards(o->out_dir);
    else if (!build_is_empty(o->out_dir))
        fail_input("%s: output folder is not empty: give --force to replace its shards or --append to add to them",
                   o->out_dir);
}

/* Tokens [pos, pos + n) of document d go to the split their position falls in. */
static void build_emit(Build *b, const Doc *d, int64_t pos, const uint32_t *ids, int64_t n)
{
    int64_t ntrain = pos < d->cut ? (d->cut - pos < n ? d->cut - pos : n) : 0;
    if (pos == 0 && b->o->kind == BUILD_TEXT)
        shard_writer_doc(b->writer[d->cut == 0]);
    if (ntrain)
        shard_writer_append(b->writer[0], ids, ntrain);
    if (n > ntrain)
        shard_writer_append(b->writer[1], ids + ntrain, n - ntrain);
    b->stats[0].tokens += ntrain;
    b->stats[1].tokens += n - ntrain;
}

/* A raw token file, streamed block by block. */
static void build_raw_doc(Build *b, const Doc *d)
{
    FILE *f = fopen(d->path, "rb");
    if (!f)
        fail_input("%s: cannot open: %s", d->path, strerror(errno));
    unsigned char bytes[BUILD_BLOCK];
    uint32_t ids[BUILD_BLOCK];
    int64_t pos = 0, vocab = b->o->vocab;
    size_t got;
    while ((got = fread(bytes, 1, sizeof bytes, f)) > 0) {
        int64_t n = (int64_t)got / b->width;
        if (got % b->width || pos + n > d->bytes / b->width)
            fail_input("%s: the file changed while it was being read", d->path);
        for (int64_t i = 0; i < n; i++) {
            const unsigned char *p = bytes + i * b->width;
            ids[i] = b->width == 2 ? (uint32_t)p[0] | (uint32_t)p[1] << 8
                                   : (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            if (ids[i] >= vocab)
                fail_input("%s: token %lld (byte offset %lld) is %u, not below --vocab %lld", d->path,
                           (long long)(pos + i), (long long)((pos + i) * b->width), ids[i], (long long)vocab);
        }
        build_emit(b, d, pos, ids, n);
        pos += n;
    }
    if (ferror(f))
        fail_input("%s: read error: %s", d->path, strerror(errno));
    fclose(f);
    if (pos != d->bytes / b->width)
        fail_input("%s: the file changed while it was being read", d->path);
}

/* A text document, read whole (a tokenizer sees the document at once) and followed by EOS. Its
   cut was chosen in bytes + 1, before it was encoded: it keeps its share of the tokens. */
static void build_text_doc(Build *b, Doc *d)
{
    size_t len;
    char *text = util_read_file(d->path, &len);
    if ((int64_t)len != d->bytes)
        fail_input("%s: the file changed while it was being read", d->path);
    b->ids.n = 0;
    tokenizer_encode(b->tok, text, len, &b->ids);
    free(text);
    token_buf_push(&b->ids, (uint32_t)tokenizer_eos(b->tok));
    int64_t n = (int64_t)b->ids.n;
    if (d->cut > 0 && d->cut < d->ntokens) {
        int64_t cut = (int64_t)((double)d->cut * (double)n / (double)d->ntokens + 0.5);
        d->cut = cut < 1 ? 1 : cut;
    } else if (d->cut > 0) {
        d->cut = n;
    }
    d->ntokens = n;
    build_emit(b, d, 0, b->ids.ids, n);
}

void data_build(const BuildOptions *o, BuildSplit stats[2])
{
    Build b = {.o = o, .width = o->kind == BUILD_TEXT ? 1 : o->kind == BUILD_UINT16 ? 2 : 4, .stats = stats};
    TokenFormat fmt = {o->vocab, o->eod, -1, TOKENIZER_RAW, 0};
    if (o->kind == BUILD_TEXT) {
        b.tok = tokenizer_open(o->tokenizer ? o->tokenizer : TOKENIZER_BYTES);
        if (tokenizer_eos(b.tok) < 0)
            fail_input("%s: the tokenizer has no end-of-document id to separate the documents", o->tokenizer);
        fmt = (TokenFormat){tokenizer_vocab(b.tok), tokenizer_eos(b.tok), tokenizer_bos(b.tok), tokenizer_name(b.tok),
                            tokenizer_checksum(b.tok)};
    }
    for (int i = 0; i < o->ninputs; i++)
        build_walk(&b, o->inputs[i], 0);
    int64_t total = 0;
    for (int i = 0; i < b.ndocs; i++)
        total += b.docs[i].ntokens;
    if (total == 0)
        fail_input("%s: the inputs hold no tokens", o->ninputs ? o->inputs[0] : "(no input)");
    build_choose_val(&b, total);
    int first[2];
    build_prepare_out(o, &fmt, first);
    memset(stats, 0, 2 * sizeof *stats);
    b.writer[0] = shard_writer_open(o->out_dir, "train", first[0], o->shard_tokens, &fmt);
    b.writer[1] = shard_writer_open(o->out_dir, "val", first[1], o->shard_tokens, &fmt);
    for (int i = 0; i < b.ndocs; i++) {
        if (o->kind == BUILD_TEXT)
            build_text_doc(&b, &b.docs[i]);
        else
            build_raw_doc(&b, &b.docs[i]);
        stats[b.docs[i].cut == 0].docs++;
        free(b.docs[i].path);
    }
    tokenizer_free(b.tok);
    token_buf_free(&b.ids);
    free(b.docs);
    ShardSums *written = NULL;
    int nwritten = 0;
    for (int s = 0; s < 2; s++)
        stats[s].shards = shard_writer_close(b.writer[s], &written, &nwritten);
    manifest_update(o->out_dir, written, nwritten);
    shard_sums_free(written, nwritten);
}
