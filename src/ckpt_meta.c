/* ckpt_meta.c: a checkpoint's meta.h5: writing it, reading it back and judging it (see
   ckpt_meta.h and ckpt.h: ckpt_info). */
#include "src/ckpt_meta.h"

#include "autoconfig.h"
#include "src/ckpt_slices.h"
#include "src/h5util.h"
#include "base/util.h"

#include <float.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Its integer attributes, in checksum order (doc/checkpoint.md), each with the range of a sound
   value and the format version that has it; then its floats and strings. */
static const struct {
    const char *name;
    int64_t lo, hi;
    int since;
} meta_ints[] = {
    {"format_version", 1, CKPT_VERSION, 1}, {"step", 0, INT64_MAX, 1}, {"cursor", 0, INT64_MAX, 1},
    {"seed", INT64_MIN, INT64_MAX, 1}, {"tp", 1, INT_MAX, 1}, {"pp", 1, INT_MAX, 1}, {"dp", 1, INT_MAX, 1},
    {"cp", 1, INT_MAX, 1}, {"vocab_size", 1, INT_MAX, 1}, {"n_layers", 1, INT_MAX, 1}, {"d_model", 1, INT_MAX, 1},
    {"n_heads", 1, INT_MAX, 1}, {"z_dim", 1, INT_MAX, 1}, {"v_dim", 1, INT_MAX, 1}, {"ffn_dim", 1, INT_MAX, 1},
    {"swiglu", 0, 1, 1}, {"chunk", 1, INT_MAX, 1}, {"groups", 1, INT_MAX, 1}, {"cema_ndim", 1, INT_MAX, 1},
    {"scale_emb", 0, 1, 1}, {"share_emb", 0, 1, 1}, {"data_fingerprint", INT64_MIN, INT64_MAX, 1},
    {"files", 1, INT_MAX, 4}};
enum {
    META_INTS = sizeof meta_ints / sizeof meta_ints[0],
    META_FIRST_INT = 4, /* tp: the first of int type */
    META_FP = META_INTS - 2,
    META_FILES = META_INTS - 1,
    META_STRINGS = 5
};
static const char *const meta_floats[2] = {"rope_base", "norm_eps"};
static const char *const meta_strings[META_STRINGS] = {"format", "time", "git", "config", "tensor_names"};
static const int meta_strings_since[META_STRINGS] = {1, 1, 1, 1, 4};

/* The int fields of a CkptInfo, in meta_ints order from META_FIRST_INT up to the fingerprint. */
static void int_fields(CkptInfo *ck, int **f)
{
    ModelDims *d = &ck->dims;
    int *all[] = {&ck->tp, &ck->pp, &ck->dp, &ck->cp, &d->vocab, &d->n_layers, &d->D, &d->H, &d->Z,
                  &d->V, &d->F, &d->swiglu, &d->C, &d->G, &d->N, &d->scale_emb, &d->share_emb};
    memcpy(f, all, sizeof all);
}

/* FNV-1a 64 of the name with its NUL, then of each of n values' 8 bytes, little-endian */
static uint64_t hash_values(uint64_t h, const char *name, const int64_t *v, size_t n)
{
    h = util_fnv1a(name, strlen(name) + 1, h);
    for (size_t i = 0; i < n; i++) {
        unsigned char le[8];
        for (int b = 0; b < 8; b++)
            le[b] = (unsigned char)((uint64_t)v[i] >> 8 * b);
        h = util_fnv1a(le, 8, h);
    }
    return h;
}

/* What meta.h5 holds of a checkpoint of format `version` (ints[0]). */
typedef struct {
    int64_t ints[META_INTS];
    double floats[2];
    const char *strings[META_STRINGS];
    const int64_t *tensors, *slices; /* format 4: the index, (nt, 5) and (ns, 9) */
    int nt, ns;
} MetaValues;

/* The checksum of every other attribute of its version: integers, floats (their float64 bits),
   strings (with their NUL), each after its name; then the index's tables, each after its name. */
static uint64_t meta_checksum(const MetaValues *v)
{
    uint64_t h = UTIL_FNV_INIT;
    for (int k = 0; k < META_INTS; k++)
        if (meta_ints[k].since <= v->ints[0])
            h = hash_values(h, meta_ints[k].name, &v->ints[k], 1);
    for (int k = 0; k < 2; k++) {
        int64_t bits;
        memcpy(&bits, &v->floats[k], sizeof bits);
        h = hash_values(h, meta_floats[k], &bits, 1);
    }
    for (int k = 0; k < META_STRINGS; k++)
        if (meta_strings_since[k] <= v->ints[0])
            h = util_fnv1a(v->strings[k], strlen(v->strings[k]) + 1,
                           util_fnv1a(meta_strings[k], strlen(meta_strings[k]) + 1, h));
    if (v->ints[0] >= 4) {
        h = hash_values(h, "tensors", v->tensors, (size_t)v->nt * SLICES_TENSOR_COLS);
        h = hash_values(h, "slices", v->slices, (size_t)v->ns * SLICES_SLICE_COLS);
    }
    return h;
}

/* the tensors' names, one a line */
static char *tensor_names(const CkptInfo *ck)
{
    size_t n = 1;
    for (int i = 0; i < ck->ntensors; i++)
        n += strlen(ck->tensors[i].name) + 1;
    char *s = xcalloc(n, 1);
    for (int i = 0; i < ck->ntensors; i++)
        strcat(strcat(s, ck->tensors[i].name), i + 1 < ck->ntensors ? "\n" : "");
    return s;
}

void ckpt_meta_write(const char *file, const CkptInfo *ck)
{
    CkptInfo c = *ck;
    int *f[META_INTS];
    MetaValues v = {.ints = {CKPT_VERSION, ck->step, ck->cursor, ck->seed},
                    .floats = {ck->dims.rope_base, ck->dims.eps},
                    .tensors = slices_tensor_rows(ck),
                    .slices = slices_slice_rows(ck),
                    .nt = ck->ntensors,
                    .ns = ck->nslices};
    int_fields(&c, f);
    for (int k = META_FIRST_INT; k < META_FP; k++)
        v.ints[k] = *f[k - META_FIRST_INT];
    v.ints[META_FP] = (int64_t)ck->data_fingerprint;
    v.ints[META_FILES] = ck->files;
    char stamp[64], *names = tensor_names(ck);
    time_t now = time(NULL);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    const char *strings[META_STRINGS] = {CKPT_FORMAT, stamp, MEGATRAIN_GIT_REV, ck->config ? ck->config : "", names};
    memcpy(v.strings, strings, sizeof strings);
    const int64_t sum = (int64_t)meta_checksum(&v);

    hid_t h = h5u_create_sealed(file);
    for (int k = 0; k < META_INTS; k++)
        h5u_attr_write_i64s(h, file, meta_ints[k].name, 1, &v.ints[k]);
    for (int k = 0; k < 2; k++)
        h5u_attr_write(h, file, meta_floats[k], H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, &v.floats[k]);
    for (int k = 0; k < META_STRINGS; k++)
        h5u_attr_write_string(h, file, meta_strings[k], v.strings[k]);
    h5u_attr_write_i64s(h, file, "fnv1a64", 1, &sum);
    h5u_write(h, file, "tensors", H5T_NATIVE_INT64, H5T_STD_I64LE, 2,
              (hsize_t[]){(hsize_t)v.nt, SLICES_TENSOR_COLS}, v.tensors);
    h5u_write(h, file, "slices", H5T_NATIVE_INT64, H5T_STD_I64LE, 2,
              (hsize_t[]){(hsize_t)v.ns, SLICES_SLICE_COLS}, v.slices);
    H5_CHECK_AT(file, H5Fclose(h));
    h5u_seal(file); /* fsyncs it */
    free((void *)v.tensors);
    free((void *)v.slices);
    free(names);
}

typedef struct {
    const char *file;            /* the meta.h5 */
    char *strings[META_STRINGS]; /* what was read of meta_strings, freed by ckpt_info whatever happens */
    int64_t *rows[2];            /* format 4: the index's tables, likewise */
    CkptInfo *info;
} InfoArgs;

/* What no sound checkpoint holds, even with a matching checksum (format 1 has none). */
static void meta_check(const char *file, const MetaValues *v, const CkptInfo *ck)
{
    for (int k = 0; k < META_INTS; k++)
        if (meta_ints[k].since <= v->ints[0] && (v->ints[k] < meta_ints[k].lo || v->ints[k] > meta_ints[k].hi))
            data_bad(file, "attribute %s = %lld is out of range (expected %lld to %lld)", meta_ints[k].name,
                     (long long)v->ints[k], (long long)meta_ints[k].lo, (long long)meta_ints[k].hi);
    for (int k = 0; k < 2; k++)
        if (!(v->floats[k] > 0 && v->floats[k] <= FLT_MAX))
            data_bad(file, "attribute %s = %g: expected a positive float32", meta_floats[k], v->floats[k]);
    const ModelDims *d = &ck->dims;
    if (d->D % d->G || d->Z % d->H || d->V % d->H)
        data_bad(file, "a model of d_model %d, groups %d, n_heads %d, z_dim %d, v_dim %d (groups must divide d_model, "
                 "n_heads z_dim and v_dim)", d->D, d->G, d->H, d->Z, d->V);
    if (d->H % ck->tp || d->D % ck->tp || d->G % ck->tp || d->F % ck->tp || d->vocab % ck->tp ||
        d->n_layers < ck->pp)
        data_bad(file, "layout tp %d pp %d does not fit the model (n_heads %d, d_model %d, groups %d, ffn_dim %d, "
                 "vocab_size %d, %d layers)", ck->tp, ck->pp, d->H, d->D, d->G, d->F, d->vocab, d->n_layers);
}

/* Format 4's table `name` of cols int64 columns into *rows (allocated); returns its rows, at
   least one and no more than the file's bytes can hold. */
static int read_table(hid_t h, const char *file, const char *name, int cols, int64_t **rows)
{
    struct stat sb;
    hsize_t dims[2];
    h5u_shape(h, name, 2, dims, file);
    if (stat(file, &sb) != 0 || dims[1] != (hsize_t)cols || dims[0] < 1 ||
        dims[0] > (hsize_t)sb.st_size / (8 * (hsize_t)cols))
        data_bad(file, "dataset %s has shape (%llu, %llu): expected (rows, %d), rows as the file's size allows", name,
                 (unsigned long long)dims[0], (unsigned long long)dims[1], cols);
    *rows = xmalloc((size_t)dims[0] * (size_t)cols * sizeof **rows);
    h5u_read(h, name, H5T_NATIVE_INT64, 2, dims, *rows, file);
    return (int)dims[0];
}

static void info_body(void *arg)
{
    InfoArgs *a = arg;
    const char *file = a->file;
    CkptInfo *ck = a->info;
    hid_t h = h5u_open(file, 0);
    a->strings[0] = h5u_attr_string(h, file, "format");
    if (strcmp(a->strings[0], CKPT_FORMAT))
        data_bad(file, "not a megatrain checkpoint (format '%s')", a->strings[0]);
    MetaValues v = {.ints = {h5u_attr_i64(h, file, "format_version")}};
    const int64_t version = v.ints[0];
    if (version < 1 || version > CKPT_VERSION || version == 3)
        data_bad(file, "format version %lld, this megatrain reads 1, 2 and %d", (long long)version, CKPT_VERSION);
    for (int k = 1; k < META_INTS; k++)
        if (meta_ints[k].since <= version)
            v.ints[k] = h5u_attr_i64(h, file, meta_ints[k].name);
    for (int k = 0; k < 2; k++)
        v.floats[k] = h5u_attr_f64(h, file, meta_floats[k]);
    for (int k = 1; k < META_STRINGS; k++)
        if (meta_strings_since[k] <= version)
            a->strings[k] = h5u_attr_string(h, file, meta_strings[k]);
    if (version >= 4) {
        v.nt = read_table(h, file, "tensors", SLICES_TENSOR_COLS, &a->rows[0]);
        v.ns = read_table(h, file, "slices", SLICES_SLICE_COLS, &a->rows[1]);
        v.tensors = a->rows[0];
        v.slices = a->rows[1];
    }
    memcpy(v.strings, a->strings, sizeof v.strings);
    /* a single bit flip never turns version 2 or 4 into 1, which has no checksum to check */
    if (version >= 2 && (uint64_t)h5u_attr_i64(h, file, "fnv1a64") != meta_checksum(&v))
        data_bad(file, "checksum mismatch: a value changed after megatrain wrote it (the file is corrupted)");
    H5_CHECK_AT(file, H5Fclose(h));

    int *f[META_INTS];
    int_fields(ck, f);
    for (int k = META_FIRST_INT; k < META_FP; k++)
        *f[k - META_FIRST_INT] = (int)v.ints[k];
    ck->version = (int)version;
    ck->step = v.ints[1];
    ck->cursor = v.ints[2];
    ck->seed = v.ints[3];
    ck->data_fingerprint = (uint64_t)v.ints[META_FP];
    ck->files = (int)v.ints[META_FILES];
    ck->dims.rope_base = (float)v.floats[0];
    ck->dims.eps = (float)v.floats[1];
    meta_check(file, &v, ck);
    if (version >= 4)
        slices_from_rows(file, ck, a->strings[4], v.tensors, v.nt, v.slices, v.ns);
    ck->config = a->strings[3];
    a->strings[3] = NULL;
}

int ckpt_info(const char *path, CkptInfo *info, char *err, size_t errlen)
{
    memset(info, 0, sizeof *info);
    char *file = xasprintf("%s/meta.h5", path);
    InfoArgs a = {.file = file, .info = info};
    const int ok = data_try(info_body, &a, err, errlen);
    for (int k = 0; k < META_STRINGS; k++)
        free(a.strings[k]);
    free(a.rows[0]);
    free(a.rows[1]);
    free(file);
    if (!ok) {
        ckpt_info_free(info);
        return -1;
    }
    info->path = xstrdup(path);
    return 0;
}

void ckpt_info_free(CkptInfo *info)
{
    free(info->path);
    free(info->config);
    free(info->tensors);
    free(info->slices);
    memset(info, 0, sizeof *info);
}
