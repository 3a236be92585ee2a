/* writer.c: streaming shard writer (see writer.h). Tokens are buffered one HDF5 chunk at a time
   and appended to the 'tokens' dataset, each chunk's checksum kept for the manifest; the
   attributes (n_tokens, checksum) and doc_offsets are written when the shard is complete. */
#include "data/writer.h"

#include "data/h5_check.h"
#include "data/manifest.h"
#include "data/shard.h"
#include "base/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* tokens per HDF5 chunk, the unit of every read (32 KiB of uint16): the chunk a manifest checksums,
   so checking one reads one */
#define WRITER_CHUNK MANIFEST_CHUNK

struct ShardWriter {
    char *dir, *split, *tokenizer;
    int vocab, eod, bos, width, number, nshards;
    uint64_t tokenizer_checksum;
    int64_t shard_tokens, chunk;
    /* the shard being written (file < 0: none) */
    char *path, *tmp_path;
    hid_t file, tokens;
    int64_t n, flushed; /* tokens appended, tokens already in the file */
    uint64_t checksum;
    uint32_t *buf; /* (chunk) tokens n - flushed not yet in the file */
    uint64_t *docs;
    int64_t ndocs, docs_cap;
    int track_docs, doc_pending;
    uint64_t *sums; /* (nsums) checksums of the chunks flushed */
    int64_t nsums, sums_cap;
    ShardSums *done; /* (nshards) the shards written, with their chunk checksums */
    int64_t done_cap;
};

ShardWriter *shard_writer_open(const char *dir, const char *split, int first, int64_t shard_tokens,
                               const TokenFormat *fmt)
{
    if (shard_tokens < 1 || fmt->vocab < 1 || fmt->eod < -1 || fmt->eod >= fmt->vocab || fmt->bos < -1 ||
        fmt->bos >= fmt->vocab)
        fail("shard_writer_open: bad arguments (shard_tokens %lld, vocab %d, eod %d, bos %d)", (long long)shard_tokens,
             fmt->vocab, fmt->eod, fmt->bos);
    h5_init();
    ShardWriter *w = xcalloc(1, sizeof *w);
    w->dir = xstrdup(dir);
    w->split = xstrdup(split);
    w->tokenizer = xstrdup(fmt->tokenizer);
    w->vocab = fmt->vocab;
    w->eod = fmt->eod;
    w->bos = fmt->bos;
    w->tokenizer_checksum = fmt->tokenizer_checksum;
    w->width = fmt->vocab <= 65536 ? 2 : 4;
    w->number = first;
    w->shard_tokens = shard_tokens;
    w->chunk = shard_tokens < WRITER_CHUNK ? shard_tokens : WRITER_CHUNK;
    w->buf = xmalloc(w->chunk * sizeof *w->buf);
    w->file = -1;
    return w;
}

static void writer_start_shard(ShardWriter *w)
{
    w->path = xasprintf("%s/%s-%05d.h5", w->dir, w->split, w->number++);
    w->tmp_path = xasprintf("%s.tmp", w->path);
    if (access(w->path, F_OK) == 0)
        data_bad(w->path, "shard exists already; not overwriting it");
    w->file = h5_create(w->tmp_path);
    w->tokens = -1;
    w->n = w->flushed = w->ndocs = 0;
    w->checksum = UTIL_FNV_INIT;
}

/* The extendible 'tokens' dataset. Created at the first flush: a shard that ends before its first
   chunk fills gets a chunk of its own size, not a mostly empty full one. */
static void writer_create_tokens(ShardWriter *w, int64_t chunk_tokens)
{
    const char *p = w->tmp_path;
    hsize_t dims[1] = {0}, maxdims[1] = {H5S_UNLIMITED};
    hid_t space = H5_CHECK_AT(p, H5Screate_simple(1, dims, maxdims));
    hid_t dcpl = h5_dcpl(p, chunk_tokens);
    hid_t type = w->width == 2 ? H5T_STD_U16LE : H5T_STD_U32LE;
    w->tokens = H5_CHECK_AT(p, H5Dcreate2(w->file, "tokens", type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    H5_CHECK_AT(p, H5Pclose(dcpl));
    H5_CHECK_AT(p, H5Sclose(space));
}

static void writer_flush(ShardWriter *w)
{
    const char *p = w->tmp_path;
    hsize_t off[1] = {(hsize_t)w->flushed}, count[1] = {(hsize_t)(w->n - w->flushed)}, size[1] = {(hsize_t)w->n};
    if (count[0] == 0)
        return;
    if (w->tokens < 0)
        writer_create_tokens(w, (int64_t)count[0]);
    H5_CHECK_AT(p, H5Dset_extent(w->tokens, size));
    hid_t fspace = H5_CHECK_AT(p, H5Dget_space(w->tokens));
    hid_t mspace = H5_CHECK_AT(p, H5Screate_simple(1, count, NULL));
    H5_CHECK_AT(p, H5Sselect_hyperslab(fspace, H5S_SELECT_SET, off, NULL, count, NULL));
    H5_CHECK_AT(p, H5Dwrite(w->tokens, H5T_NATIVE_UINT32, mspace, fspace, H5P_DEFAULT, w->buf));
    H5_CHECK_AT(p, H5Sclose(mspace));
    H5_CHECK_AT(p, H5Sclose(fspace));
    /* every flush but a shard's last is one chunk of WRITER_CHUNK = MANIFEST_CHUNK tokens */
    w->sums = data_grow(w->sums, &w->sums_cap, w->nsums + 1, sizeof *w->sums);
    w->sums[w->nsums++] = shard_checksum(w->buf, (int64_t)count[0], w->width, UTIL_FNV_INIT);
    w->flushed = w->n;
}

static void writer_finish_shard(ShardWriter *w)
{
    const char *p = w->tmp_path;
    writer_flush(w);
    H5_CHECK_AT(p, H5Dclose(w->tokens));
    if (w->track_docs)
        h5_write_array(p, w->file, "doc_offsets", H5T_STD_U64LE, H5T_NATIVE_UINT64, w->ndocs, w->docs);
    h5_attr_write_str(p, w->file, "format", SHARD_FORMAT);
    h5_attr_write_i64(p, w->file, "format_version", SHARD_FORMAT_VERSION);
    h5_attr_write_i64(p, w->file, "vocab_size", w->vocab);
    h5_attr_write_i64(p, w->file, "eod_id", w->eod);
    h5_attr_write_i64(p, w->file, "bos_id", w->bos);
    h5_attr_write_str(p, w->file, "tokenizer", w->tokenizer);
    h5_attr_write(p, w->file, "tokenizer_checksum", H5T_NATIVE_UINT64, &w->tokenizer_checksum);
    h5_attr_write_str(p, w->file, "split", w->split);
    h5_attr_write_i64(p, w->file, "n_tokens", w->n);
    h5_attr_write(p, w->file, "checksum", H5T_NATIVE_UINT64, &w->checksum);
    H5_CHECK_AT(p, H5Fclose(w->file));
    if (rename(w->tmp_path, w->path) != 0)
        data_bad(w->path, "cannot rename %s to it: %s", w->tmp_path, strerror(errno));
    w->done = data_grow(w->done, &w->done_cap, w->nshards + 1, sizeof *w->done);
    w->done[w->nshards] = (ShardSums){xstrdup(strrchr(w->path, '/') + 1), w->nsums, w->sums};
    w->sums = NULL;
    w->nsums = w->sums_cap = 0;
    free(w->path);
    free(w->tmp_path);
    w->file = -1;
    w->nshards++;
}

void shard_writer_doc(ShardWriter *w)
{
    w->track_docs = 1;
    w->doc_pending = 1;
}

void shard_writer_track_docs(ShardWriter *w) { w->track_docs = 1; }

void shard_writer_append(ShardWriter *w, const uint32_t *ids, int64_t n)
{
    while (n > 0) {
        if (w->file < 0)
            writer_start_shard(w);
        if (w->doc_pending) {
            w->docs = data_grow(w->docs, &w->docs_cap, w->ndocs + 1, sizeof *w->docs);
            w->docs[w->ndocs++] = (uint64_t)w->n;
            w->doc_pending = 0;
        }
        int64_t room = w->chunk - (w->n - w->flushed), left = w->shard_tokens - w->n;
        int64_t m = n < room ? n : room;
        m = m < left ? m : left;
        for (int64_t i = 0; i < m; i++)
            if (ids[i] >= (uint32_t)w->vocab)
                fail("shard_writer_append: id %u is not below vocab %d (%s)", ids[i], w->vocab, w->path);
        memcpy(w->buf + (w->n - w->flushed), ids, m * sizeof *ids);
        w->checksum = shard_checksum(ids, m, w->width, w->checksum);
        w->n += m;
        ids += m;
        n -= m;
        if (w->n == w->shard_tokens)
            writer_finish_shard(w);
        else if (w->n - w->flushed == w->chunk)
            writer_flush(w);
    }
}

int shard_writer_close(ShardWriter *w, ShardSums **written, int *nwritten)
{
    if (w->file >= 0)
        writer_finish_shard(w);
    int nshards = w->nshards;
    int64_t cap = *nwritten;
    *written = data_grow(*written, &cap, *nwritten + nshards, sizeof **written);
    if (nshards) /* an empty split has written none, and w->done is NULL */
        memcpy(*written + *nwritten, w->done, nshards * sizeof **written);
    *nwritten += nshards;
    free(w->done);
    free(w->dir);
    free(w->split);
    free(w->tokenizer);
    free(w->buf);
    free(w->docs);
    free(w);
    return nshards;
}
