/* inspect.c: `megadata info` and `megadata verify` (see inspect.h). */
#include "data/inspect.h"

#include "data/dataset.h"
#include "data/h5_check.h"
#include "data/shard.h"
#include "src/util.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define VERIFY_BLOCK (1 << 20)    /* tokens read at a time */
#define VERIFY_HIST_MAX (1 << 24) /* largest vocabulary whose unigram entropy verify reports */

/* Runs of shards of one split in the sorted list: [*from, return value). */
static int split_end(const ShardName *names, int n, int from)
{
    int to = from;
    while (to < n && strcmp(names[to].split, names[from].split) == 0)
        to++;
    return to;
}

void data_info(const char *dir, FILE *out)
{
    ShardName *names;
    int n = shard_list(dir, NULL, &names);
    if (n == 0)
        data_bad(dir, "no shard files (named <split>-NNNNN.h5)");
    fprintf(out, "dataset    %s\nformat     %s version %d\n", dir, SHARD_FORMAT, SHARD_FORMAT_VERSION);
    for (int from = 0, to; from < n; from = to) {
        to = split_end(names, n, from);
        int64_t docs = 0, bytes = 0;
        int width = 0;
        for (int i = from; i < to; i++) {
            char *path = xasprintf("%s/%s", dir, names[i].name);
            ShardMeta m;
            struct stat st;
            hid_t file = shard_open(path);
            shard_meta(path, file, names[i].split, &m);
            H5_CHECK_AT(path, H5Fclose(file));
            if (from == 0 && i == 0)
                fprintf(out, "tokenizer  %s\nvocab      %d\neod        %d\n", m.tokenizer, m.vocab, m.eod);
            docs = docs < 0 || m.ndocs < 0 ? -1 : docs + m.ndocs;
            bytes += stat(path, &st) == 0 ? st.st_size : 0;
            width = width && width != m.width ? -1 : m.width;
            free(path);
        }
        Dataset *ds = dataset_open(dir, names[from].split);
        fprintf(out, "split %s: %d shard%s, %" PRId64 " tokens, ", names[from].split, to - from,
                to - from == 1 ? "" : "s", dataset_ntokens(ds));
        if (docs >= 0)
            fprintf(out, "%" PRId64 " documents, ", docs);
        const char *type = width < 0 ? "mixed uint16/uint32" : width == 2 ? "uint16" : "uint32";
        fprintf(out, "%s, %" PRId64 " bytes, fingerprint %016" PRIx64 "\n", type, bytes, dataset_fingerprint(ds));
        dataset_close(ds);
    }
    shard_names_free(names, n);
    free(names);
}

/* What verify carries from shard to shard. */
typedef struct {
    ShardMeta ref; /* the first shard with readable metadata: all others must agree with it */
    int have_ref;
    int64_t *hist; /* (ref.vocab) token counts of the current split, or NULL */
    uint32_t *buf; /* (VERIFY_BLOCK) */
} Verify;

typedef struct {
    Verify *v;
    char *path;
    const char *split;
    ShardMeta m;
} VerifyJob;

static void verify_shard(void *arg)
{
    VerifyJob *j = arg;
    Verify *v = j->v;
    const char *path = j->path;
    hid_t file = shard_open(path);
    shard_meta(path, file, j->split, &j->m);
    if (!v->have_ref) {
        v->ref = j->m;
        v->have_ref = 1;
    } else if (j->m.vocab != v->ref.vocab || j->m.eod != v->ref.eod || strcmp(j->m.tokenizer, v->ref.tokenizer) != 0) {
        data_bad(path, "vocab_size %d, eod_id %d, tokenizer '%s' differ from the other shards' (%d, %d, '%s')",
                 j->m.vocab, j->m.eod, j->m.tokenizer, v->ref.vocab, v->ref.eod, v->ref.tokenizer);
    }
    if (!v->hist && v->ref.vocab <= VERIFY_HIST_MAX)
        v->hist = xcalloc(v->ref.vocab, sizeof *v->hist);
    hid_t tokens = shard_tokens_open(path, file);
    uint64_t h = UTIL_FNV_INIT;
    for (int64_t start = 0; start < j->m.ntokens; start += VERIFY_BLOCK) {
        int64_t n = j->m.ntokens - start < VERIFY_BLOCK ? j->m.ntokens - start : VERIFY_BLOCK;
        shard_read(path, tokens, j->m.vocab, start, n, v->buf);
        h = shard_checksum(v->buf, n, j->m.width, h);
        for (int64_t i = 0; v->hist && i < n; i++)
            v->hist[v->buf[i]]++;
    }
    H5_CHECK_AT(path, H5Dclose(tokens));
    if (h != j->m.checksum)
        data_bad(path, "checksum mismatch: the attribute says %016" PRIx64 ", the tokens give %016" PRIx64,
                 j->m.checksum, h);
    if (j->m.ndocs > 0) {
        uint64_t *docs = xmalloc(j->m.ndocs * sizeof *docs); /* (ndocs) */
        hid_t d = H5_CHECK_AT(path, H5Dopen2(file, "doc_offsets", H5P_DEFAULT));
        H5_CHECK_AT(path, H5Dread(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, docs));
        H5_CHECK_AT(path, H5Dclose(d));
        int64_t i = 0;
        while (i < j->m.ndocs && docs[i] < (uint64_t)j->m.ntokens && (i == 0 || docs[i] > docs[i - 1]))
            i++;
        uint64_t at = i < j->m.ndocs ? docs[i] : 0;
        free(docs);
        if (i < j->m.ndocs)
            data_bad(path, "doc_offsets[%" PRId64 "] = %" PRIu64 " is not increasing and below n_tokens %" PRId64, i,
                     at, j->m.ntokens);
    }
    H5_CHECK_AT(path, H5Fclose(file));
}

static double entropy_nats(const int64_t *hist, int n)
{
    double total = 0, h = 0;
    for (int i = 0; i < n; i++)
        total += (double)hist[i];
    for (int i = 0; i < n; i++)
        if (hist[i])
            h -= (double)hist[i] / total * log((double)hist[i] / total);
    return h;
}

int data_verify(const char *dir, FILE *out, FILE *err)
{
    ShardName *names;
    int n = shard_list(dir, NULL, &names), nbad = 0;
    if (n == 0)
        data_bad(dir, "no shard files (named <split>-NNNNN.h5)");
    Verify v = {.buf = xmalloc(VERIFY_BLOCK * sizeof *v.buf)};
    for (int from = 0, to; from < n; from = to) {
        to = split_end(names, n, from);
        int bad = 0;
        int64_t tokens = 0, docs = 0;
        for (int i = from; i < to; i++) {
            VerifyJob j = {&v, xasprintf("%s/%s", dir, names[i].name), names[i].split, {0}};
            char msg[1024];
            if (data_try(verify_shard, &j, msg, sizeof msg)) {
                tokens += j.m.ntokens;
                docs = docs < 0 || j.m.ndocs < 0 ? -1 : docs + j.m.ndocs;
            } else {
                fprintf(err, "%s: error: %s\n", util_progname(), msg);
                bad++;
            }
            free(j.path);
        }
        fprintf(out, "split %s: %d shard%s, %" PRId64 " tokens", names[from].split, to - from,
                to - from == 1 ? "" : "s", tokens);
        if (docs >= 0)
            fprintf(out, ", %" PRId64 " documents", docs);
        if (bad)
            fprintf(out, ": %d BAD\n", bad);
        else if (v.hist)
            fprintf(out, ", unigram entropy %.4f nats: ok\n", entropy_nats(v.hist, v.ref.vocab));
        else
            fprintf(out, ": ok\n");
        nbad += bad;
        free(v.hist);
        v.hist = NULL;
    }
    free(v.buf);
    shard_names_free(names, n);
    free(names);
    return nbad;
}
