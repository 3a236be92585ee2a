/* shard.c: shard names, metadata, token reads and checksum (see shard.h). */
#include "data/shard.h"

#include "data/h5_check.h"
#include "data/tokenizer.h"
#include "src/util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int shard_name_parse(const char *name, ShardName *out)
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
    if (out) {
        out->name = xstrdup(name);
        out->split = xasprintf("%.*s", (int)(dash - 1), name);
        out->number = strtol(name + dash, NULL, 10);
    }
    return 1;
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

static int shard_name_cmp(const void *pa, const void *pb)
{
    const ShardName *a = pa, *b = pb;
    int c = strcmp(a->split, b->split);
    if (c)
        return c;
    return a->number < b->number ? -1 : a->number > b->number;
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
    hid_t file = H5_CHECK_AT(path, H5Fopen(path, H5F_ACC_RDONLY, fapl));
    H5_CHECK_AT(path, H5Pclose(fapl));
    return file;
}

/* The attribute `name` of obj, checked to be present, of class cls and holding one value. */
static hid_t attr_open(const char *path, hid_t obj, const char *name, H5T_class_t cls)
{
    if (!H5_CHECK_AT(path, H5Aexists(obj, name)))
        data_bad(path, "missing attribute '%s'", name);
    hid_t a = H5_CHECK_AT(path, H5Aopen(obj, name, H5P_DEFAULT));
    hid_t type = H5_CHECK_AT(path, H5Aget_type(a)), space = H5_CHECK_AT(path, H5Aget_space(a));
    H5T_class_t got = H5_CHECK_AT(path, H5Tget_class(type));
    hssize_t npoints = H5_CHECK_AT(path, H5Sget_simple_extent_npoints(space));
    H5_CHECK_AT(path, H5Tclose(type));
    H5_CHECK_AT(path, H5Sclose(space));
    if (got != cls || npoints != 1)
        data_bad(path, "attribute '%s' should hold one %s", name, cls == H5T_INTEGER ? "integer" : "string");
    return a;
}

/* memtype: H5T_NATIVE_INT64 or H5T_NATIVE_UINT64; HDF5 converts any stored integer type. */
static void attr_int(const char *path, hid_t obj, const char *name, hid_t memtype, void *out)
{
    hid_t a = attr_open(path, obj, name, H5T_INTEGER);
    H5_CHECK_AT(path, H5Aread(a, memtype, out));
    H5_CHECK_AT(path, H5Aclose(a));
}

/* Fixed-length or variable-length (h5py's default) string attribute. */
static void attr_str(const char *path, hid_t obj, const char *name, char *out, size_t cap)
{
    hid_t a = attr_open(path, obj, name, H5T_STRING);
    hid_t type = H5_CHECK_AT(path, H5Aget_type(a));
    hid_t mem = H5_CHECK_AT(path, H5Tcopy(H5T_C_S1));
    H5_CHECK_AT(path, H5Tset_cset(mem, H5_CHECK_AT(path, H5Tget_cset(type)))); /* HDF5 converts no charset */
    if (H5_CHECK_AT(path, H5Tis_variable_str(type))) {
        char *s = NULL;
        H5_CHECK_AT(path, H5Tset_size(mem, H5T_VARIABLE));
        H5_CHECK_AT(path, H5Aread(a, mem, &s));
        snprintf(out, cap, "%s", s ? s : "");
        H5_CHECK_AT(path, H5free_memory(s));
    } else {
        size_t size = H5Tget_size(type);
        char *s = xcalloc(size + 1, 1);
        H5_CHECK_AT(path, H5Tset_size(mem, size + 1));
        H5_CHECK_AT(path, H5Tset_strpad(mem, H5T_STR_NULLTERM));
        H5_CHECK_AT(path, H5Aread(a, mem, s));
        snprintf(out, cap, "%s", s);
        free(s);
    }
    H5_CHECK_AT(path, H5Tclose(mem));
    H5_CHECK_AT(path, H5Tclose(type));
    H5_CHECK_AT(path, H5Aclose(a));
}

/* Length of a 1-D dataset of unsigned integers; *width gets the element size in bytes. */
static int64_t dataset_length(const char *path, hid_t dset, const char *name, int *width)
{
    hid_t type = H5_CHECK_AT(path, H5Dget_type(dset)), space = H5_CHECK_AT(path, H5Dget_space(dset));
    int ok =
        H5_CHECK_AT(path, H5Tget_class(type)) == H5T_INTEGER && H5_CHECK_AT(path, H5Tget_sign(type)) == H5T_SGN_NONE;
    *width = (int)H5Tget_size(type);
    hsize_t dims[1] = {0};
    ok = ok && H5_CHECK_AT(path, H5Sget_simple_extent_ndims(space)) == 1;
    if (ok)
        H5_CHECK_AT(path, H5Sget_simple_extent_dims(space, dims, NULL));
    H5_CHECK_AT(path, H5Tclose(type));
    H5_CHECK_AT(path, H5Sclose(space));
    if (!ok)
        data_bad(path, "'%s' should be a 1-D array of unsigned integers", name);
    return (int64_t)dims[0];
}

void shard_meta(const char *path, hid_t file, const char *split, ShardMeta *m)
{
    char text[SHARD_NAME_MAX];
    int64_t version, vocab, eod, ntokens;
    attr_str(path, file, "format", text, sizeof text);
    if (strcmp(text, SHARD_FORMAT) != 0)
        data_bad(path, "attribute 'format' is '%s', expected '%s'", text, SHARD_FORMAT);
    attr_int(path, file, "format_version", H5T_NATIVE_INT64, &version);
    if (version != SHARD_FORMAT_VERSION)
        data_bad(path, "format_version %lld, this megatrain reads version %d", (long long)version,
                 SHARD_FORMAT_VERSION);
    attr_int(path, file, "vocab_size", H5T_NATIVE_INT64, &vocab);
    attr_int(path, file, "eod_id", H5T_NATIVE_INT64, &eod);
    if (vocab < 1 || vocab > INT32_MAX)
        data_bad(path, "vocab_size %lld is out of range [1, %d]", (long long)vocab, INT32_MAX);
    if (eod < -1 || eod >= vocab)
        data_bad(path, "eod_id %lld should be -1 or below vocab_size %lld", (long long)eod, (long long)vocab);
    m->vocab = (int)vocab;
    m->eod = (int)eod;
    attr_str(path, file, "tokenizer", m->tokenizer, sizeof m->tokenizer);
    if (strcmp(m->tokenizer, TOKENIZER_BYTES) == 0 && (vocab != BYTES_VOCAB || eod != BYTES_EOD))
        data_bad(path, "tokenizer 'bytes' needs vocab_size %d and eod_id %d, not %lld and %lld", BYTES_VOCAB, BYTES_EOD,
                 (long long)vocab, (long long)eod);
    attr_str(path, file, "split", text, sizeof text);
    if (strcmp(text, split) != 0)
        data_bad(path, "attribute 'split' is '%s' but the file name says '%s'", text, split);
    attr_int(path, file, "n_tokens", H5T_NATIVE_INT64, &ntokens);
    attr_int(path, file, "checksum", H5T_NATIVE_UINT64, &m->checksum);

    if (!H5_CHECK_AT(path, H5Lexists(file, "tokens", H5P_DEFAULT)))
        data_bad(path, "no 'tokens' dataset");
    hid_t tokens = shard_tokens_open(path, file);
    m->ntokens = dataset_length(path, tokens, "tokens", &m->width);
    H5_CHECK_AT(path, H5Dclose(tokens));
    if (m->width != 2 && m->width != 4)
        data_bad(path, "'tokens' holds %d-byte integers, expected uint16 or uint32", m->width);
    if (ntokens != m->ntokens)
        data_bad(path, "attribute n_tokens is %lld but 'tokens' holds %lld", (long long)ntokens, (long long)m->ntokens);
    m->ndocs = -1;
    if (H5_CHECK_AT(path, H5Lexists(file, "doc_offsets", H5P_DEFAULT))) {
        int width;
        hid_t docs = H5_CHECK_AT(path, H5Dopen2(file, "doc_offsets", H5P_DEFAULT));
        m->ndocs = dataset_length(path, docs, "doc_offsets", &width);
        H5_CHECK_AT(path, H5Dclose(docs));
    }
}

hid_t shard_tokens_open(const char *path, hid_t file)
{
    return H5_CHECK_AT(path, H5Dopen2(file, "tokens", H5P_DEFAULT));
}

void shard_read(const char *path, hid_t tokens, int vocab, int64_t start, int64_t n, uint32_t *out)
{
    if (n <= 0)
        return;
    hsize_t off[1] = {(hsize_t)start}, count[1] = {(hsize_t)n};
    hid_t fspace = H5_CHECK_AT(path, H5Dget_space(tokens));
    hid_t mspace = H5_CHECK_AT(path, H5Screate_simple(1, count, NULL));
    H5_CHECK_AT(path, H5Sselect_hyperslab(fspace, H5S_SELECT_SET, off, NULL, count, NULL));
    H5_CHECK_AT(path, H5Dread(tokens, H5T_NATIVE_UINT32, mspace, fspace, H5P_DEFAULT, out));
    H5_CHECK_AT(path, H5Sclose(mspace));
    H5_CHECK_AT(path, H5Sclose(fspace));
    for (int64_t i = 0; i < n; i++)
        if (out[i] >= (uint32_t)vocab)
            data_bad(path, "token %lld is %u, not below vocab_size %d", (long long)(start + i), out[i], vocab);
}

uint64_t shard_checksum(const uint32_t *ids, int64_t n, int width, uint64_t h)
{
    for (int64_t i = 0; i < n; i++) {
        unsigned char le[4] = {ids[i] & 0xff, (ids[i] >> 8) & 0xff, (ids[i] >> 16) & 0xff, ids[i] >> 24};
        h = util_fnv1a(le, (size_t)width, h);
    }
    return h;
}
