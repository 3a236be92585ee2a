/* writer.c: streaming shard writer (see writer.h). Tokens are buffered one HDF5 chunk at a time
   and appended to the 'tokens' dataset; the attributes (n_tokens, checksum) and doc_offsets are
   written when the shard is complete. */
#include "data/writer.h"

#include "data/h5_check.h"
#include "data/shard.h"
#include "src/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WRITER_CHUNK (1 << 14) /* tokens per HDF5 chunk, the unit of every read: 32 KiB of uint16 */

struct ShardWriter {
    char *dir, *split, *tokenizer;
    int vocab, eod, width, number, nshards;
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
};

ShardWriter *shard_writer_open(const char *dir, const char *split, int first, int64_t shard_tokens,
                               const TokenFormat *fmt)
{
    if (shard_tokens < 1 || fmt->vocab < 1 || fmt->eod < -1 || fmt->eod >= fmt->vocab)
        fail("shard_writer_open: bad arguments (shard_tokens %lld, vocab %d, eod %d)", (long long)shard_tokens,
             fmt->vocab, fmt->eod);
    h5_init();
    ShardWriter *w = xcalloc(1, sizeof *w);
    w->dir = xstrdup(dir);
    w->split = xstrdup(split);
    w->tokenizer = xstrdup(fmt->tokenizer);
    w->vocab = fmt->vocab;
    w->eod = fmt->eod;
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
    const char *p = w->tmp_path;
    /* the 1.10 file format checksums all metadata, so corruption is reported, not misread */
    hid_t fapl = H5_CHECK_AT(p, H5Pcreate(H5P_FILE_ACCESS));
    H5_CHECK_AT(p, H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110));
    w->file = H5_CHECK_AT(p, H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, fapl));
    H5_CHECK_AT(p, H5Pclose(fapl));
    w->tokens = -1;
    w->n = w->flushed = w->ndocs = 0;
    w->checksum = UTIL_FNV_INIT;
}

/* Creation properties of both datasets: chunks of `chunk` elements, each with a Fletcher-32
   checksum that every read verifies. */
static hid_t writer_dcpl(const char *p, int64_t chunk)
{
    hsize_t dims[1] = {(hsize_t)(chunk > 0 ? chunk : 1)};
    hid_t dcpl = H5_CHECK_AT(p, H5Pcreate(H5P_DATASET_CREATE));
    H5_CHECK_AT(p, H5Pset_chunk(dcpl, 1, dims));
    H5_CHECK_AT(p, H5Pset_fletcher32(dcpl));
    return dcpl;
}

/* The extendible 'tokens' dataset. Created at the first flush: a shard that ends before its first
   chunk fills gets a chunk of its own size, not a mostly empty full one. */
static void writer_create_tokens(ShardWriter *w, int64_t chunk_tokens)
{
    const char *p = w->tmp_path;
    hsize_t dims[1] = {0}, maxdims[1] = {H5S_UNLIMITED};
    hid_t space = H5_CHECK_AT(p, H5Screate_simple(1, dims, maxdims));
    hid_t dcpl = writer_dcpl(p, chunk_tokens);
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
    w->flushed = w->n;
}

static void attr_write(const char *p, hid_t obj, const char *name, hid_t type, const void *value)
{
    hid_t space = H5_CHECK_AT(p, H5Screate(H5S_SCALAR));
    hid_t a = H5_CHECK_AT(p, H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT));
    H5_CHECK_AT(p, H5Awrite(a, type, value));
    H5_CHECK_AT(p, H5Aclose(a));
    H5_CHECK_AT(p, H5Sclose(space));
}

/* Fixed-length UTF-8: stored in the checksummed object header. (A variable-length string, as
   h5py writes a Python str, lives in the global heap, which has no checksum: HDF5 1.10 crashes on
   some corruptions there.) */
static void attr_write_str(const char *p, hid_t obj, const char *name, const char *value)
{
    hid_t type = H5_CHECK_AT(p, H5Tcopy(H5T_C_S1));
    H5_CHECK_AT(p, H5Tset_size(type, strlen(value) ? strlen(value) : 1)); /* HDF5 has no empty type */
    H5_CHECK_AT(p, H5Tset_strpad(type, H5T_STR_NULLPAD));
    H5_CHECK_AT(p, H5Tset_cset(type, H5T_CSET_UTF8));
    attr_write(p, obj, name, type, value);
    H5_CHECK_AT(p, H5Tclose(type));
}

static void attr_write_i64(const char *p, hid_t obj, const char *name, int64_t value)
{
    attr_write(p, obj, name, H5T_NATIVE_INT64, &value);
}

static void writer_finish_shard(ShardWriter *w)
{
    const char *p = w->tmp_path;
    writer_flush(w);
    H5_CHECK_AT(p, H5Dclose(w->tokens));
    if (w->track_docs) {
        hsize_t dims[1] = {(hsize_t)w->ndocs};
        hid_t space = H5_CHECK_AT(p, H5Screate_simple(1, dims, NULL));
        hid_t dcpl = writer_dcpl(p, w->ndocs < WRITER_CHUNK ? w->ndocs : WRITER_CHUNK);
        hid_t d =
            H5_CHECK_AT(p, H5Dcreate2(w->file, "doc_offsets", H5T_STD_U64LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
        if (w->ndocs)
            H5_CHECK_AT(p, H5Dwrite(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, w->docs));
        H5_CHECK_AT(p, H5Dclose(d));
        H5_CHECK_AT(p, H5Pclose(dcpl));
        H5_CHECK_AT(p, H5Sclose(space));
    }
    attr_write_str(p, w->file, "format", SHARD_FORMAT);
    attr_write_i64(p, w->file, "format_version", SHARD_FORMAT_VERSION);
    attr_write_i64(p, w->file, "vocab_size", w->vocab);
    attr_write_i64(p, w->file, "eod_id", w->eod);
    attr_write_str(p, w->file, "tokenizer", w->tokenizer);
    attr_write_str(p, w->file, "split", w->split);
    attr_write_i64(p, w->file, "n_tokens", w->n);
    attr_write(p, w->file, "checksum", H5T_NATIVE_UINT64, &w->checksum);
    H5_CHECK_AT(p, H5Fclose(w->file));
    if (rename(w->tmp_path, w->path) != 0)
        data_bad(w->path, "cannot rename %s to it: %s", w->tmp_path, strerror(errno));
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

void shard_writer_append(ShardWriter *w, const uint32_t *ids, int64_t n)
{
    while (n > 0) {
        if (w->file < 0)
            writer_start_shard(w);
        if (w->doc_pending) {
            if (w->ndocs == w->docs_cap) {
                w->docs_cap = w->docs_cap ? 2 * w->docs_cap : 64;
                w->docs = realloc(w->docs, w->docs_cap * sizeof *w->docs);
                if (!w->docs)
                    fail("out of memory for the document offsets of %s", w->path);
            }
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

int shard_writer_close(ShardWriter *w)
{
    if (w->file >= 0)
        writer_finish_shard(w);
    int nshards = w->nshards;
    free(w->dir);
    free(w->split);
    free(w->tokenizer);
    free(w->buf);
    free(w->docs);
    free(w);
    return nshards;
}
