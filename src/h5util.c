/* h5util.c: HDF5 helpers (see h5util.h). */
#include "src/h5util.h"

#include "base/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* A sealed file: HDF5's user block (which the library skips) holds this line, then
   "fnv1a64 HEX bytes N\n" of the N bytes after the block, written once the file is closed. */
enum { SEAL_BYTES = 512 };
static const char seal_magic[] = "megatrain sealed HDF5 file\n";

static hid_t create(const char *path, int sealed)
{
    h5_init();
    hid_t fcpl = H5P_DEFAULT;
    if (sealed) {
        fcpl = H5_CHECK_AT(path, H5Pcreate(H5P_FILE_CREATE));
        H5_CHECK_AT(path, H5Pset_userblock(fcpl, SEAL_BYTES));
    }
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    if (sealed)
        H5_CHECK_AT(path, H5Pclose(fcpl));
    if (f < 0)
        fail_input("%s: cannot create the HDF5 file (does its folder exist and is it writable?)", path);
    return f;
}

hid_t h5u_create(const char *path) { return create(path, 0); }
hid_t h5u_create_sealed(const char *path) { return create(path, 1); }

/* FNV-1a of the bytes of f from SEAL_BYTES to its end; their count in *n; -1 on a read error */
static int seal_sum(FILE *f, uint64_t *h, int64_t *n)
{
    unsigned char buf[1 << 14]; /* on the stack: any thread may open a file */
    *h = UTIL_FNV_INIT;
    *n = 0;
    if (fseek(f, SEAL_BYTES, SEEK_SET) != 0)
        return -1;
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        *h = util_fnv1a(buf, got, *h);
        *n += (int64_t)got;
    }
    return ferror(f) ? -1 : 0;
}

/* the user block of a file sealed with checksum h over n bytes: the two lines, then zeros */
static void seal_block(char block[SEAL_BYTES], uint64_t h, int64_t n)
{
    memset(block, 0, SEAL_BYTES);
    snprintf(block, SEAL_BYTES, "%sfnv1a64 %016" PRIx64 " bytes %" PRId64 "\n", seal_magic, h, n);
}

void h5u_seal(const char *path)
{
    FILE *f = fopen(path, "r+b");
    uint64_t h;
    int64_t n;
    if (!f || seal_sum(f, &h, &n) != 0)
        fail("%s: cannot read the file back to seal it: %s", path, strerror(errno));
    char block[SEAL_BYTES];
    seal_block(block, h, n);
    if (fseek(f, 0, SEEK_SET) != 0 || fwrite(block, 1, sizeof block, f) != sizeof block || fflush(f) != 0 ||
        fsync(fileno(f)) != 0)
        fail("%s: cannot write its seal: %s", path, strerror(errno));
    if (fclose(f) != 0)
        fail("%s: cannot write its seal: %s", path, strerror(errno));
}

/* A sealed file must hold the bytes it was sealed with before HDF5 parses any of them (HDF5 1.10
   can crash or allocate without bound on a damaged file). An unsealed one (written before seals,
   or by other tools) must start with HDF5's signature: a seal whose first line is damaged would
   otherwise hand the rest to HDF5 unchecked (it looks for a superblock at 512 too). */
static void seal_check(const char *path)
{
    static const char hdf5_signature[8] = "\211HDF\r\n\032\n";
    FILE *f = fopen(path, "rb");
    if (!f)
        return; /* H5Fis_hdf5 names the problem */
    char block[SEAL_BYTES], want[SEAL_BYTES];
    size_t got = fread(block, 1, SEAL_BYTES, f);
    uint64_t h;
    int64_t n;
    const int unsealed = got >= sizeof hdf5_signature && !memcmp(block, hdf5_signature, sizeof hdf5_signature);
    const int sealed = got == SEAL_BYTES && !memcmp(block, seal_magic, sizeof seal_magic - 1);
    int ok = unsealed;
    if (sealed && seal_sum(f, &h, &n) == 0) {
        seal_block(want, h, n); /* every byte of the block too */
        ok = !memcmp(block, want, SEAL_BYTES);
    }
    fclose(f);
    if (!unsealed && !sealed)
        data_bad(path, "not a readable HDF5 file (no HDF5 signature or megatrain seal at its start)");
    if (!ok)
        data_bad(path, "checksum mismatch: the file changed after megatrain wrote it (the file is corrupted)");
}

hid_t h5u_open(const char *path, int write)
{
    h5_init();
    seal_check(path);
    if (H5Fis_hdf5(path) <= 0) /* H5Fis_accessible needs HDF5 1.12 */
        data_bad(path, "not a readable HDF5 file");
    hid_t f = H5Fopen(path, write ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        data_bad(path, "cannot open the HDF5 file (corrupted or truncated?)");
    return f;
}

int h5u_exists(hid_t loc, const char *name)
{
    /* H5Lexists needs every intermediate link to exist: walk the path */
    char part[1024];
    for (const char *p = name; (p = strchr(p, '/')); p++) {
        size_t n = (size_t)(p - name);
        if (n == 0 || n >= sizeof part)
            continue;
        memcpy(part, name, n);
        part[n] = '\0';
        if (H5Lexists(loc, part, H5P_DEFAULT) <= 0)
            return 0;
    }
    return H5Lexists(loc, name, H5P_DEFAULT) > 0;
}

void h5u_write(hid_t loc, const char *file, const char *name, hid_t memtype, hid_t filetype, int ndim,
               const hsize_t *shape, const void *data)
{
    hid_t lcpl = H5_CHECK_AT(file, H5Pcreate(H5P_LINK_CREATE));
    H5_CHECK_AT(file, H5Pset_create_intermediate_group(lcpl, 1));
    hid_t space = H5_CHECK_AT(file, ndim ? H5Screate_simple(ndim, shape, NULL) : H5Screate(H5S_SCALAR));
    hid_t d = H5Dcreate2(loc, name, filetype, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (d < 0)
        fail_input("%s: cannot create dataset %s", file, name);
    H5_CHECK_AT(file, H5Dwrite(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
    H5_CHECK_AT(file, H5Dclose(d));
    H5_CHECK_AT(file, H5Sclose(space));
    H5_CHECK_AT(file, H5Pclose(lcpl));
}

/* dataset `name` of loc, opened */
static hid_t open_dataset(hid_t loc, const char *name, const char *file)
{
    if (!h5u_exists(loc, name))
        data_bad(file, "dataset %s is missing", name);
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0)
        data_bad(file, "cannot open dataset %s", name);
    return d;
}

/* the shape of dataset d, of at most 16 dimensions; returns their number */
static int shape_of(hid_t d, hsize_t *dims, const char *name, const char *file)
{
    hid_t space = H5_CHECK_AT(file, H5Dget_space(d));
    int nd = H5_CHECK_AT(file, H5Sget_simple_extent_ndims(space));
    if (nd > 16)
        data_bad(file, "dataset %s has %d dimensions", name, nd);
    H5_CHECK_AT(file, H5Sget_simple_extent_dims(space, dims, NULL));
    H5_CHECK_AT(file, H5Sclose(space));
    return nd;
}

void h5u_shape(hid_t loc, const char *name, int ndim, hsize_t *shape, const char *file)
{
    hid_t d = open_dataset(loc, name, file);
    hsize_t dims[16] = {0};
    int nd = shape_of(d, dims, name, file);
    if (nd != ndim)
        data_bad(file, "dataset %s has %d dimensions, expected %d", name, nd, ndim);
    memcpy(shape, dims, (size_t)nd * sizeof *shape);
    H5_CHECK_AT(file, H5Dclose(d));
}

void h5u_read(hid_t loc, const char *name, hid_t memtype, int ndim, const hsize_t *shape, void *data,
              const char *file)
{
    hid_t d = open_dataset(loc, name, file);
    hsize_t dims[16] = {0};
    int nd = shape_of(d, dims, name, file);
    int same = nd == ndim;
    for (int i = 0; same && i < nd; i++)
        same = dims[i] == shape[i];
    if (!same) {
        char want[256] = "", got[256] = "";
        for (int i = 0; i < ndim; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%llu", i ? ", " : "",
                     (unsigned long long)shape[i]);
        for (int i = 0; i < nd; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu", i ? ", " : "",
                     (unsigned long long)dims[i]);
        data_bad(file, "dataset %s has shape (%s), expected (%s)", name, got, want);
    }
    if (H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        data_bad(file, "cannot read dataset %s (corrupted or truncated file?)", name);
    H5_CHECK_AT(file, H5Dclose(d));
}

/* the file space of 1-D dataset d with elements [at, at + n) selected, and a memory space of n */
static void select_part(hid_t d, const char *file, int64_t at, int64_t n, hid_t *space, hid_t *mem)
{
    const hsize_t start = (hsize_t)at, count = (hsize_t)n;
    *space = H5_CHECK_AT(file, H5Dget_space(d));
    H5_CHECK_AT(file, H5Sselect_hyperslab(*space, H5S_SELECT_SET, &start, NULL, &count, NULL));
    *mem = H5_CHECK_AT(file, H5Screate_simple(1, &count, NULL));
}

void h5u_read_part(hid_t loc, const char *name, int64_t at, int64_t n, float *out, const char *file)
{
    hid_t d = open_dataset(loc, name, file), space, mem;
    hsize_t dims[16] = {0};
    if (shape_of(d, dims, name, file) != 1 || at < 0 || n <= 0 || (hsize_t)at > dims[0] ||
        (hsize_t)n > dims[0] - (hsize_t)at)
        data_bad(file, "dataset %s does not hold elements %lld to %lld", name, (long long)at, (long long)(at + n - 1));
    select_part(d, file, at, n, &space, &mem);
    if (H5Dread(d, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, out) < 0)
        data_bad(file, "cannot read dataset %s (corrupted or truncated file?)", name);
    H5_CHECK_AT(file, H5Sclose(mem));
    H5_CHECK_AT(file, H5Sclose(space));
    H5_CHECK_AT(file, H5Dclose(d));
}

hid_t h5u_create_f32(hid_t loc, const char *file, const char *name, int64_t n)
{
    const hsize_t dims = (hsize_t)n;
    hid_t space = H5_CHECK_AT(file, H5Screate_simple(1, &dims, NULL));
    hid_t d = H5Dcreate2(loc, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d < 0)
        fail_input("%s: cannot create dataset %s", file, name);
    H5_CHECK_AT(file, H5Sclose(space));
    return d;
}

void h5u_write_part(hid_t d, const char *file, int64_t at, int64_t n, const float *data)
{
    hid_t space, mem;
    select_part(d, file, at, n, &space, &mem);
    H5_CHECK_AT(file, H5Dwrite(d, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, data));
    H5_CHECK_AT(file, H5Sclose(mem));
    H5_CHECK_AT(file, H5Sclose(space));
}

void h5u_attr_write(hid_t loc, const char *file, const char *name, hid_t memtype, hid_t filetype,
                    const void *value)
{
    hid_t space = H5_CHECK_AT(file, H5Screate(H5S_SCALAR));
    hid_t a = H5_CHECK_AT(file, H5Acreate2(loc, name, filetype, space, H5P_DEFAULT, H5P_DEFAULT));
    H5_CHECK_AT(file, H5Awrite(a, memtype, value));
    H5_CHECK_AT(file, H5Aclose(a));
    H5_CHECK_AT(file, H5Sclose(space));
}

void h5u_attr_write_string(hid_t loc, const char *file, const char *name, const char *value)
{
    hid_t type = H5_CHECK_AT(file, H5Tcopy(H5T_C_S1));
    H5_CHECK_AT(file, H5Tset_size(type, strlen(value) + 1));
    H5_CHECK_AT(file, H5Tset_strpad(type, H5T_STR_NULLTERM));
    h5u_attr_write(loc, file, name, type, type, value);
    H5_CHECK_AT(file, H5Tclose(type));
}

void h5u_attr_write_i64s(hid_t loc, const char *file, const char *name, int n, const int64_t *values)
{
    hsize_t dims = (hsize_t)n;
    hid_t space = H5_CHECK_AT(file, H5Screate_simple(1, &dims, NULL));
    hid_t a = H5_CHECK_AT(file, H5Acreate2(loc, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT));
    H5_CHECK_AT(file, H5Awrite(a, H5T_NATIVE_INT64, values));
    H5_CHECK_AT(file, H5Aclose(a));
    H5_CHECK_AT(file, H5Sclose(space));
}

/* open attribute `name` of loc holding `n` values (n = 0: a scalar) */
static hid_t attr_open(hid_t loc, const char *file, const char *name, int n)
{
    if (H5Aexists(loc, name) <= 0)
        data_bad(file, "attribute %s is missing", name);
    hid_t a = H5_CHECK_AT(file, H5Aopen(loc, name, H5P_DEFAULT));
    hid_t space = H5_CHECK_AT(file, H5Aget_space(a));
    hssize_t count = H5_CHECK_AT(file, H5Sget_simple_extent_npoints(space));
    H5_CHECK_AT(file, H5Sclose(space));
    if (count != (n ? n : 1))
        data_bad(file, "attribute %s holds %lld values, expected %d", name, (long long)count, n ? n : 1);
    return a;
}

int64_t h5u_attr_i64(hid_t loc, const char *file, const char *name)
{
    int64_t v;
    h5u_attr_i64s(loc, file, name, 0, &v);
    return v;
}

void h5u_attr_i64s(hid_t loc, const char *file, const char *name, int n, int64_t *values)
{
    hid_t a = attr_open(loc, file, name, n);
    hid_t type = H5_CHECK_AT(file, H5Aget_type(a));
    if (H5Tget_class(type) != H5T_INTEGER)
        data_bad(file, "attribute %s is not an integer", name);
    H5_CHECK_AT(file, H5Aread(a, H5T_NATIVE_INT64, values));
    H5_CHECK_AT(file, H5Tclose(type));
    H5_CHECK_AT(file, H5Aclose(a));
}

double h5u_attr_f64(hid_t loc, const char *file, const char *name)
{
    hid_t a = attr_open(loc, file, name, 0);
    hid_t type = H5_CHECK_AT(file, H5Aget_type(a));
    if (H5Tget_class(type) != H5T_FLOAT && H5Tget_class(type) != H5T_INTEGER)
        data_bad(file, "attribute %s is not a number", name);
    double v;
    H5_CHECK_AT(file, H5Aread(a, H5T_NATIVE_DOUBLE, &v));
    H5_CHECK_AT(file, H5Tclose(type));
    H5_CHECK_AT(file, H5Aclose(a));
    return v;
}

char *h5u_attr_string(hid_t loc, const char *file, const char *name)
{
    hid_t a = attr_open(loc, file, name, 0);
    hid_t type = H5_CHECK_AT(file, H5Aget_type(a));
    if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) > 0)
        data_bad(file, "attribute %s is not a fixed-length string", name);
    size_t n = H5Tget_size(type);
    char *s = xcalloc(n + 1, 1);
    H5_CHECK_AT(file, H5Aread(a, type, s));
    H5_CHECK_AT(file, H5Tclose(type));
    H5_CHECK_AT(file, H5Aclose(a));
    return s;
}
