/* inspect.c: `megadata info` and `megadata verify` (see inspect.h). */
#include "data/inspect.h"

#include "data/dataset.h"
#include "data/h5_check.h"
#include "data/manifest.h"
#include "data/shard.h"
#include "base/util.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
    fprintf(out, "dataset    %s\n", dir);
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
                fprintf(out,
                        "format     %s version %d, shards %s version %d\ntokenizer  %s (checksum %016" PRIx64 ")\n"
                        "vocab      %d\neod        %d\nbos        %d\n",
                        MANIFEST_FORMAT, MANIFEST_VERSION, SHARD_FORMAT, m.version, m.tokenizer, m.tokenizer_checksum,
                        m.vocab, m.eod, m.bos);
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
    const char *dir;
    Manifest mf; /* when have_mf */
    int have_mf;
    ShardMeta ref;  /* the first shard with readable metadata: all others must agree with it */
    char *ref_path; /* its path */
    int64_t *hist;  /* (ref.vocab) token counts of the current split, or NULL */
    uint32_t *buf;  /* (chunk tokens) */
    uint64_t *sums; /* (2, chunks of the current shard) their checksums: read, then the manifest's */
    uint64_t *docs; /* (the current shard's ndocs) */
    int64_t sums_cap, docs_cap; /* arrays grown in Verify lose nothing when data_try stops a shard */
} Verify;

typedef struct {
    Verify *v;
    char *path;
    const char *name, *split;
    ShardMeta m;
} VerifyJob;

static void verify_manifest(void *arg)
{
    Verify *v = arg;
    if (!manifest_open(v->dir, &v->mf))
        manifest_absent(v->dir);
    v->have_mf = 1;
}

/* doc_offsets increase and stay below n_tokens. */
static void verify_docs(Verify *v, const char *path, hid_t file, const ShardMeta *m)
{
    v->docs = data_grow(v->docs, &v->docs_cap, m->ndocs, sizeof *v->docs);
    hid_t d = H5_CHECK_AT(path, H5Dopen2(file, "doc_offsets", H5P_DEFAULT));
    H5_CHECK_AT(path, H5Dread(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v->docs));
    H5_CHECK_AT(path, H5Dclose(d));
    int64_t i = 0;
    while (i < m->ndocs && v->docs[i] < (uint64_t)m->ntokens && (i == 0 || v->docs[i] > v->docs[i - 1]))
        i++;
    if (i < m->ndocs)
        data_bad(path, "doc_offsets[%" PRId64 "] = %" PRIu64 " is not increasing and below n_tokens %" PRId64, i,
                 v->docs[i], m->ntokens);
}

static void verify_shard(void *arg)
{
    VerifyJob *j = arg;
    Verify *v = j->v;
    const char *path = j->path;
    if (v->have_mf)
        manifest_check_present(&v->mf, path, j->name);
    hid_t file = shard_open(path);
    shard_meta(path, file, j->split, &j->m);
    if (!v->ref_path) {
        v->ref = j->m;
        v->ref_path = xstrdup(path);
    } else {
        shard_meta_same(path, &j->m, v->ref_path, &v->ref);
    }
    int at = v->have_mf ? manifest_check_shard(&v->mf, path, j->name, &j->m) : -1;
    if (!v->hist && v->ref.vocab <= VERIFY_HIST_MAX)
        v->hist = xcalloc(v->ref.vocab, sizeof *v->hist);
    int64_t c = v->have_mf ? v->mf.chunk_tokens : MANIFEST_CHUNK, nc = (j->m.ntokens + c - 1) / c;
    v->sums = data_grow(v->sums, &v->sums_cap, 2 * nc, sizeof *v->sums);
    hid_t tokens = shard_tokens_open(path, file);
    uint64_t h = shard_scan(path, tokens, &j->m, c, v->buf, v->sums, v->hist);
    H5_CHECK_AT(path, H5Dclose(tokens));
    if (at >= 0) {
        manifest_chunk_sums(&v->mf, v->mf.chunk0[at], nc, v->sums + nc);
        for (int64_t k = 0; k < nc; k++)
            shard_check_chunk(path, c, k, v->sums[k], v->sums[nc + k], v->mf.path);
    }
    shard_check_checksum(path, &j->m, h);
    if (j->m.ndocs > 0)
        verify_docs(v, path, file, &j->m);
    H5_CHECK_AT(path, H5Fclose(file));
}

/* names (n of them, in stream order) with the shards that m lists and names lacks added in order,
   so verify reports each as missing. Returns the new count. */
static int verify_add_missing(const Manifest *m, ShardName **names, int n)
{
    ShardName *all = xmalloc((size_t)(n + m->n) * sizeof *all);
    int k = 0, i = 0;
    for (int j = 0; j < m->n; j++) {
        const char *name = manifest_name(m, j);
        while (i < n && shard_name_order((*names)[i].name, name) < 0)
            all[k++] = (*names)[i++];
        if (i < n && shard_name_order((*names)[i].name, name) == 0)
            continue;
        shard_name_parse(name, &all[k++]);
    }
    while (i < n)
        all[k++] = (*names)[i++];
    free(*names);
    *names = all;
    return k;
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
    Verify v = {.dir = dir};
    char msg[1024];
    if (!data_try(verify_manifest, &v, msg, sizeof msg)) {
        fprintf(err, "%s: error: %s\n", util_progname(), msg);
        manifest_close(&v.mf);
        nbad++;
    }
    if (v.have_mf)
        n = verify_add_missing(&v.mf, &names, n);
    v.buf = xmalloc((v.have_mf ? v.mf.chunk_tokens : MANIFEST_CHUNK) * sizeof *v.buf);
    for (int from = 0, to; from < n; from = to) {
        to = split_end(names, n, from);
        int bad = 0;
        int64_t tokens = 0, docs = 0;
        for (int i = from; i < to; i++) {
            VerifyJob j = {&v, xasprintf("%s/%s", dir, names[i].name), names[i].name, names[i].split, {0}};
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
    if (v.have_mf)
        manifest_close(&v.mf);
    free(v.ref_path);
    free(v.buf);
    free(v.sums);
    free(v.docs);
    shard_names_free(names, n);
    free(names);
    return nbad;
}
