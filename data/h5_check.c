/* h5_check.c: HDF5 error reporting and checked reads and writes for the data layer (see
   h5_check.h). */
#include "data/h5_check.h"

#include "base/util.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define H5_STR_MAX 1024     /* longest string attribute read: they hold names */
#define H5_GUARD_SECONDS 120 /* a file's metadata reads take milliseconds, on a slow file system seconds */

/* per thread: HDF5's error stacks are (in a thread-safe build), and so is a data_try */
static _Thread_local int h5_ready;
static _Thread_local jmp_buf *try_jump; /* armed inside data_try */
static _Thread_local char try_msg[1024];

void h5_init(void)
{
    if (h5_ready)
        return;
    if (H5open() < 0 || H5Eset_auto2(H5E_DEFAULT, NULL, NULL) < 0)
        fail("cannot initialise the HDF5 library");
    h5_ready = 1;
}

int h5_threadsafe(void)
{
    hbool_t yes = 0;
    return H5is_library_threadsafe(&yes) >= 0 && yes;
}

/* The first frame of an upward walk is where HDF5 found the problem: its text says the most. */
static herr_t h5_innermost(unsigned n, const H5E_error2_t *err, void *reason)
{
    if (n == 0) {
        snprintf(reason, 512, "%s", err->desc ? err->desc : "");
        for (char *c = reason; *c; c++) /* a failed write's text spans lines: keep the message on one */
            if (*c == '\n')
                *c = ' ';
    }
    return 0;
}

void h5_fail(const char *path, const char *call, const char *where)
{
    char reason[512] = "";
    if (H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_innermost, reason) < 0 || !reason[0])
        snprintf(reason, sizeof reason, "no reason given");
    int fn_len = (int)strcspn(call, "(");
    if (where)
        data_bad(path, "HDF5 error in %.*s: %s (%s)", fn_len, call, reason, where);
    data_bad(path, "HDF5 error in %.*s: %s", fn_len, call, reason);
}

/* ---- the guard on HDF5's metadata reads ---- */

static const int guard_signals[] = {SIGALRM, SIGSEGV, SIGBUS, SIGFPE, SIGILL};
#define GUARD_NSIG (int)(sizeof guard_signals / sizeof guard_signals[0])
static struct sigaction guard_saved[GUARD_NSIG];
static volatile sig_atomic_t guard_depth; /* h5_guard_on calls not yet undone (under guard_lock) */
static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local int guard_mine; /* of guard_depth, this thread's */
static int guard_seconds = -1;           /* -1: not read yet; 0: off */
static char guard_path[1024], guard_time[16];

/* async-signal-safe: write(2) and _exit only */
static void guard_say(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    ssize_t w = write(STDERR_FILENO, s, n);
    (void)w;
}

static void guard_fire(int sig)
{
    guard_say(util_progname());
    guard_say(": error: ");
    guard_say(guard_path);
    if (sig == SIGALRM) {
        guard_say(": HDF5 did not finish reading the file's metadata in ");
        guard_say(guard_time);
        guard_say(" s (a damaged file?)\n");
    } else
        guard_say(": HDF5 crashed reading the file's metadata (a damaged file?)\n");
    _exit(2);
}

void h5_guard_on(const char *path)
{
    pthread_mutex_lock(&guard_lock); /* a reading-ahead thread may read beside the main one */
    if (guard_seconds < 0) {
        const char *e = getenv("MEGATRAIN_TEST_H5_GUARD_SECONDS");
        guard_seconds = e && *e ? atoi(e) : H5_GUARD_SECONDS;
        snprintf(guard_time, sizeof guard_time, "%d", guard_seconds);
    }
    if (guard_seconds > 0) {
        guard_mine++;
        if (guard_depth++ == 0) {
            struct sigaction sa = {.sa_handler = guard_fire, .sa_flags = SA_RESETHAND | SA_NODEFER};
            sigemptyset(&sa.sa_mask);
            for (int i = 0; i < GUARD_NSIG; i++)
                sigaction(guard_signals[i], &sa, &guard_saved[i]);
        }
        /* from the latest read on: threads whose guarded reads overlap without end never fire
           it, and a read stuck inside HDF5 holds HDF5's lock, so no later one comes */
        snprintf(guard_path, sizeof guard_path, "%s", path);
        alarm((unsigned)guard_seconds);
    }
    pthread_mutex_unlock(&guard_lock);
}

void h5_guard_off(void)
{
    pthread_mutex_lock(&guard_lock);
    if (guard_mine > 0 && (guard_mine--, --guard_depth == 0)) {
        alarm(0);
        for (int i = 0; i < GUARD_NSIG; i++)
            sigaction(guard_signals[i], &guard_saved[i], NULL);
    }
    pthread_mutex_unlock(&guard_lock);
}

void data_bad(const char *path, const char *fmt, ...)
{
    char what[768];
    while (guard_mine > 0) /* a report ends this thread's guarded reads */
        h5_guard_off();
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (try_jump) {
        snprintf(try_msg, sizeof try_msg, "%s: %s", path, what);
        longjmp(*try_jump, 1);
    }
    fail_input("%s: %s", path, what);
}

/* The HDF5 objects open now (files, datasets, groups, named types, attributes): a handful. */
static size_t open_objects(hid_t **ids)
{
    ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    *ids = xmalloc(((size_t)(n > 0 ? n : 0) + 1) * sizeof **ids);
    n = n > 0 ? H5Fget_obj_ids(H5F_OBJ_ALL, H5F_OBJ_ALL, (size_t)n, *ids) : 0;
    if (n < 0)
        fail("HDF5: cannot list the open objects");
    return (size_t)n;
}

/* Close what fn left open when data_bad stopped it: objects first, then their files. */
static void close_since(const hid_t *before, size_t nbefore)
{
    hid_t *now;
    size_t n = open_objects(&now);
    for (int files = 0; files < 2; files++)
        for (size_t i = 0; i < n; i++) {
            H5I_type_t type = H5Iget_type(now[i]);
            size_t b = 0;
            while (b < nbefore && before[b] != now[i])
                b++;
            if ((type == H5I_FILE) != files || b < nbefore)
                continue;
            if (type == H5I_FILE)
                H5Fclose(now[i]);
            else if (type == H5I_ATTR)
                H5Aclose(now[i]);
            else
                H5Oclose(now[i]);
        }
    free(now);
}

int data_try(void (*fn)(void *), void *arg, char *msg, size_t msg_len)
{
    jmp_buf jump;
    if (try_jump)
        fail("data_try: nested call");
    hid_t *before;
    size_t nbefore = open_objects(&before);
    if (setjmp(jump) == 0) {
        try_jump = &jump;
        fn(arg);
        try_jump = NULL;
        free(before);
        return 1;
    }
    try_jump = NULL;
    snprintf(msg, msg_len, "%s", try_msg);
    close_since(before, nbefore);
    free(before);
    return 0;
}

void *data_grow(void *p, int64_t *cap, int64_t n, size_t size)
{
    if (n <= *cap)
        return p;
    *cap = n > 2 * *cap ? n : 2 * *cap;
    p = realloc(p, (size_t)*cap * size);
    if (!p)
        fail("out of memory (%lld elements of %zu bytes)", (long long)*cap, size);
    return p;
}

/* ---- files ---- */

static const char *file_kind(mode_t mode)
{
    return S_ISDIR(mode)                     ? "a folder"
           : S_ISFIFO(mode)                  ? "a FIFO"
           : S_ISSOCK(mode)                  ? "a socket"
           : S_ISLNK(mode)                   ? "a symbolic link"
           : S_ISCHR(mode) || S_ISBLK(mode) ? "a device"
                                             : "not a regular file";
}

void h5_check_regular(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        data_bad(path, "cannot open: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        data_bad(path, "is %s, expected a regular HDF5 file", file_kind(st.st_mode));
}

hid_t h5_create(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
        data_bad(path, "is %s; not writing through it", file_kind(st.st_mode));
    h5_init();
    hid_t fapl = H5_CHECK_AT(path, H5Pcreate(H5P_FILE_ACCESS));
    H5_CHECK_AT(path, H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110));
    hid_t fcpl = H5_CHECK_AT(path, H5Pcreate(H5P_FILE_CREATE));
    H5_CHECK_AT(path, H5Pset_obj_track_times(fcpl, 0)); /* the root group's */
    hid_t file = H5_CHECK_AT(path, H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl));
    H5_CHECK_AT(path, H5Pclose(fcpl));
    H5_CHECK_AT(path, H5Pclose(fapl));
    return file;
}

/* ---- reads ---- */

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

void h5_attr_int(const char *path, hid_t obj, const char *name, hid_t memtype, void *out)
{
    hid_t a = attr_open(path, obj, name, H5T_INTEGER);
    H5_CHECK_AT(path, H5Aread(a, memtype, out));
    H5_CHECK_AT(path, H5Aclose(a));
}

void h5_attr_str(const char *path, hid_t obj, const char *name, char *out, size_t cap)
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
        char s[H5_STR_MAX + 1]; /* on the stack: nothing to leak when a read fails */
        if (size > H5_STR_MAX)
            data_bad(path, "attribute '%s' is a string of %zu bytes, more than %d", name, size, H5_STR_MAX);
        H5_CHECK_AT(path, H5Tset_size(mem, size + 1));
        H5_CHECK_AT(path, H5Tset_strpad(mem, H5T_STR_NULLTERM));
        H5_CHECK_AT(path, H5Aread(a, mem, s));
        snprintf(out, cap, "%s", s);
    }
    H5_CHECK_AT(path, H5Tclose(mem));
    H5_CHECK_AT(path, H5Tclose(type));
    H5_CHECK_AT(path, H5Aclose(a));
}

/* Whether every one of the n entries of a 1-D dataset is in the file: each chunk written, or the
   contiguous storage as large as the data. */
static int h5_array_stored(const char *path, hid_t dset, hsize_t n, size_t width)
{
    hid_t dcpl = H5_CHECK_AT(path, H5Dget_create_plist(dset));
    H5D_layout_t layout = H5Pget_layout(dcpl);
    int stored = layout == H5D_COMPACT;
    if (layout == H5D_CHUNKED) {
        hsize_t chunk = 0, have = 0;
        H5_CHECK_AT(path, H5Pget_chunk(dcpl, 1, &chunk));
        hid_t space = H5_CHECK_AT(path, H5Dget_space(dset));
        H5_CHECK_AT(path, H5Dget_num_chunks(dset, space, &have));
        H5_CHECK_AT(path, H5Sclose(space));
        stored = chunk > 0 && have == (n - 1) / chunk + 1;
    } else if (layout == H5D_CONTIGUOUS) {
        stored = H5Dget_storage_size(dset) / width >= n;
    }
    H5_CHECK_AT(path, H5Pclose(dcpl));
    return stored;
}

int64_t h5_array_length(const char *path, hid_t dset, const char *name, int *width)
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
    /* A length the file does not store (chunks never written read as fill values) would have the
       readers allocate or scan it: 2^40 declared entries in an 8 KB file. */
    if (dims[0] > 0 && !h5_array_stored(path, dset, dims[0], (size_t)*width))
        data_bad(path, "'%s' declares %llu entries but the file does not hold them all (never written)", name,
                 (unsigned long long)dims[0]);
    return (int64_t)dims[0];
}

/* ---- writes ---- */

void h5_attr_write(const char *path, hid_t obj, const char *name, hid_t type, const void *value)
{
    hid_t space = H5_CHECK_AT(path, H5Screate(H5S_SCALAR));
    hid_t a = H5_CHECK_AT(path, H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT));
    H5_CHECK_AT(path, H5Awrite(a, type, value));
    H5_CHECK_AT(path, H5Aclose(a));
    H5_CHECK_AT(path, H5Sclose(space));
}

void h5_attr_write_i64(const char *path, hid_t obj, const char *name, int64_t value)
{
    h5_attr_write(path, obj, name, H5T_NATIVE_INT64, &value);
}

/* (A variable-length string, as h5py writes a Python str, lives in the global heap, which has no
   checksum: HDF5 1.10 crashes on some corruptions there.) */
void h5_attr_write_str(const char *path, hid_t obj, const char *name, const char *value)
{
    hid_t type = H5_CHECK_AT(path, H5Tcopy(H5T_C_S1));
    H5_CHECK_AT(path, H5Tset_size(type, strlen(value) ? strlen(value) : 1)); /* HDF5 has no empty type */
    H5_CHECK_AT(path, H5Tset_strpad(type, H5T_STR_NULLPAD));
    H5_CHECK_AT(path, H5Tset_cset(type, H5T_CSET_UTF8));
    h5_attr_write(path, obj, name, type, value);
    H5_CHECK_AT(path, H5Tclose(type));
}

hid_t h5_dcpl(const char *path, int64_t chunk)
{
    hsize_t dims[1] = {(hsize_t)(chunk > 0 ? chunk : 1)};
    hid_t dcpl = H5_CHECK_AT(path, H5Pcreate(H5P_DATASET_CREATE));
    H5_CHECK_AT(path, H5Pset_chunk(dcpl, 1, dims));
    H5_CHECK_AT(path, H5Pset_fletcher32(dcpl));
    H5_CHECK_AT(path, H5Pset_obj_track_times(dcpl, 0));
    return dcpl;
}

void h5_write_array(const char *path, hid_t file, const char *name, hid_t ftype, hid_t mtype, int64_t n,
                    const void *data)
{
    enum { CHUNK = 1 << 14 }; /* elements a chunk */
    hsize_t dims[1] = {(hsize_t)n};
    hid_t space = H5_CHECK_AT(path, H5Screate_simple(1, dims, NULL));
    hid_t dcpl = h5_dcpl(path, n < CHUNK ? n : CHUNK);
    hid_t d = H5_CHECK_AT(path, H5Dcreate2(file, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    if (n)
        H5_CHECK_AT(path, H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
    H5_CHECK_AT(path, H5Dclose(d));
    H5_CHECK_AT(path, H5Pclose(dcpl));
    H5_CHECK_AT(path, H5Sclose(space));
}
