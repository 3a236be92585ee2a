/* build.c: inputs to shards (see build.h). Rank 0 lists the inputs, prepares the output folder
   and writes the build's plan (options and inputs) into its work folder; every rank takes the plan
   and tokenizes its share of the parts (tokenize.c); rank 0 chooses the val documents from the
   parts' token counts; the ranks write the shards (assemble.c) and rank 0 the manifest, then
   removes the work folder. A resumed build checks that its plan is the interrupted one's and does
   only what is missing. */
#include "data/build.h"

#include "data/build_internal.h"
#include "data/h5_check.h"
#include "data/infile.h"
#include "data/manifest.h"
#include "data/shard.h"
#include "data/spill.h"
#include "data/tokenizer.h"
#include "data/writer.h"
#include "base/util.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUILD_PLAN "plan" /* in the work folder */

static const char *kind_names[] = {"text", "uint16", "uint32"};

int data_build_unfinished(const char *dir)
{
    char *work = xasprintf("%s/%s", dir, DATASET_BUILD_DIR);
    int there = access(work, F_OK) == 0;
    free(work);
    return there;
}

void build_test_kill(const char *phase)
{
    static long calls;
    const char *s = getenv("MEGADATA_TEST_KILL");
    size_t n = strlen(phase);
    if (s && strncmp(s, phase, n) == 0 && s[n] == ':' && ++calls == atol(s + n + 1))
        raise(SIGKILL);
}

void build_bcast(const Build *b, void *buf, int64_t bytes)
{
    if (b->world == 1)
        return;
    for (int64_t at = 0; at < bytes; at += INT_MAX) /* MPI counts are ints */
        MPI_Bcast((char *)buf + at, (int)(bytes - at < INT_MAX ? bytes - at : INT_MAX), MPI_BYTE, 0, MPI_COMM_WORLD);
}

char *build_spill_path(const Build *b, int p) { return xasprintf("%s/part-%06d.tok", b->work, p); }

/* Whether name is one of the files a build keeps in its work folder. */
static int build_work_file(const char *name)
{
    int n = 0;
    size_t len = strlen(name);
    if (strcmp(name, BUILD_PLAN) == 0 || strcmp(name, BUILD_PLAN ".tmp") == 0)
        return 1;
    if (sscanf(name, "part-%*d.tok%n", &n) == 0 && (size_t)n == len)
        return 1;
    return sscanf(name, "part-%*d.tok.tmp%n", &n) == 0 && (size_t)n == len;
}

/* Remove dir's work folder, if any, with the files a build keeps there; anything else stops it. */
static void build_remove_work(const char *dir)
{
    char *work = xasprintf("%s/%s", dir, DATASET_BUILD_DIR);
    struct stat st;
    if (lstat(work, &st) != 0) {
        free(work);
        return;
    }
    if (!S_ISDIR(st.st_mode))
        fail_input("%s: not a folder; not removing it", work);
    DIR *d = opendir(work);
    if (!d)
        fail_input("%s: cannot open: %s", work, strerror(errno));
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *path = xasprintf("%s/%s", work, e->d_name);
        if (!build_work_file(e->d_name))
            fail_input("%s: not a file of megadata build; not removing %s", path, work);
        if (unlink(path) != 0)
            fail_input("%s: cannot remove: %s", path, strerror(errno));
        free(path);
    }
    closedir(d);
    if (rmdir(work) != 0)
        fail_input("%s: cannot remove: %s", work, strerror(errno));
    free(work);
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
    if (o->force) {
        build_remove_shards(o->out_dir);
        build_remove_work(o->out_dir);
    } else if (data_build_unfinished(o->out_dir)) {
        fail_input("%s: output folder is not empty: a build was interrupted here (%s/%s holds its state): give "
                   "--resume to finish it, or --force to start again",
                   o->out_dir, o->out_dir, DATASET_BUILD_DIR);
    } else if (o->append) {
        build_after_existing(o->out_dir, fmt, first);
    } else if (!build_is_empty(o->out_dir)) {
        fail_input("%s: output folder is not empty: give --force to replace its shards or --append to add to them",
                   o->out_dir);
    }
}

/* Whole documents in a seeded pseudo-random order join val while each brings its token count
   closer to the target; at least one document stays in train. A single document is cut instead. */
static void build_val_docs(Build *b, const int64_t *sizes, int64_t ndocs, int64_t total)
{
    double target = b->o->val_fraction * (double)total;
    if (target <= 0)
        return;
    if (ndocs == 1) {
        int64_t cut = total - (int64_t)(target + 0.5);
        b->cut = cut < 1 ? 1 : cut; /* train keeps at least one token */
        return;
    }
    if (ndocs > UINT32_MAX)
        fail_input("%s: %lld documents: more than the %u the val split is chosen among", b->o->out_dir,
                   (long long)ndocs, UINT32_MAX);
    uint64_t key = rng_key(b->o->seed, "val-split");
    uint32_t *order = xmalloc((size_t)ndocs * sizeof *order);
    for (int64_t i = 0; i < ndocs; i++)
        order[i] = (uint32_t)i;
    for (int64_t i = ndocs - 1; i > 0; i--) { /* Fisher-Yates */
        int64_t j = (int64_t)(rng_u64(key, (uint64_t)i) % (uint64_t)(i + 1));
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    double val = 0;
    int64_t nval = 0;
    for (int64_t k = 0; k < ndocs && nval < ndocs - 1; k++) {
        int64_t d = order[k];
        if (val + (double)sizes[d] / 2 < target) {
            b->val[d / 8] |= (uint8_t)(1 << d % 8);
            val += (double)sizes[d];
            nval++;
        }
    }
    free(order);
}

/* Rank 0 reads every part's document sizes, chooses the val documents and counts each part's
   tokens of each split; every rank gets the result. Returns the malformed lines skipped. */
static int64_t build_choose_val(Build *b)
{
    const int P = b->corpus.nparts;
    b->parts = xcalloc((size_t)P + 1, sizeof *b->parts);
    int64_t ndocs = 0, total = 0, *sizes = NULL, cap = 0, counts[3] = {0}; /* docs of train, of val; bad lines */
    for (int p = 0; b->rank == 0 && p < P; p++) {
        Spill sp;
        char *path = build_spill_path(b, p);
        spill_open(&sp, path);
        sizes = data_grow(sizes, &cap, ndocs + sp.h.ndocs, sizeof *sizes);
        memcpy(sizes + ndocs, sp.doc_tokens, (size_t)sp.h.ndocs * sizeof *sizes);
        b->parts[p] = (BuildPart){sp.h.ndocs, ndocs, {0, 0}};
        ndocs += sp.h.ndocs;
        total += sp.h.ntokens;
        counts[2] += sp.h.bad_lines;
        spill_close(&sp);
        free(path);
    }
    if (b->rank == 0 && total == 0)
        fail_input("%s: the inputs hold no tokens", b->o->inputs[0]);
    build_bcast(b, &ndocs, sizeof ndocs);
    b->val = xcalloc((size_t)ndocs / 8 + 1, 1);
    if (b->rank == 0) {
        build_val_docs(b, sizes, ndocs, total);
        for (int p = 0; p < P; p++)
            for (int64_t d = b->parts[p].doc0; d < b->parts[p].doc0 + b->parts[p].docs; d++) {
                int val = b->cut >= 0 ? 0 : b->val[d / 8] >> (d % 8) & 1;
                int64_t cut = b->cut >= 0 ? b->cut : val ? 0 : sizes[d];
                b->parts[p].tokens[0] += cut;
                b->parts[p].tokens[1] += sizes[d] - cut;
                counts[val]++;
            }
    }
    free(sizes);
    build_bcast(b, b->parts, (int64_t)P * (int64_t)sizeof *b->parts);
    build_bcast(b, b->val, ndocs / 8 + 1);
    build_bcast(b, &b->cut, sizeof b->cut);
    build_bcast(b, counts, sizeof counts);
    b->stats[0].docs = counts[0];
    b->stats[1].docs = counts[1];
    return counts[2];
}

/* The plan: what the build makes and from which inputs, all that its output depends on (not
   --on-bad-line: a part is either whole or has no token file). The first line, the numbers of
   the first new shards, is not compared when a build resumes: --append has added to them. */
static char *build_plan_body(const Build *b)
{
    const BuildOptions *o = b->o;
    Corpus c;
    corpus_list(&c, o->inputs, o->ninputs, o->kind != BUILD_TEXT);
    if (c.nfiles == 0)
        fail_input("%s: no input file there (names starting with '.' are skipped)", o->inputs[0]);
    for (int i = 0; i < c.nfiles; i++) /* found before the output folder changes */
        if (!infile_is_gz(c.files[i].path) && c.files[i].size % b->width)
            fail_input("%s: %lld bytes is not a whole number of %d-byte tokens", c.files[i].path,
                       (long long)c.files[i].size, b->width);
    char *files = corpus_describe(&c);
    corpus_free(&c);
    char *body = xasprintf("kind %s\ntokenizer %s %016llx vocab %d eod %d\ntext_field %s\nbos %d\n"
                           "val_fraction %.17g\nseed %llu\nshard_tokens %lld\npart_bytes %lld\nappend %d\n%s",
                           kind_names[o->kind], b->fmt.tokenizer, (unsigned long long)b->fmt.tokenizer_checksum,
                           b->fmt.vocab, b->fmt.eod, b->text_field, o->bos, o->val_fraction,
                           (unsigned long long)o->seed, (long long)o->shard_tokens, (long long)b->part_bytes,
                           o->append, files);
    free(files);
    return body;
}

/* The resumed build's plan is the interrupted one's: else stop, naming the first difference. */
static void build_same_plan(const char *path, const char *old, const char *now)
{
    if (strcmp(old, now) == 0)
        return;
    while (*old && strncmp(old, now, strcspn(old, "\n") + 1) == 0) {
        size_t n = strcspn(old, "\n") + 1;
        old += n;
        now += n;
    }
    fail_input("%s: --resume: the interrupted build had '%.*s' where this one has '%.*s': start again with --force "
               "(or give the same inputs and options)",
               path, (int)strcspn(old, "\n"), old, (int)strcspn(now, "\n"), now);
}

/* Rank 0: the whole plan into b->plan, from the interrupted build's work folder (--resume) or a
   new one. */
static void build_plan(Build *b)
{
    const BuildOptions *o = b->o;
    b->body = build_plan_body(b);
    const char *body = b->body;
    char path[4096], tmp[sizeof path + 8]; /* on the stack; body and plan are in b: see Build.body */
    if ((size_t)snprintf(path, sizeof path, "%s/%s", b->work, BUILD_PLAN) >= sizeof path)
        fail_input("%s: the path is too long", b->work);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (o->resume && access(path, F_OK) == 0) {
        size_t len;
        b->plan = util_read_file(path, &len);
        const char *nl = strchr(b->plan, '\n');
        if (!nl || sscanf(b->plan, "first %d %d", &b->first[0], &b->first[1]) != 2)
            fail_input("%s: not a plan of megadata build (remove %s to start again)", path, b->work);
        build_same_plan(path, nl + 1, body);
    } else {
        if (o->resume) /* interrupted before its plan was written: nothing to keep */
            build_remove_work(o->out_dir);
        build_prepare_out(o, &b->fmt, b->first);
        if (mkdir(b->work, 0777) != 0)
            fail_input("%s: cannot create: %s", b->work, strerror(errno));
        b->plan = xasprintf("first %d %d\n%s", b->first[0], b->first[1], body);
        FILE *f = fopen(tmp, "wb");
        if (!f || fputs(b->plan, f) == EOF || fclose(f) != 0 || rename(tmp, path) != 0)
            fail_input("%s: cannot write: %s", path, strerror(errno));
    }
    free(b->body);
    b->body = NULL;
}

/* Every rank gets rank 0's plan text (b->plan) and first shard numbers. */
static void build_share_plan(Build *b)
{
    int64_t len = b->rank == 0 ? (int64_t)strlen(b->plan) : 0;
    build_bcast(b, &len, sizeof len);
    if (b->rank != 0)
        b->plan = xmalloc((size_t)len + 1);
    build_bcast(b, b->plan, len + 1);
    build_bcast(b, b->first, sizeof b->first);
}

int64_t data_build(const BuildOptions *o, BuildSplit stats[2])
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
    if (o->bos && (!b.tok || tokenizer_bos(b.tok) < 0))
        fail_input("--bos: the tokenizer '%s' has no beginning-of-document id", fmt.tokenizer);
    b.fmt = fmt;
    b.stored = fmt.vocab <= 65536 ? 2 : 4;
    b.text_field = o->text_field ? o->text_field : "text";
    b.part_bytes = o->part_bytes > 0 ? o->part_bytes : BUILD_PART_BYTES;
    b.world = 1;
    b.cut = -1;
    int mpi;
    MPI_Initialized(&mpi);
    if (mpi) {
        MPI_Comm_rank(MPI_COMM_WORLD, &b.rank);
        MPI_Comm_size(MPI_COMM_WORLD, &b.world);
    }
    b.work = xasprintf("%s/%s", o->out_dir, DATASET_BUILD_DIR);
    if (b.rank == 0)
        build_plan(&b);
    build_share_plan(&b);
    corpus_parse(&b.corpus, b.plan);
    corpus_plan_parts(&b.corpus, b.part_bytes);
    free(b.plan);
    b.plan = NULL;

    build_tokenize(&b);
    memset(stats, 0, 2 * sizeof *stats);
    int64_t bad_lines = build_choose_val(&b);
    ShardSums *written;
    int nwritten;
    build_assemble(&b, &written, &nwritten);
    if (b.rank == 0) {
        manifest_update(o->out_dir, written, nwritten);
        build_remove_work(o->out_dir);
    }
    shard_sums_free(written, nwritten);
    if (b.world > 1)
        MPI_Barrier(MPI_COMM_WORLD); /* no rank reports success before the manifest is there */
    tokenizer_free(b.tok);
    corpus_free(&b.corpus);
    free(b.parts);
    free(b.val);
    free(b.work);
    return bad_lines;
}
