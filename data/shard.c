/* shard.c: shard names, metadata, token reads and checksum (see shard.h). */
#include "data/shard.h"

#include "data/h5_check.h"
#include "data/tokenizer.h"
#include "base/util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Where the number of a shard file name <split>-<digits>.h5 starts, or 0 when name is not one. */
static size_t name_number_at(const char *name)
{
    size_t len = strlen(name);
    if (len < 6 || strcmp(name + len - 3, ".h5") != 0)
        return 0;
    size_t digits_end = len - 3, dash = digits_end;
    while (dash > 0 && isdigit((unsigned char)name[dash - 1]))
        dash--;
    if (dash == digits_end || digits_end - dash > 9 || dash < 2 || name[dash - 1] != '-')
        return 0;
    for (size_t i = 0; i + 1 < dash; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '_')
            return 0;
    return dash;
}

int shard_name_parse(const char *name, ShardName *out)
{
    size_t at = name_number_at(name);
    if (at && out) {
        out->name = xstrdup(name);
        out->split = xasprintf("%.*s", (int)(at - 1), name);
        out->number = strtol(name + at, NULL, 10);
    }
    return at > 0;
}

int shard_name_is_tmp(const char *name)
{
    size_t len = strlen(name);
    if (len < 5 || strcmp(name + len - 4, ".tmp") != 0)
        return 0;
    char *base = xasprintf("%.*s", (int)(len - 4), name);
    int ok = shard_name_parse(base, NULL);
    free(base);
    return ok;
}

int shard_name_order(const char *a, const char *b)
{
    size_t at_a = name_number_at(a), at_b = name_number_at(b);
    int c = strncmp(a, b, (at_a < at_b ? at_a : at_b) - 1);
    if (c || at_a != at_b)
        return c ? c : at_a < at_b ? -1 : 1; /* one split a prefix of the other: the shorter first */
    long na = strtol(a + at_a, NULL, 10), nb = strtol(b + at_b, NULL, 10);
    return na < nb ? -1 : na > nb;
}

static int shard_name_cmp(const void *pa, const void *pb)
{
    return shard_name_order(((const ShardName *)pa)->name, ((const ShardName *)pb)->name);
}

int shard_list(const char *dir, const char *split, ShardName **names)
{
    DIR *d = opendir(dir);
    if (!d)
        data_bad(dir, "cannot open the dataset folder: %s", strerror(errno));
    int n = 0, cap = 16;
    ShardName *v = xmalloc(cap * sizeof *v);
    struct dirent *e;
    while ((e = readdir(d))) {
        ShardName s;
        if (!shard_name_parse(e->d_name, &s))
            continue;
        if (split && strcmp(s.split, split) != 0) {
            shard_names_free(&s, 1);
            continue;
        }
        if (n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
            if (!v)
                fail("out of memory listing %s", dir);
        }
        v[n++] = s;
    }
    closedir(d);
    qsort(v, n, sizeof *v, shard_name_cmp);
    for (int i = 1; i < n; i++)
        if (shard_name_cmp(&v[i - 1], &v[i]) == 0)
            data_bad(dir, "%s and %s have the same shard number", v[i - 1].name, v[i].name);
    *names = v;
    return n;
}

void shard_names_free(ShardName *names, int n)
{
    for (int i = 0; i < n; i++) {
        free(names[i].name);
        free(names[i].split);
    }
}

hid_t shard_open(const char *path)
{
    h5_init();
    h5_check_regular(path);
    hid_t fapl = H5_CHECK_AT(path, H5Pcreate(H5P_FILE_ACCESS));
    H5_CHECK_AT(path, H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG));
    h5_guard_on(path);
    hid_t file = H5_CHECK_AT(path, H5Fopen(path, H5F_ACC_RDONLY, fapl));
    h5_guard_off();
    H5_CHECK_AT(path, H5Pclose(fapl));
    return file;
}

/* what shard_meta reads, under the guard: a shard's metadata is not sealed (h5_guard_on) */
static void shard_meta_read(const char *path, hid_t file, const char *split, ShardMeta *m)
{
    char text[SHARD_NAME_MAX];
    int64_t version, vocab, eod, ntokens;
    h5_attr_str(path, file, "format", text, sizeof text);
    if (strcmp(text, SHARD_FORMAT) != 0)
        data_bad(path, "attribute 'format' is '%s', expected '%s'", text, SHARD_FORMAT);
    h5_attr_int(path, file, "format_version", H5T_NATIVE_INT64, &version);
    if (version != 1 && version != SHARD_FORMAT_VERSION)
        data_bad(path, "format_version %lld, this megatrain reads versions 1 to %d", (long long)version,
                 SHARD_FORMAT_VERSION);
    m->version = (int)version;
    h5_attr_int(path, file, "vocab_size", H5T_NATIVE_INT64, &vocab);
    h5_attr_int(path, file, "eod_id", H5T_NATIVE_INT64, &eod);
    if (vocab < 1 || vocab > INT32_MAX)
        data_bad(path, "vocab_size %lld is out of range [1, %d]", (long long)vocab, INT32_MAX);
    if (eod < -1 || eod >= vocab)
        data_bad(path, "eod_id %lld should be -1 or below vocab_size %lld", (long long)eod, (long long)vocab);
    m->vocab = (int)vocab;
    m->eod = (int)eod;
    m->bos = -1;
    m->tokenizer_checksum = 0;
    if (version >= 2) {
        int64_t bos;
        h5_attr_int(path, file, "bos_id", H5T_NATIVE_INT64, &bos);
        if (bos < -1 || bos >= vocab)
            data_bad(path, "bos_id %lld should be -1 or below vocab_size %lld", (long long)bos, (long long)vocab);
        m->bos = (int)bos;
        h5_attr_int(path, file, "tokenizer_checksum", H5T_NATIVE_UINT64, &m->tokenizer_checksum);
    }
    h5_attr_str(path, file, "tokenizer", m->tokenizer, sizeof m->tokenizer);
    if (strcmp(m->tokenizer, TOKENIZER_BYTES) == 0 && (vocab != BYTES_VOCAB || eod != BYTES_EOD))
        data_bad(path, "tokenizer 'bytes' needs vocab_size %d and eod_id %d, not %lld and %lld", BYTES_VOCAB, BYTES_EOD,
                 (long long)vocab, (long long)eod);
    h5_attr_str(path, file, "split", text, sizeof text);
    if (strcmp(text, split) != 0)
        data_bad(path, "attribute 'split' is '%s' but the file name says '%s'", text, split);
    h5_attr_int(path, file, "n_tokens", H5T_NATIVE_INT64, &ntokens);
    h5_attr_int(path, file, "checksum", H5T_NATIVE_UINT64, &m->checksum);

    if (!H5_CHECK_AT(path, H5Lexists(file, "tokens", H5P_DEFAULT)))
        data_bad(path, "no 'tokens' dataset");
    hid_t tokens = shard_tokens_open(path, file);
    m->ntokens = h5_array_length(path, tokens, "tokens", &m->width);
    H5_CHECK_AT(path, H5Dclose(tokens));
    if (m->width != 2 && m->width != 4)
        data_bad(path, "'tokens' holds %d-byte integers, expected uint16 or uint32", m->width);
    if (m->ntokens > SHARD_TOKENS_MAX)
        data_bad(path, "'tokens' holds %lld tokens, more than a shard may (%lld)", (long long)m->ntokens,
                 SHARD_TOKENS_MAX);
    if (ntokens != m->ntokens)
        data_bad(path, "attribute n_tokens is %lld but 'tokens' holds %lld", (long long)ntokens, (long long)m->ntokens);
    m->ndocs = -1;
    if (H5_CHECK_AT(path, H5Lexists(file, "doc_offsets", H5P_DEFAULT))) {
        int width;
        hid_t docs = H5_CHECK_AT(path, H5Dopen2(file, "doc_offsets", H5P_DEFAULT));
        m->ndocs = h5_array_length(path, docs, "doc_offsets", &width);
        H5_CHECK_AT(path, H5Dclose(docs));
    }
}

void shard_meta(const char *path, hid_t file, const char *split, ShardMeta *m)
{
    h5_guard_on(path);
    shard_meta_read(path, file, split, m);
    h5_guard_off();
}

void shard_meta_same(const char *path, const ShardMeta *m, const char *ref_path, const ShardMeta *ref)
{
    if (m->vocab != ref->vocab || m->eod != ref->eod || m->bos != ref->bos ||
        strcmp(m->tokenizer, ref->tokenizer) != 0 || m->tokenizer_checksum != ref->tokenizer_checksum)
        data_bad(path,
                 "vocab_size %d, eod_id %d, bos_id %d, tokenizer '%s' (checksum %016" PRIx64
                 ") differ from %s (%d, %d, %d, '%s', %016" PRIx64 ")",
                 m->vocab, m->eod, m->bos, m->tokenizer, m->tokenizer_checksum, ref_path, ref->vocab, ref->eod,
                 ref->bos, ref->tokenizer, ref->tokenizer_checksum);
}

hid_t shard_tokens_open(const char *path, hid_t file)
{
    return H5_CHECK_AT(path, H5Dopen2(file, "tokens", H5P_DEFAULT));
}

/* Tokens [start, start + n), n > 0, into out, each checked to be < vocab; an HDF5 error names the
   tokens, and chunk k of chunk_tokens when k >= 0. */
static void read_ids(const char *path, hid_t tokens, int vocab, int64_t start, int64_t n, uint32_t *out, int64_t k)
{
    hsize_t off[1] = {(hsize_t)start}, count[1] = {(hsize_t)n};
    hid_t fspace = H5_CHECK_AT(path, H5Dget_space(tokens));
    hid_t mspace = H5_CHECK_AT(path, H5Screate_simple(1, count, NULL));
    H5_CHECK_AT(path, H5Sselect_hyperslab(fspace, H5S_SELECT_SET, off, NULL, count, NULL));
    h5_guard_on(path); /* a damaged chunk index (unsealed, like the rest) */
    const herr_t rc = H5Dread(tokens, H5T_NATIVE_UINT32, mspace, fspace, H5P_DEFAULT, out);
    h5_guard_off();
    if (rc < 0) {
        char where[96];
        int at = k >= 0 ? snprintf(where, sizeof where, "chunk %lld, ", (long long)k) : 0;
        snprintf(where + at, sizeof where - at, "tokens %lld..%lld", (long long)start, (long long)(start + n - 1));
        h5_fail(path, "H5Dread", where);
    }
    H5_CHECK_AT(path, H5Sclose(mspace));
    H5_CHECK_AT(path, H5Sclose(fspace));
    for (int64_t i = 0; i < n; i++)
        if (out[i] >= (uint32_t)vocab)
            data_bad(path, "token %lld is %u, not below vocab_size %d", (long long)(start + i), out[i], vocab);
}

void shard_read(const char *path, hid_t tokens, int vocab, int64_t start, int64_t n, uint32_t *out)
{
    if (n > 0)
        read_ids(path, tokens, vocab, start, n, out, -1);
}

/* FNV-1a 64 continued over id as `width` little-endian bytes (util_fnv1a's, inlined: verify and
   the manifest hash every token twice, a chunk's hash and the shard's). */
static inline uint64_t fnv_id(uint64_t h, uint32_t id, int width)
{
    for (int b = 0; b < width; b++, id >>= 8)
        h = (h ^ (id & 0xff)) * 0x100000001b3ULL;
    return h;
}

uint64_t shard_checksum(const uint32_t *ids, int64_t n, int width, uint64_t h)
{
    for (int64_t i = 0; i < n; i++)
        h = fnv_id(h, ids[i], width);
    return h;
}

/* Tokens in chunk k. */
static int64_t chunk_length(const ShardMeta *m, int64_t chunk_tokens, int64_t k)
{
    int64_t left = m->ntokens - k * chunk_tokens;
    return left < chunk_tokens ? left : chunk_tokens;
}

uint64_t shard_read_chunk(const char *path, hid_t tokens, const ShardMeta *m, int64_t chunk_tokens, int64_t k,
                          uint32_t *buf)
{
    int64_t n = chunk_length(m, chunk_tokens, k);
    read_ids(path, tokens, m->vocab, k * chunk_tokens, n, buf, k);
    return shard_checksum(buf, n, m->width, UTIL_FNV_INIT);
}

uint64_t shard_scan(const char *path, hid_t tokens, const ShardMeta *m, int64_t chunk_tokens, uint32_t *buf,
                    uint64_t *sums, int64_t *hist)
{
    uint64_t h = UTIL_FNV_INIT;
    for (int64_t k = 0; k * chunk_tokens < m->ntokens; k++) {
        int64_t n = chunk_length(m, chunk_tokens, k);
        uint64_t hk = UTIL_FNV_INIT;
        read_ids(path, tokens, m->vocab, k * chunk_tokens, n, buf, k);
        for (int64_t i = 0; i < n; i++) { /* two independent chains: the CPU runs them side by side */
            hk = fnv_id(hk, buf[i], m->width);
            h = fnv_id(h, buf[i], m->width);
        }
        for (int64_t i = 0; hist && i < n; i++)
            hist[buf[i]]++;
        sums[k] = hk;
    }
    return h;
}

void shard_check_checksum(const char *path, const ShardMeta *m, uint64_t h)
{
    if (h != m->checksum)
        data_bad(path, "checksum mismatch: the attribute says %016" PRIx64 ", the tokens give %016" PRIx64, m->checksum,
                 h);
}

void shard_check_chunk(const char *path, int64_t chunk_tokens, int64_t k, uint64_t got, uint64_t want,
                       const char *listed_in)
{
    if (got != want)
        data_bad(path,
                 "chunk %" PRId64 " (tokens from %" PRId64 ") has checksum %016" PRIx64 ", but %s lists %016" PRIx64
                 ": its tokens changed after the manifest was written",
                 k, k * chunk_tokens, got, listed_in, want);
}
