/* manifest.c: the dataset manifest (see manifest.h). Its four arrays (shard names, token counts,
   checksums, chunk checksums) are stored in Fletcher-32 checksummed chunks, its attributes in the
   checksummed object header of the HDF5 1.10 format. */
#include "data/manifest.h"

#include "data/h5_check.h"
#include "base/util.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST_SHARDS_MAX (1 << 20) /* shards a manifest may list */
#define MANIFEST_CHUNK_MAX (1 << 24)  /* largest chunk_tokens read: a chunk is read whole */
#define MANIFEST_NAME_MAX 256         /* longest shard name */

/* The 1-D array `name` of the manifest; *n gets its length. Integer arrays are unsigned. */
static hid_t open_array(const Manifest *m, const char *name, int64_t *n)
{
    const char *p = m->path;
    if (!H5_CHECK_AT(p, H5Lexists(m->file, name, H5P_DEFAULT)))
        data_bad(p, "no '%s' array", name);
    hid_t d = H5_CHECK_AT(p, H5Dopen2(m->file, name, H5P_DEFAULT));
    int width;
    if (strcmp(name, "shards") != 0) {
        *n = h5_array_length(p, d, name, &width);
        return d;
    }
    hid_t type = H5_CHECK_AT(p, H5Dget_type(d)), space = H5_CHECK_AT(p, H5Dget_space(d));
    hsize_t dims[1] = {0};
    int ok = H5_CHECK_AT(p, H5Tget_class(type)) == H5T_STRING && !H5_CHECK_AT(p, H5Tis_variable_str(type)) &&
             H5_CHECK_AT(p, H5Sget_simple_extent_ndims(space)) == 1;
    if (ok)
        H5_CHECK_AT(p, H5Sget_simple_extent_dims(space, dims, NULL));
    H5_CHECK_AT(p, H5Tclose(type));
    H5_CHECK_AT(p, H5Sclose(space));
    if (!ok)
        data_bad(p, "'shards' should be a 1-D array of fixed-length strings");
    *n = (int64_t)dims[0];
    return d;
}

/* The shard names, each checked to be one, in strictly increasing stream order. */
static void read_names(Manifest *m, hid_t d)
{
    const char *p = m->path;
    hid_t type = H5_CHECK_AT(p, H5Dget_type(d));
    size_t size = H5Tget_size(type);
    H5_CHECK_AT(p, H5Tclose(type));
    if (size < 1 || size > MANIFEST_NAME_MAX)
        data_bad(p, "'shards' holds strings of %zu bytes, expected 1 to %d", size, MANIFEST_NAME_MAX);
    m->name_size = size + 1;
    m->names = xcalloc((size_t)m->n + 1, m->name_size);
    hid_t mem = H5_CHECK_AT(p, H5Tcopy(H5T_C_S1));
    H5_CHECK_AT(p, H5Tset_size(mem, m->name_size));
    H5_CHECK_AT(p, H5Tset_strpad(mem, H5T_STR_NULLTERM));
    if (m->n)
        H5_CHECK_AT(p, H5Dread(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, m->names));
    H5_CHECK_AT(p, H5Tclose(mem));
    for (int i = 0; i < m->n; i++) {
        const char *name = manifest_name(m, i);
        if (!shard_name_parse(name, NULL))
            data_bad(p, "shards[%d] is '%s', not a shard file name <split>-NNNNN.h5", i, name);
        if (i > 0 && shard_name_order(manifest_name(m, i - 1), name) >= 0)
            data_bad(p, "shards[%d] '%s' does not come after '%s'", i, name, manifest_name(m, i - 1));
    }
}

/* A whole integer array of n elements into out (memory type mtype). */
static void read_ints(const Manifest *m, const char *name, int64_t n, hid_t mtype, void *out)
{
    int64_t len;
    hid_t d = open_array(m, name, &len);
    if (len != n)
        data_bad(m->path, "'%s' has %" PRId64 " elements, 'shards' %" PRId64, name, len, n);
    if (n)
        H5_CHECK_AT(m->path, H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out));
    H5_CHECK_AT(m->path, H5Dclose(d));
}

int manifest_open(const char *dir, Manifest *m)
{
    struct stat st;
    memset(m, 0, sizeof *m);
    m->dir = xstrdup(dir);
    m->path = xasprintf("%s/%s", dir, MANIFEST_FILE);
    if (lstat(m->path, &st) != 0 && errno == ENOENT) {
        manifest_close(m);
        return 0;
    }
    const char *p = m->path;
    char format[SHARD_NAME_MAX];
    int64_t version, n;
    m->file = shard_open(p); /* as a shard is: read-only, a regular file only */
    h5_guard_on(p);
    h5_attr_str(p, m->file, "format", format, sizeof format);
    if (strcmp(format, MANIFEST_FORMAT) != 0)
        data_bad(p, "attribute 'format' is '%s', expected '%s'", format, MANIFEST_FORMAT);
    h5_attr_int(p, m->file, "format_version", H5T_NATIVE_INT64, &version);
    if (version != MANIFEST_VERSION)
        data_bad(p, "format_version %" PRId64 ", this megatrain reads version %d", version, MANIFEST_VERSION);
    h5_attr_int(p, m->file, "chunk_tokens", H5T_NATIVE_INT64, &m->chunk_tokens);
    if (m->chunk_tokens < 1 || m->chunk_tokens > MANIFEST_CHUNK_MAX)
        data_bad(p, "chunk_tokens %" PRId64 " is out of range [1, %d]", m->chunk_tokens, MANIFEST_CHUNK_MAX);
    hid_t d = open_array(m, "shards", &n);
    if (n > MANIFEST_SHARDS_MAX)
        data_bad(p, "lists %" PRId64 " shards, more than %d", n, MANIFEST_SHARDS_MAX);
    m->n = (int)n;
    read_names(m, d);
    H5_CHECK_AT(p, H5Dclose(d));
    m->ntokens = xmalloc((n + 1) * sizeof *m->ntokens);
    m->checksums = xmalloc((n + 1) * sizeof *m->checksums);
    m->chunk0 = xmalloc((n + 1) * sizeof *m->chunk0);
    read_ints(m, "n_tokens", n, H5T_NATIVE_INT64, m->ntokens);
    read_ints(m, "checksums", n, H5T_NATIVE_UINT64, m->checksums);
    m->chunk0[0] = 0;
    for (int i = 0; i < m->n; i++) {
        if (m->ntokens[i] < 0 || m->ntokens[i] > SHARD_TOKENS_MAX)
            data_bad(p, "n_tokens[%d] = %" PRId64 " is out of range [0, %lld]", i, m->ntokens[i], SHARD_TOKENS_MAX);
        m->chunk0[i + 1] = m->chunk0[i] + (m->ntokens[i] + m->chunk_tokens - 1) / m->chunk_tokens;
    }
    int64_t nsums;
    m->sums = open_array(m, "chunk_checksums", &nsums);
    if (nsums != m->chunk0[m->n])
        data_bad(p, "'chunk_checksums' has %" PRId64 " elements, but the shards' n_tokens make %" PRId64
                    " chunks of %" PRId64 " tokens",
                 nsums, m->chunk0[m->n], m->chunk_tokens);
    h5_guard_off();
    return 1;
}

void manifest_close(Manifest *m)
{
    /* after a data_try that stopped, the ids are closed already */
    if (m->sums > 0 && H5Iis_valid(m->sums) > 0)
        H5_CHECK_AT(m->path, H5Dclose(m->sums));
    if (m->file > 0 && H5Iis_valid(m->file) > 0)
        H5_CHECK_AT(m->path, H5Fclose(m->file));
    free(m->dir);
    free(m->path);
    free(m->names);
    free(m->ntokens);
    free(m->checksums);
    free(m->chunk0);
    memset(m, 0, sizeof *m);
}

void manifest_absent(const char *dir)
{
    char *work = xasprintf("%s/%s", dir, DATASET_BUILD_DIR);
    int unfinished = access(work, F_OK) == 0;
    free(work);
    if (unfinished)
        data_bad(dir, "no %s: a megadata build was interrupted here (%s/%s holds its state): run it again with "
                      "--resume to finish it",
                 MANIFEST_FILE, dir, DATASET_BUILD_DIR);
    data_bad(dir,
             "no %s, the list of the dataset's shards and checksums (a dataset of format version 1 has none): "
             "`megadata manifest %s` checks every shard and writes it",
             MANIFEST_FILE, dir);
}

int manifest_find(const Manifest *m, const char *name)
{
    int lo = 0, hi = m->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = shard_name_order(manifest_name(m, mid), name);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

void manifest_check_present(const Manifest *m, const char *path, const char *name)
{
    struct stat st;
    if (manifest_find(m, name) >= 0 && lstat(path, &st) != 0 && errno == ENOENT)
        data_bad(path, "missing: %s lists it", m->path);
}

/* Whether shard file name `name` is of split. */
static int in_split(const char *name, const char *split)
{
    size_t len = strlen(split);
    return strncmp(name, split, len) == 0 && name[len] == '-';
}

void manifest_check_all_present(const Manifest *m, const char *split)
{
    for (int i = 0; i < m->n; i++) {
        char path[PATH_MAX];
        if (split && !in_split(manifest_name(m, i), split))
            continue;
        snprintf(path, sizeof path, "%s/%s", m->dir, manifest_name(m, i));
        manifest_check_present(m, path, manifest_name(m, i));
    }
}

int manifest_check_shard(const Manifest *m, const char *path, const char *name, const ShardMeta *meta)
{
    int i = manifest_find(m, name);
    if (i < 0)
        data_bad(path, "not listed in %s (`megadata manifest %s` checks new shards and adds them)", m->path, m->dir);
    if (meta->ntokens != m->ntokens[i] || meta->checksum != m->checksums[i])
        data_bad(path,
                 "holds %" PRId64 " tokens with checksum %016" PRIx64 ", but %s lists %" PRId64
                 " with checksum %016" PRIx64 ": the shard changed after the manifest was written",
                 meta->ntokens, meta->checksum, m->path, m->ntokens[i], m->checksums[i]);
    return i;
}

void manifest_chunk_sums(const Manifest *m, int64_t first, int64_t n, uint64_t *out)
{
    const char *p = m->path;
    if (first < 0 || n < 0 || first + n > m->chunk0[m->n])
        fail("manifest_chunk_sums: chunks [%lld, %lld) of %lld", (long long)first, (long long)(first + n),
             (long long)m->chunk0[m->n]);
    if (n == 0)
        return;
    hsize_t off[1] = {(hsize_t)first}, count[1] = {(hsize_t)n};
    hid_t fspace = H5_CHECK_AT(p, H5Dget_space(m->sums));
    hid_t mspace = H5_CHECK_AT(p, H5Screate_simple(1, count, NULL));
    H5_CHECK_AT(p, H5Sselect_hyperslab(fspace, H5S_SELECT_SET, off, NULL, count, NULL));
    H5_CHECK_AT(p, H5Dread(m->sums, H5T_NATIVE_UINT64, mspace, fspace, H5P_DEFAULT, out));
    H5_CHECK_AT(p, H5Sclose(mspace));
    H5_CHECK_AT(p, H5Sclose(fspace));
}

/* ---- writing ---- */

void shard_sums_free(ShardSums *s, int n)
{
    for (int i = 0; i < n; i++) {
        free(s[i].name);
        free(s[i].sums);
    }
    free(s);
}

/* The table of a manifest being written: one row per shard. */
typedef struct {
    int n;
    int64_t *ntokens;     /* (n) */
    uint64_t *checksums;  /* (n) */
    uint64_t *sums;       /* (nsums) */
    int64_t nsums, cap;
} Table;

static void write_manifest(const char *dir, const ShardName *names, const Table *t, int64_t chunk_tokens)
{
    char *path = xasprintf("%s/%s", dir, MANIFEST_FILE), *tmp = xasprintf("%s.tmp", path);
    size_t size = 1;
    for (int i = 0; i < t->n; i++)
        size = strlen(names[i].name) > size ? strlen(names[i].name) : size;
    char *text = xcalloc((size_t)t->n + 1, size); /* (n, size) NUL-padded */
    for (int i = 0; i < t->n; i++)
        memcpy(text + (size_t)i * size, names[i].name, strlen(names[i].name));
    hid_t f = h5_create(tmp);
    h5_attr_write_str(tmp, f, "format", MANIFEST_FORMAT);
    h5_attr_write_i64(tmp, f, "format_version", MANIFEST_VERSION);
    h5_attr_write_i64(tmp, f, "chunk_tokens", chunk_tokens);
    hid_t type = H5_CHECK_AT(tmp, H5Tcopy(H5T_C_S1));
    H5_CHECK_AT(tmp, H5Tset_size(type, size));
    H5_CHECK_AT(tmp, H5Tset_strpad(type, H5T_STR_NULLPAD));
    h5_write_array(tmp, f, "shards", type, type, t->n, text);
    H5_CHECK_AT(tmp, H5Tclose(type));
    h5_write_array(tmp, f, "n_tokens", H5T_STD_U64LE, H5T_NATIVE_INT64, t->n, t->ntokens);
    h5_write_array(tmp, f, "checksums", H5T_STD_U64LE, H5T_NATIVE_UINT64, t->n, t->checksums);
    h5_write_array(tmp, f, "chunk_checksums", H5T_STD_U64LE, H5T_NATIVE_UINT64, t->nsums, t->sums);
    H5_CHECK_AT(tmp, H5Fclose(f));
    if (rename(tmp, path) != 0)
        data_bad(path, "cannot rename %s to it: %s", tmp, strerror(errno));
    free(text);
    free(tmp);
    free(path);
}

/* Row i of t for the shard at path: its chunk checksums from known when there (chunk_tokens
   MANIFEST_CHUNK), or from old when it lists the shard (whose metadata must agree), else from
   reading the shard to the end. Returns whether it was read. */
static int add_row(Table *t, int i, const char *path, const char *name, hid_t file, const ShardMeta *meta,
                   const Manifest *old, const ShardSums *known, int64_t chunk_tokens, uint32_t *buf)
{
    int64_t nc = (meta->ntokens + chunk_tokens - 1) / chunk_tokens;
    t->sums = data_grow(t->sums, &t->cap, t->nsums + nc, sizeof *t->sums);
    t->ntokens[i] = meta->ntokens;
    t->checksums[i] = meta->checksum;
    uint64_t *sums = t->sums + t->nsums;
    t->nsums += nc;
    if (known) {
        if (known->n != nc)
            fail("manifest_update: %s has %lld chunks, its writer counted %lld", path, (long long)nc,
                 (long long)known->n);
        memcpy(sums, known->sums, nc * sizeof *sums);
        return 0;
    }
    if (old->n && manifest_find(old, name) >= 0) {
        manifest_chunk_sums(old, old->chunk0[manifest_check_shard(old, path, name, meta)], nc, sums);
        return 0;
    }
    hid_t tokens = shard_tokens_open(path, file);
    shard_check_checksum(path, meta, shard_scan(path, tokens, meta, chunk_tokens, buf, sums, NULL));
    H5_CHECK_AT(path, H5Dclose(tokens));
    return 1;
}

/* The entry of known for shard `name`, or NULL. */
static const ShardSums *known_sums(const ShardSums *known, int nknown, const char *name)
{
    for (int i = 0; i < nknown; i++)
        if (strcmp(known[i].name, name) == 0)
            return &known[i];
    return NULL;
}

int manifest_update(const char *dir, const ShardSums *known, int nknown)
{
    Manifest old;
    if (manifest_open(dir, &old))
        manifest_check_all_present(&old, NULL);
    ShardName *names;
    int n = shard_list(dir, NULL, &names), added = 0;
    if (n == 0)
        data_bad(dir, "no shard files (named <split>-NNNNN.h5)");
    int64_t chunk_tokens = old.n ? old.chunk_tokens : MANIFEST_CHUNK; /* old's checksums stay valid */
    if (chunk_tokens != MANIFEST_CHUNK)
        nknown = 0;
    Table t = {n, xmalloc(n * sizeof *t.ntokens), xmalloc(n * sizeof *t.checksums), NULL, 0, 0};
    uint32_t *buf = xmalloc(chunk_tokens * sizeof *buf); /* (chunk_tokens) */
    char *ref_path = NULL;
    ShardMeta ref;
    for (int i = 0; i < n; i++) {
        char *path = xasprintf("%s/%s", dir, names[i].name);
        ShardMeta meta;
        hid_t file = shard_open(path);
        shard_meta(path, file, names[i].split, &meta);
        if (ref_path)
            shard_meta_same(path, &meta, ref_path, &ref);
        else
            ref = meta, ref_path = xstrdup(path);
        added += add_row(&t, i, path, names[i].name, file, &meta, &old, known_sums(known, nknown, names[i].name),
                         chunk_tokens, buf);
        H5_CHECK_AT(path, H5Fclose(file));
        free(path);
    }
    write_manifest(dir, names, &t, chunk_tokens);
    free(ref_path);
    free(buf);
    free(t.sums);
    free(t.checksums);
    free(t.ntokens);
    shard_names_free(names, n);
    free(names);
    manifest_close(&old);
    return added;
}
